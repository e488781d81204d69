"""Real LIBERO episodes through the whole runner: rendering, records, failures, crashes and resume."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from harness.runner import EvalRequest, evaluate

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def run(policy, tmp_path, **kw):
    kw = {"suite": "libero_spatial", "tasks": (0,), "episodes": 1, "workers": 1, **kw}
    return evaluate(EvalRequest(policy=policy, results_root=tmp_path, **kw), progress=False)


def test_real_episode_renders_only_when_asked_and_records_video(tmp_path):
    result = run("tests.fixture_policies:CameraProbe", tmp_path, video=1, trajectories=True)
    (ep,) = result.episodes.to_dict("records")
    assert ep["error"] == "" and not ep["success"]
    assert ep["steps"] == 220  # libero_spatial step limit
    assert ep["policy_calls"] == 11  # chunks of 20 actions
    video_frames = 221  # the reset frame plus one per step
    assert ep["renders"] == 2 * ep["policy_calls"] + video_frames
    for info in result.calls["info"]:
        for camera in ("agentview", "wrist"):
            shape, mean, std = json.loads(info)[camera]
            assert shape == [96, 96, 3]
            assert std > 10 and 20 < mean < 235, "frame looks blank"
    frames = imageio.mimread(ep["video"], memtest=False)
    assert len(frames) == video_frames and frames[0].shape == (256, 256, 3)
    trajectory = np.load(ep["trajectory"])
    assert trajectory["actions"].shape == (220, 7) and trajectory["states"].shape[0] == 220
    assert np.isfinite(trajectory["states"]).all() and np.ptp(trajectory["states"], axis=0).max() > 0
    manifest = json.loads((result.run_dirs[0] / "manifest.json").read_text())
    assert manifest["protocol"]["settle_steps"] == 10 and manifest["protocol"]["max_steps"] == 220
    assert manifest["simulator"]["mujoco"] == "3.3.6"
    assert manifest["inference"]["torch_threads"] == 1 and manifest["schema_version"] == 2
    assert list(result.calls["env_step"]) == list(range(0, 220, 20))


def test_failing_policy_fails_only_its_episode(tmp_path):
    result = run("tests.fixture_policies:MisbehavesInTurn", tmp_path, episodes=4)
    eps = result.episodes.sort_values("init_index").to_dict("records")
    assert [e["init_index"] for e in eps] == [0, 1, 2, 3]
    assert eps[0]["error"].startswith("ValueError: policy exploded on purpose")
    assert eps[1]["error"].startswith("PolicyError: actions contain NaN or inf")
    assert eps[2]["error"].startswith("PolicyError: actions must have shape (k>=1, 7), got (1, 6)")
    assert eps[3]["error"] == "" and eps[3]["steps"] == 220
    assert eps[3]["renders"] == 0  # no cameras declared, no video: physics only


def test_worker_crash_is_retried_once(tmp_path):
    marker = tmp_path / "crashed-once"
    os.environ["CRASH_ONCE_MARKER"] = str(marker)
    try:
        (ep,) = run("tests.fixture_policies:Segfaults", tmp_path / "once").episodes.to_dict("records")
    finally:
        del os.environ["CRASH_ONCE_MARKER"]
    assert marker.exists() and ep["error"] == "" and ep["steps"] == 220


def test_worker_crashing_twice_is_recorded(tmp_path):
    (ep,) = run("tests.fixture_policies:Segfaults", tmp_path).episodes.to_dict("records")
    assert ep["error"] == "worker died (exit code -11) 2 times" and not ep["success"]


def test_a_policy_crashing_while_counted_costs_only_its_count(tmp_path):
    result = run("tests.fixture_policies:SegfaultsWhenCounted", tmp_path)
    (ep,) = result.episodes.to_dict("records")
    assert ep["error"] == "" and ep["steps"] == 220
    compute = json.loads((result.run_dirs[0] / "manifest.json").read_text())["compute"]
    assert compute == {"error": "worker died (exit code -11) 2 times"}
    assert result.calls["gflops"].isna().all()


def test_resume_after_kill_9(tmp_path):
    cmd = [sys.executable, "-m", "harness.cli", "eval", "--policy", "noop", "--suite", "libero_spatial",
           "--tasks", "0", "--episodes", "3", "--workers", "1", "--results", str(tmp_path), "--no-progress"]
    from harness.store import RunStore

    store = RunStore(tmp_path, plan_tag("noop"), "libero_spatial")
    fragments = store.fragments_dir
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not list(fragments.glob("*.episode.parquet")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {p.name: p.stat().st_mtime_ns for p in fragments.glob("*.episode.parquet")}
    assert 1 <= len(first) < 3, "the run should have been killed mid-way"
    assert not list(fragments.glob(".*")), "no temporary files left behind"

    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"resuming: {len(first)} episode(s) already on disk, {3 - len(first)} to run" in again.stdout
    assert not list(fragments.glob("*")), "a finished run is compacted"
    episodes = store.load()
    assert len(episodes) == 3 and len(store.load_calls()) == episodes["policy_calls"].sum()
    kept = {k[:-len(".episode.parquet")] for k in first}
    killed = episodes[episodes["key"].isin(kept)]
    rerun = episodes.loc[~episodes["key"].isin(kept), "finished_at"]
    assert len(killed) == len(kept) and (killed["finished_at"] < rerun.min()).all(), "finished episodes were re-run"
    assert len(store.manifest()["invocations"]) == 2


def plan_tag(policy: str) -> str:
    from policies import load_policy

    return load_policy(policy).tag


def test_episodes_do_not_depend_on_earlier_episodes_in_the_same_env(tmp_path):
    """Resume and parallel workers rely on it: an episode's outcome is a function of its unit alone."""
    from core.spec import PolicySpec
    from harness.episode import EpisodeOutputs, EpisodeUnit, run_episode
    from policies.sanity import RandomPolicy
    from tasks import make_suite

    suite = make_suite("libero_spatial")
    policy = RandomPolicy()
    env = suite.make_env(4, policy.obs_spec)  # task 4: the bowl sits in the cabinet's drawer, near fixtures
    try:
        finals = []
        for init, path in ((11, "a"), (3, "b"), (11, "c")):
            unit = EpisodeUnit(PolicySpec("random"), "", "libero_spatial", 4, init, 0)
            rec = run_episode(env, policy, unit, EpisodeOutputs(trajectory=tmp_path / f"{path}.npz"))
            finals.append(np.load(rec.trajectory)["states"])
    finally:
        env.close()
    assert np.abs(finals[0] - finals[2]).max() < 1e-6
    assert np.abs(finals[0][-1] - finals[1][-1]).max() > 1e-3  # a different init state really is different


def test_learned_policy_runs_from_a_checkpoint(tmp_path):
    """An (untrained) teacher checkpoint drives a real episode: images, proprio, chunked actions, block info."""
    from policies.vla.checkpoint import Normalizer, save_checkpoint
    from policies.vla.configuration import VLAConfig
    from policies.vla.model import VLA

    cfg = VLAConfig(width=32, depth=2, heads=2, head_hidden=16)
    rng = np.random.default_rng(0)
    normalizer = Normalizer.fit(rng.uniform(-0.5, 0.5, (200, 7)), rng.normal(size=(200, 8)))
    digest = save_checkpoint(tmp_path / "ckpt", cfg, normalizer, VLA(cfg).state_dict(), {})
    result = run("teacher", tmp_path / "results", checkpoint=str(tmp_path / "ckpt"))
    (ep,) = result.episodes.to_dict("records")
    assert ep["error"] == "" and ep["checkpoint_sha256"] == digest
    assert ep["policy_calls"] == 28 and ep["renders"] == 2 * 28  # chunks of 8 over 220 steps, two cameras
    assert all(list(b) == [0, 1] for b in result.calls["blocks"])
    manifest = json.loads((result.run_dirs[0] / "manifest.json").read_text())
    assert manifest["identity"] == {"family": "teacher", "checkpoint_sha256": digest, "params": {}}
    assert result.run_dirs[0].parent.name == f"teacher-{manifest['spec_hash']}"


SHIPPED_SUITES = sorted(p.parent.name for p in (REPO / "checkpoints" / "actdistill").glob("*/config.json"))


@pytest.mark.parametrize("suite", SHIPPED_SUITES)
def test_shipped_checkpoints_run_real_episodes(tmp_path, suite):
    """`make eval POLICY=teacher|actdistill SUITE=<suite>` out of the box: the suite's shipped checkpoints verify,
    the student was distilled from the shipped teacher and holds no training-only graph modules, and both drive
    a real episode of the suite."""
    from policies.vla.checkpoint import load_checkpoint

    teacher = load_checkpoint(REPO / "checkpoints" / "teacher" / suite)
    student = load_checkpoint(REPO / "checkpoints" / "actdistill" / suite)
    assert student.meta["teacher_sha256"] == teacher.sha256
    assert not any(k.startswith(("probes.", "blocks.0.phi")) or ".semantic." in k for k in student.state_dict)
    for name, ckpt in (("teacher", teacher), ("actdistill", student)):
        result = run(name, tmp_path / name, suite=suite)
        (ep,) = result.episodes.to_dict("records")
        assert ep["error"] == "" and ep["checkpoint_sha256"] == ckpt.sha256 and ep["policy_calls"] >= 1
        blocks = [list(b) for b in result.calls["blocks"]]
        assert all(set(b) <= set(range(ckpt.config.depth)) for b in blocks)
        if name == "teacher":
            assert all(b == list(range(ckpt.config.depth)) for b in blocks)


def test_suite_without_shipped_checkpoint_is_a_usage_error(tmp_path):
    from harness.runner import UsageError

    with pytest.raises(UsageError, match=r"no shipped teacher checkpoint for suite 'libero_10'; shipped for: .*libero_spatial"):
        run("teacher", tmp_path, suite="libero_10")


def test_group_runs_the_suites_with_shipped_checkpoints(tmp_path, capsys):
    from harness.runner import plan
    from tasks.protocol import LIBERO_STANDARD

    plans = plan(EvalRequest(policy="teacher", suite="libero", results_root=tmp_path, episodes=1))
    shipped = [s for s in LIBERO_STANDARD if (REPO / "checkpoints" / "teacher" / s / "config.json").exists()]
    assert shipped and [p.store.dir.name for p in plans] == shipped
    assert all(p.loaded.checkpoint == REPO / "checkpoints" / "teacher" / p.store.dir.name for p in plans)
    assert "libero_10: skipped" in capsys.readouterr().out


def test_episodes_do_not_depend_on_the_number_of_workers(tmp_path):
    """The same routed-student units with WORKERS=1 and WORKERS=2 (torch threads per worker differed before they
    were fixed: block choices and an outcome changed) give identical steps, outcomes and executed blocks."""
    runs = [run("actdistill", tmp_path / f"w{w}", suite="libero_object", tasks=(7, 8), workers=w) for w in (1, 2)]
    cols = ["key", "success", "steps", "policy_calls"]
    one, two = (r.episodes[cols].sort_values("key").reset_index(drop=True) for r in runs)
    assert one.equals(two)
    blocks = [r.calls.sort_values(["key", "call"])["blocks"].map(list).tolist() for r in runs]
    assert blocks[0] == blocks[1] and len(blocks[0]) == one["policy_calls"].sum()


def test_a_policy_from_outside_the_repository_runs_through_make_eval(tmp_path):
    """`PYTHONPATH=<folder> make eval POLICY=<module>:<Class>`: the Makefile prepends to PYTHONPATH, and the run
    folder has no ':' in its name."""
    (tmp_path / "my_module.py").write_text(
        "import numpy as np\n"
        "from policies.base import PolicyOutput\n"
        "from tasks.base import ObsSpec\n"
        "class MyPolicy:\n"
        "    obs_spec = ObsSpec()\n"
        "    checkpoint_sha256 = ''\n"
        "    def reset(self, task, seed):\n"
        "        pass\n"
        "    def act(self, obs):\n"
        "        return PolicyOutput(np.tile([0, 0, 0.5, 0, 0, 0, -1.0], (4, 1)), {'mine': 1})\n")
    results = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(["make", "eval", "POLICY=my_module:MyPolicy", "SUITE=libero_object", "TASKS=0", "EPISODES=1",
                          "WORKERS=1", f"RESULTS={results}"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (run_dir,) = [p for p in results.glob("*/libero_object")]
    assert run_dir.parent.name.startswith("my_module.MyPolicy-") and ":" not in str(run_dir)
    from harness.store import RunStore

    (ep,) = RunStore(results, run_dir.parent.name, "libero_object").load().to_dict("records")
    assert ep["error"] == "" and ep["steps"] == 280 and ep["policy_calls"] == 70
