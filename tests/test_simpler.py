"""SIMPLER Bridge suites: a real rendered episode, the protocol's episode rules, and the stand-in assets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.base import ObsSpec
from tasks.protocol import SIMPLER_SUITES, SIMPLER_TABLE_TOP_Z, simpler_protocol

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO.parent / "shared" / "assets" / "simpler"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ASSETS / "data").is_dir(), reason=f"SIMPLER assets absent: {ASSETS}/data not found"),
]

NOOP = np.array(simpler_protocol("simpler_carrot").noop_action)


@pytest.fixture(autouse=True)
def _use_shared_assets(monkeypatch):
    monkeypatch.setenv("VLA_SIMPLER_ASSETS", str(ASSETS))


def make(suite: str, **spec):
    from tasks.simpler import SimplerSuite

    return SimplerSuite(suite).make_env(0, ObsSpec(**spec))


def test_real_episode_renders_lazily_and_judges_success_at_the_final_step():
    env = make("simpler_carrot", cameras=("agentview",), resolution=(128, 160), privileged=True)
    try:
        obs, info = env.reset(seed=0, options={"init_index": 0})
        assert info["success"] is False and not obs.rendered and env.timers.renders == 0
        frame = obs.images["agentview"]
        assert frame.shape == (128, 160, 3) and frame.dtype == np.uint8
        assert frame.std() > 10 and 20 < frame.mean() < 235, "frame looks blank"
        steps, last = 0, None
        while True:
            obs, reward, terminated, truncated, info = env.step(NOOP)
            steps += 1
            assert terminated is False, "SIMPLER never ends an episode early"
            if truncated:
                last = info
                break
        assert steps == 60 == env.spec_task.max_steps
        assert env.timers.renders == 1, "stepping must not render"
        assert set(last["partial"]) == {"success_any", "grasped", "consecutive_grasp"}
        assert last["success"] is False and not last["partial"]["grasped"]
        video = env.render()
        assert video.shape == (240, 320, 3) and video.std() > 10
        # The robot is rendered over the real photo: its pixels change when the arm moves up.
        before = env.render().astype(np.int16)
        for _ in range(3):
            env.step(np.array([0.0, 0.0, 0.03, 0.0, 0.0, 0.0, 1.0]))
        assert np.abs(env.render().astype(np.int16) - before).mean() > 0.5
        with pytest.raises(RuntimeError, match="rendered after the env moved on"):
            obs.images  # noqa: B018 - a stale observation must not render
    finally:
        env.close()


def test_gripper_sign_and_action_frame():
    env = make("simpler_stack", privileged=True)
    try:
        obs, _ = env.reset(options={"init_index": 1})
        p0 = obs.proprio["eef_pos"].copy()
        assert obs.proprio["eef_quat"].shape == (4,) and np.isclose(np.linalg.norm(obs.proprio["eef_quat"]), 1, atol=1e-4)
        for _ in range(3):
            obs, *_ = env.step(np.array([0.01, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0]))
        moved = obs.proprio["eef_pos"] - p0
        assert moved[0] < -0.015, "base +x is world -x (the WidowX base is yawed 180 degrees)"
        assert obs.proprio["gripper_qpos"].max() < 0.02, "-1 closes"
        for _ in range(3):
            obs, *_ = env.step(NOOP)
        assert obs.proprio["gripper_qpos"].min() > 0.035, "+1 opens"
        priv = obs.privileged
        assert priv.goal == (("on", "green_cube", "yellow_cube"),)
        assert np.array_equal(priv.objects["source"], priv.objects["green_cube"])
        assert np.allclose(priv.extra["half_extents"]["target"], 0.015)
    finally:
        env.close()


@pytest.mark.parametrize("suite", SIMPLER_SUITES)
def test_table_holds_objects_through_a_noop_episode(suite):
    """Objects rest on the (stand-in) table after the env's settle and stay there for a whole episode."""
    env = make(suite, privileged=True)
    try:
        for init_index in (0, 23):
            obs, _ = env.reset(options={"init_index": init_index})
            start = {k: v.copy() for k, v in obs.privileged.objects.items()}
            truncated = False
            while not truncated:
                obs, _, _, truncated, info = env.step(NOOP)
            assert info["success"] is False
            for name, pose in obs.privileged.objects.items():
                assert pose[2] > SIMPLER_TABLE_TOP_Z - 0.005, f"{name} fell through the table: z={pose[2]:.3f}"
                assert np.linalg.norm(pose[:3] - start[name][:3]) < 0.02, f"{name} drifted without being touched"
    finally:
        env.close()


def test_reset_is_deterministic_per_init_index_and_stand_ins_are_reported():
    from tasks.simpler import SimplerSuite

    suite = SimplerSuite("simpler_spoon")
    env = suite.make_env(0, ObsSpec(privileged=True))
    try:
        def layout(i):
            obs, _ = env.reset(options={"init_index": i})
            return np.concatenate([obs.privileged.objects["spoon"], obs.privileged.objects["towel"]])

        first = layout(5)
        layout(6)
        env.step(np.array([0.02, 0.0, -0.02, 0.0, 0.0, 0.0, -1.0]))
        assert np.allclose(layout(5), first, atol=1e-6)
        assert not np.allclose(layout(6), first)
        with pytest.raises(ValueError):
            env.reset(options={"init_index": 24})
    finally:
        env.close()
    stand_ins = suite.stand_ins()
    official_stage = ASSETS / "data/tasks/bridge_v2_real2sim_dataset/stages/bridge_table_1_v1.glb"
    assert any("bridge_table_1_v1.glb" in s for s in stand_ins) == (not official_stage.exists())
    assert suite.versions()["simpler_assets"].startswith("official" if not stand_ins else "stand-ins")
