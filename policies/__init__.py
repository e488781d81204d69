"""Policies behind one protocol (`policies.base`) and their registry: one line per policy name."""
from __future__ import annotations

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


def make_policy(name: str):
    """Instantiate a registered policy; UnknownName lists the valid ones."""
    return POLICIES.load(name)()
