"""An evaluation: expand a request into self-contained episode units, skip those already on disk, run the rest
on an executor, store their records.

`plan` validates everything a user typed before any simulator starts, raising `UsageError` with a one-line
message; `evaluate` runs the plan with a progress bar and returns every requested episode (old and new).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from core.paths import DEFAULT_RESULTS, shown
from core.registry import UnknownName
from core.spec import PolicySpec
from harness.compute import ComputeUnit
from harness.episode import EpisodeOutputs, EpisodeRecord, EpisodeUnit
from harness.executors import Executor, LocalPool
from harness.store import SCHEMA_VERSION, RunMismatch, RunStore, digest, ensure_writable, invocation_info
from harness.worker import inference_protocol
from tasks import expand_suites, make_suite
from tasks.base import TaskSpec


class UsageError(ValueError):
    """Bad user input; the message is one line naming what is wrong and what is valid."""


@dataclass
class EvalRequest:
    policy: PolicySpec | str
    """A spec, or a registry name / import path without params."""
    suite: str
    checkpoint: str | None = None
    """Checkpoint folder of a learned policy, overriding the spec's; None = the spec's or its shipped default."""
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

    def spec(self) -> PolicySpec:
        spec = PolicySpec(self.policy) if isinstance(self.policy, str) else self.policy
        if self.checkpoint:
            spec = spec.with_checkpoint(self.checkpoint)
        return spec


@dataclass
class SuitePlan:
    loaded: object
    """The `policies.LoadedPolicy` built for the suite (checkpoint resolved, identity, run tag)."""
    store: RunStore
    tasks: dict[int, TaskSpec]
    units: list[EpisodeUnit]
    todo: list[EpisodeUnit]
    manifest: dict


def plan(req: EvalRequest) -> list[SuitePlan]:
    from policies import POLICIES, load_policy
    from policies.base import NoShippedCheckpoint, PolicyLoadError

    spec = req.spec()
    try:
        POLICIES.check(spec.family)
        suites = expand_suites(req.suite)
    except UnknownName as err:
        raise UsageError(str(err)) from None
    loaded, missing = {}, []
    for s in suites:
        try:
            loaded[s] = load_policy(spec, s)
        except NoShippedCheckpoint as err:
            # A group (SUITE=libero) runs the suites the policy ships checkpoints for and says which it skips.
            if len(suites) == 1:
                raise UsageError(str(err)) from None
            missing.append(s)
        except (UnknownName, PolicyLoadError) as err:
            raise UsageError(str(err)) from None
    if not loaded:
        raise UsageError(f"no shipped {spec.name} checkpoint for any suite of {req.suite!r} ({', '.join(suites)})")
    if missing:
        print(f"warning: no shipped {spec.name} checkpoint for {', '.join(missing)}: skipped (pass CHECKPOINT=<folder>)")
    if req.workers < 1:
        raise UsageError(f"WORKERS must be >= 1, got {req.workers}")
    if req.video < 0:
        raise UsageError(f"VIDEO must be >= 0, got {req.video}")
    try:
        ensure_writable(Path(req.results_root))
    except PermissionError as err:
        raise UsageError(str(err)) from None
    plans = []
    for suite_name, lp in loaded.items():
        try:
            suite = make_suite(suite_name)
        except UnknownName as err:  # a perturbation the suite cannot take (tasks.perturb)
            raise UsageError(str(err)) from None
        specs = suite.tasks()
        indices = req.tasks if req.tasks is not None else tuple(range(len(specs)))
        bad = [i for i in indices if not 0 <= i < len(specs)]
        if bad:
            raise UsageError(f"task index {bad[0]} out of range for {suite_name}: valid 0..{len(specs) - 1}")
        n_init = min(t.n_init_states for t in specs)
        episodes = n_init if req.episodes is None else req.episodes
        if not 1 <= episodes <= n_init:
            raise UsageError(f"EPISODES must be in 1..{n_init} for {suite_name} (one per init state), got {episodes}")
        store = RunStore(req.results_root, lp.tag, suite_name)
        unit_spec = spec.with_checkpoint(lp.checkpoint)
        spec_hash = lp.spec_hash
        units = [EpisodeUnit(unit_spec, spec_hash, suite_name, t, i, req.seed) for t in indices for i in range(episodes)]
        done = store.completed_keys()
        todo = [u for u in units if u.key not in done]
        protocol = suite.protocol()
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "spec": {**spec.to_dict(), "checkpoint": shown(lp.checkpoint) if lp.checkpoint else None},
            "identity": lp.identity,
            "spec_hash": spec_hash,
            "tag": lp.tag,
            "suite": suite_name,
            "protocol": protocol,
            "protocol_hash": digest({"protocol": protocol, "simulator": suite.versions()}),
            "simulator": suite.versions(),
            "inference": inference_protocol(),
            "invocation": invocation_info(
                workers=req.workers, episodes=episodes, tasks=list(indices), seed=req.seed, video=req.video,
                trajectories=req.trajectories, checkpoint=shown(lp.checkpoint) if lp.checkpoint else None,
            ),
        }
        if lp.policy.obs_spec.privileged:
            manifest["compute"] = {"skipped": "a privileged-state policy (scripted expert) is not a model: no FLOPs counted"}
        plans.append(SuitePlan(lp, store, {t.index: t for t in specs}, units, todo, manifest))
    return plans


@dataclass
class EvalResult:
    episodes: pd.DataFrame
    """Every requested episode, from this invocation and earlier ones."""
    calls: pd.DataFrame
    """Their policy calls (`harness.store.CALL_COLUMNS`)."""
    run_dirs: list[Path]


def evaluate(req: EvalRequest, progress: bool = True, executor: Executor | None = None) -> EvalResult:
    """Run every missing episode of the request on `executor` (default: a local pool of `req.workers`) and return
    all requested episodes."""
    plans = plan(req)
    executor = executor or LocalPool(req.workers)
    for p in plans:
        p.manifest["invocation"]["executor"] = executor.describe()
        try:
            p.store.write_manifest(p.manifest)
        except RunMismatch as err:
            raise UsageError(str(err)) from None
        p.store.compact()  # a resumed run starts from compact tables
    count = {ComputeUnit(p.units[0].policy, p.units[0].spec_hash, p.store.dir.name, p.units[0].task_index): p
             for p in plans if p.todo and not p.store.manifest().get("compute")}
    for outcome in executor.run(list(count), {}) if count else ():
        count[outcome.unit].store.set_compute(outcome.record or {"error": outcome.crash})
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
    try:
        if todo:
            bar = tqdm(total=len(todo), unit="ep", disable=not progress, dynamic_ncols=True)
            successes = finished = 0
            for outcome in executor.run(todo, outputs):
                p = by_suite[outcome.unit.suite]
                record = outcome.record or EpisodeRecord.for_unit(
                    outcome.unit, p.tasks[outcome.unit.task_index], p.loaded.identity["checkpoint_sha256"],
                    error=outcome.crash,
                )
                p.store.write_episode(record)
                finished += 1
                successes += record.success
                bar.update()
                bar.set_postfix_str(f"success {successes / finished:.0%} ({successes}/{finished})")
            bar.close()
    finally:  # where units ran (a Ray cluster's nodes) is known only once they ran; also after Ctrl-C
        for p in plans:
            p.store.record_executor(executor.describe())
    episodes, calls = [], []
    for p in plans:
        p.store.compact()
        wanted = {u.key for u in p.units}
        df, cf = p.store.load(), p.store.load_calls()
        episodes.append(df[df["key"].isin(wanted)])
        calls.append(cf[cf["key"].isin(wanted)])
    return EvalResult(pd.concat(episodes, ignore_index=True), pd.concat(calls, ignore_index=True),
                      [p.store.dir for p in plans])
