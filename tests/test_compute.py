"""Compute accounted by the harness against the reference model (FLOPs counted live; no simulator)."""
import pytest

from core.flops import flop_counter
from harness.compute import measure
from policies import load_policy
from tasks import make_suite
from tasks.base import blank_observation

TASK = make_suite("libero_spatial").tasks()[0]


def live_flops(policy) -> int:
    policy.reset(TASK, 0)
    with flop_counter() as counter:
        policy.act(blank_observation(policy.obs_spec))
    return counter.get_total_flops()


def test_a_truncated_model_executes_half_of_its_teachers_backbone():
    teacher = load_policy("teacher", "libero_spatial")
    pruned = load_policy("pruned-first-6", "libero_spatial")
    model = measure(pruned, TASK)
    dense = measure(teacher, TASK)
    assert model.reference == teacher.identity and dense.reference is None
    assert model.block_flops == dense.block_flops and len(model.block_flops) == 12
    assert model.fraction(range(6)) == pytest.approx(0.5)
    live = live_flops(pruned.policy)
    assert abs(model.flops(range(6)) - live) / live < 0.01
    # Its cost outside the blocks is the teacher's (same encoders and head): the table predicts it from the teacher.
    assert abs(dense.flops(range(6)) - live) / live < 0.01
    assert live < 0.6 * live_flops(teacher.policy)


def test_uniform_pruning_keeps_evenly_spaced_blocks():
    loaded = load_policy("pruned-uniform-6", "libero_spatial")
    assert loaded.policy.kept == (0, 2, 4, 7, 9, 11)
    assert measure(loaded, TASK).fraction(loaded.policy.kept) == pytest.approx(0.5)


def test_the_student_is_accounted_against_its_teacher():
    student = load_policy("actdistill", "libero_spatial")
    teacher = load_policy("teacher", "libero_spatial")
    model = measure(student, TASK)
    assert model.reference == teacher.identity
    assert model.extra_flops > measure(teacher, TASK).extra_flops  # the router costs a little
    student.policy.reset(TASK, 0)
    with flop_counter() as counter:
        blocks = student.policy.act(blank_observation(student.policy.obs_spec)).info["blocks"]
    assert abs(model.flops(blocks) - counter.get_total_flops()) / counter.get_total_flops() < 0.01


def test_a_policy_without_blocks_gets_its_live_count():
    loaded = load_policy("noop")
    model = measure(loaded, TASK)
    assert model.flops(None) == 0 and model.block_flops == ()


def test_random_skip_draws_per_episode_and_is_accounted_against_the_teacher():
    from core.spec import PolicySpec

    def blocks_of(loaded, calls=20):
        loaded.policy.reset(TASK, 0)
        obs = blank_observation(loaded.policy.obs_spec)
        return [loaded.policy.act(obs).info["blocks"] for _ in range(calls)]

    a = load_policy(PolicySpec("random-skip", {"p": 0.4}), "libero_spatial")
    b = load_policy(PolicySpec("random-skip", {"p": 0.4}), "libero_spatial")
    runs = blocks_of(a)
    assert runs == blocks_of(b) and len({tuple(r) for r in runs}) > 1  # repeatable per episode, varied per call
    share = sum(map(len, runs)) / (12 * len(runs))
    assert 0.25 < share < 0.55
    model = measure(a, TASK)
    assert model.reference == load_policy("teacher", "libero_spatial").identity
    assert model.fraction(runs[0]) == pytest.approx(len(runs[0]) / 12)
    dense = load_policy(PolicySpec("random-skip", {"p": 1}), "libero_spatial")
    teacher = load_policy("teacher", "libero_spatial").policy
    for policy in (dense.policy, teacher):
        policy.reset(TASK, 0)
    obs = blank_observation(teacher.obs_spec)
    assert (dense.policy.act(obs).actions == teacher.act(obs).actions).all()  # p = 1 is the teacher
