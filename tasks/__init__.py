"""Benchmark task suites behind one protocol (`tasks.base`), and the suite registry."""
from __future__ import annotations

from core.registry import Registry, UnknownName
from tasks.protocol import (LIBERO_PRO_VARIANTS, LIBERO_STANDARD, LIBERO_SUITES, LIBERO_TRAIN_SUITES, SIMPLER_STANDARD,
                            SIMPLER_SUITES, SIMPLER_TRAIN_SUITES, parent_suite)

SUITES = Registry(
    "suite",
    {
        **{name: "tasks.libero:LiberoSuite" for name in (*LIBERO_SUITES, *LIBERO_PRO_VARIANTS, *LIBERO_TRAIN_SUITES)},
        **{name: "tasks.simpler:SimplerSuite" for name in (*SIMPLER_SUITES, *SIMPLER_TRAIN_SUITES)},
    },
)
SUITE_GROUPS = {
    "libero": LIBERO_STANDARD,
    "simpler": SIMPLER_STANDARD,
    "libero_train": tuple(LIBERO_TRAIN_SUITES),
    "simpler_train": tuple(SIMPLER_TRAIN_SUITES),
    **{f"{parent}_pro": tuple(v for v in LIBERO_PRO_VARIANTS if parent_suite(v) == parent)
       for parent in LIBERO_STANDARD},
}
"""Names that expand to several suites (`libero_spatial_pro`: every LIBERO-PRO variant of libero_spatial;
`libero_train`, `simpler_train`: the training-layout suites of the standard ones)."""


def expand_suites(name: str) -> tuple[str, ...]:
    """`libero` -> its four standard suites; a single suite name -> itself; `<suite or group>@<perturbation>`
    (`tasks.perturb`) -> each suite under the perturbation, canonically named; else UnknownName."""
    from tasks.perturb import SEPARATOR, perturbed_name

    base, sep, perturbation = name.partition(SEPARATOR)
    if sep:
        return tuple(perturbed_name(s, perturbation) for s in expand_suites(base))
    if name in SUITE_GROUPS:
        return SUITE_GROUPS[name]
    try:
        return (SUITES.check(name),)
    except UnknownName as err:
        raise UnknownName(f"{err}, or a group: {', '.join(SUITE_GROUPS)}") from None


def make_suite(name: str):
    from tasks.perturb import SEPARATOR, PerturbedSuite

    if SEPARATOR in name:
        return PerturbedSuite(name)
    return SUITES.load(name)(name)
