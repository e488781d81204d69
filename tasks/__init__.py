"""Benchmark task suites behind one protocol (`tasks.base`), and the suite registry."""
from __future__ import annotations

from core.registry import Registry, UnknownName
from tasks.protocol import LIBERO_STANDARD, LIBERO_SUITES, SIMPLER_STANDARD, SIMPLER_SUITES

SUITES = Registry(
    "suite",
    {
        **{name: "tasks.libero:LiberoSuite" for name in LIBERO_SUITES},
        **{name: "tasks.simpler:SimplerSuite" for name in SIMPLER_SUITES},
    },
)
SUITE_GROUPS = {"libero": LIBERO_STANDARD, "simpler": SIMPLER_STANDARD}
"""Names that expand to several suites."""


def expand_suites(name: str) -> tuple[str, ...]:
    """`libero` -> its four standard suites; a single suite name -> itself; else UnknownName."""
    if name in SUITE_GROUPS:
        return SUITE_GROUPS[name]
    try:
        return (SUITES.check(name),)
    except UnknownName as err:
        raise UnknownName(f"{err}, or a group: {', '.join(SUITE_GROUPS)}") from None


def make_suite(name: str):
    return SUITES.load(name)(name)
