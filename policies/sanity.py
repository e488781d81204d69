"""Sanity policies whose success should be ~0: they catch a harness that reports success by mistake."""
from __future__ import annotations

import numpy as np

from policies.base import PolicyOutput
from tasks.base import ObsSpec, Observation, TaskSpec

ACTION_DIM = 7


class NoopPolicy:
    """Holds still with the gripper open."""

    obs_spec = ObsSpec(proprio=False)
    checkpoint_sha256 = ""

    def reset(self, task: TaskSpec, seed: int) -> None:
        pass

    def act(self, obs: Observation) -> PolicyOutput:
        action = np.zeros((1, ACTION_DIM))
        action[0, -1] = -1.0
        return PolicyOutput(action)


class RandomPolicy:
    """Uniform actions in [-1, 1], chunks of 8, seeded per episode so reruns are identical."""

    obs_spec = ObsSpec(proprio=False)
    checkpoint_sha256 = ""
    chunk = 8

    def __init__(self):
        self._rng = np.random.default_rng(0)

    def reset(self, task: TaskSpec, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def act(self, obs: Observation) -> PolicyOutput:
        return PolicyOutput(self._rng.uniform(-1.0, 1.0, size=(self.chunk, ACTION_DIM)))
