"""Policies that misbehave on purpose, loaded by import path ("tests.fixture_policies:Name") in worker processes."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np

from policies.base import PolicyOutput
from policies.sanity import NoopPolicy
from tasks.base import ObsSpec


class CameraProbe(NoopPolicy):
    """Declares both cameras, acts in chunks of 20, and reports what it saw."""

    obs_spec = ObsSpec(cameras=("agentview", "wrist"), resolution=(96, 96))
    chunk = 20

    def act(self, obs):
        images = obs.images
        info = {name: [list(img.shape), float(img.mean()), float(img.std())] for name, img in images.items()}
        return PolicyOutput(np.repeat(super().act(obs).actions, self.chunk, axis=0), info)


class Segfaults(NoopPolicy):
    """Kills its worker with SIGSEGV in an episode (not on the harness's blank FLOP-count observation, which
    `tests.test_compute` covers). With CRASH_ONCE_MARKER set, only the first time (marker file absent)."""

    def act(self, obs):
        if not obs.proprio["eef_pos"].any():
            return super().act(obs)
        marker = os.environ.get("CRASH_ONCE_MARKER")
        if marker is None or not Path(marker).exists():
            if marker:
                Path(marker).touch()
            os.kill(os.getpid(), signal.SIGSEGV)
        return super().act(obs)


class SegfaultsWhenCounted(NoopPolicy):
    """Kills its worker on the harness's blank FLOP-count observation only; behaves (noop) in episodes."""

    def act(self, obs):
        if not obs.proprio["eef_pos"].any():
            os.kill(os.getpid(), signal.SIGSEGV)
        return super().act(obs)


class MisbehavesInTurn(NoopPolicy):
    """Per worker process: episode 1 raises, 2 returns NaN, 3 a wrong shape, later ones behave (noop)."""

    episodes = 0

    def reset(self, task, seed):
        type(self).episodes += 1

    def act(self, obs):
        n = type(self).episodes
        if n == 1:
            raise ValueError("policy exploded on purpose")
        if n == 2:
            return PolicyOutput(np.full((1, 7), np.nan))
        if n == 3:
            return PolicyOutput(np.zeros((1, 6)))
        return super().act(obs)
