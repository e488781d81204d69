"""Policies behind one protocol (`policies.base`) and their registry: one line per policy name."""
from __future__ import annotations

import inspect

from core.registry import Registry

POLICIES = Registry(
    "policy",
    {
        "actdistill": "policies.actdistill.policy:ActDistillPolicy",
        "expert": "policies.expert.policy:ExpertPolicy",
        "expert_dart": "policies.dart.policy:DartExpert",
        "noop": "policies.sanity:NoopPolicy",
        "random": "policies.sanity:RandomPolicy",
        "teacher": "policies.vla.policy:VLAPolicy",
    },
)


def make_policy(name: str, checkpoint: str | None = None, suite: str | None = None):
    """Instantiate a registered policy for `suite`: learned policies load `checkpoint` (a folder) or, without
    one, the checkpoint they ship for that suite (`shipped_checkpoint`); scripted ones take neither.
    UnknownName lists the valid names; PolicyLoadError says what is wrong in one line."""
    from policies.base import PolicyLoadError

    cls = POLICIES.load(name)
    takes_checkpoint = "checkpoint" in inspect.signature(cls).parameters
    if checkpoint and not takes_checkpoint:
        raise PolicyLoadError(f"policy {name!r} takes no checkpoint (got {checkpoint!r})")
    if not takes_checkpoint:
        return cls()
    if not checkpoint and hasattr(cls, "shipped_checkpoint"):
        checkpoint = cls.shipped_checkpoint(suite)
    return cls(checkpoint=checkpoint)
