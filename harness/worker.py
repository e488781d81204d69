"""What runs a unit, wherever it runs: one loop, shared by every executor.

A `Worker` lives in one process and keeps one environment (the last task's, reused while units of that task
keep coming) and one policy per (spec hash, suite), so any worker can run any unit and a stream of units of one
task pays for environment creation once. Policy inference runs with `INFERENCE_THREADS` torch threads whatever
the number of workers: floating-point reductions differ with the thread count, which changed routed students'
block choices and outcomes, so the count is part of every run's protocol (`inference_protocol`).
"""
from __future__ import annotations

import os
import sys

from harness.episode import EpisodeOutputs, EpisodeUnit, run_episode

INFERENCE_THREADS = 1
"""torch threads of a policy call during evaluation, fixed so that an episode is a function of its unit."""


def inference_protocol() -> dict:
    """How policies are called during evaluation; stored in each manifest and checked on resume."""
    return {"torch_threads": INFERENCE_THREADS, "batch": 1, "grad": "torch.inference_mode (learned policies)"}


def pin_threads() -> None:
    """Set torch's intra-op threads to `INFERENCE_THREADS` once torch is loaded (scripted policies never load it)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != INFERENCE_THREADS:
        torch.set_num_threads(INFERENCE_THREADS)


def load_pinned(spec, suite: str):
    """`policies.load_policy(spec, suite)` with torch pinned to `INFERENCE_THREADS` before (an already loaded torch)
    and after (one the policy's import loaded)."""
    from policies import load_policy

    pin_threads()
    loaded = load_policy(spec, suite)
    pin_threads()
    return loaded


class Worker:
    def __init__(self):
        os.environ.setdefault("OMP_NUM_THREADS", str(INFERENCE_THREADS))
        self._policies: dict[tuple[str, str], object] = {}
        self._env = None
        self._env_key: tuple | None = None

    def policy(self, unit: EpisodeUnit):
        key = (unit.spec_hash, unit.suite)
        if key not in self._policies:
            self._policies[key] = load_pinned(unit.policy, unit.suite).policy
        return self._policies[key]

    def env(self, unit, obs_spec):
        """The environment of `unit.env_key` (suite, task) observing `obs_spec`, reused while the key is unchanged."""
        from tasks import make_suite

        key = (*unit.env_key, obs_spec)
        if self._env_key != key:
            self.close()
            self._env = make_suite(unit.suite).make_env(unit.task_index, obs_spec)
            self._env_key = key
        return self._env

    def run(self, unit, outputs: EpisodeOutputs = EpisodeOutputs()):
        """One episode -> its EpisodeRecord; another kind of unit (e.g. `harness.demos.TaskJob`) runs itself with this
        worker's environments. Exceptions while building the policy or env propagate (the executor records them)."""
        if not isinstance(unit, EpisodeUnit):
            return unit.run(self)
        policy = self.policy(unit)
        env = self.env(unit, policy.obs_spec)
        record = run_episode(env, policy, unit, outputs)
        if record.error:
            self.close()  # the simulator may be in a bad state after an exception: the next unit gets a fresh env
        return record

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
        self._env, self._env_key = None, None
