"""Studies: entries built where missing, evaluated on the same real LIBERO units, timed and compared."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from experiments.ablations import ablations, static_blocks
from experiments.study import merged_table, run_study
from policies.actdistill.configuration import ActDistillConfig
from policies.vla.checkpoint import Normalizer, load_checkpoint, save_checkpoint
from policies.vla.configuration import VLAConfig
from policies.vla.model import VLA
from tests.fixture_data import write_demos

REPO = Path(__file__).resolve().parent.parent
CFG = VLAConfig(width=32, depth=4, heads=2, head_hidden=16)


def test_static_blocks_are_the_most_executed_k():
    calls = pd.DataFrame({"blocks": [[0, 1, 3], [1, 3], [1, 2, 3]]})  # mean 2.67 blocks -> k = 3
    assert static_blocks(calls, 4) == (0, 1, 3)  # 1 and 3 three times; 0 and 2 once each: the lower index wins
    with pytest.raises(ValueError, match="no policy calls"):
        static_blocks(pd.DataFrame({"blocks": []}), 4)


def test_a_partial_invocation_adds_to_the_table_and_other_units_are_dropped():
    units = "all tasks x init 0-4, seed 0"
    old = pd.DataFrame({"suite": ["a", "a", "a", "b"], "entry": ["teacher", "first", "uniform", "teacher"],
                        "success_%": [60, 62, 0, 70], "units": [units] * 4})
    new = pd.DataFrame({"suite": ["a", "a"], "entry": ["teacher", "early-exit"], "success_%": [61, 50],
                        "ms_p50": [44.0, 30.0], "units": [units] * 2})
    table = merged_table(old, new)
    assert list(zip(table["suite"], table["entry"])) == [("a", "teacher"), ("a", "first"), ("a", "uniform"),
                                                          ("b", "teacher"), ("a", "early-exit")]
    assert list(table["success_%"]) == [61, 62, 0, 70, 50] and table["ms_p50"].isna().tolist()[1:4] == [True] * 3
    other = merged_table(old, new.assign(units="all tasks x init 0-19, seed 0"))  # suite a's old rows do not pair
    assert list(zip(other["suite"], other["entry"])) == [("b", "teacher"), ("a", "teacher"), ("a", "early-exit")]
    assert merged_table(None, new).equals(new)


def test_a_study_file_names_its_pairing_and_groups_and_refuses_an_unknown_pairing(tmp_path):
    from experiments.study import Study
    from harness.runner import UsageError

    data = {"name": "s", "suites": ["libero_spatial"], "paired_with": "b",
            "entries": [{"label": "a", "family": "teacher"}, {"label": "b", "group": "g", "family": "actdistill"}]}
    (tmp_path / "s.json").write_text(json.dumps(data))
    study = Study.from_file(tmp_path / "s.json")
    assert study.paired_with == "b" and [e.group for e in study.entries] == ["", "g"]
    assert study.entries[1].spec.family == "actdistill"
    (tmp_path / "s.json").write_text(json.dumps({**data, "paired_with": "c"}))
    with pytest.raises(UsageError, match="paired_with='c' is none of its entries"):
        Study.from_file(tmp_path / "s.json")


@pytest.mark.parametrize("path", sorted((REPO / "experiments" / "studies").glob("*.json")), ids=lambda p: p.stem)
def test_a_committed_study_file_resolves_to_committed_runs(path):
    """Every entry of a committed study loads on a fresh clone (its checkpoint is committed) with the identity of a
    committed run of each of its suites, so `make study STUDY=<file>` resumes instead of re-running."""
    from experiments.study import Study
    from policies import load_policy
    from tasks import expand_suites

    study = Study.from_file(path)
    for suite in (s for name in study.suites for s in expand_suites(name)):
        for entry in study.entries:
            tag = load_policy(entry.spec, suite).tag
            assert (REPO / "results" / tag / suite / "episodes.parquet").is_file(), (entry.label, tag)


@pytest.mark.slow
def test_two_params_of_one_family_keep_two_runs_on_the_same_units(tmp_path):
    study = tmp_path / "pruned.json"
    study.write_text(json.dumps({"name": "pruned", "suites": ["libero_spatial"], "episodes": 1, "tasks": [0],
                                 "entries": [{"label": "keep6", "family": "pruned-first", "params": {"keep": 6}},
                                             {"label": "keep4", "family": "pruned-first", "params": {"keep": "4"}}]}))
    # An earlier invocation's rows: one more entry on these units (kept; no group), and another suite's, whose
    # report this invocation must leave alone (its notes and units describe this one's suite only).
    table_dir = tmp_path / "results" / "studies" / "pruned"
    table_dir.mkdir(parents=True)
    pd.DataFrame({"suite": ["libero_spatial", "libero_object"], "entry": ["earlier", "teacher"], "group": ["", ""],
                  "success_%": [10.0, 20.0], "units": ["tasks 0 x init 0-0, seed 0", "all tasks x init 0-4, seed 0"]}
                 ).to_csv(table_dir / "table.csv", index=False)
    (table_dir / "pruned_libero_object.md").write_text("written by an earlier invocation\n")
    out = subprocess.run([sys.executable, "-m", "harness.cli", "study", "--file", str(study), "--workers", "2",
                          "--latency-calls", "3", "--observations", "2", "--results", str(tmp_path / "results")],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    table = pd.read_csv(table_dir / "table.csv")
    table = table[table["suite"] == "libero_spatial"].set_index("entry")
    assert table.loc["keep6", "run"] != table.loc["keep4", "run"]
    assert len(list((tmp_path / "results").glob("pruned-first_keep-*/libero_spatial/manifest.json"))) == 2
    assert table.loc["keep6", "exec_backbone_%"] == pytest.approx(50)
    assert table.loc["keep4", "exec_backbone_%"] == pytest.approx(100 / 3)
    assert (table.loc[["keep6", "keep4"], "episodes"] == 1).all() and table.loc["keep6", "mcnemar_p"] == 1.0
    assert table.loc["keep4", "gflops_per_call"] < table.loc["keep6", "gflops_per_call"]
    assert table.loc["keep6", "speedup_vs_keep6"].startswith("1.00x")
    report = (table_dir / "pruned_libero_spatial.md").read_text()
    earlier = next(line.split("|") for line in report.splitlines() if line.startswith("| earlier "))
    assert "# pruned on libero_spatial" in report and earlier[2].strip() == ""  # no group, not "nan"
    assert (table_dir / "pruned_libero_object.md").read_text() == "written by an earlier invocation\n"


@pytest.mark.slow
def test_ablations_distil_evaluate_and_tabulate(tmp_path):
    from policies.actdistill.train import DistillSchedule, distill
    from policies.vla.train import cached_features, demo_files

    write_demos(tmp_path / "demos")
    features = cached_features(demo_files(tmp_path / "demos", "libero_spatial"), CFG, tmp_path / "demos" / "cache")
    torch.manual_seed(0)
    normalizer = Normalizer.fit(features.actions.reshape(-1, 7).numpy(), features.proprio.numpy())
    save_checkpoint(tmp_path / "teacher", CFG, normalizer, VLA(CFG).state_dict(), {})
    acfg = ActDistillConfig(router_width=8, graph_width=16, semantic_width=16, budget=0.5)
    schedule = DistillSchedule(stage1_epochs=1, stage2_epochs=1, batch_size=4, warmup_steps=1)
    distill(tmp_path / "teacher", features, tmp_path / "student", acfg, schedule, log=lambda m: None)

    study = ablations("libero_spatial", tmp_path / "demos", episodes=1, tasks=(0,), student=tmp_path / "student",
                      teacher=tmp_path / "teacher", latency_calls=0)
    table = run_study(study, 1, tmp_path / "results", tmp_path / "reports", log=lambda m: None).set_index("entry")
    assert list(table.index) == ["teacher", "actdistill", "no_graph", "static_router"]
    assert (table["episodes"] == 1).all() and (table["calls"] == 28).all()  # one real episode each, 220 steps / 8
    assert table.loc["teacher", "exec_backbone_%"] == 100
    variants = tmp_path / "results" / "studies" / "ablations" / "libero_spatial"
    nograph, static = load_checkpoint(variants / "no_graph"), load_checkpoint(variants / "static_router")
    assert nograph.meta["actdistill"]["graph"] is False and nograph.meta["schedule"]["stage2_epochs"] == 1
    fixed = static.meta["actdistill"]["static_blocks"]
    assert 1 <= len(fixed) <= CFG.depth and table.loc["static_router", "exec_backbone_%"] == pytest.approx(100 * len(fixed) / CFG.depth)
    assert "static_router: the k blocks" in (tmp_path / "reports" / "ablations_libero_spatial.md").read_text()


def test_cli_names_missing_demos_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness.cli", "study", "ablations", "--suite", "libero_spatial",
                          "--demos", str(tmp_path / "none"), "--results", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    err = out.stderr.strip()
    assert err.startswith("error: no demo files for libero_spatial under") and "\n" not in err
