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


def _record(i, success, blocks=None):
    calls = [{"env_step": 8 * c, "policy_s": 0.01, "blocks": blocks, "info": {"n": c}} for c in range(2)]
    return EpisodeRecord(f"s__t000__i{i:03d}__s0", "p", "h", "", "s", 0, "task", "do it", i, 0, success=success,
                         steps=10, policy_calls=2, calls=calls, partial={"grasped": success})


MANIFEST = {"schema_version": 2, "identity": {"family": "p", "checkpoint_sha256": "", "params": {}}, "suite": "s",
            "protocol": {"max_steps": 3}, "simulator": {"mujoco": "3.3.6"}, "inference": {"torch_threads": 1},
            "compute": {"extra_flops": 100, "block_flops": [10, 30], "reference": None}}


def test_store_roundtrip_compaction_and_manifest_guard(tmp_path):
    store = RunStore(tmp_path, "p-h", "s")
    store.write_manifest({**MANIFEST, "invocation": {"argv": ["a"]}})
    for i in range(3):
        store.write_episode(_record(i, i % 2 == 0, blocks=[1] if i else [0, 1]))
    assert store.completed_keys() == {f"s__t000__i{i:03d}__s0" for i in range(3)}
    before = store.load().sort_values("init_index")
    assert list(before["success"]) == [True, False, True] and list(before["partial_grasped"]) == [True, False, True]
    calls = store.load_calls()
    assert len(calls) == 6 and set(calls["gflops"] * 1e9) == {140.0, 130.0}
    assert set(calls["exec_fraction"]) == {1.0, 0.75}
    assert store.compact() == 3 and not list(store.fragments_dir.glob("*"))
    after = store.load().sort_values("init_index")
    assert after.drop(columns=[]).reset_index(drop=True).equals(before.reset_index(drop=True))
    assert len(store.load_calls()) == 6 and store.completed_keys() == set(after["key"])
    store.write_manifest({**MANIFEST, "invocation": {"argv": ["b"]}})  # same conditions: resumes
    with pytest.raises(RunMismatch, match="protocol"):
        store.write_manifest({**MANIFEST, "protocol": {"max_steps": 4}, "invocation": {}})
    with pytest.raises(RunMismatch, match="inference"):
        store.write_manifest({**MANIFEST, "inference": {"torch_threads": 2}, "invocation": {}})


def test_a_calls_fragment_without_its_episode_is_not_a_finished_episode(tmp_path):
    """A run killed between the two fragment writes: the episode is not counted and runs again on resume."""
    store = RunStore(tmp_path, "p-h", "s")
    store.write_manifest({**MANIFEST, "invocation": {}})
    store.write_episode(_record(0, True))
    (store.fragments_dir / "s__t000__i000__s0.episode.parquet").unlink()
    assert store.completed_keys() == set() and len(store.load()) == 0 and len(store.load_calls()) == 0
