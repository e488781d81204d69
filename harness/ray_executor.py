"""`EXECUTOR=ray`: the same units as `harness.executors.LocalPool`, run by actors on a Ray cluster.

`RAY_ADDRESS` (or `address`) joins an existing cluster; otherwise a local Ray instance starts with `num_cpus` set to
what the requested workers need, no dashboard, a small object store, and is shut down by `close()`. Each actor runs
one `harness.worker.Worker` (the loop every executor runs: an environment per task, reused, a policy per spec,
torch pinned to `INFERENCE_THREADS`), under the same environment variables as a local worker, so an episode is
the same whichever executor ran it. Actors take one unit at a time, preferring their current task, and results
stream back as episodes finish: a lost actor or node costs its episode in flight, which is retried once on a
fresh actor (placed wherever the cluster has room), then reported as a crash, as the local pool does.

Ray is imported only here and only when a run starts, so nothing else needs it. Every node must hold this
checkout and its virtual environment at the same path as the driver (Ray ships no code here), and videos or
trajectories are written by the node that ran the episode, so they need a shared results folder.
"""
from __future__ import annotations

import logging
import math
import os
import re
import socket
import sys
from importlib import metadata
from typing import Iterator

from core.paths import REPO_ROOT
from harness.episode import EpisodeOutputs, EpisodeUnit
from harness.executors import MAX_ATTEMPTS, Outcome
from harness.worker import INFERENCE_THREADS

LOCAL_OBJECT_STORE_MB = 256
"""Object store of a local instance. Records are small (calls as plain lists) and Ray's default takes ~30% of memory
in /dev/shm."""

FORWARDED_ENV = ("HF_HUB_OFFLINE", "PYOPENGL_PLATFORM", "MUJOCO_EGL_DEVICE_ID")
"""Driver variables a local worker would inherit that matter to episodes, forwarded to actors when set."""


class _Actor:
    """One Ray actor: a `harness.worker.Worker` kept for the actor's life, so it keeps its env and policies."""

    def __init__(self, cwd: str):
        import ray

        # Relative results and checkpoint paths mean on the node what they mean to the driver (same checkout path).
        if os.path.isdir(cwd):
            os.chdir(cwd)
        from harness.worker import Worker

        self.worker = Worker()
        self.node = (socket.gethostname(), ray.util.get_node_ip_address())

    def run(self, unit, outputs: EpisodeOutputs) -> tuple[str, object, tuple[str, str]]:
        """("done", result, node) or ("failed", reason, node) when the unit's policy or env cannot be built; the
        same contract as a local worker (`harness.executors._serve`)."""
        try:
            return "done", self.worker.run(unit, outputs), self.node
        except Exception as exc:  # noqa: BLE001 - a policy or env that cannot be built is this unit's error
            self.worker.close()
            return "failed", f"{type(exc).__name__}: {exc}", self.node


def _lost_reason(err: Exception) -> str:
    """One line from Ray's multi-line actor-death message: where, and Ray's exit type."""
    text = getattr(err, "error_msg", None) or str(err)
    ip = re.search(r"\bip: (\S+)", text)
    kind = re.search(r"Worker exit type: (\w+)", text)
    why = "node died" if "node has died" in text or "NodeDiedError" in type(err).__name__ else (
        kind.group(1) if kind else type(err).__name__)
    return f"ray actor lost{' on ' + ip.group(1) if ip else ''}: {why}"


def _quiet_ray_logging() -> None:
    # Ray warns at every local start that it enabled token authentication (kept on; it is the safe default).
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)


class RayExecutor:
    """`workers` Ray actors, each requesting `cpus` CPUs, `gpus` GPUs (for a policy that uses one) and `memory_gb` of
    memory (None: no reservation). `env_vars` are set in every actor on top of the harness's own (tests pass
    fixture switches this way). Call `close()` when done: it shuts down a local instance this executor started, or
    disconnects from the cluster it joined."""

    name = "ray"

    def __init__(self, workers: int, address: str | None = None, cpus: float = 1.0, gpus: float = 0.0,
                 memory_gb: float | None = None, object_store_mb: int = LOCAL_OBJECT_STORE_MB,
                 env_vars: dict[str, str] | None = None):
        self.workers = workers
        self.address = address if address is not None else (os.environ.get("RAY_ADDRESS") or None)
        self.cpus, self.gpus, self.memory_gb = cpus, gpus, memory_gb
        self.object_store_mb = object_store_mb
        self.env_vars = dict(env_vars or {})
        self._connected = False
        self._units_per_node: dict[tuple[str, str], int] = {}

    # -- cluster ---------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Join `address`, or start a local instance sized to the workers; no-op when Ray is already initialised in
        this process (a caller's instance is left to the caller)."""
        import ray

        if ray.is_initialized():
            return
        _quiet_ray_logging()
        quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
        if self.address:
            ray.init(address=self.address, **quiet)
        else:
            # address="local": never join whatever RAY_ADDRESS a parent process left in the environment.
            ray.init(address="local", num_cpus=max(1, math.ceil(self.workers * self.cpus)),
                     num_gpus=None if self.gpus else 0, object_store_memory=self.object_store_mb * 2**20,
                     include_dashboard=False, **quiet)
        self._connected = True

    def close(self) -> None:
        """Shut down (local instance) or disconnect (cluster) if `start` did either; idempotent."""
        if self._connected:
            import ray

            ray.shutdown()
            self._connected = False

    def _demand(self) -> dict[str, float]:
        need = {"CPU": self.cpus, "GPU": self.gpus}
        if self.memory_gb:
            need["memory"] = self.memory_gb * 2**30
        return {k: v for k, v in need.items() if v}

    def _check_feasible(self) -> None:
        """A local instance that cannot host one actor would wait forever: a one-line error. A cluster may grow
        (autoscaler), so there it is a warning."""
        import ray

        from harness.runner import UsageError

        need = self._demand()
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        if any(all(res.get(k, 0) >= v for k, v in need.items()) for res in nodes):
            return
        wanted = ", ".join(f"{k} {v / 2**30:.1f} GiB" if k == "memory" else f"{k} {v:g}" for k, v in need.items())
        offered = "; ".join(", ".join(f"{k} {res.get(k, 0):g}" for k in ("CPU", "GPU")) for res in nodes) or "none"
        msg = f"no Ray node can host an actor needing {wanted} (nodes offer: {offered})"
        if not self.address:
            raise UsageError(msg)
        print(f"warning: {msg}; waiting for the cluster to grow", file=sys.stderr)

    def _env(self) -> dict[str, str]:
        """What a local worker process has: MUJOCO_GL, OMP_NUM_THREADS (as `harness.worker.Worker` sets it), the
        driver's PYTHONPATH with the repository on it (policies given as import paths), forwarded variables."""
        path = [str(REPO_ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
        env = {
            "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(INFERENCE_THREADS)),
            "PYTHONPATH": os.pathsep.join(dict.fromkeys(path)),
            **{k: os.environ[k] for k in FORWARDED_ENV if k in os.environ},
        }
        return {**env, **self.env_vars}

    # -- the Executor protocol ---------------------------------------------------------------------------------------
    def describe(self) -> dict:
        """Kind, workers, per-actor resources, the cluster address, and the nodes (hostname, IP) that ran units in
        this executor's runs so far (empty before the first unit finishes)."""
        nodes = sorted(self._units_per_node)
        try:
            version = metadata.version("ray")
        except metadata.PackageNotFoundError:
            version = "absent"
        return {
            "kind": self.name, "workers": self.workers, "address": self.address or "local instance", "ray": version,
            "actor": {"num_cpus": self.cpus, "num_gpus": self.gpus,
                      "memory_bytes": int(self.memory_gb * 2**30) if self.memory_gb else None},
            "nodes": sorted({host for host, _ in nodes}), "node_ips": sorted({ip for _, ip in nodes}),
            "units_per_node": {f"{host} ({ip})": self._units_per_node[(host, ip)] for host, ip in nodes},
        }

    def run(self, units: list[EpisodeUnit], outputs: dict[str, EpisodeOutputs]) -> Iterator[Outcome]:
        """Yield one Outcome per unit, in completion order. An actor next takes a unit of the task it holds; one with
        nothing left to do exits at once, freeing its resources (for actors still waiting for room, on a full
        cluster)."""
        import ray
        from ray.exceptions import RayActorError, RayError, RayTaskError, RuntimeEnvSetupError

        self.start()
        self._check_feasible()
        actor_cls = ray.remote(_Actor).options(
            num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0, max_task_retries=0,
            runtime_env={"env_vars": self._env()},
            **({"memory": int(self.memory_gb * 2**30)} if self.memory_gb else {}),
        )
        cwd = os.getcwd()
        pending = list(units)
        attempts: dict[tuple, int] = {}
        actors = [actor_cls.remote(cwd) for _ in range(min(self.workers, len(pending)))]
        last_env: list[tuple | None] = [None] * len(actors)
        in_flight: dict = {}  # ObjectRef -> (actor slot, unit)

        def ident(u) -> tuple:
            return u.spec_hash, u.key

        def dispatch(i: int) -> None:
            if not pending:
                ray.kill(actors[i])
                actors[i] = None
                return
            pick = next((j for j, u in enumerate(pending) if u.env_key == last_env[i]), 0)
            unit = pending.pop(pick)
            attempts[ident(unit)] = attempts.get(ident(unit), 0) + 1
            last_env[i] = unit.env_key
            in_flight[actors[i].run.remote(unit, outputs.get(unit.key, EpisodeOutputs()))] = (i, unit)

        try:
            for i in range(len(actors)):
                dispatch(i)
            while in_flight:
                (ref,), _ = ray.wait(list(in_flight), num_returns=1)
                i, unit = in_flight.pop(ref)
                try:
                    kind, payload, node = ray.get(ref)
                except RuntimeEnvSetupError:
                    raise  # the cluster cannot run the harness at all: not this unit's fault
                except RayTaskError as err:  # raised in the actor outside the worker's own handling: the unit's error
                    dispatch(i)
                    yield Outcome(unit, None, str(err).strip().splitlines()[-1][:2000])
                    continue
                except RayError as err:  # the actor's process or node is gone (or its result with it)
                    if isinstance(err, RayActorError) and err.actor_init_failed:
                        raise RuntimeError(f"a Ray actor could not start: {str(err).strip().splitlines()[-1]}") from err
                    ray.kill(actors[i])
                    actors[i], last_env[i] = actor_cls.remote(cwd), None
                    retry = attempts[ident(unit)] < MAX_ATTEMPTS
                    if retry:
                        pending.insert(0, unit)
                    dispatch(i)
                    if not retry:
                        yield Outcome(unit, None, f"worker died ({_lost_reason(err)}) {MAX_ATTEMPTS} times")
                    continue
                self._units_per_node[node] = self._units_per_node.get(node, 0) + 1
                dispatch(i)  # before yielding: the actor works while the caller stores this result
                yield Outcome(unit, payload) if kind == "done" else Outcome(unit, None, payload)
        finally:
            for actor in actors:
                if actor is not None:
                    ray.kill(actor)
