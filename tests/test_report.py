"""`make report`: tables, figures and the HTML page built from the committed runs (and opened in headless
chromium), routing-diversity figures, the protocol refusal, the selections and their one-line errors, the
speed-up over the teacher. The committed runs are read, never written: runs that tests alter are copies under
tmp_path."""
import argparse
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from core.paths import DEFAULT_RESULTS
from harness import report_cli
from harness.index import ResultsIndex
from harness.paper_tables import (Measured, Table, all_tables, block_ranges, check_comparable, latex_escape,
                                  load_runs, routing_diversity)
from harness.runner import UsageError
from harness.stats import wilson_interval

TEACHER = "teacher-232a388907bf/libero_spatial"
STUDENT = "actdistill-43be6e293a27/libero_spatial"
"""The shipped libero_spatial teacher and student runs (committed)."""
CHROMIUM = shutil.which("chromium")
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
"""Without the background-networking flags chromium stalls on an offline machine."""


def _report(*argv: str) -> int:
    """`harness.cli report …` through this module's own parser (the command as `harness.cli` dispatches it)."""
    parser = argparse.ArgumentParser()
    report_cli.add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *argv])
    return report_cli.COMMANDS[args.command](args)


def _copy_run(run: str, root, tag: str | None = None, **manifest_changes) -> str:
    """Copy a committed run's manifest and tables under `root` (as `<tag>/<suite>`), applying `manifest_changes`
    (a dict value updates the field's dict); -> its run key."""
    tag = tag or run.split("/")[0]
    src, dst = DEFAULT_RESULTS / run, root / tag / run.split("/")[1]
    dst.mkdir(parents=True)
    for name in ("episodes.parquet", "calls.parquet"):
        shutil.copy(src / name, dst / name)
    manifest = json.loads((src / "manifest.json").read_text())
    for key, value in manifest_changes.items():
        manifest[key] = {**manifest[key], **value} if isinstance(value, dict) else value
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return f"{tag}/{dst.name}"


def _browser(tmp_path, *args: str) -> str:
    out = subprocess.run([CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The default report (the shipped policies' runs) with timing skipped, written under tmp."""
    out = tmp_path_factory.mktemp("report") / "shipped"
    assert _report("--calls", "0", "--out", str(out)) == 0
    return out


@pytest.mark.slow
def test_the_shipped_report_holds_every_table_and_figure_with_the_indexed_numbers(shipped):
    figures = ["frontier", "task_success", "block_usage", "latency", "cumulative_success"]
    assert sorted(p.name for p in (shipped / "figures").iterdir()) == sorted(
        f"{f}.{ext}" for f in figures for ext in ("pdf", "png"))
    md, tex = (shipped / "tables.md").read_text(), (shipped / "tables.tex").read_text()
    ix = ResultsIndex(DEFAULT_RESULTS)
    registry = json.loads((DEFAULT_RESULTS / "baselines.json").read_text())["baselines"]  # = the shipped runs (tested)
    for run in (entry["run"] for family in ("teacher", "actdistill") for entry in registry[family].values()):
        k, n = ix.sql("SELECT sum(success::INT), count(*) FROM episodes WHERE run = ?", run).iloc[0]
        lo, hi = wilson_interval(int(k), int(n))
        assert f"{100 * k / n:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]" in md
    assert "Latency: not timed (--calls 0)" in md
    assert "AMD EPYC, 2 cores" in md and "step limit 220 at 20 Hz" in md and "step limit 280 at 20 Hz" in md
    suites = list(registry["teacher"])  # a task table per suite with a shipped teacher run
    assert len(suites) >= 3
    for table in ("main", "efficiency", "routing", *(f"tasks_{s}" for s in suites)):
        assert f"\\label{{tab:{table}}}" in tex
    assert tex.count("\\toprule") == tex.count("\\bottomrule") == 3 + len(suites)
    body = "\n".join(line for line in tex.splitlines() if not line.startswith(("%", "\\label")))
    assert "libero\\_spatial" in body and not re.search(r"[^\\]_", body)  # every underscore of the text escaped


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make setup installs it)")
def test_the_html_page_opens_offline_with_every_image_loaded_and_is_not_blank(shipped, tmp_path):
    import imageio.v3 as iio

    page = (shipped / "index.html").as_uri()
    dom = _browser(tmp_path, "--dump-dom", page)
    body = re.search(r"<body[^>]*>", dom).group(0)
    images, total = (int(re.search(rf'data-{k}="(\d+)"', body).group(1)) for k in ("images", "total"))
    assert images == total == 5
    for table in ("main", "efficiency", "routing", "tasks_libero_spatial", "tasks_libero_object"):
        assert f'data-table="{table}"' in dom
    assert "http://" not in dom and "https://" not in dom  # nothing from the network
    shot = tmp_path / "page.png"
    _browser(tmp_path, f"--screenshot={shot}", "--window-size=1280,4000", page)
    pixels = iio.imread(shot)[..., :3].astype(float)
    assert pixels.std() > 20 and (pixels.min(axis=-1) < 200).mean() > 0.05  # text, tables and plots, not blank


def test_routing_diversity_counts_sets_entropy_and_the_most_common_set():
    static = routing_diversity([[0, 1, 2]] * 10)
    assert (static["sets"], static["entropy_bits"], static["top_share"], static["top_set"]) == (1, 0.0, 1.0, (0, 1, 2))
    even = routing_diversity([[0, 1], [1, 0], [0, 2], [2, 0]])  # order within a call does not matter
    assert even["sets"] == 2 and even["entropy_bits"] == pytest.approx(1.0) and even["top_share"] == 0.5
    skewed = routing_diversity([[0]] * 2 + [[1]] + [[2]])
    assert skewed["entropy_bits"] == pytest.approx(1.5) and skewed["top_set"] == (0,) and skewed["calls"] == 4
    with pytest.raises(ValueError):
        routing_diversity([])
    assert block_ranges((0, 1, 2, 4, 6, 7)) == "0-2,4,6-7"


def test_one_table_renders_to_markdown_and_booktabs_latex_with_the_same_cells():
    table = Table("t", "Title", ["Policy", "SR %"], [["a_b", "50.0 [40, 60]"], ["[x]", "–"]], ["Scope: 5% & more"],
                  ["n ÷ 2"], rules={1}, bold={(0, 1), (1, 1)})
    assert latex_escape("a_b & 5% × {x}") == r"a\_b \& 5\% $\times$ \{x\}"
    tex = table.latex()
    assert "\\caption{Title. Scope: 5\\% \\& more}" in tex and "a\\_b & \\textbf{50.0 [40, 60]} \\\\" in tex
    assert "\\midrule\n{}[x] & -- \\\\" in tex  # a row opening with [ is not read as an argument; no bold dash
    assert tex.index("\\toprule") < tex.index("\\midrule") < tex.index("\\bottomrule")
    md = table.markdown()
    assert "| a_b | **50.0 [40, 60]** |" in md and "| [x] | – |" in md and "|:---|---:|" in md


def test_runs_of_one_suite_under_other_protocols_or_simulators_are_refused_unless_forced(tmp_path):
    teacher = _copy_run(TEACHER, tmp_path)
    longer = _copy_run(STUDENT, tmp_path, protocol={"max_steps": 300}, protocol_hash="0123456789ab")
    newer = _copy_run(STUDENT, tmp_path, "actdistill-newsim", simulator={"mujoco": "3.4.0"})
    with pytest.raises(UsageError) as err:
        _report("--runs", f"{teacher},{longer}", "--results", str(tmp_path), "--calls", "0")
    message = str(err.value)
    assert "\n" not in message and "protocol" in message and "max_steps 220 vs 300" in message
    assert "--force" in message
    with pytest.raises(UsageError, match=r"simulator versions \(mujoco \"3.3.6\" vs \"3.4.0\"\)"):
        _report("--runs", f"{teacher},{newer}", "--results", str(tmp_path), "--calls", "0")

    runs = load_runs(ResultsIndex(tmp_path), [teacher, longer, newer])
    marks = check_comparable(runs, force=True)
    assert len(marks["libero_spatial"]) == 2
    for table in all_tables(runs, Measured(), marks):
        assert sum(line.startswith("MIXED (--force)") for line in table.scope) == 2
    # Different suites have different protocols by definition: that is no mix.
    other = _copy_run("teacher-310a5759eb5a/libero_object", tmp_path)
    assert check_comparable(load_runs(ResultsIndex(tmp_path), [teacher, other])) == {}


def test_selections_and_their_one_line_errors(tmp_path):
    teacher, student = _copy_run(TEACHER, tmp_path), _copy_run(STUDENT, tmp_path)
    ix = ResultsIndex(tmp_path)
    assert report_cli.listed_runs(ix, f"{teacher.split('/')[0]}, {student}").runs == [teacher, student]
    study = tmp_path / "studies" / "pair"
    study.mkdir(parents=True)
    (study / "table.csv").write_text(f"suite,entry,run\nlibero_spatial,base,{tmp_path / teacher}\n"
                                     f"libero_spatial,routed,{tmp_path / student}\n")
    chosen = report_cli.study_runs(ix, "pair")
    assert (chosen.name, chosen.runs) == ("pair", [teacher, student])
    (tmp_path / "pair.json").write_text(json.dumps({"entries": []}))  # `make study STUDY=pair.json` names it pair
    assert report_cli.study_runs(ix, str(tmp_path / "pair.json")).runs == chosen.runs
    assert [r.label for r in load_runs(ix, chosen.runs, chosen.labels)] == ["base", "routed"]
    for argv, expected in [(["--runs", "nope/libero_spatial"], "no run 'nope/libero_spatial'"),
                           (["--study", "absent"], "no study 'absent'"),
                           (["--runs", teacher, "--study", "pair"], "not both"),
                           (["--calls", "-1"], "--calls must be >= 0")]:
        with pytest.raises(UsageError, match=re.escape(expected)) as err:
            _report(*argv, "--results", str(tmp_path))
        assert "\n" not in str(err.value)


def test_the_speed_up_over_the_teacher_pairs_interleaved_calls_and_pools_suites():
    runs = load_runs(ResultsIndex(DEFAULT_RESULTS), [TEACHER, "teacher-310a5759eb5a/libero_object", STUDENT,
                                                     "actdistill-625ef63f32a6/libero_object"])
    rng = np.random.default_rng(0)
    base = {s: 0.040 + 0.002 * rng.random(30) for s in ("libero_spatial", "libero_object")}
    times = {r.run: base[r.suite] / (1 if r.family == "teacher" else 2.0) for r in runs}
    measured = Measured(times=times, params={r.run: 1_000_000 for r in runs}, scope="Latency: synthetic")
    main, efficiency = all_tables(runs, measured, {})[:2]
    row = {r[0]: dict(zip(main.columns, r)) for r in main.rows}
    assert row["teacher"]["Speed-up"] == "1.00× (base)" and row["actdistill"]["Speed-up"] == "2.00× [2.00, 2.00]"
    assert row["teacher"]["Params (M)"] == "1.0"
    assert float(row["actdistill"]["Latency ms"]) == pytest.approx(
        1e3 * np.median(np.concatenate([base["libero_spatial"], base["libero_object"]]) / 2), abs=0.05)
    assert [r[12] for r in efficiency.rows if r[1] == "actdistill"] == ["2.00× [2.00, 2.00]"] * 2


@pytest.mark.slow
def test_a_timed_report_measures_latency_interleaved_in_its_own_process(tmp_path):
    runs = ",".join([_copy_run(TEACHER, tmp_path / "results"), _copy_run(STUDENT, tmp_path / "results")])
    out = tmp_path / "report"
    assert _report("--runs", runs, "--results", str(tmp_path / "results"), "--calls", "3", "--observations", "1",
                   "--out", str(out)) == 0
    md = (out / "tables.md").read_text()
    assert "median of 3 calls per policy after 10 warm-up calls, all policies interleaved in one process" in md
    main = md[md.index("| Policy"):].splitlines()
    student = next(line for line in main if line.startswith("| actdistill"))
    assert re.search(r"\| \d+\.\d\d× \[\d+\.\d\d, \d+\.\d\d\] \|$", student), student


def test_a_study_report_counts_only_the_units_every_entry_ran(tmp_path):
    """The committed routing-control study reuses the teacher's 200-episode run for its 50 units: the report
    counts those 50, as the study compared them."""
    ix = ResultsIndex(DEFAULT_RESULTS)
    chosen = report_cli.study_runs(ix, "routing_control")
    report_cli.build_report(chosen, DEFAULT_RESULTS, tmp_path / "out", calls=0, log=lambda m: None)
    text = (tmp_path / "out" / "tables.md").read_text()
    assert "SR % (n=50)" in text and "**60.0 [46.2, 72.4]**" in text
    assert len(ix.sql("SELECT * FROM episodes WHERE run = ?", TEACHER)) == 200


def test_the_frontier_styles_each_method_apart_even_within_one_family():
    """Pruning's methods are one family: the frontier still gives each its own colour and marker, the settings of
    one method (its group) share them, and a family's first method keeps the family's colour."""
    from harness.plots import FAMILY_COLOURS, Styles, method_styles
    from harness.paper_tables import ReportRun

    def run(label, family, group=""):
        manifest = {"suite": "libero_spatial", "identity": {"family": family, "checkpoint_sha256": label}}
        return ReportRun(f"{label}/libero_spatial", label, manifest, None, None, group)

    runs = [run("teacher", "teacher"), run("pruned-first-5-ft", "pruned", "pruned-first-ft"),
            run("pruned-first-9-ft", "pruned", "pruned-first-ft"), run("pruned-uniform-5", "pruned", "pruned-uniform"),
            run("early-exit-0.30", "early-exit", "early-exit"), run("early-exit-0.50", "early-exit", "early-exit")]
    method, styles = method_styles(runs, Styles.of(runs))
    assert method["pruned-first-9-ft"] == "pruned-first-ft" and method["teacher"] == "teacher"
    assert list(styles.colour) == ["teacher", "pruned-first-ft", "pruned-uniform", "early-exit"]
    assert len(set(styles.colour.values())) == 4 and len(set(styles.marker.values())) == 4
    assert styles.colour["teacher"] == FAMILY_COLOURS["teacher"]
    assert styles.colour["pruned-first-ft"] == FAMILY_COLOURS["pruned"] != styles.colour["pruned-uniform"]
