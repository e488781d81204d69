"""Fast checks of the pieces the runner composes (no simulator)."""
import numpy as np
import pytest

from harness.episode import EpisodeRecord, PolicyError, check_actions
from core.registry import Registry, UnknownName
from harness.stats import wilson_interval
from harness.store import RunMismatch, RunStore


def test_check_actions_accepts_chunks_and_single_actions():
    assert check_actions(np.zeros(7), 7).shape == (1, 7)
    assert check_actions(np.zeros((5, 7)), 7).shape == (5, 7)


@pytest.mark.parametrize("bad, why", [(np.zeros((2, 6)), "shape"), (np.full(7, np.inf), "NaN or inf"),
                                       (np.zeros((0, 7)), "shape"), (np.zeros((2, 2, 7)), "shape")])
def test_check_actions_rejects(bad, why):
    with pytest.raises(PolicyError, match=why):
        check_actions(bad, 7)


def test_registry_is_lazy_and_suggests():
    reg = Registry("thing", {"alpha": "no.such.module:Alpha", "beta": "harness.stats:wilson_interval"})
    assert reg.load("beta") is wilson_interval  # the broken entry "alpha" was never imported
    with pytest.raises(UnknownName, match=r"did you mean 'alpha'.*valid: alpha, beta"):
        reg.check("alpah")
    assert reg.load("harness.stats:wilson_interval") is wilson_interval


def test_wilson_interval():
    lo, hi = wilson_interval(50, 50)
    assert hi == 1.0 and 0.92 < lo < 0.93
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and 0.27 < hi < 0.28


def _record(i, success):
    return EpisodeRecord("p", "", "s", 0, "task", "do it", i, 0, success=success, steps=10)


def test_store_roundtrip_and_manifest_guard(tmp_path):
    store = RunStore(tmp_path, "p", "", "s")
    manifest = {"policy": "p", "checkpoint_sha256": "", "suite": "s", "protocol": {"max_steps": 3},
                "simulator": {"mujoco": "3.3.6"}}
    store.write_manifest({**manifest, "invocation": {"argv": ["a"]}})
    for i in range(3):
        store.write_episode(f"k{i}", _record(i, i % 2 == 0))
    assert store.completed_keys() == {"k0", "k1", "k2"}
    df = store.load()
    assert list(df.sort_values("init_index")["success"]) == [True, False, True]
    store.write_manifest({**manifest, "invocation": {"argv": ["b"]}})  # same conditions: resumes
    with pytest.raises(RunMismatch, match="protocol"):
        store.write_manifest({**manifest, "protocol": {"max_steps": 4}, "invocation": {}})
    with pytest.raises(RunMismatch, match="simulator"):
        store.write_manifest({**manifest, "simulator": {"mujoco": "2.3.7"}, "invocation": {}})
