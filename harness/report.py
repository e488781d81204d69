"""Tables from episode and call records (pandas): the terminal summary of a run."""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.rollouts import run_summary


def _row(group: pd.DataFrame, calls: pd.DataFrame | None) -> dict:
    summary = run_summary(group, calls if calls is not None else pd.DataFrame(columns=["key", "exec_fraction", "gflops"]))
    n_calls = group["policy_calls"].sum()
    row = {
        "episodes": summary["episodes"],
        "success_%": summary["success_%"],
        "ci95_%": f"{summary['ci95_lo_%']:.0f}-{summary['ci95_hi_%']:.0f}",
        "errors": summary["errors"],
        "steps_mean": group["steps"].mean(),
        "policy_ms_per_call": 1000.0 * group["policy_s"].sum() / n_calls if n_calls else float("nan"),
        "wall_s_per_ep": group["wall_s"].mean(),
        **{f"{c[len('partial_'):]}_%": 100.0 * group[c].fillna(False).astype(bool).mean()
           for c in group.columns if c.startswith("partial_")},
    }
    if not np.isnan(summary["exec_backbone_%"]):
        row["exec_%"] = summary["exec_backbone_%"]
    if not np.isnan(summary["gflops_per_call"]):
        row["GF_per_call"] = summary["gflops_per_call"]
    return row


def summary_table(episodes: pd.DataFrame, calls: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (suite, task) plus an `ALL` row per suite. Success over all counted episodes, errors
    included as failures; the interval is a 95% Wilson interval over episodes. With `calls`: the mean executed
    share of the reference backbone and GFLOPs per call over every recorded call."""
    rows = []
    for suite, sdf in episodes.groupby("suite", sort=False):
        scalls = None if calls is None else calls[calls["suite"] == suite]
        for (task, name), tdf in sdf.groupby(["task_index", "task_name"]):
            rows.append({"suite": suite, "task": int(task), "name": name, **_row(tdf, scalls)})
        rows.append({"suite": suite, "task": "ALL", "name": f"{sdf['task_index'].nunique()} tasks", **_row(sdf, scalls)})
    return pd.DataFrame(rows).replace({None: np.nan})


def format_summary(episodes: pd.DataFrame, scope: str, calls: pd.DataFrame | None = None) -> str:
    table = summary_table(episodes, calls)
    table["name"] = table["name"].str.slice(0, 60)
    text = table.to_string(index=False, float_format=lambda x: f"{x:.1f}")
    return f"{scope}\n{text}"
