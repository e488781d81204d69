"""`make bench-harness`: how fast the harness steps environments on this machine (a benchmark, not a test).

Measures, in one process and one run: physics-only steps, steps that render both cameras every step, the
expert acting in open-loop chunks of 8 while reading both cameras at each call (as a VLA would; rendered only
at those query steps), and episode throughput of the runner with 1 vs 2 workers.
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


def _workers_rate(suite: str, workers: int, episodes: int) -> dict:
    from harness.runner import EvalRequest, evaluate

    with tempfile.TemporaryDirectory() as tmp:
        req = EvalRequest("expert", suite, episodes=episodes, tasks=(0, 1), workers=workers, results_root=Path(tmp))
        t0 = time.perf_counter()
        eps = evaluate(req, progress=False).episodes
        wall = time.perf_counter() - t0
    return {"steps": int(eps["steps"].sum()), "wall_s": wall, "renders": int(eps["renders"].sum()),
            "episodes": len(eps), "success": eps["success"].mean()}


def run_bench(suite: str = "libero_spatial", steps: int = 200, episodes_per_task: int = 2) -> str:
    env = make_suite(suite).make_env(0, ObsSpec(cameras=CAMERAS, resolution=(128, 128)))
    rows = {
        "physics only (no render)": _step_rate(env, steps, render_every_step=False),
        "render 2 cams every step": _step_rate(env, steps, render_every_step=True),
    }
    env.close()
    rows["expert reading 2 cams, chunk 8, lazy"] = _expert_chunked(suite)
    for workers in (1, 2):
        rows[f"runner, expert, {workers} worker(s)"] = _workers_rate(suite, workers, episodes_per_task)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["steps_per_s"] = table["steps"] / table["wall_s"]
    if "episodes" in table:
        table["episodes_per_min"] = 60 * table["episodes"] / table["wall_s"]
    scope = (
        f"bench-harness: {suite} task 0 (runner rows: tasks 0-1 x {episodes_per_task} init states), 128x128 cameras, "
        f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}, {os.cpu_count()} cores; wall clock in this process "
        "(runner rows include worker start-up and env creation)"
    )
    return f"{scope}\n{table.to_string(float_format=lambda x: f'{x:.2f}')}"
