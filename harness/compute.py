"""Compute accounted by the harness, for any policy, against a reference model.

A policy that reports `info["blocks"]` names the backbone blocks it executed as indices of its `reference`
(its teacher; None: its own backbone). The harness counts, once per (policy, suite), with `core.flops`
(`FlopCounterMode` + CPU attention) on a blank observation at batch 1:
- the reference's per-block FLOPs, from one dense call of the reference (`<block_prefix>.<i>` module paths);
- the policy's own FLOPs outside those blocks (`extra`: encoders, projections, router, head), as one live call
  of the policy minus the reference blocks it ran.
A call's FLOPs are then `extra + sum(reference block FLOPs executed)` and its executed fraction the share of the
reference backbone's FLOPs, so a model truncated to 6 of 12 blocks executes 50%, never 100% of itself. A policy
without blocks gets its live count per call. Only torch operators are counted (a numpy-only policy counts 0).
Counting runs the policy, so it happens in a worker process like an episode (`ComputeUnit`, run by the executor
before a new run's episodes): a policy that crashes there costs the count, not the harness.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

COUNTED_ON = "one call at batch 1 on a blank observation (black images, identity pose), torch FlopCounterMode + CPU attention"


@dataclass(frozen=True)
class ComputeModel:
    extra_flops: int
    """FLOPs of a call outside the reference's blocks (the whole call when `block_flops` is empty)."""
    block_flops: tuple[int, ...] = ()
    """FLOPs of each reference backbone block at batch 1; empty when the policy reports no blocks."""
    reference: dict | None = None
    """Identity (family, checkpoint_sha256, params) of the reference model; None: the policy itself."""
    counted_on: str = COUNTED_ON

    def flops(self, blocks: Sequence[int] | None) -> int:
        """FLOPs of a call that executed `blocks` (None: a policy without blocks)."""
        if blocks is None or not self.block_flops:
            return self.extra_flops
        return self.extra_flops + sum(self.block_flops[b] for b in blocks)

    def fraction(self, blocks: Sequence[int] | None) -> float:
        """Share of the reference backbone's FLOPs that `blocks` make up; NaN without blocks."""
        if blocks is None or not self.block_flops:
            return math.nan
        return sum(self.block_flops[b] for b in blocks) / sum(self.block_flops)

    def to_dict(self) -> dict:
        return {**asdict(self), "block_flops": list(self.block_flops)}

    @classmethod
    def from_dict(cls, data: dict) -> "ComputeModel":
        return cls(int(data["extra_flops"]), tuple(int(b) for b in data["block_flops"]), data.get("reference"),
                   data.get("counted_on", COUNTED_ON))


def _count(policy, task, obs):
    """-> (the FlopCounterMode of one `act` on `obs` after `reset(task, 0)`, that call's PolicyOutput)."""
    from core.flops import flop_counter

    policy.reset(task, 0)
    with flop_counter() as counter:
        out = policy.act(obs)
    return counter, out


def block_table(policy, task) -> tuple[int, ...]:
    """FLOPs of each backbone block of a dense `policy` (one that runs all its blocks), counted in one call."""
    import re

    from core.flops import flops_by_module
    from tasks.base import blank_observation

    prefix = getattr(policy, "block_prefix", None)
    if prefix is None:
        raise ValueError(f"{type(policy).__name__} declares no block_prefix: its blocks cannot be counted")
    counter, _ = _count(policy, task, blank_observation(policy.obs_spec))
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)$")
    depth = 1 + max((int(m.group(1)) for p in counter.get_flop_counts() if (m := pattern.match(p))), default=-1)
    flops = flops_by_module(counter, {i: f"{prefix}.{i}" for i in range(depth)})
    table = tuple(int(flops[i]) for i in range(depth))
    if not table or min(table) <= 0:
        raise ValueError(f"{type(policy).__name__}: a reference must run every block (per-block FLOPs {table})")
    return table


def measure(loaded, task) -> ComputeModel:
    """The compute model of a `policies.LoadedPolicy` on `task` (a TaskSpec of the suite it runs on)."""
    from policies import load_policy
    from tasks.base import blank_observation

    policy = loaded.policy
    counter, out = _count(policy, task, blank_observation(policy.obs_spec))
    live = int(counter.get_total_flops())
    blocks = out.info.get("blocks")
    if blocks is None:
        return ComputeModel(live)
    spec = getattr(policy, "reference", None)
    reference = load_policy(spec, task.suite) if spec is not None else loaded
    table = block_table(reference.policy, task)
    bad = [b for b in blocks if not 0 <= b < len(table)]
    if bad:
        raise ValueError(f"policy reports block {bad[0]}, outside its reference's 0..{len(table) - 1}")
    extra = live - sum(table[b] for b in blocks)
    return ComputeModel(extra, table, reference.identity if spec is not None else None)


@dataclass(frozen=True)
class ComputeUnit:
    """An executor unit that counts a run's compute model in a worker, on a fresh instance of the policy (so the
    worker's cached instance, which runs episodes, is never called outside one). Its result is
    `ComputeModel.to_dict()`."""

    policy: object
    """The run's `PolicySpec`, checkpoint resolved for the suite."""
    spec_hash: str
    suite: str
    task_index: int

    @property
    def key(self) -> str:
        return f"compute__{self.suite}"

    @property
    def env_key(self) -> tuple[str, int]:
        return self.suite, self.task_index

    def run(self, worker) -> dict:
        from harness.worker import load_pinned
        from tasks import make_suite

        loaded = load_pinned(self.policy, self.suite)
        return measure(loaded, make_suite(self.suite).tasks()[self.task_index]).to_dict()
