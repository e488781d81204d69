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


# -- training layouts (`simpler_<task>_train`, `tasks.simpler.layouts`) ------------------------------------------


def test_training_layouts_are_registered_held_apart_and_differ_from_the_evaluation_list():
    from tasks import expand_suites, layouts, make_suite
    from tasks.protocol import SimplerTrainProtocol, parent_suite
    from tasks.simpler.layouts import CONFIG_XYZ, xy_index

    assert expand_suites("simpler_train") == tuple(f"{s}_train" for s in SIMPLER_SUITES)
    assert parent_suite("simpler_carrot_train") == parent_suite("simpler_carrot_train@noise:0.05") == "simpler_carrot"
    for suite in SIMPLER_SUITES:
        train = make_suite(f"{suite}_train")
        protocol = train.protocol()
        held = layouts.load(train.name)[0]
        assert protocol["layouts_sha256"] == layouts.digest(train.name) and protocol["n_init_states"] == len(held.states)
        assert len(held.states) == SimplerTrainProtocol.n_init_states and held.nearest.min() >= 0.01
        assert [(t.name, t.instruction, t.max_steps) for t in train.tasks()] == [
            (t.name, t.instruction, t.max_steps) for t in make_suite(suite).tasks()]
        placed = held.states[:, CONFIG_XYZ].reshape(-1, 2, 3)
        moving = xy_index(simpler_protocol(train.name)) // 3
        assert len(np.unique(placed[:, moving[:, 0], :2].round(4).reshape(len(placed), -1), axis=0)) == len(placed)
    assert xy_index(simpler_protocol("simpler_eggplant_train")).tolist() == [[0, 1]]  # the sink's target never moves


def test_no_training_layout_settles_within_the_threshold_of_an_evaluation_one_and_episodes_start_from_them():
    """On the eggplant, whose layouts slide down the sink: the evaluation layouts re-placed by the env, the committed
    distances reproduced, and an episode's reset puts the objects where the committed layout says they rest."""
    from tasks import layouts
    from tasks.simpler.layouts import SETTLED, evaluation_configs, layout_state, xy_index

    suite = "simpler_eggplant_train"
    env = make(suite, privileged=True)
    try:
        held = layouts.load(suite)[0]
        xyz, quat = evaluation_configs(*env.evaluation_configs, 24)
        evals = np.stack([layout_state(env.place(x, q), x, q) for x, q in zip(xyz, quat)])
        d = layouts.layout_distance(held.states, evals, xy_index(env.protocol_))
        assert d.shape == (len(held.states), 24) and d.min() >= simpler_protocol(suite).layout_min_distance
        np.testing.assert_allclose(d.min(1), held.nearest, atol=1e-6)
        assert held.drift.max() > 0.01  # settling matters here: placed and settled positions differ
        for k in (int(np.argmax(held.drift)), 3):
            obs, _ = env.reset(options={"init_index": k})
            rest = np.stack([obs.privileged.objects["source"][:3], obs.privileged.objects["target"][:3]])
            np.testing.assert_allclose(rest.ravel(), held.states[k][SETTLED], atol=1e-5)
        with pytest.raises(ValueError, match=f"out of range 0..{len(held.states) - 1}"):
            env.reset(options={"init_index": len(held.states)})
    finally:
        env.close()
