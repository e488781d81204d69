"""A policy family over its checkpoints: `track` tests a new checkpoint against the family's registered baseline
with as few episodes as the evidence allows; `history` plots every checkpoint of the family in the index.

`track` evaluates NEW on the baseline's units in rounds (round j: init states 0..j*k-1 of every task, through
`harness.runner.evaluate`, so an interrupted track resumes), runs `harness.regression.SequentialTest` on the
paired outcomes after each round and stops at the first verdict; undecided when the units run out, the verdict
is the fixed-n gate of `harness.compare` on all of them (what a full evaluation would give). Its false-alarm rate
is therefore at most 2 alpha (union bound); `tests/test_regression.py` measures 3% at alpha 0.05 on 500 units.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from core.paths import DEFAULT_RESULTS
from harness.compare import (
    SuiteComparison, baseline_run, checkpoint_family, compare_suite, exit_code, identity_family,
)
from harness.index import ResultsIndex
from harness.regression import SequentialTest
from harness.runner import UsageError
from harness.stats import wilson_interval


@dataclass(frozen=True)
class Round:
    init_states: int
    """Init states per task evaluated so far."""
    pairs: int
    only_base: int
    only_new: int
    log_e_worse: float
    log_e_ok: float
    verdict: str | None


def schedule(init_states: int, per_round: int) -> list[int]:
    """Init states per task after each round: per_round, 2 per_round, ..., init_states (the last may be short)."""
    return sorted({*range(per_round, init_states, per_round), init_states})


def sequential_rounds(base: pd.Series, steps: list[int], evaluate: Callable[[int], pd.Series],
                      test: SequentialTest, log: Callable[[str], None] = print) -> list[Round]:
    """For each k of `steps`, `evaluate(k)` -> NEW's outcomes (bool by unit key) on init states < k of every task;
    paired with `base` (BASE's outcomes by key) and tested; stops after the first round with a verdict. Returns the
    rounds run."""
    rounds = []
    for k in steps:
        new = evaluate(k)
        shared = new.index.intersection(base.index)
        b, n = base.loc[shared].to_numpy(bool), new.loc[shared].to_numpy(bool)
        only_base, only_new = int((b & ~n).sum()), int((n & ~b).sum())
        worse, ok = test.log_evidence(only_base, only_new, len(shared))
        r = Round(k, len(shared), only_base, only_new, float(worse), float(ok),
                  test.verdict(only_base, only_new, len(shared)))
        rounds.append(r)
        log(f"round {len(rounds)}: {r.pairs} pairs (init states 0-{k - 1}), only BASE {only_base} / only NEW "
            f"{only_new}; E_worse {math.exp(r.log_e_worse):.3g} (stops at {1 / test.alpha:g}), E_ok "
            f"{math.exp(r.log_e_ok):.3g} (stops at {1 / test.beta:g}): {r.verdict or 'continue'}")
        if r.verdict:
            break
    return rounds


@dataclass
class TrackResult:
    rounds: list[Round]
    total: int
    """Episodes of the fixed-n evaluation (the baseline's units)."""
    comparison: SuiteComparison
    """`compare_suite` on the units evaluated."""
    verdict: str | None
    """The sequential verdict; None when the units ran out undecided."""

    @property
    def evaluated(self) -> int:
        return self.rounds[-1].pairs

    @property
    def exit_code(self) -> int:
        """1 when NEW is worse: the sequential verdict, or the fixed-n gate when undecided."""
        return exit_code([self.comparison]) if self.verdict is None else int(self.verdict == "worse")


def _suite_of(checkpoint: Path, suite: str | None) -> str:
    from tasks import SUITES

    name = suite or checkpoint.resolve().name
    if name not in SUITES.names():
        raise UsageError(f"pass --suite: {checkpoint} is not named after a suite (valid: {', '.join(SUITES.names())})")
    return name


def track(checkpoint: Path, family: str | None = None, params: str = "", suite: str | None = None,
          test: SequentialTest = SequentialTest(), round_states: int = 1, workers: int = 1,
          results_root: Path = DEFAULT_RESULTS, progress: bool = True, log: Callable[[str], None] = print
          ) -> TrackResult:
    """Evaluate `checkpoint` (family from its config unless given) on its family's registered baseline units of
    `suite` (default: the checkpoint folder's name), `round_states` init states per task per round."""
    from harness.cli import policy_spec
    from harness.runner import EvalRequest, evaluate
    from policies import load_policy
    from policies.base import PolicyLoadError

    checkpoint = Path(checkpoint)
    if not (checkpoint / "config.json").exists():
        raise UsageError(f"--checkpoint {checkpoint}: not a checkpoint folder (no config.json)")
    if round_states < 1:
        raise UsageError(f"--round-episodes must be >= 1, got {round_states}")
    suite = _suite_of(checkpoint, suite)
    spec = policy_spec(family or checkpoint_family(checkpoint), params, str(checkpoint))
    try:
        loaded = load_policy(spec, suite)
    except (PolicyLoadError, ValueError) as err:
        raise UsageError(str(err)) from None
    ix = ResultsIndex(results_root)
    base_run = baseline_run(ix, loaded.family, suite)
    base = ix.sql("SELECT key, task_index, init_index, seed, success FROM episodes WHERE run = ?", base_run)
    tasks = sorted(int(t) for t in base["task_index"].unique())
    inits = base.groupby("task_index")["init_index"].apply(lambda s: sorted(s.tolist()))
    n_init = len(inits.iloc[0])
    if base["seed"].nunique() != 1 or any(v != list(range(n_init)) for v in inits):
        raise UsageError(f"baseline {base_run} is not tasks x init states 0..k-1 at one seed: track cannot "
                         f"rerun its units in rounds")
    seed = int(base["seed"].iloc[0])
    log(f"track {loaded.tag} on {suite} against baseline {base_run}: {len(tasks)} tasks x {n_init} init states, "
        f"seed {seed}; {round_states} init state(s) per task per round; {test.describe()}")
    run_dir: list[Path] = []

    def evaluate_round(k: int) -> pd.Series:
        result = evaluate(EvalRequest(policy=spec, suite=suite, episodes=k, tasks=tuple(tasks), workers=workers,
                                      seed=seed, results_root=results_root), progress=progress)
        run_dir[:] = result.run_dirs
        return result.episodes.set_index("key")["success"].astype(bool)

    rounds = sequential_rounds(base.set_index("key")["success"].astype(bool), schedule(n_init, round_states),
                               evaluate_round, test, log)
    new_run = run_dir[0].resolve().relative_to(Path(results_root).resolve()).as_posix()
    evaluated = set(base.loc[base["init_index"] < rounds[-1].init_states, "key"])
    comparison = compare_suite(ResultsIndex(results_root), suite, base_run, new_run, ("success",), test.alpha,
                               test.margin, units=evaluated)
    return TrackResult(rounds, len(base), comparison, rounds[-1].verdict)


def history(ix: ResultsIndex, policy: str, suite: str | None = None) -> pd.DataFrame:
    """One row per run of `policy`'s family (a registry name or alias; all params) in the index, per suite in
    order of its first invocation's start: success with its Wilson 95% interval, mean GFLOPs per call, and whether
    it is the registered baseline."""
    family = identity_family(policy)
    rows = ix.sql("""
        SELECT r.run, r.suite, r.checkpoint_sha256, r.params, count(*) AS n, sum(e.success::INT) AS k
        FROM runs r JOIN episodes e USING (run) WHERE r.family = ? GROUP BY ALL""", family)
    if suite:
        rows = rows[rows["suite"] == suite]
    if rows.empty:
        raise UsageError(f"no {family} runs under {ix.root}{' on ' + suite if suite else ''}")
    gflops = ix.sql("SELECT run, avg(gflops) AS gflops FROM calls GROUP BY run")
    rows = rows.merge(gflops, on="run", how="left")
    rows["started"] = [pd.to_datetime(json.loads((ix.root / r / "manifest.json").read_text())["invocations"][0]
                                      ["started"]) for r in rows["run"]]
    rows["k"], rows["n"] = rows["k"].astype(int), rows["n"].astype(int)
    rows["lo"], rows["hi"] = zip(*(wilson_interval(k, n) for k, n in zip(rows["k"], rows["n"])))
    registered = {}
    for s in rows["suite"].unique():
        try:
            registered[s] = baseline_run(ix, family, s)
        except UsageError:
            registered[s] = None
    rows["baseline"] = [registered[s] == r for s, r in zip(rows["suite"], rows["run"])]
    return rows.sort_values(["suite", "started"]).reset_index(drop=True)


def plot_history(points: pd.DataFrame, policy: str, out: Path) -> Path:
    """PNG at `out`: per suite (columns) success % with Wilson 95% bars and GFLOPs per call over the checkpoints,
    the registered baseline starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = list(points["suite"].unique())
    fig, axes = plt.subplots(2, len(suites), figsize=(max(5.0, 1.4 * points.groupby("suite").size().max()) *
                                                      len(suites), 6.5), squeeze=False, sharex="col")
    for col, s in enumerate(suites):
        p = points[points["suite"] == s].reset_index(drop=True)
        x = np.arange(len(p))
        rate, gflops = (100 * p["k"] / p["n"]).to_numpy(), p["gflops"].to_numpy(float)
        top, bottom = axes[0, col], axes[1, col]
        top.errorbar(x, rate, yerr=[rate - 100 * p["lo"].to_numpy(), 100 * p["hi"].to_numpy() - rate], fmt="o",
                     capsize=4, label="success, Wilson 95% CI")
        bottom.plot(x, gflops, "o-", label="mean GFLOPs per call")
        base = p["baseline"].to_numpy(bool)
        if base.any():
            top.plot(x[base], rate[base], "r*", markersize=16, label="registered baseline")
            bottom.plot(x[base], gflops[base], "r*", markersize=16, label="registered baseline")
        top.set_title(f"{policy} on {s}")
        top.set_ylabel("success (% of episodes)")
        top.set_ylim(0, 100)
        bottom.set_ylabel("GFLOPs per policy call")
        bottom.set_ylim(0, 1.15 * np.nanmax(gflops) if np.isfinite(gflops).any() else 1)
        params = [",".join(f"{k}={v}" for k, v in sorted(json.loads(t).items())) for t in p["params"]]
        bottom.set_xticks(x, [f"{sha[:8]}{' ' + q if q else ''}\n{t:%Y-%m-%d %H:%M}\nn={n}" for sha, q, t, n in
                              zip(p["checkpoint_sha256"], params, p["started"], p["n"])], fontsize=8)
        bottom.set_xlabel("checkpoint (weights sha256, first evaluated, episodes)")
        top.legend(fontsize=8, loc="lower right")
        bottom.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
