"""The Ray executor on a real local Ray instance (num_cpus=2) running real LIBERO episodes: a lost actor's unit is
retried once then recorded, the same units give the local pool's episodes, and a run started on the local pool
resumes on Ray."""
import contextlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.executors import LocalPool
from harness.runner import EvalRequest, UsageError, evaluate
from harness.store import RunStore

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.xdist_group("ray")
"""One pytest-xdist process runs this module: its tests share one local Ray instance."""
TIMING = ["wall_s", "policy_s", "physics_s", "render_s", "record_s", "worker_pid", "finished_at"]


@pytest.fixture(scope="module")
def ray_pool():
    """One local Ray instance for the module, started by the executor itself (2 CPUs) and shut down after."""
    from harness.ray_executor import RayExecutor

    pool = RayExecutor(2)
    pool.start()
    yield pool
    pool.close()


def run(policy, root, executor, **kw):
    kw = {"suite": "libero_spatial", "tasks": (0,), "episodes": 1, "workers": 1, **kw}
    return evaluate(EvalRequest(policy=policy, results_root=root, **kw), progress=False, executor=executor)


def same_episodes(a, b) -> None:
    """Equal episode and call tables, timing columns aside."""
    one, two = (r.episodes.drop(columns=TIMING).sort_values("key").reset_index(drop=True) for r in (a, b))
    assert one.equals(two)
    calls = [r.calls.drop(columns=["policy_s"]).sort_values(["key", "call"]).reset_index(drop=True) for r in (a, b)]
    assert calls[0].equals(calls[1])


def executors_of(result) -> list[dict]:
    return [i["executor"] for i in json.loads((result.run_dirs[0] / "manifest.json").read_text())["invocations"]]


class InterruptedAfter:
    """A real local pool interrupted, as by Ctrl-C, once `n` of its episodes have been stored."""

    name = "local"

    def __init__(self, n: int):
        self.pool, self.n = LocalPool(2), n

    def describe(self) -> dict:
        return self.pool.describe()

    def close(self) -> None:
        self.pool.close()

    def run(self, units, outputs):
        with contextlib.closing(self.pool.run(units, outputs)) as outcomes:  # ends its workers when interrupted
            for n, outcome in enumerate(outcomes, 1):
                yield outcome
                if n == self.n:
                    raise KeyboardInterrupt


@pytest.mark.slow
def test_a_run_interrupted_on_the_local_pool_resumes_on_ray(tmp_path, ray_pool, capsys):
    import ray

    resources = ray.cluster_resources()
    assert resources["CPU"] == 2 and resources["object_store_memory"] <= 256 * 2**20
    kw = {"episodes": 3, "workers": 2}
    with pytest.raises(KeyboardInterrupt):
        run("expert", tmp_path, InterruptedAfter(1), **kw)
    (run_dir,) = tmp_path.glob("*/libero_spatial")
    kept = RunStore(tmp_path, run_dir.parent.name, "libero_spatial").load()
    resumed = run("expert", tmp_path, ray_pool, **kw)
    assert "resuming: 1 episode(s) already on disk, 2 to run" in capsys.readouterr().out
    eps = resumed.episodes
    assert len(eps) == 3 and (eps["error"] == "").all() and eps["success"].all()
    again = eps[eps["key"].isin(kept["key"])].reset_index(drop=True)
    assert len(kept) == 1 and again.equals(kept), "the stored episode was run again"
    first, second = executors_of(resumed)
    assert first["kind"] == "local" and second["kind"] == "ray" and second["workers"] == 2
    assert second["nodes"] == [socket.gethostname()] and sum(second["units_per_node"].values()) == 2


@pytest.mark.slow
def test_a_learned_policy_runs_the_same_episodes_on_ray_and_on_the_local_pool(tmp_path, ray_pool):
    """The routed student, whose block choices changed with torch's thread count before it was pinned (short
    episodes: both succeed in ~100 steps)."""
    kw = {"suite": "libero_object", "tasks": (1,), "episodes": 2, "workers": 2}
    on_ray = run("actdistill", tmp_path / "ray", ray_pool, **kw)
    local = run("actdistill", tmp_path / "local", LocalPool(2), **kw)
    assert (on_ray.episodes["error"] == "").all() and on_ray.calls["blocks"].notna().all()
    same_episodes(on_ray, local)


@pytest.mark.slow
def test_an_actor_killed_mid_episode_has_its_unit_retried_once(tmp_path, ray_pool):
    from harness.ray_executor import RayExecutor

    marker = tmp_path / "crashed-once"
    pool = RayExecutor(1, env_vars={"CRASH_ONCE_MARKER": str(marker)})  # joins the module's instance
    (ep,) = run("tests.fixture_policies:Segfaults", tmp_path, pool).episodes.to_dict("records")
    assert marker.exists() and ep["error"] == "" and ep["steps"] == 220


@pytest.mark.slow
def test_an_actor_dying_twice_is_recorded_as_the_unit_s_error(tmp_path, ray_pool):
    (ep,) = run("tests.fixture_policies:Segfaults", tmp_path, ray_pool).episodes.to_dict("records")
    assert ep["error"].startswith("worker died (ray actor lost") and ep["error"].endswith(") 2 times")
    assert not ep["success"]


@pytest.mark.slow
def test_an_actor_no_node_can_host_is_a_one_line_error(ray_pool):
    from core.spec import PolicySpec
    from harness.episode import EpisodeUnit
    from harness.ray_executor import RayExecutor

    with pytest.raises(UsageError, match="no Ray node can host an actor needing CPU 1, GPU 1"):
        next(RayExecutor(1, gpus=1).run([EpisodeUnit(PolicySpec("noop"), "", "libero_spatial", 0, 0, 0)], {}))


@pytest.mark.parametrize("command", [["eval", "--policy", "noop", "--suite", "libero_spatial"], ["bench-harness"]])
def test_an_unknown_executor_is_a_one_line_error(command):
    out = subprocess.run([sys.executable, "-m", "harness.cli", *command, "--executor", "dask"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr == "error: unknown executor 'dask'; valid: local, ray\n"
