"""Where episodes run: a local pool of worker processes, each owning its own simulator and policy.

Workers are separate processes (spawned, so no simulator or GL state is inherited) fed one unit at a time
through their own inbox, so the pool always knows which episode each worker holds. A worker that dies
(segfault, OOM kill) has its episode retried once on a fresh worker, then reported as a crash; workers exit
by themselves when the parent process disappears. Another executor (e.g. Ray) only has to offer `run`.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
from dataclasses import dataclass
from typing import Iterator

from harness.episode import EpisodeOutputs, EpisodeRecord, EpisodeUnit

MAX_ATTEMPTS = 2
"""A unit whose worker dies is run at most this many times in total."""


@dataclass
class Outcome:
    unit: EpisodeUnit
    record: EpisodeRecord | None
    """None when the unit's worker died MAX_ATTEMPTS times; `crash` then says how."""
    crash: str = ""


def threads_per_worker(workers: int) -> int:
    """torch threads of each worker: the cores shared out, so that workers never oversubscribe the CPU (OpenMP
    threads spinning against each other made a policy call ~10x slower here)."""
    return max(1, (os.cpu_count() or 1) // workers)


def _worker(policy_name: str, checkpoints: dict[str, str | None], threads: int, inbox, outbox, parent_pid: int) -> None:
    """Run units from `inbox` until None arrives or the parent is gone; one policy per suite (loaded from
    `checkpoints[suite]`), one env per task, both reused."""
    import sys

    from harness.episode import run_episode
    from policies import make_policy
    from tasks import make_suite

    policies = {}
    env, env_key = None, None
    while True:
        try:
            msg = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:
                return
            continue
        if msg is None:
            break
        unit, outputs = msg
        key = (unit.suite, unit.task_index)
        try:
            if unit.suite not in policies:
                policies[unit.suite] = make_policy(policy_name, checkpoints.get(unit.suite), unit.suite)
                if "torch" in sys.modules:  # only learned policies load torch; scripted ones need not pay for it
                    sys.modules["torch"].set_num_threads(threads)
            policy = policies[unit.suite]
            if env_key != key:
                if env is not None:
                    env.close()
                env, env_key = None, None
                env = make_suite(unit.suite).make_env(unit.task_index, policy.obs_spec)
                env_key = key
            record = run_episode(env, policy, unit, outputs)
        except Exception as exc:  # noqa: BLE001 - env creation failure is this unit's error, not the pool's
            outbox.put(("failed", unit, f"{type(exc).__name__}: {exc}"))
            env, env_key = None, None
            continue
        if record.error:
            # The simulator may be in a bad state after an exception: start the next episode on a fresh env.
            env.close()
            env, env_key = None, None
        outbox.put(("done", unit, record))
    if env is not None:
        env.close()
    # Skip interpreter teardown: robosuite's EGL contexts raise noisy errors from __del__ once EGL is gone.
    outbox.close()
    outbox.join_thread()
    os._exit(0)


class LocalPool:
    """`workers` processes on this machine."""

    def __init__(self, policy_name: str, workers: int, checkpoints: dict[str, str | None] | None = None):
        """checkpoints: suite -> checkpoint folder of a learned policy (a suite not named: the policy's default)."""
        self.policy_name = policy_name
        self.checkpoints = dict(checkpoints or {})
        self.workers = workers
        self._ctx = mp.get_context("spawn")

    def _start(self, outbox):
        inbox = self._ctx.Queue()
        proc = self._ctx.Process(
            target=_worker, daemon=True,
            args=(self.policy_name, self.checkpoints, threads_per_worker(self.workers), inbox, outbox, os.getpid()),
        )
        proc.start()
        return proc, inbox

    def run(self, units: list[EpisodeUnit], outputs: dict[str, EpisodeOutputs]) -> Iterator[Outcome]:
        """Yield one Outcome per unit, in completion order. Units of the same task go to the same worker."""
        pending = list(units)
        attempts: dict[str, int] = {}
        outbox = self._ctx.Queue()
        slots = [self._start(outbox) for _ in range(min(self.workers, len(pending)))]
        holding: list[EpisodeUnit | None] = [None] * len(slots)
        last_task: list[tuple | None] = [None] * len(slots)
        remaining = len(pending)

        def dispatch(i: int) -> None:
            if not pending:
                return
            pick = next((j for j, u in enumerate(pending) if (u.suite, u.task_index) == last_task[i]), 0)
            unit = pending.pop(pick)
            attempts[unit.key] = attempts.get(unit.key, 0) + 1
            holding[i], last_task[i] = unit, (unit.suite, unit.task_index)
            slots[i][1].put((unit, outputs.get(unit.key, EpisodeOutputs())))

        try:
            for i in range(len(slots)):
                dispatch(i)
            while remaining:
                try:
                    kind, unit, payload = outbox.get(timeout=0.5)
                except queue.Empty:
                    for i, (proc, _) in enumerate(slots):
                        if proc.exitcode is None:
                            continue
                        lost = holding[i]
                        slots[i], holding[i], last_task[i] = self._start(outbox), None, None
                        if lost is not None:
                            if attempts[lost.key] < MAX_ATTEMPTS:
                                pending.insert(0, lost)
                            else:
                                remaining -= 1
                                yield Outcome(lost, None, f"worker died (exit code {proc.exitcode}) {MAX_ATTEMPTS} times")
                        dispatch(i)
                    continue
                i = next(j for j, u in enumerate(holding) if u is not None and u.key == unit.key)
                holding[i] = None
                remaining -= 1
                if kind == "done":
                    yield Outcome(unit, payload)
                else:
                    yield Outcome(unit, None, payload)
                dispatch(i)
        finally:
            for proc, inbox in slots:
                if proc.exitcode is None:
                    inbox.put(None)
            for proc, _ in slots:
                proc.join(timeout=10)
                if proc.exitcode is None:
                    proc.kill()
