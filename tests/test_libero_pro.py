"""LIBERO-PRO's perturbed suites: registered with their parent's protocol, loadable, and run by the real harness."""
import json
from dataclasses import replace

import pytest

from core.paths import CHECKPOINTS
from core.registry import UnknownName
from harness.runner import EvalRequest, evaluate
from tasks import SUITE_GROUPS, expand_suites, make_suite
from tasks.base import ObsSpec
from tasks.libero import _benchmark
from tasks.protocol import LIBERO_PRO_VARIANTS, LIBERO_STANDARD, libero_protocol, parent_suite, protocol_dict


def test_parent_suite_maps_variants_to_their_standard_suite_and_any_other_suite_to_itself():
    assert parent_suite("libero_spatial_lan") == "libero_spatial"
    assert parent_suite("libero_object_object") == "libero_object"
    assert parent_suite("libero_10_with_mug") == "libero_10"
    assert all(parent_suite(s) == s for s in (*LIBERO_STANDARD, "libero_90", "simpler_carrot"))
    assert set(LIBERO_PRO_VARIANTS.values()) == set(LIBERO_STANDARD)


def test_a_variant_protocol_is_its_parents_but_for_name_source_and_shipped_init_states():
    for variant, parent in LIBERO_PRO_VARIANTS.items():
        p, q = libero_protocol(variant), libero_protocol(parent)
        as_parent = replace(p, suite=parent, source=q.source, n_init_states=q.n_init_states)
        assert protocol_dict(as_parent) == protocol_dict(q)
        assert p.source.startswith(f"LIBERO-PRO {variant} (") and f"bddl_files/{variant}" in p.source
    assert libero_protocol("libero_10_swap").max_steps == 520 and libero_protocol("libero_goal_lan").max_steps == 300
    assert libero_protocol("libero_spatial_with_milk").n_init_states == 10
    assert libero_protocol("libero_spatial_lan").n_init_states == 50


def test_groups_expand_to_every_variant_of_their_parent():
    assert expand_suites("libero_spatial_pro") == (
        "libero_spatial_lan", "libero_spatial_object", "libero_spatial_swap", "libero_spatial_task",
        "libero_spatial_with_mug", "libero_spatial_with_yellow_book", "libero_spatial_with_milk")
    grouped = [s for parent in LIBERO_STANDARD for s in expand_suites(f"{parent}_pro")]
    assert sorted(grouped) == sorted(LIBERO_PRO_VARIANTS)
    assert all(parent_suite(s) == g.removesuffix("_pro") for g in SUITE_GROUPS if g.endswith("_pro")
               for s in SUITE_GROUPS[g])


def test_a_variant_takes_its_parents_shipped_checkpoints():
    """`make eval POLICY=teacher|actdistill SUITE=libero_spatial_lan` loads the libero_spatial checkpoint; a variant
    of a suite without one says whose checkpoint it needs."""
    from policies import POLICIES
    from policies.base import NoShippedCheckpoint

    missing = 0
    for family in ("teacher", "actdistill"):
        shipped = POLICIES.load(family).shipped_checkpoint
        for parent in LIBERO_STANDARD:
            if (CHECKPOINTS / family / parent / "config.json").exists():
                assert shipped(f"{parent}_lan") == shipped(parent) == CHECKPOINTS / family / parent
            else:
                missing += 1
                with pytest.raises(NoShippedCheckpoint,
                                   match=rf"for suite '{parent}_lan' \(a variant of '{parent}'\); shipped for: "):
                    shipped(f"{parent}_lan")
    assert (CHECKPOINTS / "teacher" / "libero_spatial").exists() and missing  # both branches are exercised


def test_an_unknown_variant_is_a_one_line_did_you_mean():
    with pytest.raises(UnknownName) as err:
        expand_suites("libero_spatial_lang")
    message = str(err.value)
    assert message.startswith("unknown suite 'libero_spatial_lang' (did you mean 'libero_spatial_lan'?); valid: ")
    assert "\n" not in message and "libero_spatial_pro" in message


@pytest.mark.parametrize("variant", sorted(LIBERO_PRO_VARIANTS))
def test_every_task_of_a_variant_ships_its_protocols_init_states(variant):
    bench = _benchmark(variant)
    assert bench.n_tasks == 10
    for i in range(bench.n_tasks):
        states = bench.get_task_init_states(i)
        assert states.ndim == 2 and states.shape[0] == libero_protocol(variant).n_init_states


def test_instructions_change_only_where_libero_pro_changes_them():
    """`_lan` and `_task` prompt with the BDDL's instruction; `_object` and `_swap` keep the parent's exactly."""
    parent = [t.instruction for t in make_suite("libero_spatial").tasks()]
    paraphrased = make_suite("libero_spatial_lan").tasks()
    assert paraphrased[0].instruction == "lift the black bowl between the plate and ramekin and set it on the plate"
    assert all(a != t.instruction for a, t in zip(parent, paraphrased))
    assert [t.instruction for t in make_suite("libero_spatial_object").tasks()] == parent
    assert [t.instruction for t in make_suite("libero_spatial_swap").tasks()] == parent


@pytest.mark.slow
def test_a_variant_episode_runs_through_the_harness(tmp_path):
    """The expert on the first init state of a scene with an added object (a mug): the env builds from the variant's
    BDDL, the init states fit that scene (not the parent's: 105 numbers, not 92), and the episode succeeds under the
    parent's protocol."""
    suite = "libero_spatial_with_mug"
    env = make_suite(suite).make_env(0, ObsSpec())
    try:
        states = _benchmark(suite).get_task_init_states(0)
        assert states.shape == (50, env.state().shape[0]) != _benchmark("libero_spatial").get_task_init_states(0).shape
    finally:
        env.close()
    result = evaluate(EvalRequest(policy="expert", suite=suite, tasks=(0,), episodes=1, workers=1,
                                  results_root=tmp_path), progress=False)
    (ep,) = result.episodes.to_dict("records")
    assert ep["error"] == "" and ep["success"] and 0 < ep["steps"] < 220
    manifest = json.loads((result.run_dirs[0] / "manifest.json").read_text())
    assert manifest["protocol"]["max_steps"] == 220 and manifest["protocol"]["source"].startswith("LIBERO-PRO")
