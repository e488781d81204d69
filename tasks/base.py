"""The task-suite protocol: what a benchmark suite offers the harness, independent of any policy.

A suite lists `TaskSpec`s and makes a gymnasium environment per task. Environments return an `Observation`
whose camera images are rendered lazily, on first access, so physics-only steps never pay for rendering.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class ObsSpec:
    """Observations a policy declares it needs; the environment renders nothing else."""

    cameras: tuple[str, ...] = ()
    """Logical camera names, e.g. ("agentview", "wrist")."""
    resolution: tuple[int, int] = (128, 128)
    """(height, width) of every camera image, pixels."""
    proprio: bool = True
    privileged: bool = False
    """Simulator ground truth (object poses, goal predicates): for scripted experts only."""


@dataclass
class PrivilegedState:
    """Ground truth a scripted expert plans from. Positions in metres (world frame), quaternions wxyz."""

    objects: dict[str, np.ndarray]
    """Body name -> (7,) position xyz + quaternion wxyz."""
    sites: dict[str, np.ndarray]
    """Region/site name -> (7,) position xyz + quaternion wxyz."""
    goal: tuple[tuple[str, ...], ...]
    """Goal predicates, lower case, e.g. (("on", "akita_black_bowl_1", "plate_1"),)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Suite-specific ground truth (joint positions of articulated fixtures, object sizes, ...)."""


class Observation:
    """One step's observation. `images` renders the declared cameras on first access, at most once.

    Accessing `images` after the environment has stepped again raises: a stale frame would silently
    desynchronise the policy from the simulator.
    """

    def __init__(
        self,
        proprio: dict[str, np.ndarray],
        privileged: PrivilegedState | None,
        render: Callable[[], dict[str, np.ndarray]],
        version: int,
        current_version: Callable[[], int],
    ):
        """`version` identifies the simulator state this observation belongs to; the env bumps it on every
        reset, step and restore, so `current_version() != version` means the scene has moved on."""
        self.proprio = proprio
        self.privileged = privileged
        self._version = version
        self._render = render
        self._current_version = current_version
        self._images: dict[str, np.ndarray] | None = None

    @property
    def images(self) -> dict[str, np.ndarray]:
        """Camera name -> (H, W, 3) uint8 upright RGB."""
        if self._images is None:
            if self._current_version() != self._version:
                raise RuntimeError("observation rendered after the env moved on (stale simulator state)")
            self._images = self._render()
        return self._images

    @property
    def rendered(self) -> bool:
        return self._images is not None


PROPRIO = {"eef_pos": 3, "eef_quat": 4, "gripper_qpos": 2}
"""Proprio every suite reports: end-effector position (m, world frame), orientation (quaternion xyzw), gripper
finger joint positions (m); float32."""


def blank_observation(spec: ObsSpec) -> Observation:
    """A black-image observation at the identity pose, in the declared cameras and resolution: input for counting
    a call's FLOPs, which do not depend on pixel values (routing may; `info["blocks"]` says what ran)."""
    proprio = {k: np.zeros(n, np.float32) for k, n in PROPRIO.items()}
    proprio["eef_quat"][3] = 1.0
    images = {c: np.zeros((*spec.resolution, 3), np.uint8) for c in spec.cameras}
    return Observation(proprio, None, lambda: images, 0, lambda: 0)


@dataclass(frozen=True)
class TaskSpec:
    """One task of a suite. `index` is its position in the suite's official order."""

    suite: str
    index: int
    name: str
    instruction: str
    n_init_states: int
    max_steps: int


@dataclass
class StepTimers:
    """Wall time spent inside the simulator, seconds, and how many camera renders happened."""

    physics_s: float = 0.0
    render_s: float = 0.0
    renders: int = 0

    def reset(self) -> None:
        self.physics_s = self.render_s = 0.0
        self.renders = 0


class TaskEnv(gym.Env):
    """Gymnasium environment of one task.

    `reset(options={"init_index": i})` puts the scene in init state i and runs the protocol's settle steps;
    `step(action)` returns (Observation, reward, terminated=success, truncated=step limit, info) with
    `info["success"]`. `render()` returns an upright RGB frame of the main camera for videos.
    """

    spec_task: TaskSpec
    timers: StepTimers
    protocol_: Any
    """The suite's protocol dataclass (`tasks.protocol`)."""
    _env: Any = None
    """The simulator's own environment object, closed by `close`."""
    MOVABLE_CAMERAS: tuple[str, ...] = ()
    """Cameras `shift_camera` can move (the `camera` perturbation needs "agentview")."""

    def protocol(self) -> dict:
        """The suite's protocol constants, JSON-ready (as in `tasks.protocol`)."""
        from tasks.protocol import protocol_dict

        return protocol_dict(self.protocol_)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    def state(self) -> np.ndarray:
        """Flattened simulator state: `restore` puts the scene back exactly (for re-rendering demonstrations)."""
        raise NotImplementedError

    def restore(self, state: np.ndarray) -> Observation:
        """Set the scene to a `state()` snapshot and return its observation (images render lazily as usual)."""
        raise NotImplementedError

    def shift_camera(self, camera: str, offset: np.ndarray) -> None:
        """Translate `camera` by `offset` (3,) metres in the world frame from its pose in the task's model, until the
        next reset (which restores it). Only for MOVABLE_CAMERAS."""
        raise NotImplementedError(f"{type(self).__name__} cannot move its cameras")


class ProtocolSuite:
    """What the suites share: a registered name, its protocol dataclass (`tasks.protocol`) and an env class.
    Subclasses set `NAMES` (valid suite names), `ENV` (the TaskEnv class, built as `ENV(name, task, obs_spec)`)
    and `protocol_of` (name -> protocol dataclass)."""

    NAMES: tuple[str, ...] = ()
    ENV: type

    @staticmethod
    def protocol_of(name: str):
        raise NotImplementedError

    def __init__(self, name: str):
        if name not in self.NAMES:
            raise ValueError(f"unknown {type(self).__name__} {name!r}; valid: {', '.join(self.NAMES)}")
        self.name = name
        self._protocol = self.protocol_of(name)

    def make_env(self, task_index: int, obs_spec: ObsSpec) -> "TaskEnv":
        return self.ENV(self.name, task_index, obs_spec)

    def protocol(self) -> dict:
        from tasks.protocol import protocol_dict

        return protocol_dict(self._protocol)


class TaskSuite(Protocol):
    """A benchmark suite: its tasks, a factory for their environments, and its protocol constants."""

    name: str

    def tasks(self) -> list[TaskSpec]: ...

    def make_env(self, task_index: int, obs_spec: ObsSpec) -> TaskEnv: ...

    def protocol(self) -> dict: ...

    def versions(self) -> dict[str, str]:
        """Simulator package versions, recorded in every run manifest."""
        ...


def timed(timers: StepTimers, attr: str, fn: Callable, *args, **kwargs):
    """Call fn and add its wall time to timers.<attr>."""
    t0 = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        setattr(timers, attr, getattr(timers, attr) + time.perf_counter() - t0)
