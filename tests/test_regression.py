"""Regression tracking: the statistics against scipy and published values, the gate's and the sequential test's
error rates by simulation, `compare` on the committed runs, `track`'s rounds, `history`'s plot."""
import argparse
import json
import shutil
import time

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import binomtest, fisher_exact, norm

from core.paths import CHECKPOINTS, DEFAULT_RESULTS
from harness.compare import SUITE_WEIGHT, compare, compare_suite, format_markdown, gate_p, resolve
from harness.compare_cli import COMMANDS, add_parsers
from harness.index import ResultsIndex
from harness.report_cli import shipped_checkpoints
from harness.regression import (
    SequentialTest, difference, farrington_manning_p_worse, holm, newcombe_paired, newcombe_unpaired,
    tango_p_worse,
)
from harness.runner import UsageError
from harness.track import history, plot_history, schedule, sequential_rounds

SHIPPED_TEACHER = "teacher-232a388907bf/libero_spatial"  # 52d8ea4f1a29, 10 epochs
SIX_EPOCHS = "teacher-c8de181b1fdb/libero_spatial"  # 88d9ea3189dc
DART = "teacher-acd0f3e9ffb8/libero_spatial"  # a9f9963362e6


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return COMMANDS[args.command](args)


# --- statistics on known cases -------------------------------------------------------------------------------

@pytest.mark.parametrize("k1, n1, k2, n2, lo, hi", [  # Newcombe 1998, Stat Med 17:873, Table II, method 10
    (56, 70, 48, 80, 0.0524, 0.3339), (9, 10, 3, 10, 0.1705, 0.8090), (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926), (0, 10, 0, 20, -0.1611, 0.2775), (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0), (10, 10, 0, 10, 0.6075, 1.0)])
def test_newcombe_unpaired_interval_matches_the_published_table(k1, n1, k2, n2, lo, hi):
    assert newcombe_unpaired(k1, n1, k2, n2) == pytest.approx((lo, hi), abs=1e-4)


def test_newcombe_paired_interval_matches_the_published_example_and_covers():
    # Newcombe 1998, Stat Med 17:2635, Table II example (36, 12, 2, 0): method 10 gives 0.0569 to 0.3404.
    assert newcombe_paired(36, 12, 2, 0) == pytest.approx((0.0569, 0.3404), abs=1e-4)
    # Orientation and coverage: 95% intervals of simulated correlated pairs (n = 200) cover the true difference.
    rng = np.random.default_rng(0)
    cells = np.array([0.35, 0.10, 0.20, 0.35])  # both, only NEW, only BASE, neither: NEW - BASE = -0.10
    covered = [lo <= -0.10 <= hi for lo, hi in (newcombe_paired(*rng.multinomial(200, cells)) for _ in range(1000))]
    assert np.mean(covered) >= 0.93


def test_mcnemar_and_fisher_are_scipy_exact_tests():
    rng = np.random.default_rng(1)
    for _ in range(20):
        base, new = rng.random(60) < 0.6, rng.random(60) < 0.45
        d = difference(base, new, paired=True)
        only_base, only_new = int((base & ~new).sum()), int((new & ~base).sum())
        assert (d.only_base, d.only_new) == (only_base, only_new)
        assert d.p == pytest.approx(binomtest(only_new, only_base + only_new, 0.5).pvalue)
        assert d.p_worse == pytest.approx(binomtest(only_new, only_base + only_new, 0.5, alternative="less").pvalue)
        u = difference(base[:40], new, paired=False)
        table = [[new.sum(), 60 - new.sum()], [base[:40].sum(), 40 - base[:40].sum()]]
        assert u.p == pytest.approx(fisher_exact(table).pvalue)
        assert u.p_worse == pytest.approx(fisher_exact(table, alternative="less").pvalue)
        assert u.diff == pytest.approx(new.mean() - base[:40].mean())


def test_holm_against_a_hand_computation():
    # sorted 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # weighted: p/w = 0.08, 0.04, 0.8 -> 0.01 * 1/0.25 = 0.04, 0.04 * 0.75/0.5 = 0.06, 0.2 * 0.25/0.25 = 0.2
    assert holm([0.04, 0.01, 0.2], [0.5, 0.25, 0.25]) == pytest.approx([0.06, 0.04, 0.2])
    assert gate_p(0.02, [0.5, 0.5]) == pytest.approx([0.04, 1.0, 1.0])  # the suite alone at alpha / 2 first


def test_margin_score_tests():
    # Tango's restricted MLE equals a numerical maximisation of the paired likelihood under NEW - BASE = -margin.
    b, c, n, m = 30, 18, 200, 0.05
    nll = lambda q: -(b * np.log(q) + c * np.log(q - m) + (n - b - c) * np.log(1 - 2 * q + m))
    q = minimize_scalar(nll, bounds=(m + 1e-9, (1 + m) / 2 - 1e-9), method="bounded", options={"xatol": 1e-12}).x
    z = (c - b + n * m) / np.sqrt(n * (2 * q - m * (1 + m)))
    assert tango_p_worse(c, b, n, m) == pytest.approx(norm.cdf(z), rel=1e-6)
    # At margin -> 0: McNemar's asymptotic test, and the pooled two-proportion z-test.
    assert tango_p_worse(c, b, n, 1e-12) == pytest.approx(norm.cdf((c - b) / np.sqrt(b + c)), rel=1e-6)
    pooled = 90 / 200
    z = (40 / 100 - 50 / 100) / np.sqrt(pooled * (1 - pooled) * (2 / 100))
    assert farrington_manning_p_worse(40, 100, 50, 100, 1e-12) == pytest.approx(norm.cdf(z), rel=1e-5)
    # A margin makes the same drop less significant.
    assert tango_p_worse(c, b, n, 0.1) > tango_p_worse(c, b, n, 1e-12)
    assert difference([True] * 30 + [False] * 10, [True] * 25 + [False] * 15, True, 0.1).test.endswith("(margin)")


# --- simulations ---------------------------------------------------------------------------------------------

TASK_RATES = np.array([0.55, 0.55, 0.85, 0.50, 0.25, 0.90, 0.10, 0.80, 0.45, 0.55])
"""Per-task success of the shipped libero_spatial teacher (`compare` output): tasks differ as they do there."""
UNITS = 50  # init states per task: 10 x 50 = 500 paired episodes
KEEP = 0.15
"""Share of units on which NEW draws the same difficulty as BASE; with the task spread this gives about the
committed 10- vs 6-epoch teachers' discordance (65 of 200 units) and correlation (phi 0.36)."""


def paired_outcomes(rng, trials: int, drop: float) -> tuple[np.ndarray, np.ndarray]:
    """(trials, tasks, units) BASE and NEW outcomes: a unit's difficulty u ~ U(0, 1) decides success (u < rate);
    NEW keeps the unit's u with probability KEEP, else draws its own, and succeeds at rate - drop."""
    shape = (trials, len(TASK_RATES), UNITS)
    u = rng.random(shape)
    u_new = np.where(rng.random(shape) < KEEP, u, rng.random(shape))
    return u < TASK_RATES[:, None], u_new < (TASK_RATES - drop)[:, None]


def gate_flags(base: np.ndarray, new: np.ndarray) -> tuple[bool, bool]:
    """(the gate flags NEW, the suite-at-alpha-plus-tasks-Holm-at-alpha rule would) on one trial's outcomes."""
    suite = difference(base.ravel(), new.ravel(), paired=True).p_worse
    tasks = [difference(b, n, paired=True).p_worse for b, n in zip(base, new)]
    return bool((gate_p(suite, tasks) <= 0.05).any()), bool(suite <= 0.05 or (holm(tasks) <= 0.05).any())


def test_gate_flags_a_ten_point_drop_and_stays_quiet_on_the_same_policy():
    rng = np.random.default_rng(2026)
    trials = 300
    null_b, null_n = paired_outcomes(rng, trials, 0.0)
    assert ((null_b != null_n).mean(), np.corrcoef(null_b.ravel(), null_n.ravel())[0, 1]) == pytest.approx(
        (0.325, 0.36), abs=0.03)
    quiet = [gate_flags(b, n) for b, n in zip(null_b, null_n)]
    drop = [gate_flags(b, n)[0] for b, n in zip(*paired_outcomes(rng, trials, 0.10))]
    false_alarms, literal = np.mean([q[0] for q in quiet]), np.mean([q[1] for q in quiet])
    print(f"\ngate over 500 paired episodes, {trials} trials each: flags a 10-point drop in {np.mean(drop):.1%}; "
          f"false alarms on the same policy {false_alarms:.1%} (suite at alpha + tasks Holm at alpha: {literal:.1%})")
    assert np.mean(drop) >= 0.80
    assert false_alarms <= 0.05


def test_sequential_test_error_rates_and_sample_size():
    rng = np.random.default_rng(7)
    test = SequentialTest(alpha=0.05, beta=0.2, delta=0.10)
    trials, tasks = 300, len(TASK_RATES)
    pairs = tasks * np.arange(1, UNITS + 1)  # one init state per task per round
    report = {}
    for name, drop in (("same policy", 0.0), ("10-point drop", 0.10)):
        base, new = paired_outcomes(rng, trials, drop)
        only_base = np.cumsum((base & ~new).sum(axis=1), axis=1)  # (trials, rounds)
        only_new = np.cumsum((new & ~base).sum(axis=1), axis=1)
        worse, ok = test.log_evidence(only_base, only_new, pairs)
        stop_worse = np.where((worse >= -np.log(test.alpha)).any(1), (worse >= -np.log(test.alpha)).argmax(1), UNITS)
        stop_ok = np.where((ok >= -np.log(test.beta)).any(1), (ok >= -np.log(test.beta)).argmax(1), UNITS)
        early_worse = (stop_worse < UNITS) & (stop_worse <= stop_ok)
        early_ok = (stop_ok < UNITS) & ~early_worse
        undecided = ~(early_worse | early_ok)
        flagged = early_worse.copy()  # undecided at 500 pairs: the fixed-n gate decides
        flagged[undecided] = [gate_flags(base[t], new[t])[0] for t in np.flatnonzero(undecided)]
        n_used = np.where(undecided, UNITS * tasks, pairs[np.minimum(np.minimum(stop_worse, stop_ok), UNITS - 1)])
        report[name] = (early_worse.mean(), early_ok.mean(), flagged.mean(), n_used.mean())
        print(f"\nsequential, {name}: early 'worse' {early_worse.mean():.1%}, early 'not worse' {early_ok.mean():.1%}, "
              f"undecided at 500 {undecided.mean():.1%}; flagged {flagged.mean():.1%}; mean sample size "
              f"{n_used.mean():.0f} of 500 pairs")
    (null_worse, _, null_flag, null_n), (_, drop_ok, drop_flag, drop_n) = report.values()
    assert null_worse <= test.alpha and drop_ok <= test.beta  # the sequential verdicts' own guarantees
    assert null_flag <= 0.05 and drop_flag >= 0.80  # the whole procedure, fallback included
    assert null_n < 250 and drop_n < 300


def test_sequential_evidence_is_counts_only_and_rejects_bad_settings():
    test = SequentialTest()
    assert test.verdict(0, 0, 0) is None
    assert test.verdict(12, 0, 12) == "worse"
    assert test.verdict(0, 0, 60) == "not worse"  # 60 concordant pairs bound the difference well inside 10 points
    with pytest.raises(ValueError, match="margin < delta"):
        SequentialTest(margin=0.1, delta=0.1)


# --- track's rounds ------------------------------------------------------------------------------------------

def test_schedule_and_rounds_stop_at_the_first_verdict():
    assert schedule(20, 3) == [3, 6, 9, 12, 15, 18, 20] and schedule(2, 5) == [2]
    units = pd.DataFrame([(f"s__t{t}__i{i}__s0", i) for t in range(3) for i in range(20)], columns=["key", "init"])
    base = pd.Series(True, index=units["key"])
    asked = []

    def failing(k):  # NEW fails every unit BASE solved
        asked.append(k)
        return pd.Series(False, index=units.loc[units["init"] < k, "key"])

    rounds = sequential_rounds(base, schedule(20, 1), failing, SequentialTest(), log=lambda _: None)
    assert rounds[-1].verdict == "worse" and all(r.verdict is None for r in rounds[:-1])
    assert asked == list(range(1, len(rounds) + 1)) and rounds[-1].pairs == 3 * len(rounds) < 60
    same = sequential_rounds(base, schedule(20, 2), lambda k: base[(units["init"] < k).to_numpy()],
                             SequentialTest(), log=lambda _: None)
    assert same[-1].verdict == "not worse" and same[-1].only_base == same[-1].only_new == 0


def test_rounds_replayed_on_committed_runs():
    """The rounds on real outcomes: the DART-data teacher (42.0%) as NEW against the shipped one (55.0%), its
    committed episodes served round by round as if evaluated."""
    e = ResultsIndex(DEFAULT_RESULTS).sql("SELECT run, key, init_index, success FROM episodes WHERE run IN (?, ?)",
                                          SHIPPED_TEACHER, DART)
    base = e[e["run"] == SHIPPED_TEACHER].set_index("key")["success"].astype(bool)
    new = e[e["run"] == DART].set_index("key")
    rounds = sequential_rounds(base, schedule(20, 1), lambda k: new.loc[new["init_index"] < k, "success"].astype(bool),
                               SequentialTest(), log=lambda _: None)
    assert (rounds[-1].verdict, rounds[-1].pairs, rounds[-1].only_base, rounds[-1].only_new) == ("worse", 60, 19, 5)


# --- compare on the committed runs ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ix():
    return ResultsIndex(DEFAULT_RESULTS)


def direct_discordant(ix, base_run, new_run) -> tuple[int, int]:
    pairs = ix.sql("""SELECT b.success AS base, n.success AS new FROM episodes b JOIN episodes n USING (key)
                      WHERE b.run = ? AND n.run = ?""", base_run, new_run)
    assert len(pairs) == 200
    return int((pairs["base"] & ~pairs["new"]).sum()), int((pairs["new"] & ~pairs["base"]).sum())


def test_compare_six_epochs_against_the_shipped_teacher(ix, capsys, tmp_path):
    only_base, only_new = direct_discordant(ix, SHIPPED_TEACHER, SIX_EPOCHS)
    assert (only_base, only_new) == (40, 25)
    p = binomtest(only_new, only_base + only_new, 0.5).pvalue
    p_worse = binomtest(only_new, only_base + only_new, 0.5, alternative="less").pvalue
    [c] = compare(ix, {"libero_spatial": SHIPPED_TEACHER}, {"libero_spatial": SIX_EPOCHS})
    suite = c.metrics["success"][0]
    assert suite.diff.p == pytest.approx(p) and suite.diff.p_worse == pytest.approx(p_worse)
    assert (suite.diff.base_k, suite.diff.new_k, suite.diff.base_n) == (110, 95, 200)
    assert suite.diff.lo < -0.075 < suite.diff.hi < 0.01 and len(c.metrics["success"]) == 11
    assert suite.p_adj == pytest.approx(p_worse / SUITE_WEIGHT) and not c.flagged()
    assert c.gflops == pytest.approx((3.0213, 3.0213), abs=1e-3) and "not timed together" in c.latency
    md = tmp_path / "summary.md"
    assert cli("compare", "--base", "52d8ea4f1a29", "--new", "88d9ea3189dc", "--suite", "libero_spatial",
               "--markdown", str(md)) == 0
    out = capsys.readouterr().out
    assert f"{p:.3g}" in out and f"{p_worse:.3g}" in out and "gate: PASS" in out
    assert "**PASS**" in md.read_text() and "<details>" in md.read_text()
    # Reversed, and at a looser alpha the drop is flagged (exit 1).
    assert cli("compare", "--base", SIX_EPOCHS, "--new", SHIPPED_TEACHER) == 0
    assert cli("compare", "--base", "52d8ea4f1a29", "--new", "88d9ea3189dc", "--alpha", "0.1") == 1
    assert "gate: FAIL" in capsys.readouterr().out


def test_references_resolve_to_the_committed_runs(ix):
    from experiments.robustness import PERTURBATIONS

    def each_condition(tag: str, suite: str) -> dict[str, str]:
        """A policy's runs on `suite`, clean and under each committed perturbation (README, robustness)."""
        return {s: f"{tag}/{s}" for s in (suite, *(f"{suite}@{p}" for p in PERTURBATIONS))}

    spatial = ("libero_spatial",)
    teacher = each_condition("teacher-232a388907bf", "libero_spatial")
    assert resolve(str(DEFAULT_RESULTS / SIX_EPOCHS), ix) == {"libero_spatial": SIX_EPOCHS}
    assert resolve("teacher-232a388907bf", ix) == teacher  # a run tag folder: every suite it ran
    assert resolve(str(CHECKPOINTS / "teacher" / "libero_spatial"), ix) == teacher
    assert resolve("teacher", ix, suites=spatial) == {"libero_spatial": SHIPPED_TEACHER}
    assert resolve("actdistill", ix) == {**each_condition("actdistill-43be6e293a27", "libero_spatial"),
                                         **each_condition("actdistill-625ef63f32a6", "libero_object"),
                                         "libero_goal": "actdistill-099ec78afc34/libero_goal"}  # no robustness runs
    assert resolve("52d8ea4f1a29", ix) == teacher  # not a pruned run of its weights
    with pytest.raises(UsageError, match="no run under"):
        resolve("abcdef123456", ix)


def test_a_missing_or_ambiguous_reference_is_a_usage_error(tmp_path):
    copy_run(SHIPPED_TEACHER, tmp_path)
    copy_run(SIX_EPOCHS, tmp_path)
    ix = ResultsIndex(tmp_path)
    with pytest.raises(UsageError, match="no run under .* matches 'pruned-first-6' on libero_spatial"):
        resolve("pruned-first-6", ix, suites=("libero_spatial",))
    with pytest.raises(UsageError, match="is neither a run folder"):
        resolve(str(tmp_path), ix)


def test_the_registry_names_the_shipped_evaluations(ix, capsys):
    registry = json.loads((DEFAULT_RESULTS / "baselines.json").read_text())["baselines"]
    runs = ix.sql("SELECT run, checkpoint_sha256 FROM runs").set_index("run")["checkpoint_sha256"]
    shipped = shipped_checkpoints()  # a group's checkpoint once per member suite
    assert len(shipped) >= 4
    for family, suite, sha256 in shipped:  # every shipped checkpoint has its evaluation registered
        entry = registry[family][suite]
        assert runs[entry["run"]] == entry["checkpoint_sha256"] == sha256
    assert cli("compare", "--new", "88d9ea3189dc") == 0  # BASE from the registry
    assert f"vs BASE teacher 52d8ea4f1a29 ({SHIPPED_TEACHER})" in capsys.readouterr().out


def copy_run(src: str, root, keep=None) -> str:
    """A committed run copied under `root`, its tables cut to the episodes `keep(episodes)` selects."""
    dst = root / src
    dst.mkdir(parents=True)
    shutil.copy(DEFAULT_RESULTS / src / "manifest.json", dst)
    eps = pd.read_parquet(DEFAULT_RESULTS / src / "episodes.parquet")
    eps = eps[keep(eps)] if keep else eps
    calls = pd.read_parquet(DEFAULT_RESULTS / src / "calls.parquet")
    eps.to_parquet(dst / "episodes.parquet")
    calls[calls["key"].isin(eps["key"])].to_parquet(dst / "calls.parquet")
    return src


def test_unpaired_runs_use_fisher_and_a_study_table_gives_latency(tmp_path):
    base = copy_run(SHIPPED_TEACHER, tmp_path, lambda e: e["init_index"] < 10)
    new = copy_run(SIX_EPOCHS, tmp_path, lambda e: e["init_index"] >= 10)
    study = tmp_path / "studies" / "timing"
    study.mkdir(parents=True)
    pd.DataFrame({"suite": ["libero_spatial"] * 2, "entry": ["ten", "six"],
                  "run": [str(tmp_path / base), str(tmp_path / new)], "ms_p50": [30.0, 24.0],
                  "speedup_vs_ten": ["1.00x [1.00, 1.00]", "1.25x [1.20, 1.30]"]}).to_csv(study / "table.csv")
    c = compare_suite(ResultsIndex(tmp_path), "libero_spatial", base, new)
    suite = c.metrics["success"][0]
    b = pd.read_parquet(tmp_path / base / "episodes.parquet")["success"]
    n = pd.read_parquet(tmp_path / new / "episodes.parquet")["success"]
    table = [[n.sum(), len(n) - n.sum()], [b.sum(), len(b) - b.sum()]]
    assert not suite.diff.paired and suite.diff.p == pytest.approx(fisher_exact(table).pvalue)
    assert c.units.startswith("unpaired") and "ratio 0.80" in c.latency and "1.25x [1.20, 1.30]" in c.latency
    assert "only BASE/NEW" not in format_markdown([c], 0.05, 0.0)
    table = pd.read_csv(study / "table.csv").assign(timed=["2026-12-01 on cpu A", "2026-12-02 on cpu B"])
    table.to_csv(study / "table.csv")  # rows merged from two invocations were not timed together
    assert "not timed together" in compare_suite(ResultsIndex(tmp_path), "libero_spatial", base, new).latency


def test_compare_usage_errors():
    for argv, message in [(["--new", "88d9ea3189dc", "--metrics", "sucess"], "unknown metric 'sucess'"),
                          (["--new", "88d9ea3189dc", "--alpha", "5"], "--alpha must be in"),
                          (["--new", "expert-39614c8d129b"], "registers no expert baseline"),
                          (["--new", "88d9ea3189dc", "--suite", "libero_object"], "no run under")]:
        with pytest.raises(UsageError, match=message):
            cli("compare", *argv)


def test_track_usage_errors(tmp_path):
    teacher = str(CHECKPOINTS / "teacher" / "libero_spatial")
    for argv, message in [(["--checkpoint", str(tmp_path)], "not a checkpoint folder"),
                          (["--checkpoint", teacher, "--beta", "0"], "need 0 < alpha, beta < 1"),
                          (["--checkpoint", teacher, "--round-episodes", "0"], "--round-episodes must be >= 1"),
                          (["--checkpoint", teacher, "--family", "pruned-first-6"], "registers no pruned baseline")]:
        with pytest.raises(UsageError, match=message):
            cli("track", *argv)


# --- history and track ---------------------------------------------------------------------------------------

def test_history_orders_checkpoints_and_plots(ix, tmp_path, capsys):
    points = history(ix, "teacher", "libero_spatial").set_index("run")
    committed = [SIX_EPOCHS, DART, SHIPPED_TEACHER]  # by first invocation
    assert [r for r in points.index if r in committed] == committed and points["started"].is_monotonic_increasing
    assert points["baseline"].sum() == 1 and points.loc[SHIPPED_TEACHER, "baseline"]
    assert points.loc[committed, "gflops"].round(3).tolist() == [3.021] * 3
    assert cli("history", "--policy", "teacher", "--out", str(tmp_path / "h.png")) == 0
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_history(points, "teacher", tmp_path / "one.png").stat().st_size > 10_000
    assert "52d8ea4f1a29" in capsys.readouterr().out


@pytest.mark.slow
def test_track_a_pruned_teacher_against_a_two_unit_baseline(tmp_path, capsys):
    """Real episodes, kept cheap: the baseline is the shipped teacher's run cut to task 0, init states 0-1,
    registered for the pruned family; NEW is the teacher's checkpoint pruned to its first 6 blocks."""
    base = copy_run(SHIPPED_TEACHER, tmp_path, lambda e: (e["task_index"] == 0) & (e["init_index"] < 2))
    (tmp_path / "baselines.json").write_text(json.dumps({"baselines": {"pruned": {"libero_spatial": {"run": base}}}}))
    start = time.time()
    code = cli("track", "--checkpoint", str(CHECKPOINTS / "teacher" / "libero_spatial"), "--family", "pruned-first-6",
               "--results", str(tmp_path), "--workers", "1", "--no-progress")
    out = capsys.readouterr().out
    print(f"track: {time.time() - start:.0f} s")
    assert out.count("round ") == 2 and "undecided" in out and "saved 0 (0%)" in out
    assert "paired on 2 shared units (1 task x init states 0-1, seed 0)" in out and "gate: PASS" in out
    assert "errors count" not in out and "GFLOPs per call 1.78 NEW vs 3.02 BASE, ratio 0.59" in out
    assert code == 0
    new = ResultsIndex(tmp_path).sql("SELECT key FROM episodes JOIN runs USING (run) WHERE family = 'pruned'")
    assert sorted(new["key"]) == sorted(pd.read_parquet(tmp_path / base / "episodes.parquet")["key"])
