"""The scripted expert solves real LIBERO tasks, and its rollouts become demonstration files."""
import json

import numpy as np
import pytest

from core.demofile import read_demos
from harness.demos import build_demos
from harness.runner import EvalRequest, evaluate
from policies.expert.policy import ExpertPolicy
from tasks import make_suite

pytestmark = pytest.mark.slow


def test_expert_solves_spatial_and_object_and_demos_round_trip(tmp_path):
    result = evaluate(EvalRequest("expert", "libero_object", episodes=1, tasks=(0,), workers=1,
                                  results_root=tmp_path, trajectories=True), progress=False)
    (ep,) = result.episodes.to_dict("records")
    assert ep["success"] and ep["error"] == "" and ep["renders"] == 0  # privileged state only: no rendering
    assert ep["steps"] < 280

    stride = 10
    (path,) = build_demos(result.episodes, result.calls, tmp_path / "demos", ("agentview", "wrist"), (64, 64), stride, workers=1,
                          progress=False)
    (demo,) = read_demos(path)
    assert demo.instruction == ep["instruction"]
    assert len(demo.actions) == ep["steps"] and demo.proprio.shape == (ep["steps"], 8)
    np.testing.assert_array_equal(demo.frame_index, np.arange(0, ep["steps"], stride))
    for camera in ("agentview", "wrist"):
        frames = demo.images[camera]
        assert frames.shape == (len(demo.frame_index), 64, 64, 3) and frames.std() > 10
    # The fingers close on the object (a 6 cm can stops them at ~3.1 cm each, open is ~3.9 cm) and the arm
    # travels down and up.
    assert np.ptp(demo.gripper_states[:, 0]) > 0.005
    assert np.ptp(demo.ee_pos[:, 2]) > 0.1


def test_expert_holds_still_on_unsupported_goals():
    suite = make_suite("libero_goal")
    task = next(t for t in suite.tasks() if "open the middle drawer" in t.instruction)
    env = suite.make_env(task.index, ExpertPolicy().obs_spec)
    try:
        obs, _ = env.reset(options={"init_index": 0})
        policy = ExpertPolicy()
        policy.reset(task, 0)
        out = policy.act(obs)
    finally:
        env.close()
    assert np.isfinite(out.actions).all() and np.abs(out.actions[:, :6]).max() == 0
    assert "unsupported" in json.dumps(out.info)


def test_dart_expert_perturbs_execution_and_its_demos_hold_the_clean_labels(tmp_path):
    import h5py

    from policies.dart.policy import NOISE_STD

    result = evaluate(EvalRequest("expert_dart", "libero_object", episodes=1, tasks=(0,), workers=1,
                                  results_root=tmp_path, trajectories=True), progress=False)
    (ep,) = result.episodes.to_dict("records")
    assert ep["success"] and ep["error"] == ""  # the expert recovers from the perturbations it is given
    infos = result.calls.sort_values("call")["info"].map(json.loads)
    labels = np.array([label for info in infos for label in info["labels"]])[:ep["steps"]]
    executed = np.load(ep["trajectory"])["actions"]
    noise = executed - labels
    assert np.all(noise[:, 6] == 0) and np.all(np.abs(noise[:, :3]).mean(0) > 0.3 * NOISE_STD[:3])
    (path,) = build_demos(result.episodes, result.calls, tmp_path / "demos", ("agentview",), (32, 32), 50, workers=1,
                          progress=False)
    (demo,) = read_demos(path, ("agentview",))
    np.testing.assert_allclose(demo.actions, labels)  # the demo teaches the correction, not the perturbed action
    with h5py.File(path) as f:
        assert f["data"].attrs["demonstrator"] == "expert_dart"
    clean = evaluate(EvalRequest("expert", "libero_object", episodes=1, tasks=(0,), workers=1, results_root=tmp_path,
                                 trajectories=True), progress=False)
    with pytest.raises(ValueError, match="holds demos of 'expert_dart', not 'expert'"):
        build_demos(clean.episodes, clean.calls, tmp_path / "demos", ("agentview",), (32, 32), 50, workers=1,
                    progress=False)
