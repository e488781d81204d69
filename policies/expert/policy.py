"""The `expert` policy: one name for the scripted experts of every benchmark, chosen per task.

LIBERO tasks go to `LiberoExpert` (robosuite OSC delta actions), SIMPLER Bridge tasks to `BridgeExpert`
(WidowX target-pose deltas, absolute gripper). Its `checkpoint_sha256` is a hash of the experts' source code,
so results of a changed expert land in a new results folder instead of mixing with the old ones.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from policies.base import PolicyOutput
from policies.expert.libero import ExpertConfig, LiberoExpert
from tasks.base import ObsSpec, Observation, TaskSpec

__all__ = ["ExpertConfig", "ExpertPolicy"]


@lru_cache(maxsize=1)
def source_sha256() -> str:
    """sha256 over every source file of the expert package, subpackages included (paths relative to the
    package and contents, sorted by path)."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


class ExpertPolicy:
    """Dispatches to the benchmark's expert on `reset`; `config.chunk` applies to both."""

    def __init__(self, config: ExpertConfig | None = None):
        self.config = config or ExpertConfig()
        self.obs_spec = ObsSpec(cameras=tuple(self.config.cameras), resolution=self.config.resolution, privileged=True)
        self.checkpoint_sha256 = source_sha256()
        self._experts: dict[str, object] = {}
        self._active = None

    def _expert(self, family: str):
        if family not in self._experts:
            if family == "bridge":
                from policies.expert.bridge import BridgeExpert

                self._experts[family] = BridgeExpert(chunk=self.config.chunk)
            else:
                self._experts[family] = LiberoExpert(self.config)
        return self._experts[family]

    def reset(self, task: TaskSpec, seed: int) -> None:
        self._active = self._expert("bridge" if task.suite.startswith("simpler_") else "libero")
        self._active.reset(task, seed)

    def act(self, obs: Observation) -> PolicyOutput:
        return self._active.act(obs)
