"""An evaluation: expand a request into episode units, skip those already on disk, run the rest, store rows.

`plan` validates everything a user typed before any simulator starts, raising `UsageError` with a one-line
message; `evaluate` runs the plan with a progress bar and returns every requested episode (old and new).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from harness.episode import EpisodeOutputs, EpisodeRecord, EpisodeUnit
from harness.executors import LocalPool, threads_per_worker
from core.registry import UnknownName
from core.paths import DEFAULT_RESULTS
from harness.store import RunMismatch, RunStore, ensure_writable, invocation_info
from tasks import expand_suites, make_suite
from tasks.base import TaskSpec


class UsageError(ValueError):
    """Bad user input; the message is one line naming what is wrong and what is valid."""


@dataclass
class EvalRequest:
    policy: str
    suite: str
    checkpoint: str | None = None
    """Checkpoint folder of a learned policy; None = its shipped default."""
    episodes: int | None = None
    """Init states per task: episode i of a task uses init state i (0 <= i < episodes); None = all of them."""
    tasks: tuple[int, ...] | None = None
    """Task indices within each suite; None = all."""
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    video: int = 0
    """Record this many episodes per suite as MP4 (the first units in order)."""
    trajectories: bool = False
    """Save every episode's simulator states and actions (for demonstrations and replay)."""
    seed: int = 0
    results_root: Path = DEFAULT_RESULTS


@dataclass
class SuitePlan:
    checkpoint: str | None
    """The checkpoint folder the suite's episodes load (the policy's shipped one for the suite by default)."""
    store: RunStore
    tasks: dict[int, TaskSpec]
    units: list[EpisodeUnit]
    todo: list[EpisodeUnit]
    manifest: dict


def plan(req: EvalRequest) -> list[SuitePlan]:
    from policies import POLICIES, make_policy
    from policies.base import NoShippedCheckpoint, PolicyLoadError

    try:
        POLICIES.check(req.policy)
        suites = expand_suites(req.suite)
    except UnknownName as err:
        raise UsageError(str(err)) from None
    policies, missing = {}, []
    for s in suites:
        try:
            policies[s] = make_policy(req.policy, req.checkpoint, s)
        except NoShippedCheckpoint as err:
            # A group (SUITE=libero) runs the suites the policy ships checkpoints for and says which it skips.
            if len(suites) == 1:
                raise UsageError(str(err)) from None
            missing.append(s)
        except (UnknownName, PolicyLoadError) as err:
            raise UsageError(str(err)) from None
    if not policies:
        raise UsageError(f"no shipped {req.policy} checkpoint for any suite of {req.suite!r} ({', '.join(suites)})")
    if missing:
        print(f"warning: no shipped {req.policy} checkpoint for {', '.join(missing)}: skipped (pass CHECKPOINT=<folder>)")
    suites = tuple(policies)
    if req.workers < 1:
        raise UsageError(f"WORKERS must be >= 1, got {req.workers}")
    if req.video < 0:
        raise UsageError(f"VIDEO must be >= 0, got {req.video}")
    try:
        ensure_writable(Path(req.results_root))
    except PermissionError as err:
        raise UsageError(str(err)) from None
    plans = []
    for suite_name in suites:
        suite = make_suite(suite_name)
        specs = suite.tasks()
        indices = req.tasks if req.tasks is not None else tuple(range(len(specs)))
        bad = [i for i in indices if not 0 <= i < len(specs)]
        if bad:
            raise UsageError(f"task index {bad[0]} out of range for {suite_name}: valid 0..{len(specs) - 1}")
        n_init = min(t.n_init_states for t in specs)
        episodes = n_init if req.episodes is None else req.episodes
        if not 1 <= episodes <= n_init:
            raise UsageError(f"EPISODES must be in 1..{n_init} for {suite_name} (one per init state), got {episodes}")
        policy = policies[suite_name]
        checkpoint = str(policy.checkpoint) if getattr(policy, "checkpoint", None) else None
        store = RunStore(req.results_root, req.policy, policy.checkpoint_sha256, suite_name)
        units = [
            EpisodeUnit(req.policy, policy.checkpoint_sha256, suite_name, t, i, req.seed)
            for t in indices
            for i in range(episodes)
        ]
        done = store.completed_keys()
        todo = [u for u in units if u.key not in done]
        manifest = {
            "policy": req.policy,
            "checkpoint_sha256": policy.checkpoint_sha256,
            "suite": suite_name,
            "protocol": suite.protocol(),
            "simulator": suite.versions(),
            "invocation": invocation_info(
                workers=req.workers, torch_threads_per_worker=threads_per_worker(req.workers), episodes=episodes,
                tasks=list(indices), seed=req.seed, video=req.video, trajectories=req.trajectories,
                checkpoint=checkpoint,
            ),
        }
        plans.append(SuitePlan(checkpoint, store, {t.index: t for t in specs}, units, todo, manifest))
    return plans


@dataclass
class EvalResult:
    episodes: pd.DataFrame
    """Every requested episode, from this invocation and earlier ones."""
    run_dirs: list[Path]


def evaluate(req: EvalRequest, progress: bool = True) -> EvalResult:
    """Run every missing episode of the request and return all requested episodes."""
    plans = plan(req)
    for p in plans:
        try:
            p.store.write_manifest(p.manifest)
        except RunMismatch as err:
            raise UsageError(str(err)) from None
    todo = [u for p in plans for u in p.todo]
    by_suite = {p.store.dir.name: p for p in plans}
    outputs = {}
    for p in plans:
        for n, u in enumerate(p.units):
            video = p.store.videos_dir / f"{u.key}.mp4" if n < req.video else None
            trajectory = p.store.trajectories_dir / f"{u.key}.npz" if req.trajectories else None
            outputs[u.key] = EpisodeOutputs(video, trajectory)
    skipped = sum(len(p.units) - len(p.todo) for p in plans)
    if skipped:
        print(f"resuming: {skipped} episode(s) already on disk, {len(todo)} to run")
    if todo:
        bar = tqdm(total=len(todo), unit="ep", disable=not progress, dynamic_ncols=True)
        successes = finished = 0
        checkpoints = {p.store.dir.name: p.checkpoint for p in plans}
        for outcome in LocalPool(req.policy, req.workers, checkpoints).run(todo, outputs):
            p = by_suite[outcome.unit.suite]
            record = outcome.record or EpisodeRecord.for_unit(
                outcome.unit, p.tasks[outcome.unit.task_index], error=outcome.crash
            )
            p.store.write_episode(outcome.unit.key, record)
            finished += 1
            successes += record.success
            bar.update()
            bar.set_postfix_str(f"success {successes / finished:.0%} ({successes}/{finished})")
        bar.close()
    frames = []
    for p in plans:
        df = p.store.load()
        wanted = {(u.task_index, u.init_index, u.seed) for u in p.units}
        frames.append(df[[k in wanted for k in zip(df["task_index"], df["init_index"], df["seed"])]])
    return EvalResult(pd.concat(frames, ignore_index=True), [p.store.dir for p in plans])
