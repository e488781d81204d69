"""Tables from episode records (pandas): the terminal summary of a run."""
from __future__ import annotations

import json

import pandas as pd

from harness.stats import wilson_interval


def _row(group: pd.DataFrame) -> dict:
    n = len(group)
    k = int(group["success"].sum())
    lo, hi = wilson_interval(k, n)
    calls = group["policy_calls"].sum()
    partial = pd.DataFrame([json.loads(p) for p in group["partial"]]) if "partial" in group else pd.DataFrame()
    return {
        "episodes": n,
        "success_%": 100.0 * k / n if n else float("nan"),
        "ci95_%": f"{100 * lo:.0f}-{100 * hi:.0f}",
        "errors": int((group["error"] != "").sum()),
        "steps_mean": group["steps"].mean(),
        "policy_ms_per_call": 1000.0 * group["policy_s"].sum() / calls if calls else float("nan"),
        "wall_s_per_ep": group["wall_s"].mean(),
        **{f"{key}_%": 100.0 * partial[key].fillna(False).astype(bool).mean() for key in partial.columns},
    }


def summary_table(episodes: pd.DataFrame) -> pd.DataFrame:
    """One row per (suite, task) plus an `ALL` row per suite. Success over all counted episodes, errors
    included as failures; the interval is a 95% Wilson interval over episodes."""
    rows = []
    for suite, sdf in episodes.groupby("suite", sort=False):
        for (task, name), tdf in sdf.groupby(["task_index", "task_name"]):
            rows.append({"suite": suite, "task": int(task), "name": name, **_row(tdf)})
        rows.append({"suite": suite, "task": "ALL", "name": f"{sdf['task_index'].nunique()} tasks", **_row(sdf)})
    return pd.DataFrame(rows)


def format_summary(episodes: pd.DataFrame, scope: str) -> str:
    table = summary_table(episodes)
    table["name"] = table["name"].str.slice(0, 60)
    text = table.to_string(index=False, float_format=lambda x: f"{x:.1f}")
    return f"{scope}\n{text}"
