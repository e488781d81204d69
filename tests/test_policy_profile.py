"""`make profile` on real recorded LIBERO observations: block-table FLOPs match live counts, routing is seen,
peak memory and jerk are what they claim."""
import json

import numpy as np
import torch

from harness.episode import mean_squared_jerk
from harness.profiling import PeakTensorMemory
from policies.actdistill.configuration import ActDistillConfig
from policies.actdistill.student import StudentVLA
from policies.vla.checkpoint import Normalizer, save_checkpoint
from policies.vla.configuration import VLAConfig
from policies.vla.model import VLA

CFG = VLAConfig(width=32, depth=4, heads=2, head_hidden=16)


def _checkpoints(tmp_path):
    rng = np.random.default_rng(0)
    normalizer = Normalizer.fit(rng.uniform(-0.5, 0.5, (200, 7)), rng.normal(size=(200, 8)))
    torch.manual_seed(0)
    teacher = VLA(CFG)
    save_checkpoint(tmp_path / "teacher", CFG, normalizer, teacher.state_dict(), {})
    acfg = ActDistillConfig(router_width=8)
    student = StudentVLA.from_teacher(teacher, acfg)
    with torch.no_grad():  # a router that runs blocks 0 and 2 for every input
        student.router.gates.weight.zero_()
        student.router.gates.bias.copy_(torch.tensor([10.0, -10.0, 10.0, -10.0]))
    save_checkpoint(tmp_path / "student", CFG, normalizer, student.state_dict(), {"actdistill": acfg.to_dict()})


def test_profile_counts_routed_flops_from_block_tables_and_writes_its_report(tmp_path):
    from harness.policy_profile import ProfileRequest, profile

    _checkpoints(tmp_path)
    req = ProfileRequest(policy="actdistill", baseline="teacher", checkpoint=str(tmp_path / "student"),
                         baseline_checkpoint=str(tmp_path / "teacher"), calls=6, warmup=1, observations=2,
                         threads=1, results_root=tmp_path / "results", report_dir=tmp_path / "reports")
    from harness.runner import EvalRequest, evaluate

    # One real evaluated episode of the student gives the rollout metrics (its block lists, timings, jerk).
    evaluate(EvalRequest(policy="actdistill", suite="libero_spatial", checkpoint=str(tmp_path / "student"), episodes=1,
                         tasks=(0,), workers=1, results_root=tmp_path / "results"), progress=False)
    report = profile(req, log=lambda m: None)
    student, teacher = report["policies"]["actdistill"], report["policies"]["teacher"]
    assert report["observations"] == 2 and report["threads"] == 1
    for p in (student, teacher):
        assert p["table_max_rel_error"] < 0.01  # executed FLOPs from block lists == live FlopCounterMode totals
        assert p["gflops_per_call"]["vision"] > 0 and p["peak_activation_mb"] > 0 and p["latency_ms_p90"] > 0
    assert student["executed_blocks_mean"] == 2 and teacher["executed_blocks_mean"] == 4
    assert abs(student["executed_backbone_fraction"] - 0.5) < 1e-9
    half_backbone = teacher["gflops_per_call"]["backbone"] / 2
    assert abs(student["gflops_per_call"]["backbone"] - half_backbone) <= 0.01 * half_backbone
    assert student["params_executed_m"] < student["params_total_m"]
    lo, hi = student["speedup_vs_baseline"]["ci95"]
    assert lo <= student["speedup_vs_baseline"]["ratio"] <= hi
    task0, total = student["rollouts"]
    assert total["task"] == "ALL" and total["episodes"] == 1 and total["calls"] == 28  # 220 steps in chunks of 8
    assert total["exec_frac_%"] == 50.0 and abs(total["gflops_per_call"] - student["gflops_per_call"]["total"]) < 1e-3
    assert 0 < total["overhead_%"] < 3 and total["jerk"] >= 0
    assert 0 < total["policy_%"] + total["physics_%"] + total["render_%"] <= 100
    assert teacher["rollouts"] is None and "make eval POLICY=teacher" in report["text"]
    run_dir = tmp_path / "results" / f"actdistill-{student['checkpoint_sha256'][:12]}" / "libero_spatial"
    written = json.loads((run_dir / "profile.json").read_text())
    assert written["policies"]["teacher"]["depth"] == 4
    assert "exec_frac" in (run_dir / "profile_episodes.csv").read_text()
    assert (tmp_path / "reports" / "profile_libero_spatial_actdistill_vs_teacher.md").read_text() == (
        run_dir / "profile.md").read_text()
    # The observations were recorded once; a second profile reads them back.
    assert len(list((tmp_path / "results" / "observations").glob("*.npz"))) == 1


def test_peak_tensor_memory_counts_live_activations():
    model = torch.nn.Sequential(torch.nn.Linear(100, 400), torch.nn.GELU(), torch.nn.Linear(400, 100))
    x = torch.randn(8, 100)
    with torch.inference_mode(), PeakTensorMemory() as mem:
        model(x)
    assert mem.peak == 2 * 8 * 400 * 4  # the hidden layer before and after GELU, float32


def test_jerk_is_the_second_difference_of_translation_commands():
    t = np.arange(10, dtype=float)
    steady = np.zeros((10, 7))
    steady[:, 0] = 0.5  # constant velocity: no jerk
    assert mean_squared_jerk(steady) == 0.0
    accel = np.zeros((10, 7))
    accel[:, 1] = t**2  # second difference is 2 everywhere
    assert mean_squared_jerk(accel) == 4.0
    assert np.isnan(mean_squared_jerk(steady[:2]))
