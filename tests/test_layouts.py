"""Training layouts (`tasks.layouts`, suite `libero_spatial_train`): held apart from the evaluation init states,
bit-identical on regeneration, episodes start from them, and their demos are the parent suite's. Real simulator on
libero_spatial tasks 0 and 3 (3 holds a bowl placed on a fixture by LIBERO's site sampler)."""
from __future__ import annotations

import numpy as np
import pytest

from core.demofile import Demo, demo_path, write_task_demos
from harness.demos import check_demo_folder
from tasks import expand_suites, layouts, make_suite
from tasks.base import ObsSpec
from tasks.layouts import draw_layouts, layout_distance, task_layouts
from tasks.protocol import LiberoTrainProtocol, libero_train_protocol, parent_suite

SUITE = "libero_spatial_train"
PROTOCOL = libero_train_protocol(SUITE, "")
THRESHOLD = LiberoTrainProtocol.layout_min_distance


@pytest.fixture(scope="module")
def eval_envs():
    """Envs of libero_spatial tasks 0 and 3: their init states are the evaluation ones."""
    from tasks.libero import LiberoEnv

    envs = {t: LiberoEnv("libero_spatial", t, ObsSpec()) for t in (0, 3)}
    yield envs
    for env in envs.values():
        env.close()


@pytest.mark.slow
def test_no_training_layout_lies_within_the_threshold_of_an_evaluation_init_state(eval_envs):
    for task, env in eval_envs.items():
        held = layouts.load(SUITE)[task]
        index = env.movable_xy_index()
        assert len(index) == len(env._env.env.objects_dict) == 5  # every movable object counts, no fixture
        d = layout_distance(held.states, np.asarray(env._init_states), index)
        assert d.shape == (50, 50)
        assert d.min() >= THRESHOLD
        np.testing.assert_array_equal(d.min(1), held.nearest)  # the recorded nearest distances are the real ones
        assert len(np.unique(held.states[:, index].reshape(50, -1), axis=0)) == 50  # 50 distinct layouts
        # Drawn from the regions the evaluation states come from (per object: mean within 1 cm, similar spread).
        train, evals = held.states[:, index], np.asarray(env._init_states)[:, index]
        assert np.abs(train.mean(0) - evals.mean(0)).max() < 0.01
        spread = train.std(0).mean(-1) / evals.std(0).mean(-1)
        assert np.all((0.5 < spread) & (spread < 2))


@pytest.mark.slow
def test_the_distance_check_flags_an_evaluation_init_state_and_rejected_draws_are_skipped(eval_envs):
    env = eval_envs[0]
    evals, index = np.asarray(env._init_states), env.movable_xy_index()
    assert layout_distance(evals[7], evals, index)[0, 7] == 0.0
    near = evals[7].copy()
    near[index[2, 1]] += 0.6 * THRESHOLD  # one object moved by less than the threshold: still the same layout
    assert 0 < layout_distance(near, evals, index).min() < THRESHOLD

    def sample(draw: int) -> tuple[np.ndarray, float]:
        if draw < 2:
            return (evals[7], near)[draw], 0.0
        return env.sample_layout((PROTOCOL.layout_seed_base, 0, draw), PROTOCOL.robot_init_noise)

    got = draw_layouts(sample, evals, index, 3, THRESHOLD)
    held = layouts.load(SUITE)[0]
    expected = [i for i, draw in enumerate(held.draws) if draw >= 2][:3]  # real draws 2, 3, ... kept as committed
    assert list(got.draws) == list(held.draws[expected]) and got.rejected >= 2
    np.testing.assert_array_equal(got.states, held.states[expected])
    np.testing.assert_array_equal(got.drift, held.drift[expected])
    assert got.nearest.min() >= THRESHOLD


@pytest.mark.slow
def test_layouts_are_bit_identical_on_regeneration_whatever_ran_before(eval_envs):
    env = eval_envs[3]
    held = layouts.load(SUITE)[3]
    env.reset(options={"init_index": 4})  # an episode in between: the draws must not depend on it
    for _ in range(5):
        env.step(np.full(7, 0.3))
    again = task_layouts(env, PROTOCOL, 5)
    np.testing.assert_array_equal(again.draws, held.draws[:5])
    assert np.array_equal(again.states, held.states[:5])  # the committed file came from another process
    late = int(held.draws[20])  # out of order
    assert np.array_equal(env.sample_layout((PROTOCOL.layout_seed_base, 3, late), PROTOCOL.robot_init_noise)[0],
                          held.states[20])
    other, _ = env.sample_layout((PROTOCOL.layout_seed_base + 1, 3, late), PROTOCOL.robot_init_noise)
    assert layout_distance(other, held.states[20], env.movable_xy_index())[0, 0] > 0  # the seed base matters


@pytest.mark.slow
def test_an_episode_starts_from_a_training_layout():
    suite = make_suite(SUITE)
    env = suite.make_env(0, ObsSpec(privileged=True))
    try:
        held = layouts.load(SUITE)[0]
        assert env.spec_task.n_init_states == 50 and env.protocol_.max_steps == 220  # the parent's step limit
        index = env.movable_xy_index()
        pushed, at_rest = int(np.argmax(held.drift)), int(np.argmin(held.drift))
        assert held.drift[pushed] > 0.05 > 1e-4 > held.drift[at_rest]  # task 0 draws bowls onto the plate's rim
        for k in (pushed, at_rest):
            obs, info = env.reset(options={"init_index": k})
            moved = np.linalg.norm(env.state()[index] - held.states[k][index], axis=-1).max()
            assert abs(moved - held.drift[k]) < 5e-4  # the recorded settle drift is what an episode's settling does
        names = list(env._env.env.objects_dict)
        xy = np.array([obs.privileged.objects[n][:2] for n in names])
        assert np.abs(xy - held.states[at_rest][index]).max() < 1e-3  # what the expert plans from: the layout
        with pytest.raises(ValueError, match="out of range 0..49"):
            env.reset(options={"init_index": 50})
    finally:
        env.close()


def test_the_suite_is_registered_with_its_parents_tasks_and_a_manifest_saying_how_it_is_held_apart():
    assert expand_suites("libero_train") == ("libero_spatial_train", "libero_object_train", "libero_goal_train",
                                             "libero_10_train")
    assert parent_suite(SUITE) == parent_suite(f"{SUITE}@noise:0.05") == "libero_spatial"
    suite, parent = make_suite(SUITE), make_suite("libero_spatial")
    assert [(t.name, t.instruction) for t in suite.tasks()] == [(t.name, t.instruction) for t in parent.tasks()]
    protocol = suite.protocol()
    assert {k: protocol[k] for k in LiberoTrainProtocol.LAYOUT_CONSTANTS} == layouts.constants(SUITE) == {
        "layout_seed_base": 16, "layout_min_distance": 0.005, "robot_init_noise": 0.02}
    assert protocol["layouts_sha256"] == layouts.digest(SUITE) and "held apart" in protocol["source"]
    assert {k: v for k, v in protocol.items() if k in parent.protocol() and k not in ("suite", "source")} == {
        k: v for k, v in parent.protocol().items() if k not in ("suite", "source")}


def test_training_layout_demos_go_to_the_parent_folder_and_never_mix_with_evaluation_ones(tmp_path):
    t = 3
    demo = Demo("x", np.zeros((t, 7)), np.zeros((t, 4)), np.zeros((t, 3)), np.zeros((t, 3)), np.zeros((t, 2)))
    write_task_demos(demo_path(tmp_path, "libero_spatial", "task_a"), [demo], {"suite": "libero_spatial"})
    check_demo_folder(tmp_path, "libero_spatial")
    check_demo_folder(tmp_path, "libero_object_train")
    with pytest.raises(ValueError, match="holds demos of 'libero_spatial', not 'libero_spatial_train'"):
        check_demo_folder(tmp_path, SUITE)
