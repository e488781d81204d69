"""Policy specs: typed params, aliases, identity hashes and run folders (no simulator)."""
import pytest

from core.registry import Alias, Registry, UnknownName
from core.spec import ParamError, PolicySpec, parse_param_text
from policies import load_policy


def test_param_text_splits_pairs_not_tuple_values():
    assert parse_param_text("method=blocks,blocks=0,2,5, keep=3") == {"method": "blocks", "blocks": "0,2,5", "keep": "3"}
    assert parse_param_text("") == {}
    with pytest.raises(ParamError, match="key=value"):
        parse_param_text("keep")


def test_params_are_typed_and_validated_with_one_line_errors():
    loaded = load_policy(PolicySpec("pruned", {"method": "blocks", "blocks": "0,2,5"}), "libero_spatial")
    assert loaded.params.blocks == (0, 2, 5) and loaded.policy.kept == (0, 2, 5)
    with pytest.raises(ParamError, match=r"takes no param 'kepp'; valid: horizon=None, method='first', keep=None, "
                                  r"blocks=None"):
        load_policy(PolicySpec("pruned", {"kepp": "6"}), "libero_spatial")
    with pytest.raises(ParamError, match=r"param 'keep' must be int, got 'six'"):
        load_policy(PolicySpec("pruned", {"keep": "six"}), "libero_spatial")
    with pytest.raises(ParamError, match=r"param 'method' must be one of first, uniform, importance, blocks"):
        load_policy(PolicySpec("pruned", {"method": "last", "keep": "2"}), "libero_spatial")
    with pytest.raises(ValueError, match=r"keep=13 exceeds the teacher's 12 blocks"):
        load_policy(PolicySpec("pruned-first", {"keep": "13"}), "libero_spatial")
    with pytest.raises(ParamError, match="policy 'teacher' takes no param 'keep'; valid: horizon=None$"):
        load_policy(PolicySpec("teacher", {"keep": "6"}), "libero_spatial")


def test_identity_hash_separates_settings_and_unifies_aliases():
    alias = load_policy("pruned-first-6", "libero_spatial")
    spelled = load_policy(PolicySpec("pruned", {"method": "first", "keep": 6}), "libero_spatial")
    other = load_policy(PolicySpec("pruned-first", {"keep": 4}), "libero_spatial")
    assert alias.identity == spelled.identity and alias.spec_hash == spelled.spec_hash
    assert alias.identity["params"] == {"method": "first", "keep": 6, "blocks": None}
    assert other.spec_hash != alias.spec_hash and other.tag != alias.tag
    assert alias.tag == f"pruned-first-6-{alias.spec_hash}" and other.tag.startswith("pruned-first_keep-4-")
    teacher = load_policy("teacher", "libero_spatial")
    assert teacher.identity["checkpoint_sha256"] == alias.identity["checkpoint_sha256"]  # same weights, other policy
    assert teacher.spec_hash != alias.spec_hash


def test_the_executed_horizon_cuts_each_chunk_and_is_identity_only_when_set():
    import json

    import numpy as np

    from core.paths import DEFAULT_RESULTS
    from tasks import make_suite
    from tasks.base import blank_observation

    task = make_suite("libero_spatial").tasks()[0]
    full, two = load_policy("teacher", "libero_spatial"), load_policy(PolicySpec("teacher", {"horizon": "2"}),
                                                                      "libero_spatial")
    # Unset, it is left out of the identity: the committed evaluation of the shipped teacher keeps its run key.
    registered = json.loads((DEFAULT_RESULTS / "baselines.json").read_text())["baselines"]["teacher"]["libero_spatial"]
    assert full.identity["params"] == {} and registered["run"].split("/")[0] == full.tag
    assert two.identity["params"] == {"horizon": 2} and two.tag.startswith("teacher_horizon-2-")
    outputs = []
    for loaded in (full, two):
        loaded.policy.reset(task, 0)
        outputs.append(loaded.policy.act(blank_observation(loaded.policy.obs_spec)).actions)
    assert outputs[0].shape == (8, 7) and outputs[1].shape == (2, 7)
    np.testing.assert_array_equal(outputs[1], outputs[0][:2])
    pruned = load_policy(PolicySpec("pruned-first-6", {"horizon": "4"}), "libero_spatial")
    assert pruned.identity["params"] == {"method": "first", "keep": 6, "blocks": None, "horizon": 4}
    with pytest.raises(ValueError, match=r"^policy 'teacher': horizon=9 exceeds the checkpoint's chunk of 8 actions$"):
        load_policy(PolicySpec("teacher", {"horizon": "9"}), "libero_spatial")
    with pytest.raises(ParamError, match=r"horizon must be >= 1 action, got 0"):
        load_policy(PolicySpec("actdistill", {"horizon": "0"}), "libero_spatial")


def test_two_params_of_one_family_plan_two_runs(tmp_path):
    from harness.runner import EvalRequest, plan

    dirs = {plan(EvalRequest(policy=PolicySpec("pruned-first", {"keep": k}), suite="libero_spatial", episodes=1,
                             tasks=(0,), results_root=tmp_path))[0].store.dir for k in (4, 6)}
    assert len(dirs) == 2


def test_registry_aliases_and_required_attributes():
    reg = Registry("thing", {"base": "harness.stats:wilson_interval", "short": Alias("base", k=1),
                             "shorter": Alias("short", n=2)}, required=("__call__",))
    assert reg.resolve("shorter") == ("base", {"k": 1, "n": 2})
    with pytest.raises(ValueError, match="unregistered"):
        Registry("thing", {"a": Alias("missing")})
    strict = Registry("policy", {}, required=("act", "reset"))
    with pytest.raises(UnknownName, match="lacks act, reset: not a policy"):
        strict.load("harness.stats:wilson_interval")
