"""`expert_dart`: the scripted expert driving with injected action noise, reporting its own clean actions as
labels (DART, Laskey et al. 2017, "DART: Noise Injection for Robust Imitation Learning").

A learner trained on clean expert runs never sees the states its own errors lead to; here the executed action is
the expert's plus a perturbation, and the label is what the expert commanded at the state it was in, i.e. the
correction back towards the task. `make demos EXPERT=expert_dart` writes those labels as the demos' actions
(`harness.demos`, `core.demofile`). With the LIBERO expert's chunk of 1, every step is labelled at its own state.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from policies.base import PolicyOutput
from policies.expert.policy import ExpertPolicy, source_sha256
from tasks.base import Observation, TaskSpec

NOISE_STD = np.array([0.15, 0.15, 0.15, 0.02, 0.02, 0.02, 0.0])
"""Per action dimension (LIBERO OSC delta units): about a third of the expert's own per-dimension spread in
translation and rotation (std 0.31-0.49 and 0.02-0.08 over its libero_spatial runs); the gripper is left alone."""
NOISE_CORRELATION = 0.8
"""AR(1) coefficient per step: a perturbation persists for ~5 steps, like the drift of an open-loop chunk."""


class DartExpert:
    def __init__(self):
        self.expert = ExpertPolicy()
        self.obs_spec = self.expert.obs_spec
        self.checkpoint_sha256 = hashlib.sha256(source_sha256().encode() + Path(__file__).read_bytes()).hexdigest()
        self._seed, self._rng, self._noise = 0, None, np.zeros(len(NOISE_STD))

    def reset(self, task: TaskSpec, seed: int) -> None:
        self.expert.reset(task, seed)
        self._seed, self._rng, self._noise = seed, None, np.zeros(len(NOISE_STD))

    def act(self, obs: Observation) -> PolicyOutput:
        out = self.expert.act(obs)
        if self._rng is None:
            # Seeded by the episode's first state as well as its seed: every init state gets its own noise, and an
            # episode stays a function of its unit (task, init state, seed).
            first = np.asarray(obs.proprio["eef_pos"], np.float64).tobytes() + str(self._seed).encode()
            self._rng = np.random.default_rng(int.from_bytes(hashlib.sha256(first).digest()[:8], "little"))
        labels = np.atleast_2d(out.actions)
        executed = []
        for action in labels:
            step = self._rng.standard_normal(len(NOISE_STD)) * NOISE_STD
            self._noise = NOISE_CORRELATION * self._noise + np.sqrt(1 - NOISE_CORRELATION**2) * step
            executed.append(np.clip(action + self._noise, -1.0, 1.0))
        return PolicyOutput(np.stack(executed), {**out.info, "labels": labels.tolist()})
