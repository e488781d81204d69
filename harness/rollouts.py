"""Rollout analytics of an evaluated run, from its schema-v2 tables (`RunStore.load()` episodes, `.load_calls()`
calls); nothing is re-run or re-counted.

Compute per call is what the run recorded: each call's `exec_fraction` (share of the reference backbone's FLOPs
its blocks make up) and `gflops` (`harness.compute` model of the run's manifest). Errors count as failures.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.stats import wilson_interval


def _mean(series: pd.Series) -> float:
    """Mean over known values; NaN when there are none (a policy without blocks, a run without a compute model)."""
    return float(series.mean()) if series.notna().any() else np.nan


def run_summary(episodes: pd.DataFrame, calls: pd.DataFrame) -> dict:
    """One row for a set of episodes: `episodes`, `success_%` with its Wilson 95% interval (`ci95_lo_%`,
    `ci95_hi_%`), `errors` (episodes that failed by an error), `exec_backbone_%` and `gflops_per_call` (means over
    every recorded call of those episodes, NaN where not counted), `calls`. Calls of other episodes are ignored."""
    mine = calls[calls["key"].isin(episodes["key"])]
    n, k = len(episodes), int(episodes["success"].sum())
    lo, hi = wilson_interval(k, n)
    return {
        "episodes": n, "success_%": 100 * k / n if n else np.nan, "ci95_lo_%": 100 * lo, "ci95_hi_%": 100 * hi,
        "errors": int((episodes["error"].fillna("") != "").sum()),
        "exec_backbone_%": 100 * _mean(mine["exec_fraction"]), "gflops_per_call": _mean(mine["gflops"]),
        "calls": len(mine),
    }


def rollout_metrics(episodes: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """One row per task and an `ALL` row: `run_summary`, plus steps to success (mean env steps of successful
    episodes), shares of episode wall time in the policy / physics / rendering and in the harness's own
    recording (`overhead_%`), and mean squared action jerk ((action units/step^3)^2)."""

    def row(eps: pd.DataFrame, task) -> dict:
        wall = eps["wall_s"].sum()
        return {
            "task": task, **run_summary(eps, calls),
            "steps_to_success": eps.loc[eps["success"].astype(bool), "steps"].mean(),
            "policy_%": 100 * eps["policy_s"].sum() / wall, "physics_%": 100 * eps["physics_s"].sum() / wall,
            "render_%": 100 * eps["render_s"].sum() / wall, "jerk": eps["jerk"].mean(),
            "overhead_%": 100 * eps["record_s"].sum() / wall,
        }

    rows = [row(eps, int(task)) for task, eps in episodes.groupby("task_index")]
    return pd.DataFrame(rows + [row(episodes, "ALL")])


def episode_metrics(episodes: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """One row per episode: unit (task, init, seed), outcome, steps, recorded calls, mean executed backbone
    fraction, mean executed blocks and GFLOPs per call, GFLOPs of the episode, wall time split (s), jerk and
    recording overhead (s)."""
    per_call = calls.groupby("key").agg(
        calls=("call", "size"), exec_frac=("exec_fraction", "mean"), exec_blocks=("n_blocks", "mean"),
        gflops_per_call=("gflops", "mean"), gflops=("gflops", lambda g: g.sum(min_count=1)))
    table = episodes.join(per_call, on="key")
    table["calls"] = table["calls"].fillna(0).astype(int)
    table["error"] = table["error"].fillna("") != ""
    return table.rename(columns={"task_index": "task", "init_index": "init"})[[
        "key", "task", "init", "seed", "success", "error", "steps", "calls", "exec_frac", "exec_blocks",
        "gflops_per_call", "gflops", "wall_s", "policy_s", "physics_s", "render_s", "jerk", "record_s"]]
