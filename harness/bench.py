"""`make bench-harness`: how fast the harness steps environments on this machine (a benchmark, not a test).

Measures, in one process and one run: physics-only steps, steps that render both cameras every step, the
expert acting in open-loop chunks of 8 while reading both cameras at each call (as a VLA would; rendered only
at those query steps), and episode throughput of the runner with 1 vs 2 workers. With `executor="ray"` the runner
rows run on the local pool and on a local Ray instance in turn (the same units), and the executor's overhead is
split into start-up (until each worker's first episode begins: process or actor start, imports, env creation; for
Ray also starting the instance) and the gap between consecutive episodes of one task on one worker (dispatch and
result transfer), from the records' own clocks.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tasks import make_suite
from tasks.base import ObsSpec

CAMERAS = ("agentview", "wrist")


def _step_rate(env, steps: int, render_every_step: bool) -> dict:
    obs, _ = env.reset(options={"init_index": 0})
    env.timers.reset()
    noop = np.array([0, 0, 0, 0, 0, 0, -1.0])
    t0 = time.perf_counter()
    for _ in range(steps):
        obs, *_ = env.step(noop)
        if render_every_step:
            obs.images  # noqa: B018 - the access renders
    wall = time.perf_counter() - t0
    return {"steps": steps, "wall_s": wall, "renders": env.timers.renders}


class _LooksAtImages:
    """Wraps a policy so that every call reads the declared camera images, as a VLA would."""

    def __init__(self, policy):
        self.policy, self.obs_spec, self.checkpoint_sha256 = policy, policy.obs_spec, policy.checkpoint_sha256

    def reset(self, task, seed):
        self.policy.reset(task, seed)

    def act(self, obs):
        obs.images  # noqa: B018 - the access renders
        return self.policy.act(obs)


def _expert_chunked(suite: str) -> dict:
    from core.spec import PolicySpec
    from harness.episode import EpisodeUnit, run_episode
    from policies.expert.policy import ExpertConfig, ExpertPolicy

    policy = _LooksAtImages(ExpertPolicy(ExpertConfig(chunk=8, cameras=CAMERAS)))
    env = make_suite(suite).make_env(0, policy.obs_spec)
    try:
        rec = run_episode(env, policy, EpisodeUnit(PolicySpec("expert"), "", suite, 0, 0, 0))
    finally:
        env.close()
    if rec.error:
        raise RuntimeError(f"benchmark episode failed: {rec.error}")
    steps = rec.steps + env.protocol()["settle_steps"]  # wall_s includes the settle steps
    return {"steps": steps, "wall_s": rec.wall_s, "renders": rec.renders, "success": rec.success}


def _overheads(eps: pd.DataFrame, t0: float) -> dict:
    """Executor overheads from the records' clocks (time.time() on the worker; one machine here): an episode starts
    at `finished_at` (stamped when `run_episode` creates the record, despite its name) and ends `wall_s` later. Mean
    start-up per worker (until its first episode starts), mean gap between consecutive episodes of one task on one
    worker (no env creation in it)."""
    eps = eps.assign(started=eps["finished_at"], ended=eps["finished_at"] + eps["wall_s"]).sort_values("started")
    startup, gaps = [], []
    for _, mine in eps.groupby("worker_pid"):
        startup.append(mine["started"].iloc[0] - t0)
        same_task = mine["task_index"].eq(mine["task_index"].shift())
        gaps += list((mine["started"] - mine["ended"].shift())[same_task])
    return {"startup_s": float(np.mean(startup)), "gap_s": float(np.mean(gaps)) if gaps else float("nan")}


def _workers_rate(suite: str, workers: int, episodes: int, executor: str = "local", ray_address: str | None = None) -> dict:
    from harness.executors import make_executor
    from harness.runner import EvalRequest, evaluate

    with tempfile.TemporaryDirectory() as tmp:
        req = EvalRequest("expert", suite, episodes=episodes, tasks=(0, 1), workers=workers, results_root=Path(tmp))
        pool = make_executor(executor, workers, ray_address)
        t0, epoch0 = time.perf_counter(), time.time()
        try:
            eps = evaluate(req, progress=False, executor=pool).episodes
        finally:
            pool.close()
        wall = time.perf_counter() - t0
    outside = min(workers, len(eps)) * wall - eps["wall_s"].sum()  # worker time outside episodes
    return {"steps": int(eps["steps"].sum()), "wall_s": wall, "renders": int(eps["renders"].sum()),
            "episodes": len(eps), "success": eps["success"].mean(), **_overheads(eps, epoch0),
            "overhead_s_per_ep": outside / len(eps)}


def run_bench(suite: str = "libero_spatial", steps: int = 200, episodes_per_task: int = 2, executor: str = "local",
              ray_address: str | None = None) -> str:
    env = make_suite(suite).make_env(0, ObsSpec(cameras=CAMERAS, resolution=(128, 128)))
    rows = {
        "physics only (no render)": _step_rate(env, steps, render_every_step=False),
        "render 2 cams every step": _step_rate(env, steps, render_every_step=True),
    }
    env.close()
    rows["expert reading 2 cams, chunk 8, lazy"] = _expert_chunked(suite)
    kinds = ("local", "ray") if executor == "ray" else (executor,)
    for workers in (1, 2):
        for kind in kinds:  # interleaved, so both executors see the same machine load
            label = f"runner, expert, {workers} worker(s)" + (f", {kind}" if len(kinds) > 1 else "")
            rows[label] = _workers_rate(suite, workers, episodes_per_task, kind, ray_address)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["steps_per_s"] = table["steps"] / table["wall_s"]
    if "episodes" in table:
        table["episodes_per_min"] = 60 * table["episodes"] / table["wall_s"]
    scope = (
        f"bench-harness: {suite} task 0 (runner rows: tasks 0-1 x {episodes_per_task} init states), 128x128 cameras, "
        f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}, {os.cpu_count()} cores; wall clock in this process "
        "(runner rows include worker start-up and env creation"
        + (f"; ray: {'cluster ' + ray_address if ray_address else 'a local instance started per row'}"
           if executor == "ray" else "")
        + "); startup_s: until a worker's first episode starts, gap_s: between episodes of one task on one worker, "
        "overhead_s_per_ep: worker time outside episodes per episode"
    )
    return f"{scope}\n{table.to_string(float_format=lambda x: f'{x:.2f}')}"
