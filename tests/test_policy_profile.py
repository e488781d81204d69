"""`make profile` for any policy: compute against the reference (teacher), policies without hooks or torch, rollout
analytics from the v2 tables, and (slow) the whole thing on real recorded LIBERO observations and an evaluated run."""
import json
import math

import numpy as np
import pytest
import torch

from core.spec import PolicySpec
from harness.compute import ComputeModel
from harness.episode import EpisodeRecord, mean_squared_jerk
from harness.observations import Recorded, shared_spec
from harness.profiling import PeakTensorMemory
from harness.rollouts import episode_metrics, rollout_metrics, run_summary
from harness.stats import wilson_interval
from harness.store import RunStore
from policies import load_policy
from policies.actdistill.configuration import ActDistillConfig
from policies.actdistill.student import StudentVLA
from policies.vla.checkpoint import Normalizer, save_checkpoint
from policies.vla.configuration import VLAConfig
from policies.vla.model import VLA
from tasks import make_suite
from tasks.base import ObsSpec

CFG = VLAConfig(width=32, depth=4, heads=2, head_hidden=16)
TASK = make_suite("libero_spatial").tasks()[0]


def _checkpoints(tmp_path):
    """A tiny teacher and a student of it whose router runs blocks 0 and 2 for every input."""
    rng = np.random.default_rng(0)
    normalizer = Normalizer.fit(rng.uniform(-0.5, 0.5, (200, 7)), rng.normal(size=(200, 8)))
    torch.manual_seed(0)
    teacher = VLA(CFG)
    teacher_sha256 = save_checkpoint(tmp_path / "teacher", CFG, normalizer, teacher.state_dict(), {})
    acfg = ActDistillConfig(router_width=8)
    student = StudentVLA.from_teacher(teacher, acfg)
    with torch.no_grad():
        student.router.gates.weight.zero_()
        student.router.gates.bias.copy_(torch.tensor([10.0, -10.0, 10.0, -10.0]))
    meta = {"actdistill": acfg.to_dict(), "teacher_sha256": teacher_sha256}  # how the student finds its teacher
    save_checkpoint(tmp_path / "student", CFG, normalizer, student.state_dict(), meta)


def _observations(n=2) -> list[Recorded]:
    """Stand-ins for recorded observations (random frames), for tests that need no simulator."""
    rng = np.random.default_rng(0)
    proprio = {"eef_pos": np.zeros(3, np.float32), "eef_quat": np.array([0, 0, 0, 1], np.float32),
               "gripper_qpos": np.zeros(2, np.float32)}
    return [Recorded(TASK, proprio, {c: rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for c in CFG.cameras})
            for _ in range(n)]


def test_a_pruned_policy_without_its_own_table_is_accounted_against_the_teacher(tmp_path):
    from harness.policy_profile import ProfileRequest, profile

    _checkpoints(tmp_path)
    pruned = PolicySpec("pruned", {"method": "first", "keep": "2"}, str(tmp_path / "teacher"))
    req = ProfileRequest(policy=pruned, baseline=PolicySpec("teacher", checkpoint=str(tmp_path / "teacher")),
                         calls=4, warmup=1, threads=1, results_root=tmp_path / "results",
                         report_dir=tmp_path / "reports")
    report = profile(req, log=lambda m: None, recorded=_observations())
    p, t = report["policies"]["pruned[keep=2,method=first]"], report["policies"]["teacher"]
    teacher_identity = load_policy(req.baseline, "libero_spatial").identity
    assert p["reference"] == teacher_identity and t["reference"] is None
    assert p["executed_backbone_fraction"] == pytest.approx(0.5) and t["executed_backbone_fraction"] == 1.0
    assert p["executed_blocks_mean"] == 2 and p["depth"] == t["depth"] == 4
    # Half the teacher's backbone FLOPs, the rest of the call the same: the harness model, checked live.
    half = t["gflops_per_call"]["backbone"] / 2
    assert p["gflops_per_call"]["total"] == pytest.approx(t["gflops_per_call"]["total"] - half, rel=1e-3)
    assert p["gflops_per_call"]["backbone"] == pytest.approx(half, rel=1e-3)
    assert p["compute_max_rel_error"] < 0.01 and t["compute_max_rel_error"] < 0.01
    assert p["params_total_m"] < t["params_total_m"] and p["params_executed_m"] < t["params_executed_m"]
    assert p["peak_activation_mb"] > 0 and p["language_gflops_per_episode"] > 0
    lo, hi = p["speedup_vs_baseline"]["ci95"]
    assert lo <= p["speedup_vs_baseline"]["ratio"] <= hi and t["speedup_vs_baseline"] is None
    row = next(line for line in report["text"].splitlines() if line.startswith("pruned["))
    assert f"teacher {teacher_identity['checkpoint_sha256'][:12]}" in row and "2.0/4" in row and " 50 " in row
    run_dir = tmp_path / "results" / p["tag"] / "libero_spatial"
    assert json.loads((run_dir / "profile.json").read_text())["policies"]["teacher"]["depth"] == 4
    assert (tmp_path / "reports" / "profile_libero_spatial_pruned_vs_teacher.md").read_text() == (
        run_dir / "profile.md").read_text()
    assert f'make eval POLICY=pruned PARAMS="keep=2,method=first" CHECKPOINT={tmp_path / "teacher"}' in report["text"]


def test_a_scripted_policy_without_torch_profiles_latency_only(tmp_path):
    from harness.policy_profile import ProfileRequest, profile

    report = profile(ProfileRequest(policy="noop", baseline=None, calls=3, warmup=1, threads=1,
                                    results_root=tmp_path), log=lambda m: None, recorded=_observations())
    noop = report["policies"]["noop"]
    assert noop["gflops_per_call"] == {"total": 0.0} and noop["latency_ms_median"] > 0
    assert noop["executed_backbone_fraction"] is None and noop["compute_max_rel_error"] is None
    assert noop["params_total_m"] is None and noop["peak_activation_mb"] is None
    assert noop["language_gflops_per_episode"] is None and noop["speedup_vs_baseline"] is None
    assert "counts 0 FLOPs" in report["text"] and "holds no torch modules" in report["text"]
    assert (tmp_path / load_policy("noop").tag / "libero_spatial" / "profile.md").exists()


def test_policies_share_one_recording_unless_they_cannot():
    spec = shared_spec([ObsSpec(cameras=("agentview", "wrist")), ObsSpec(proprio=False), ObsSpec(cameras=("wrist",))])
    assert spec.cameras == ("agentview", "wrist") and spec.resolution == (128, 128)
    with pytest.raises(ValueError, match="different resolutions"):
        shared_spec([ObsSpec(cameras=("agentview",)), ObsSpec(cameras=("agentview",), resolution=(96, 96))])
    with pytest.raises(ValueError, match="privileged"):
        shared_spec([ObsSpec(privileged=True)])


def test_profile_refuses_bad_params_in_one_line(tmp_path, capsys):
    from harness.cli import main

    assert main(["profile", "--policy", "pruned", "--params", "keep=x", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "keep" in err[0]


def _run_with_calls(tmp_path) -> RunStore:
    """A run on disk (through `RunStore.write_episode`) whose calls executed 1 or 3 of 4 reference blocks."""
    store = RunStore(tmp_path, "student-000000000000", "libero_spatial")
    store.dir.mkdir(parents=True)
    compute = ComputeModel(extra_flops=10**9, block_flops=(5 * 10**8,) * 4)
    store.manifest_path.write_text(json.dumps({"compute": compute.to_dict()}))
    episodes = [(0, 0, True, [[0], [0, 1, 2]]), (0, 1, False, [[0, 1, 2]] * 3), (1, 0, True, [[0]] * 4)]
    for task, init, success, blocks in episodes:
        calls = [{"env_step": 10 * i, "policy_s": 0.1, "blocks": b, "info": {}} for i, b in enumerate(blocks)]
        store.write_episode(EpisodeRecord(
            f"libero_spatial__t{task:03d}__i{init:03d}__s0", "student", "000000000000", "sha", "libero_spatial",
            task, f"task{task}", "do it", init, 0, success=success, steps=10 * len(blocks),
            policy_calls=len(blocks), wall_s=10.0, policy_s=1.0, physics_s=5.0, render_s=3.0, jerk=0.5,
            record_s=0.01, error="" if success else "policy exploded", calls=calls))
    return store


def test_rollout_metrics_read_executed_fraction_and_flops_from_the_calls_table(tmp_path):
    store = _run_with_calls(tmp_path)
    episodes, calls = store.load(), store.load_calls()
    summary = run_summary(episodes, calls)
    lo, hi = wilson_interval(2, 3)
    assert summary == pytest.approx({"episodes": 3, "success_%": 200 / 3, "ci95_lo_%": 100 * lo, "ci95_hi_%": 100 * hi,
                                     "errors": 1,
                                     "exec_backbone_%": 100 * 17 / 36,  # 9 calls ran 17 of their 36 blocks
                                     "gflops_per_call": 1 + 0.5 * 17 / 9, "calls": 9})
    table = rollout_metrics(episodes, calls).set_index("task")
    assert list(table.index) == [0, 1, "ALL"] and table.loc[1, "exec_backbone_%"] == 25.0
    assert table.loc[0, "calls"] == 5 and table.loc[0, "steps_to_success"] == 20
    assert table.loc["ALL", "policy_%"] == 10 and table.loc["ALL", "overhead_%"] == pytest.approx(0.1)
    per_episode = episode_metrics(episodes, calls).set_index("key")
    assert per_episode["calls"].tolist() == [2, 3, 4] and per_episode["exec_blocks"].tolist() == [2, 3, 1]
    assert per_episode["error"].tolist() == [False, True, False]
    assert per_episode["gflops"].tolist() == pytest.approx([2 + 2.0, 3 * 2.5, 4 * 1.5])


def test_rollout_metrics_of_a_policy_without_blocks_are_nan():
    import pandas as pd

    episodes = pd.DataFrame({"key": ["a"], "success": [False], "error": [""]})
    calls = pd.DataFrame({"key": ["a"], "exec_fraction": [math.nan], "gflops": [math.nan]})
    summary = run_summary(episodes, calls)
    assert math.isnan(summary["exec_backbone_%"]) and math.isnan(summary["gflops_per_call"]) and summary["calls"] == 1


@pytest.mark.slow
def test_profile_on_recorded_observations_and_an_evaluated_run(tmp_path):
    """The routed student against its teacher on 2 observations recorded from real expert episodes, with the
    rollout metrics of one evaluated episode of the student."""
    from harness.policy_profile import ProfileRequest, profile
    from harness.runner import EvalRequest, evaluate

    _checkpoints(tmp_path)
    student = PolicySpec("actdistill", checkpoint=str(tmp_path / "student"))
    req = ProfileRequest(policy=student, baseline=PolicySpec("teacher", checkpoint=str(tmp_path / "teacher")),
                         calls=4, warmup=1, observations=2, threads=1, results_root=tmp_path / "results")
    evaluate(EvalRequest(policy=student, suite="libero_spatial", episodes=1, tasks=(0,), workers=1,
                         results_root=tmp_path / "results"), progress=False)
    report = profile(req, log=lambda m: None)
    s, t = report["policies"]["actdistill"], report["policies"]["teacher"]
    assert report["observations"] == 2 and "expert episodes" in report["observations_source"]
    assert s["reference"] == load_policy(req.baseline, "libero_spatial").identity
    assert s["executed_blocks_mean"] == 2 and s["executed_backbone_fraction"] == pytest.approx(0.5)
    assert s["compute_max_rel_error"] < 0.01 and t["compute_max_rel_error"] < 0.01
    assert s["gflops_per_call"]["vision"] > 0 and s["latency_ms_p90"] > 0
    *tasks, total = s["rollouts"]
    assert total["task"] == "ALL" and total["episodes"] == 1 and total["calls"] == 28  # 220 steps in chunks of 8
    assert total["exec_backbone_%"] == 50.0 and total["gflops_per_call"] == pytest.approx(
        s["gflops_per_call"]["total"], rel=1e-6)  # the run's compute model and this profile's are one
    assert 0 < total["overhead_%"] < 3 and total["jerk"] >= 0
    assert 0 < total["policy_%"] + total["physics_%"] + total["render_%"] <= 100
    assert t["rollouts"] is None and "make eval POLICY=teacher" in report["text"]
    run_dir = tmp_path / "results" / s["tag"] / "libero_spatial"
    assert "exec_frac" in (run_dir / "profile_episodes.csv").read_text()
    # The observations were recorded once (the union of both policies' cameras); a second profile reads them.
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
