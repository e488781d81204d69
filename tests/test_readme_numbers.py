"""Every success figure of the README's learned-policy tables, reproduced from the DuckDB index over the committed
results (`results/`): success with n, per-task success, executed backbone share and GFLOPs per call."""
import json
import re
from pathlib import Path

import pytest

from harness.index import ResultsIndex
from harness.stats import wilson_interval
from tasks.protocol import LIBERO_STANDARD

REPO = Path(__file__).resolve().parent.parent
README = " ".join((REPO / "README.md").read_text().split())  # wrapped lines read as one

# (family, checkpoint sha256 prefix, suite, episodes, successes, per-task success % as the README writes it or None,
#  executed backbone % or None (dense), GFLOPs per call or None (not a model), calls as the README counts them or None)
FIGURES = [
    ("teacher", "52d8ea4f1a29", "libero_spatial", 200, 110, "55, 55, 85, 50, 25, 90, 10, 80, 45, 55", None, 3.02, 4124),
    ("teacher", "a4d13636901b", "libero_object", 200, 158, "90, 95, 60, 100, 80, 80, 95, 65, 90, 35", None, 3.02, 3910),
    ("teacher", "835e791d0a93", "libero_goal", 200, 85, "65, 50, 0, 0, 60, 25, 90, 95, 25, 15", None, 3.02, 5560),
    ("teacher", "88d9ea3189dc", "libero_spatial", 200, 95, "25, 55, 70, 40, 25, 75, 5, 85, 40, 55", None, 3.02, None),
    ("teacher", "a9f9963362e6", "libero_spatial", 200, 84, "40, 30, 30, 45, 65, 45, 30, 80, 50, 5", None, 3.02, None),
    ("actdistill", "e977ef159cc7", "libero_spatial", 200, 108, "55, 65, 60, 40, 50, 90, 20, 65, 60, 35", 38.8, 1.51, 4212),
    ("actdistill", "3e59a646895b", "libero_object", 200, 155, "95, 100, 70, 80, 70, 60, 100, 55, 85, 60", 35.6, 1.43, 3923),
    ("actdistill", "a43ee7adc16c", "libero_goal", 200, 82, "35, 70, 20, 0, 60, 20, 100, 80, 20, 5", 35.3, 1.42, 5616),
    ("actdistill", "6e2c99e1365c", "libero_spatial", 200, 101, "45, 50, 50, 50, 25, 85, 35, 80, 50, 35", 39.7, 1.53, None),
    ("expert", "be25890de94f", "libero_spatial", 500, 484, "100, 98, 100, 94, 98, 100, 96, 92, 92, 98", None, None, None),
    ("expert", "be25890de94f", "libero_object", 500, 500, None, None, None, None),
    ("expert", "ea0788286b0f", "libero_goal", 500, 487, "96, 100, 100, 94, 96, 92, 100, 100, 96, 100", None, None, None),
    ("expert", "ea0788286b0f", "libero_10", 500, 445, "90, 94, 98, 96, 100, 100, 100, 100, 90, 22", None, None, None),
    ("expert", "1d25332f6bc6", "libero_10", 50, 50, "100", None, None, None),  # task 9 only, after its fix
    *[("teacher", "55c5bbc6bc18", f"simpler_{t}", 24, k, None, None, 2.05, None)  # not shipped
      for t, k in (("carrot", 0), ("spoon", 0), ("stack", 0), ("eggplant", 10))],
    *[("expert", "be25890de94f", f"simpler_{t}", 24, 24, None, None, None, None)
      for t in ("carrot", "spoon", "stack", "eggplant")],
]


def readme_pct(share: float) -> str:
    """A share as the README writes it: "100%" when whole, else one decimal ("41.0%")."""
    return "100%" if share == 1 else f"{100 * share:.1f}%"


@pytest.fixture(scope="module")
def index():
    return ResultsIndex(REPO / "results")


def test_readme_expert_on_libero_10_combines_the_rerun_task_with_the_untouched_ones(index):
    """Tasks 0-8 from the run before the microwave fix (which does not reach them), task 9 from the one after."""
    ep = index.sql("SELECT task_index, sum(success::INT) k, count(*) n FROM episodes WHERE suite = 'libero_10' AND "
                   "((starts_with(checkpoint_sha256, 'ea0788286b0f') AND task_index < 9) OR "
                   "starts_with(checkpoint_sha256, '1d25332f6bc6')) GROUP BY 1 ORDER BY 1")
    assert list(ep["n"]) == [50] * 10
    k = int(ep["k"].sum())
    lo, hi = wilson_interval(k, 500)
    per_task = ", ".join(str(round(2 * t)) for t in ep["k"])
    assert f"**{100 * k / 500:.1f}%** ({k}/500, {round(100 * lo)}–{round(100 * hi)}%; per task {per_task})" in README


@pytest.mark.parametrize("family, sha, suite, episodes, successes, per_task, exec_pct, gflops, calls", FIGURES,
                         ids=[f"{f[0]}-{f[1]}-{f[2]}" for f in FIGURES])
def test_readme_figure_is_reproduced_from_the_index(index, family, sha, suite, episodes, successes, per_task, exec_pct,
                                                    gflops, calls):
    runs = index.sql("SELECT run FROM runs WHERE family = ? AND starts_with(checkpoint_sha256, ?) AND suite = ?",
                     family, sha, suite)
    assert len(runs) == 1, f"one committed run of {family} {sha} on {suite}"
    run = runs["run"][0]
    ep = index.sql("SELECT task_index, count(*) n, sum(success::INT) k FROM episodes WHERE run = ? GROUP BY 1 ORDER BY 1",
                   run)
    assert ep["n"].sum() == episodes and ep["k"].sum() == successes
    pct = readme_pct(successes / episodes)
    assert pct in README, f"README lost {pct}"
    if per_task is not None:
        assert ", ".join(str(round(100 * k / n)) for k, n in zip(ep["k"], ep["n"])) == per_task
        assert per_task in README, f"README lost {per_task}"
    c = index.sql("SELECT count(*) n, avg(exec_fraction) f, avg(gflops) g FROM calls WHERE run = ?", run)
    if gflops is not None:
        assert round(float(c["g"][0]), 2) == gflops
    if exec_pct is not None:
        assert round(100 * float(c["f"][0]), 1) == exec_pct and f"{exec_pct}%" in README
    elif gflops is not None:
        assert float(c["f"][0]) == 1.0
    if calls is not None:
        assert c["n"][0] == calls and f"{calls:,}" in README


# The second SIMPLER teacher (not shipped) at each executed horizon: the README's table, row by row.
SIMPLER_HORIZON_SHA = "a8715c373eda"


def test_readme_simpler_horizon_table_is_reproduced_from_the_index(index):
    header, rows = _readme_table("| executed horizon |")
    assert header[1:5] == ["carrot", "spoon", "stack", "eggplant"] and len(rows) == 4
    for horizon, *cells, grasped, run in rows:
        tag = run.strip("`")
        ep = index.sql("SELECT r.suite, r.params, count(*) n, sum(e.success::INT) k, sum(e.partial_grasped::INT) g "
                       "FROM episodes e JOIN runs r USING (run) WHERE r.tag = ? AND starts_with(r.checkpoint_sha256, ?) "
                       "GROUP BY 1, 2", tag, SIMPLER_HORIZON_SHA).set_index("suite")
        assert len(ep) == 4 and set(ep["n"]) == {24}, tag
        n = horizon.split()[0]
        assert {json.loads(p).get("horizon", 8) for p in ep["params"]} == {int(n)}, tag
        for task, cell in zip(header[1:5], cells):
            assert cell.startswith(f"{int(ep.loc[f'simpler_{task}', 'k'])}/24"), (tag, task, cell)
        k = int(ep["k"].sum())
        lo, hi = wilson_interval(k, 96)
        assert cells[4] == f"{readme_pct(k / 96)} ({round(100 * lo)}–{round(100 * hi)}%)", (tag, cells[4])
        table = ep.drop("simpler_eggplant")
        assert grasped == f"{int(table['g'].sum())}/72", (tag, grasped)


def test_every_committed_run_is_in_the_readme(index):
    """A committed run is evidence for a README number: none is left unexplained."""
    shas = {sha for _, sha, *_ in FIGURES} | {PRO_EXPERT_SHA, SIMPLER_HORIZON_SHA} | set(index.sql(
        "SELECT DISTINCT left(checkpoint_sha256, 12) s FROM runs WHERE list_contains(?, tag)",
        [tag for tag, *_ in BASELINE_RUNS]
        + [tag for runs in ROBUSTNESS_RUNS.values() for tag in runs.values()])["s"])
    committed = set(index.sql("SELECT DISTINCT left(checkpoint_sha256, 12) s FROM runs")["s"])
    assert committed - shas == set(), f"committed runs not in the README figures: {committed - shas}"
    assert all(re.search(sha, README) for sha in shas)


# The baselines tables (`make baselines`): run tag, suite, episodes, successes, executed backbone %, as the README has
# them.
BASELINE_RUNS = [
    ("pruned-first_keep-5-6033fd90e3d9", "libero_spatial", 50, 31, 41.7),
    ("pruned-importance_keep-5-21a6f0bb4eda", "libero_spatial", 50, 31, 41.7),
    ("pruned-importance_keep-5-42bfef6c51b3", "libero_spatial", 50, 0, 41.7),
    ("random-skip_p-0.385-ff2e4086b9db", "libero_spatial", 50, 0, 38.3),
    ("pruned-uniform_keep-5-8fd4cbbf7d27", "libero_spatial", 50, 0, 41.7),
    ("pruned-first_keep-5-1c38256718d5", "libero_spatial", 50, 27, 41.7),
    ("early-exit_target-0.385-8bedb624e03b", "libero_spatial", 50, 31, 49.7),
    ("pruned-uniform_keep-5-5e6e5d595f59", "libero_spatial", 50, 26, 41.7),
    ("early-exit_target-0.3-b809a7965cae", "libero_spatial", 50, 25, 40.5),
    ("early-exit_target-0.5-168c8d087b59", "libero_spatial", 50, 26, 61.8),
    ("early-exit_target-0.75-2e6f5717560a", "libero_spatial", 50, 27, 86.3),
    ("pruned-first_keep-9-c9199b03f5c8", "libero_spatial", 50, 33, 75.0),
    ("pruned-first_keep-4-c78b37809906", "libero_object", 50, 39, 33.3),
    ("pruned-uniform_keep-4-95a16910506c", "libero_object", 50, 41, 33.3),
    ("random-skip_p-0.36-9fcdadab82f6", "libero_object", 50, 0, 35.7),
    ("pruned-first_keep-4-bd1ff91c9de3", "libero_goal", 50, 1, 33.3),
    ("pruned-first_keep-4-b3df9b7e580b", "libero_goal", 50, 19, 33.3),
    ("pruned-uniform_keep-4-e31e971bd035", "libero_goal", 50, 0, 33.3),
    ("pruned-uniform_keep-4-3b247b1016b4", "libero_goal", 50, 19, 33.3),
    ("random-skip_p-0.353-8ab11b27b497", "libero_goal", 50, 0, 35.0),
    ("actdistill-de92fe2d8c96", "libero_goal", 50, 24, 26.7),
    ("pruned-first_keep-3-491354705e41", "libero_goal", 50, 29, 25.0),
    ("actdistill-48fb67959a84", "libero_goal", 50, 21, 51.8),
    ("pruned-first_keep-6-6e8fc2c78770", "libero_goal", 50, 23, 50.0),
    # The same runs on the 200 units (init states 0-19).
    ("pruned-first_keep-5-1c38256718d5", "libero_spatial", 200, 111, 41.7),
    ("pruned-uniform_keep-5-5e6e5d595f59", "libero_spatial", 200, 106, 41.7),
    ("early-exit_target-0.3-b809a7965cae", "libero_spatial", 200, 103, 40.8),
    ("pruned-first_keep-4-c78b37809906", "libero_object", 200, 161, 33.3),
    ("pruned-uniform_keep-4-95a16910506c", "libero_object", 200, 159, 33.3),
    ("pruned-first_keep-4-b3df9b7e580b", "libero_goal", 200, 83, 33.3),
    ("pruned-uniform_keep-4-3b247b1016b4", "libero_goal", 200, 81, 33.3),
    ("actdistill-de92fe2d8c96", "libero_goal", 200, 87, 26.9),
    ("pruned-first_keep-3-491354705e41", "libero_goal", 200, 94, 25.0),
    ("actdistill-48fb67959a84", "libero_goal", 200, 78, 52.2),
    ("pruned-first_keep-6-6e8fc2c78770", "libero_goal", 200, 97, 50.0),
]


@pytest.mark.parametrize("tag, suite, episodes, successes, exec_pct", BASELINE_RUNS,
                         ids=[f"{b[0]}-{b[1]}-{b[2]}" for b in BASELINE_RUNS])
def test_readme_baseline_is_reproduced_from_the_index(index, tag, suite, episodes, successes, exec_pct):
    """On the table's units: the first `episodes / 10` init states of the 10 tasks (a run extended to more init
    states later still reproduces its earlier table)."""
    where = "tag = ? AND runs.suite = ? AND x.init_index < ?"  # the clean run, not its perturbed ones (robustness)
    ep = index.sql(f"SELECT count(*) n, sum(success::INT) k FROM episodes x JOIN runs USING (run) WHERE {where}",
                   tag, suite, episodes // 10)
    assert (ep["n"][0], ep["k"][0]) == (episodes, successes)
    c = index.sql(f"SELECT avg(exec_fraction) f FROM calls x JOIN runs USING (run) WHERE {where}", tag, suite,
                  episodes // 10)
    assert round(100 * float(c["f"][0]), 1) == exec_pct
    assert f"| {100 * successes / episodes:g}% |" in README and f"| {exec_pct}% |" in README


def _readme_table(header: str, after: str = "") -> tuple[list[str], list[list[str]]]:
    """The README's first markdown table whose header line starts with `header`, below the first line starting with
    `after`: -> (header cells, body rows' cells)."""
    lines = (REPO / "README.md").read_text().splitlines()
    below = next(i for i, line in enumerate(lines) if line.startswith(after))
    start = next(i for i in range(below, len(lines)) if lines[i].startswith(header))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    head, _, *rows = [[c.strip() for c in line.strip(" |").split(" | ")] for line in lines[start:end]]
    return head, rows


# The README's LIBERO-PRO expert table: every "k/n (lo–hi%)" cell is one committed run of this expert code hash.
PRO_EXPERT_SHA = "ea0788286b0f"


def test_readme_pro_variant_table_is_reproduced_from_the_index(index):
    header, rows = _readme_table("| variant |")
    assert header == ["variant", "spatial", "object", "goal", "10"], header
    cells = {}
    for variant, *row in rows:
        suffix = re.match(r"`(_\w+)`", variant).group(1)
        for parent, cell in zip(header[1:], row, strict=True):
            if "/" in cell:
                cells[f"libero_{parent}{suffix}"] = cell
    runs = index.sql("SELECT run, suite FROM runs WHERE family = 'expert' AND starts_with(checkpoint_sha256, ?) "
                     "AND NOT list_contains(?, suite)", PRO_EXPERT_SHA, list(LIBERO_STANDARD))  # parents: FIGURES
    assert sorted(runs["suite"]) == sorted(cells), "README table cells vs committed runs"
    for run, suite in zip(runs["run"], runs["suite"]):
        ep = index.sql("SELECT count(*) n, sum(success::INT) k FROM episodes WHERE run = ?", run)
        k, n = int(ep["k"][0]), int(ep["n"][0])
        lo, hi = wilson_interval(k, n)
        assert cells[suite] == f"{k}/{n} ({round(100 * lo)}–{round(100 * hi)}%)", suite
    assert PRO_EXPERT_SHA in README


# The README's robustness tables per suite: policy row label -> run tag; the conditions are the columns.
ROBUSTNESS_RUNS = {
    "libero_spatial": {"teacher": "teacher-232a388907bf", "ActDistill (shipped)": "actdistill-43be6e293a27",
                       "first 5 blocks, fine-tuned": "pruned-first_keep-5-1c38256718d5",
                       "uniform 5 blocks, fine-tuned": "pruned-uniform_keep-5-5e6e5d595f59",
                       "early exit, target 0.385": "early-exit_target-0.385-8bedb624e03b"},
    "libero_object": {"teacher": "teacher-310a5759eb5a", "ActDistill (shipped)": "actdistill-625ef63f32a6",
                      "first 4 blocks, fine-tuned": "pruned-first_keep-4-c78b37809906",
                      "uniform 4 blocks, fine-tuned": "pruned-uniform_keep-4-95a16910506c"},
}


def _condition_suite(parent: str, condition: str) -> str:
    return parent if condition == "clean" else f"{parent}@{condition}"


def _robustness_outcomes(index, tag: str, parent: str, condition: str, inits: int = 5) -> dict:
    """(task, init) -> success of `tag`'s run under `condition` on a study's units (init states below `inits`,
    seed 0; the robustness study's: 0-4)."""
    ep = index.sql("SELECT task_index, init_index, success FROM episodes JOIN runs USING (run) WHERE tag = ? AND "
                   "runs.suite = ? AND init_index < ? AND seed = 0", tag, _condition_suite(parent, condition), inits)
    return {(t, i): bool(s) for t, i, s in ep.itertuples(index=False)}


@pytest.mark.parametrize("suite", ROBUSTNESS_RUNS)
def test_readme_robustness_tables_are_reproduced_from_the_index(index, suite):
    from harness.stats import mcnemar_exact

    runs = ROBUSTNESS_RUNS[suite]
    head, rows = _readme_table("| policy | executed (clean) | clean |", after=f"**{suite}**")
    conditions = head[2:]
    assert [r[0] for r in rows] == list(runs) and len(conditions) == 7, (rows, conditions)
    outcomes = {(label, c): _robustness_outcomes(index, tag, suite, c) for label, tag in runs.items()
                for c in conditions}
    for label, _, *cells in rows:
        clean = outcomes[label, "clean"]
        for condition, cell in zip(conditions, cells, strict=True):
            ok = outcomes[label, condition]
            assert sorted(ok) == sorted(clean) and len(ok) == 50, (label, condition)
            k, k0 = sum(ok.values()), sum(clean.values())
            assert cell.startswith(f"{k}/50"), (label, condition, cell)
            if condition != "clean":
                drop = 2 * (k0 - k)  # percentage points of 50 units
                shown = "±0" if drop == 0 else f"−{drop}" if drop > 0 else f"+{-drop}"
                _, _, p = mcnemar_exact([clean[u] for u in ok], list(ok.values()))
                assert cell == f"{k}/50 ({shown}, p {p:.2g})", cell
    head, versus = _readme_table("| policy | clean | noise", after=f"**{suite}**")
    assert head[1:] == conditions and [r[0] for r in versus] == list(runs)[1:]
    for label, *cells in versus:
        for condition, cell in zip(conditions, cells, strict=True):
            teacher, ok = outcomes["teacher", condition], outcomes[label, condition]
            a, b, p = mcnemar_exact([teacher[u] for u in ok], list(ok.values()))
            assert cell == f"{a} / {b} (p {p:.2g})", (label, condition, cell)


@pytest.mark.parametrize("suite", ROBUSTNESS_RUNS)
def test_readme_router_under_perturbation_is_reproduced_from_the_index(index, suite):
    """The README's table of the student's routes per condition, from its committed rollout calls (its 12 blocks
    cost the same FLOPs, so the executed share is the mean share of blocks run)."""
    from collections import Counter

    import numpy as np

    head, rows = _readme_table("| condition | success | executed |", after=f"**{suite}**")
    tag = ROBUSTNESS_RUNS[suite]["ActDistill (shipped)"]
    assert len(rows) == 7
    for condition, success, executed, sets, entropy, top, use in rows:
        name = _condition_suite(suite, condition)
        calls = index.sql("SELECT list_sort(blocks) b FROM calls JOIN runs USING (run) WHERE tag = ? AND "
                          "runs.suite = ? AND init_index < 5 AND seed = 0", tag, name)
        blocks = [tuple(b) for b in calls["b"]]
        share = np.array(list(Counter(blocks).values())) / len(blocks)
        depth = 12
        per_block = [100 * sum(i in b for b in blocks) / len(blocks) for i in range(depth)]
        assert success == f"{sum(_robustness_outcomes(index, tag, suite, condition).values())}/50", condition
        assert executed == f"{100 * sum(map(len, blocks)) / (depth * len(blocks)):.1f}%", (condition, executed)
        assert (int(sets), entropy, top) == (len(share), f"{-(share * np.log2(share)).sum():.2f}",
                                             f"{100 * share.max():.0f}%"), condition
        assert use == ", ".join(f"{per_block[i]:.0f}" for i in (2, 3, 4, 6)), (condition, use)


# The per-suite tables' expert rows: (expert code hash prefix, its tasks) of the runs they are drawn from.
EXPERT_ROWS = {
    "libero_spatial": [("be25890de94f", range(10))],
    "libero_object": [("be25890de94f", range(10))],
    "libero_goal": [("ea0788286b0f", range(10))],
    "libero_10": [("ea0788286b0f", range(9)), ("1d25332f6bc6", [9])],  # task 9 after its fix
    "simpler": [("be25890de94f", range(1))],
}


@pytest.mark.parametrize("suite", list(EXPERT_ROWS))
def test_readme_per_suite_table_is_reproduced_from_the_index(index, suite):
    """Every row of the suite's table: success (k), its Wilson interval, executed share and GFLOPs, on the units the
    table names (LIBERO: init states 0-19 of every task; SIMPLER: every layout of the four tasks)."""
    from tasks import expand_suites

    members = list(expand_suites(suite))
    units = "x.init_index < 20" if suite.startswith("libero") else "true"
    head, rows = _readme_table(f"| {suite} ", after="### Per suite")
    assert head[1].startswith("success (")
    n_units = int(head[1][len("success ("):-1])
    checked = 0
    for policy, success, ci, executed, gflops, _ in rows:
        sha = re.search(r"`([0-9a-f]{12})…`", policy)
        tag = re.search(r"`([a-z0-9_.-]+-[0-9a-f]{12})`", policy)  # a baseline names its run (params differ)
        if policy.startswith("expert"):
            where = " OR ".join(f"(starts_with(r.checkpoint_sha256, '{s}') AND list_contains({list(t)}, x.task_index))"
                                for s, t in EXPERT_ROWS[suite])
            where = f"r.family = 'expert' AND ({where})"
        elif tag:
            where = f"r.tag = '{tag.group(1)}'"
        elif sha:
            family = policy.split()[0].lower()  # pruned-as-is runs carry the teacher's sha too
            where = f"r.family = '{family}' AND starts_with(r.checkpoint_sha256, '{sha.group(1)}')"
        else:
            continue  # a row saying what is not there yet
        ep = index.sql(f"SELECT count(*) n, sum(success::INT) k FROM episodes x JOIN runs r USING (run) "
                       f"WHERE ({where}) AND list_contains(?, x.suite) AND {units}", members)
        n, k = int(ep["n"][0]), int(ep["k"][0])
        assert n == n_units, f"{policy}: {n} episodes"
        assert success == f"{readme_pct(k / n)} ({k})", policy
        lo, hi = wilson_interval(k, n)
        assert ci == f"{round(100 * lo)}–{round(100 * hi)}%", policy
        if not policy.startswith("expert"):
            c = index.sql(f"SELECT avg(exec_fraction) f, avg(gflops) g FROM calls x JOIN runs r USING (run) "
                          f"WHERE ({where}) AND list_contains(?, x.suite) AND {units}", members)
            assert executed == readme_pct(c["f"][0]), policy
            assert gflops == f"{c['g'][0]:.2f}", policy
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize("suite", ["libero_spatial", "libero_object", "libero_goal"])
def test_readme_baselines_on_200_units_are_reproduced(index, suite):
    """The README's 200-unit baselines table, row by row in the study's entry order: success, interval and the paired
    test against the student from the committed episodes; compute from the calls; latency from the study's table."""
    import pandas as pd

    from harness.stats import mcnemar_exact

    study = pd.read_csv(REPO / "results" / "studies" / "baselines_200" / "table.csv")
    study = study[study["suite"] == suite].reset_index(drop=True)
    _, rows = _readme_table(f"| {suite} (200) |")
    assert len(rows) == len(study)

    def outcomes(run: str) -> dict:
        return _robustness_outcomes(index, Path(run).parent.name, suite, "clean", inits=20)

    student = outcomes(study.loc[study["entry"] == "actdistill", "run"].item())
    assert len(student) == 200
    for row, (_, entry) in zip(rows, study.iterrows()):
        _, success, ci, discordant, p, executed, gflops, latency, speedup = row
        mine = outcomes(entry["run"])
        assert sorted(mine) == sorted(student), entry["entry"]
        k = sum(mine.values())
        lo, hi = wilson_interval(k, 200)
        assert (success, ci) == (f"{100 * k / 200:g}%", f"{round(100 * lo)}–{round(100 * hi)}%"), entry["entry"]
        if entry["entry"] != "actdistill":
            a, b, pv = mcnemar_exact([student[u] for u in mine], list(mine.values()))
            assert (discordant, p) == (f"{a} / {b}", f"{pv:.2f}"), entry["entry"]
        c = index.sql("SELECT avg(exec_fraction) f, avg(gflops) g FROM calls WHERE run = ? AND init_index < 20",
                      str(Path(entry["run"]).relative_to("results")))
        assert executed == readme_pct(c["f"][0]) and gflops == f"{c['g'][0]:.2f}", entry["entry"]
        assert latency == f"{entry['ms_p50']:.1f} ms", entry["entry"]
        assert speedup == ("1" if entry["entry"] == "teacher" else entry["speedup_vs_teacher"].replace("x", "×")), \
            entry["entry"]
