"""`make ablations`: variants distilled like the student, evaluated on real LIBERO episodes, tabulated."""
import json

import pandas as pd
import pytest
import torch

from policies.actdistill.ablations import AblationRequest, run_ablations, static_blocks
from policies.actdistill.configuration import ActDistillConfig
from policies.vla.checkpoint import Normalizer, load_checkpoint, save_checkpoint
from policies.vla.configuration import VLAConfig
from policies.vla.model import VLA
from tests.fixture_data import write_demos

CFG = VLAConfig(width=32, depth=4, heads=2, head_hidden=16)


def test_static_blocks_are_the_most_executed_k():
    calls = [{"blocks": [0, 1, 3]}, {"blocks": [1, 3]}, {"blocks": [1, 2, 3]}]  # mean 2.67 blocks -> k = 3
    eps = pd.DataFrame({"calls": [json.dumps(calls[:2]), json.dumps(calls[2:])]})
    assert static_blocks(eps, 4) == (0, 1, 3)  # 1 and 3 three times; 0 and 2 once each: the lower index wins
    with pytest.raises(ValueError, match="no policy calls"):
        static_blocks(pd.DataFrame({"calls": ["[]"]}), 4)


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

    req = AblationRequest("libero_spatial", tmp_path / "demos", episodes=1, tasks=(0,), student=tmp_path / "student",
                          teacher=tmp_path / "teacher", results_root=tmp_path / "results", report_dir=tmp_path / "reports")
    table = run_ablations(req, log=lambda m: None).set_index("variant")
    assert list(table.index) == ["teacher", "actdistill", "no_graph", "static_router"]
    assert (table["episodes"] == 1).all() and (table["calls"] == 28).all()  # one real episode each, 220 steps / 8
    assert table.loc["teacher", "exec_backbone_%"] == 100
    nograph = load_checkpoint(tmp_path / "results" / "ablations" / "libero_spatial" / "no_graph")
    static = load_checkpoint(tmp_path / "results" / "ablations" / "libero_spatial" / "static_router")
    assert nograph.meta["actdistill"]["graph"] is False and nograph.meta["schedule"]["stage2_epochs"] == 1
    fixed = static.meta["actdistill"]["static_blocks"]
    assert 1 <= len(fixed) <= CFG.depth and table.loc["static_router", "exec_backbone_%"] == 100 * len(fixed) / CFG.depth
    assert "static router blocks" in (tmp_path / "reports" / "ablations_libero_spatial.md").read_text()


def test_cli_names_missing_demos_in_one_line(tmp_path, capsys):
    from policies.actdistill.ablations import main

    assert main(["--suite", "libero_spatial", "--demos", str(tmp_path / "none"), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no demo files for libero_spatial under") and "\n" not in err
