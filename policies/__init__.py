"""Policies behind one protocol (`policies.base`), their registry and the factory that builds one from a spec.

A registry entry names a family's class ("module:Class") or an `Alias` binding params of another entry. A family
with parameters declares them as a frozen dataclass `Params` on its class; one that loads weights takes
`checkpoint` and may offer `shipped_checkpoint(suite)`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.registry import Alias, Registry
from core.spec import NoParams, ParamError, PolicySpec, identity, parse_params, run_tag, spec_hash

POLICIES = Registry(
    "policy",
    {
        "actdistill": "policies.actdistill.policy:ActDistillPolicy",
        "expert": "policies.expert.policy:ExpertPolicy",
        "expert_dart": "policies.dart.policy:DartExpert",
        "noop": "policies.sanity:NoopPolicy",
        "random": "policies.sanity:RandomPolicy",
        "teacher": "policies.vla.policy:VLAPolicy",
        "pruned": "policies.pruning.policy:PrunedPolicy",
        "random-skip": "policies.pruning.policy:RandomSkipPolicy",
        "early-exit": "policies.early_exit.policy:EarlyExitPolicy",
        "pruned-first": Alias("pruned", method="first"),
        "pruned-uniform": Alias("pruned", method="uniform"),
        "pruned-importance": Alias("pruned", method="importance"),
        "pruned-first-6": Alias("pruned", method="first", keep=6),
        "pruned-uniform-6": Alias("pruned", method="uniform", keep=6),
    },
    required=("act", "reset"),
)


@dataclass
class LoadedPolicy:
    """A built policy with what identifies it: `identity` (family, weights sha256, resolved params) is hashed
    into `tag`, the run folder name; `checkpoint` is the folder it loaded (None for scripted policies)."""

    policy: Any
    spec: PolicySpec
    family: str
    params: Any
    checkpoint: Path | None
    identity: dict
    tag: str

    @property
    def spec_hash(self) -> str:
        return spec_hash(self.identity)


def load_policy(spec: PolicySpec | str, suite: str | None = None) -> LoadedPolicy:
    """Build `spec` for `suite`: learned families load `spec.checkpoint` or, without one, the one they ship for the
    suite (`shipped_checkpoint`). UnknownName lists the valid names; PolicyLoadError (ParamError is one) says what
    is wrong in one line."""
    from policies.base import PolicyLoadError

    spec = PolicySpec(spec) if isinstance(spec, str) else spec
    family, bound = POLICIES.resolve(spec.family)
    cls = POLICIES.load(family)
    params_cls = getattr(cls, "Params", NoParams)
    params = parse_params(params_cls, {**bound, **spec.params}, spec.name)
    signature = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {}
    if "params" in signature:
        kwargs["params"] = params
    elif params_cls is not NoParams:
        raise PolicyLoadError(f"policy {spec.name!r} declares Params but its constructor takes no 'params'")
    checkpoint = spec.checkpoint
    if "checkpoint" in signature:
        if not checkpoint and hasattr(cls, "shipped_checkpoint"):
            checkpoint = cls.shipped_checkpoint(suite)
        kwargs["checkpoint"] = checkpoint
    elif checkpoint:
        raise PolicyLoadError(f"policy {spec.name!r} takes no checkpoint (got {checkpoint!r})")
    try:
        policy = cls(**kwargs)
    except (ParamError, PolicyLoadError):
        raise
    except (ValueError, TypeError) as err:
        raise PolicyLoadError(f"policy {spec.name!r}: {err}") from None
    ident = identity(family, getattr(policy, "checkpoint_sha256", ""), params)
    return LoadedPolicy(policy, spec, family, params, Path(checkpoint) if checkpoint else None, ident,
                        run_tag(spec, ident))


def make_policy(spec: PolicySpec | str, checkpoint: str | None = None, suite: str | None = None):
    """The policy object alone (see `load_policy`); `checkpoint` overrides the spec's."""
    spec = PolicySpec(spec) if isinstance(spec, str) else spec
    if checkpoint:
        spec = spec.with_checkpoint(checkpoint)
    return load_policy(spec, suite).policy
