"""One rollout: the only place where a policy meets a simulator.

`run_episode` resets the task to an init state (the task env runs the protocol's settle steps), asks the
policy for action chunks, executes each chunk open loop, and returns one `EpisodeRecord`. A policy that
raises or returns malformed actions fails only its own episode: the reason is recorded and the caller
goes on.
"""
from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.io import atomic_path
from core.spec import PolicySpec
from tasks.base import TaskEnv


@dataclass(frozen=True)
class EpisodeUnit:
    """The unit of work: one episode, self-contained, so any worker can run it. `policy` carries the checkpoint
    folder resolved for the suite; `spec_hash` is the policy's identity hash (`core.spec`)."""

    policy: PolicySpec
    spec_hash: str
    suite: str
    task_index: int
    init_index: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.suite}__t{self.task_index:03d}__i{self.init_index:03d}__s{self.seed}"

    @property
    def env_key(self) -> tuple[str, int]:
        """Units with the same env key can reuse one environment."""
        return self.suite, self.task_index


@dataclass
class EpisodeRecord:
    """One episode's outcome and its policy calls. Times in seconds (wall clock, the worker's process)."""

    key: str
    policy: str
    """The policy's name as the user gave it (registry name, alias or import path)."""
    spec_hash: str
    checkpoint_sha256: str
    suite: str
    task_index: int
    task_name: str
    instruction: str
    init_index: int
    seed: int
    success: bool = False
    steps: int = 0
    """Policy steps executed after the settle steps."""
    policy_calls: int = 0
    wall_s: float = 0.0
    policy_s: float = 0.0
    """Inside the policy's `act`, minus the camera rendering it triggered (counted in `render_s`)."""
    physics_s: float = 0.0
    render_s: float = 0.0
    renders: int = 0
    """Camera images rendered (one per camera per rendered observation or video frame)."""
    partial: dict = field(default_factory=dict)
    """The suite's partial metrics at episode end (SIMPLER: success at any step, grasped); stored as columns."""
    error: str = ""
    """Empty for a completed episode; otherwise why it failed (policy exception, bad action, worker death)."""
    video: str = ""
    trajectory: str = ""
    calls: list[dict] = field(default_factory=list)
    """One dict per policy call: `env_step` (steps executed before it), `policy_s` (latency), `blocks` (executed
    backbone blocks as reference indices, or None) and `info` (the rest of the policy's info)."""
    jerk: float = float("nan")
    """Mean squared jerk of the commanded end-effector translation, (action units / step^3)^2: actions[:, :3]
    are per-step displacement commands, so jerk is their second difference. NaN below 3 steps."""
    record_s: float = 0.0
    """Time spent on the harness's own per-call records (info, latency, jerk): its overhead."""
    worker_pid: int = 0
    finished_at: float = field(default_factory=time.time)

    @classmethod
    def for_unit(cls, unit: EpisodeUnit, task, checkpoint_sha256: str = "", **fields) -> "EpisodeRecord":
        """A record of `unit` (a TaskSpec gives the task's name and instruction), other fields as given."""
        return cls(unit.key, unit.policy.name, unit.spec_hash, checkpoint_sha256, unit.suite, unit.task_index,
                   task.name, task.instruction, unit.init_index, unit.seed, **fields)


@dataclass(frozen=True)
class EpisodeOutputs:
    """Optional per-episode files. `trajectory`: an .npz with the simulator state before every step
    (`states`, (T, S)) and the executed `actions` (T, 7), enough to replay and re-render the episode."""

    video: Path | None = None
    trajectory: Path | None = None


class PolicyError(RuntimeError):
    """The policy returned something the environment must not execute."""


def check_actions(actions, action_dim: int) -> np.ndarray:
    """Return actions as a (k, action_dim) float64 array, or raise PolicyError saying what is wrong."""
    arr = np.asarray(actions, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] != action_dim:
        raise PolicyError(f"actions must have shape (k>=1, {action_dim}), got {tuple(np.shape(actions))}")
    if not np.isfinite(arr).all():
        raise PolicyError("actions contain NaN or inf")
    return arr


def _plain(value):
    """Policy info as plain Python (lists, floats) so records pickle small and serialise as JSON."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def mean_squared_jerk(actions: np.ndarray) -> float:
    """(T, >=3) commanded actions -> mean squared second difference of the translation commands (see
    `EpisodeRecord.jerk`)."""
    if len(actions) < 3:
        return float("nan")
    return float((np.diff(actions[:, :3], n=2, axis=0) ** 2).sum(axis=1).mean())


def run_episode(env: TaskEnv, policy, unit: EpisodeUnit, outputs: EpisodeOutputs = EpisodeOutputs()) -> EpisodeRecord:
    """Roll out `policy` on `env` from init state `unit.init_index`; never raises for policy failures."""
    action_dim = env.action_space.shape[0]
    rec = EpisodeRecord.for_unit(unit, env.spec_task, getattr(policy, "checkpoint_sha256", ""), worker_pid=os.getpid())
    frames: list[np.ndarray] = []
    states: list[np.ndarray] = []
    executed: list[np.ndarray] = []
    commanded: list[np.ndarray] = []
    start = time.perf_counter()
    try:
        obs, _ = env.reset(seed=unit.seed, options={"init_index": unit.init_index})
        task = env.spec_task  # after reset: a perturbed suite may draw the episode's instruction there
        rec.instruction = task.instruction
        policy.reset(task, unit.seed)
        if outputs.video is not None:
            frames.append(env.render())
        done = False
        while not done:
            t0, rendered_before = time.perf_counter(), env.timers.render_s
            out = policy.act(obs)
            t1 = time.perf_counter()
            # Cameras render lazily inside `act` when the policy first reads them: that time is render time.
            policy_s = (t1 - t0) - (env.timers.render_s - rendered_before)
            rec.policy_s += policy_s
            rec.policy_calls += 1
            info = dict(out.info)
            blocks = info.pop("blocks", None)
            rec.calls.append({"env_step": rec.steps, "policy_s": policy_s,
                              "blocks": None if blocks is None else [int(b) for b in blocks], "info": _plain(info)})
            chunk = check_actions(out.actions, action_dim)
            commanded.append(chunk)
            rec.record_s += time.perf_counter() - t1
            for action in chunk:
                if outputs.trajectory is not None:
                    states.append(env.state())
                    executed.append(action)
                obs, _, terminated, truncated, info = env.step(action)
                rec.steps += 1
                if outputs.video is not None:
                    frames.append(env.render())
                if terminated or truncated:
                    rec.success = bool(info["success"])
                    rec.partial = _plain(dict(info.get("partial", {})))
                    done = True
                    break
    except Exception as exc:  # noqa: BLE001 - any failure of one episode is data, not a crash
        rec.error = f"{type(exc).__name__}: {exc}".strip()[:2000]
        rec.error += "\n" + "".join(traceback.format_tb(exc.__traceback__)[-3:])
    rec.wall_s = time.perf_counter() - start
    rec.physics_s = env.timers.physics_s
    rec.render_s = env.timers.render_s
    rec.renders = env.timers.renders
    t0 = time.perf_counter()
    rec.jerk = mean_squared_jerk(np.concatenate(commanded)[:rec.steps]) if commanded else float("nan")
    rec.record_s += time.perf_counter() - t0
    if outputs.video is not None and frames:
        rec.video = write_video(outputs.video, frames, fps=env.metadata.get("render_fps", 20))
    if outputs.trajectory is not None and states:
        rec.trajectory = write_trajectory(outputs.trajectory, np.stack(states), np.stack(executed))
    return rec


def write_video(path: Path, frames: list[np.ndarray], fps: int) -> str:
    """Write an MP4 atomically (a killed run never leaves a truncated file under the final name)."""
    import imageio.v2 as imageio

    with atomic_path(path) as tmp:
        imageio.mimwrite(tmp, frames, fps=fps, macro_block_size=1)
    return str(path)


def write_trajectory(path: Path, states: np.ndarray, actions: np.ndarray) -> str:
    """Write states and actions as .npz atomically."""
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, states=states, actions=actions)
    return str(path)
