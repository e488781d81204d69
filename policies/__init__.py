"""Policies behind one protocol (`policies.base`) and their registry: one line per policy name."""
from __future__ import annotations

import inspect

from harness.registry import Registry

POLICIES = Registry(
    "policy",
    {
        "actdistill": "policies.actdistill.policy:ActDistillPolicy",
        "expert": "policies.expert.policy:ExpertPolicy",
        "noop": "policies.sanity:NoopPolicy",
        "random": "policies.sanity:RandomPolicy",
        "teacher": "policies.vla.policy:VLAPolicy",
    },
)


def make_policy(name: str, checkpoint: str | None = None):
    """Instantiate a registered policy, from `checkpoint` when given (learned policies take a checkpoint
    folder; scripted ones none). UnknownName lists the valid names; PolicyLoadError says what is wrong."""
    from policies.base import PolicyLoadError

    cls = POLICIES.load(name)
    if not checkpoint:
        return cls()
    if "checkpoint" not in inspect.signature(cls).parameters:
        raise PolicyLoadError(f"policy {name!r} takes no checkpoint (got {checkpoint!r})")
    return cls(checkpoint=checkpoint)
