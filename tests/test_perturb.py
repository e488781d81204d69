"""Observation perturbations (`tasks/perturb.py`): parsed in one line, seeded by the episode alone, touching only
what the policy observes; a perturbed run is a run of its own with the perturbation in its manifest."""
import json

import numpy as np
import pytest

from core.registry import UnknownName
from harness.runner import EvalRequest, UsageError, evaluate
from tasks import expand_suites, make_suite
from tasks.base import ObsSpec
from tasks.perturb import Perturbation, paraphrases

SPEC = ObsSpec(cameras=("agentview", "wrist"), resolution=(64, 64))


def test_perturbations_have_one_canonical_name():
    assert str(Perturbation.parse("occlude:0.20, noise:0.050")) == "noise:0.05,occlude:0.2"
    assert expand_suites("libero_spatial@occlude:0.2,noise:0.05") == ("libero_spatial@noise:0.05,occlude:0.2",)
    assert expand_suites("libero@lang") == tuple(f"{s}@lang" for s in expand_suites("libero"))
    assert expand_suites("libero_spatial") == ("libero_spatial",)  # no perturbation: the plain suite


@pytest.mark.parametrize("text, fragment", [
    ("nois:0.1", "unknown perturbation 'nois' (did you mean 'noise'?); valid: camera:<value>"),
    ("noise:2", "noise:2 is out of range: valid [0.001, 1]"),
    ("noise", "needs a number in [0.001, 1]"),
    ("lang:3", "'lang' takes no value"),
    ("noise:0.1,noise:0.2", "given twice"),
])
def test_bad_perturbations_are_one_line_errors(text, fragment):
    with pytest.raises(UnknownName, match="^[^\n]*$") as err:
        expand_suites(f"libero_spatial@{text}")
    assert fragment in str(err.value)


@pytest.mark.parametrize("suite, fragment", [
    ("simpler_carrot@camera:0.02", "'camera' is not supported on simpler_carrot"),
    ("libero_90@lang", "'lang' needs paraphrases in paraphrases.json for 90 task"),
])
def test_a_suite_refuses_a_perturbation_it_cannot_take(suite, fragment, tmp_path):
    with pytest.raises(UsageError, match=fragment):
        evaluate(EvalRequest("noop", suite, episodes=1, tasks=(0,), workers=1, results_root=tmp_path))


def test_every_standard_task_has_paraphrases_that_differ_from_its_instruction():
    for suite in (*expand_suites("libero"), *expand_suites("simpler")):
        for task in make_suite(suite).tasks():
            options = paraphrases()[suite][task.name]
            assert len(options) == 3 and task.instruction not in options


@pytest.fixture(scope="module")
def clean():
    env = make_suite("libero_spatial").make_env(0, SPEC)
    yield env
    env.close()


@pytest.mark.slow
def test_a_perturbation_is_a_function_of_the_episode_and_changes_only_observations(clean):
    env = make_suite("libero_spatial@camera:0.03,noise:0.05,occlude:0.2").make_env(0, SPEC)
    try:
        first, _ = env.reset(seed=0, options={"init_index": 1})
        a = first.images
        again, _ = env.reset(seed=0, options={"init_index": 1})
        assert all((a[c] == again.images[c]).all() for c in a), "same episode, other pixels"
        other, _ = env.reset(seed=0, options={"init_index": 2})
        assert not (a["agentview"] == other.images["agentview"]).all()
        reseeded, _ = env.reset(seed=1, options={"init_index": 1})
        assert not (a["wrist"] == reseeded.images["wrist"]).all()
        obs, _ = env.reset(seed=0, options={"init_index": 1})
        ref, _ = clean.reset(seed=0, options={"init_index": 1})
        for c in ("agentview", "wrist"):
            assert 2 < np.abs(obs.images[c].astype(int) - ref.images[c]).mean() < 60
        action = np.array([0.3, -0.2, 0.1, 0.0, 0.0, 0.0, -1.0])
        for _ in range(3):
            obs, *_ = env.step(action)
            ref, *_ = clean.step(action)
        np.testing.assert_array_equal(env.state(), clean.state())  # physics untouched
        for k in ref.proprio:
            np.testing.assert_array_equal(obs.proprio[k], ref.proprio[k])
        unread, *_ = env.step(action)
        env.step(action)
        with pytest.raises(RuntimeError, match="stale"):
            unread.images  # the wrapped observation keeps the simulator's staleness check
    finally:
        env.close()


def test_without_values_an_image_is_returned_unchanged():
    img = {"agentview": np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)}
    out = Perturbation(()).images(img, {}, np.random.default_rng(0))
    assert (out["agentview"] == img["agentview"]).all()


@pytest.mark.slow
def test_a_perturbed_run_is_its_own_run_with_the_perturbation_in_its_manifest(tmp_path):
    kw = dict(tasks=(0,), episodes=1, workers=1, results_root=tmp_path)
    result = evaluate(EvalRequest("tests.fixture_policies:CameraProbe", "libero_spatial@lang,brightness:-0.3",
                                  **kw), progress=False)
    (run_dir,) = result.run_dirs
    assert run_dir.name == "libero_spatial@brightness:-0.3,lang"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["protocol"]["perturbation"]["spec"] == "brightness:-0.3,lang"
    assert manifest["protocol"]["max_steps"] == 220  # the parent's protocol otherwise
    (ep,) = result.episodes.to_dict("records")
    assert ep["instruction"] in paraphrases()["libero_spatial"][ep["task_name"]]
    clean = evaluate(EvalRequest("tests.fixture_policies:CameraProbe", "libero_spatial", **kw), progress=False)
    darker = [json.loads(i)["agentview"][1] for i in result.calls["info"]]
    normal = [json.loads(i)["agentview"][1] for i in clean.calls["info"]]
    assert all(d < n - 40 for d, n in zip(darker, normal))  # -0.3 of full scale, clipped at 0
