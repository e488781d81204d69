"""Where units run. An `Executor` takes self-contained units and yields one `Outcome` per unit as episodes
finish; `LocalPool` runs them in worker processes on this machine, `harness.ray_executor.RayExecutor` on a Ray
cluster (the same units, results and retries); `make_executor` picks one by name.

Workers are separate processes (spawned, so no simulator or GL state is inherited) fed one unit at a time
through their own inbox, so the pool always knows which episode each worker holds. A worker that dies
(segfault, OOM kill) has its episode retried once on a fresh worker, then reported as a crash; workers exit
by themselves when the parent process disappears. Each runs `harness.worker.Worker`.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
from dataclasses import dataclass
from typing import Iterator, Protocol

from harness.episode import EpisodeOutputs, EpisodeRecord, EpisodeUnit

MAX_ATTEMPTS = 2
"""A unit whose worker dies is run at most this many times in total."""


@dataclass
class Outcome:
    unit: EpisodeUnit
    record: EpisodeRecord | None
    """The unit's result (an EpisodeRecord for an episode unit); None when the unit failed before its episode
    could start or its worker died MAX_ATTEMPTS times; `crash` then says why."""
    crash: str = ""


class Executor(Protocol):
    name: str

    def run(self, units: list[EpisodeUnit], outputs: dict[str, EpisodeOutputs]) -> Iterator[Outcome]:
        """One Outcome per unit, in completion order."""

    def describe(self) -> dict:
        """What the manifest records of this executor (kind, workers, nodes)."""

    def close(self) -> None:
        """Release what outlives a `run` (a Ray instance this executor started); idempotent."""


EXECUTORS = ("local", "ray")


def make_executor(kind: str, workers: int, address: str | None = None, **ray_options) -> Executor:
    """`kind` "local" -> LocalPool(workers); "ray" -> RayExecutor(workers, address, **ray_options) (address None:
    RAY_ADDRESS, else a local instance). Nothing starts until the first `run`. UsageError for another kind."""
    from harness.runner import UsageError  # the runner imports this module

    if kind == "local":
        return LocalPool(workers)
    if kind == "ray":
        try:
            from harness.ray_executor import RayExecutor

            import ray  # noqa: F401 - fail here, in one line, rather than at the first run
        except ImportError:
            raise UsageError("EXECUTOR=ray needs the ray package: .venv/bin/pip install -r requirements.txt") from None
        return RayExecutor(workers, address, **ray_options)
    raise UsageError(f"unknown executor {kind!r}; valid: {', '.join(EXECUTORS)}")


def _serve(inbox, outbox, parent_pid: int) -> None:
    """A worker process: run units from `inbox` until None arrives or the parent is gone."""
    from harness.worker import Worker

    worker = Worker()
    while True:
        try:
            msg = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:
                break  # orphaned: exit like a finished worker, without interpreter teardown
            continue
        if msg is None:
            break
        unit, outputs = msg
        try:
            outbox.put(("done", unit, worker.run(unit, outputs)))
        except Exception as exc:  # noqa: BLE001 - a policy or env that cannot be built is this unit's error
            worker.close()
            outbox.put(("failed", unit, f"{type(exc).__name__}: {exc}"))
    worker.close()
    # Skip interpreter teardown: robosuite's EGL contexts raise noisy errors from __del__ once EGL is gone.
    outbox.close()
    outbox.join_thread()
    os._exit(0)


class LocalPool:
    """`workers` processes on this machine."""

    name = "local"

    def __init__(self, workers: int):
        self.workers = workers
        self._ctx = mp.get_context("spawn")

    def describe(self) -> dict:
        import socket

        return {"kind": self.name, "workers": self.workers, "nodes": [socket.gethostname()]}

    def close(self) -> None:
        """Nothing to release: `run` ends its worker processes."""

    def _start(self, outbox):
        inbox = self._ctx.Queue()
        proc = self._ctx.Process(target=_serve, daemon=True, args=(inbox, outbox, os.getpid()))
        proc.start()
        return proc, inbox

    def run(self, units: list[EpisodeUnit], outputs: dict[str, EpisodeOutputs]) -> Iterator[Outcome]:
        """Yield one Outcome per unit, in completion order. A worker next takes a unit of the task it holds."""
        pending = list(units)
        attempts: dict[str, int] = {}
        outbox = self._ctx.Queue()
        slots = [self._start(outbox) for _ in range(min(self.workers, len(pending)))]
        holding: list[EpisodeUnit | None] = [None] * len(slots)
        last_env: list[tuple | None] = [None] * len(slots)
        remaining = len(pending)

        def ident(u: EpisodeUnit) -> tuple:
            return u.spec_hash, u.key

        def dispatch(i: int) -> None:
            if not pending:
                return
            pick = next((j for j, u in enumerate(pending) if u.env_key == last_env[i]), 0)
            unit = pending.pop(pick)
            attempts[ident(unit)] = attempts.get(ident(unit), 0) + 1
            holding[i], last_env[i] = unit, unit.env_key
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
                        slots[i], holding[i], last_env[i] = self._start(outbox), None, None
                        if lost is not None:
                            if attempts[ident(lost)] < MAX_ATTEMPTS:
                                pending.insert(0, lost)
                            else:
                                remaining -= 1
                                yield Outcome(lost, None, f"worker died (exit code {proc.exitcode}) {MAX_ATTEMPTS} times")
                        dispatch(i)
                    continue
                i = next(j for j, u in enumerate(holding) if u is not None and ident(u) == ident(unit))
                holding[i] = None
                remaining -= 1
                yield Outcome(unit, payload) if kind == "done" else Outcome(unit, None, payload)
                dispatch(i)
        finally:
            for proc, inbox in slots:
                if proc.exitcode is None:
                    inbox.put(None)
            for proc, _ in slots:
                proc.join(timeout=10)
                if proc.exitcode is None:
                    proc.kill()
