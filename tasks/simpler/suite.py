"""SIMPLER Bridge (WidowX) suites (simpler_carrot/spoon/stack/eggplant) behind the task-suite protocol.

The environments are SimplerEnv's Bridge visual-matching tasks as ManiSkill3 (PyPI `mani-skill==3.0.1`) ships
them, on the assets `assets.prepare_assets` provides. The ManiSkill env runs with obs_mode "state_dict", so
`step` is physics only; the 3rd-view camera (with the real-photo greenscreen overlay, as SimplerEnv) is rendered
when an observation's images are first accessed. Rendering needs a Vulkan device: on a CPU-only machine, Mesa
>= 25's lavapipe (Debian 12: bookworm-backports `mesa-vulkan-drivers`).
"""
from __future__ import annotations

from dataclasses import replace
from importlib import metadata

import gymnasium as gym
import numpy as np

from tasks import layouts
from tasks.base import (ObsSpec, Observation, PrivilegedState, ProtocolSuite, StepTimers, TaskEnv, TaskSpec,
                        timed)
from tasks.protocol import (SIMPLER_SUITES, SIMPLER_TABLE_TOP_Z, SIMPLER_TASKS, SIMPLER_TRAIN_SUITES, SimplerProtocol,
                            simpler_protocol)
from tasks.simpler.assets import prepare_assets
from tasks.simpler import layouts as simpler_layouts
from tasks.simpler.maniskill_patch import env_class, render_backend

CAMERA_NAMES = {"agentview": "3rd_view_camera"}
"""Logical camera name -> ManiSkill sensor (the one SimplerEnv overlays the real photo on)."""

VIDEO_RESOLUTION = (240, 320)
"""Half the native 480x640, same aspect."""


class SimplerSuite(ProtocolSuite):
    """One SIMPLER Bridge task as a suite (SimplerEnv reports each task separately), or its training layouts
    (`simpler_<task>_train`, `tasks.simpler.layouts`)."""

    NAMES = (*SIMPLER_SUITES, *SIMPLER_TRAIN_SUITES)

    @staticmethod
    def protocol_of(name: str) -> SimplerProtocol:
        return _protocol(name)

    def tasks(self) -> list[TaskSpec]:
        p = self._protocol
        return [TaskSpec(self.name, 0, p.env_id, _instruction(p.env_id), p.n_init_states, p.max_steps)]

    def stand_ins(self) -> list[str]:
        """Official asset files replaced by stand-ins in this run (empty with the full official set)."""
        return list(prepare_assets().stand_ins)

    def versions(self) -> dict[str, str]:
        out = {pkg: metadata.version(pkg) for pkg in ("mani-skill", "sapien", "numpy", "torch")}
        out["simpler_assets"] = "official" if not self.stand_ins() else "stand-ins: " + "; ".join(self.stand_ins())
        return out


_INSTRUCTIONS = {
    # ManiSkill 3.0.1 `get_language_instruction` of each env (needs no env instance here).
    "PutCarrotOnPlateInScene-v1": "put carrot on plate",
    "PutSpoonOnTableClothInScene-v1": "put the spoon on the towel",
    "StackGreenCubeOnYellowCubeBakedTexInScene-v1": "stack the green block on the yellow block",
    "PutEggplantInBasketScene-v1": "put eggplant into yellow basket",
}


def _protocol(suite: str, required: bool = True) -> SimplerProtocol:
    """A suite's protocol; a training-layout suite's records its committed layouts file and holds its layouts
    (ValueError, one line, when the file is missing or stale; without `required`, then the drawing defaults)."""
    protocol = simpler_protocol(suite)
    if suite not in SIMPLER_TRAIN_SUITES:
        return protocol
    try:
        held = layouts.load(suite)[0]
    except ValueError:
        if required:
            raise
        return protocol
    return replace(protocol, n_init_states=len(held.states), layouts_sha256=layouts.digest(suite))


def _instruction(env_id: str) -> str:
    return _INSTRUCTIONS[env_id]


def _np(x) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)


class SimplerEnv(TaskEnv):
    """One SIMPLER Bridge task as a gymnasium environment (see `TaskEnv` for the contract).

    Differences from LIBERO, both from SimplerEnv's protocol: an episode always runs `max_steps` steps
    (`terminated` is always False, `truncated` True at the limit) and `info["success"]` at that last step is the
    result; the last step's `info["partial"]` holds {"success_any", "grasped", "consecutive_grasp"}.

    Proprio: `eef_pos` (3,) world metres and `eef_quat` (4,) world, **xyzw** (robosuite's order, as LIBERO) of
    the WidowX `ee_gripper_link` (the controlled frame); `gripper_qpos` (2,) left/right finger joints, metres
    (0.037 open at reset, ~0.015 closed; controller range 0.014..0.038).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(self, suite: str, task_index: int, obs_spec: ObsSpec):
        if task_index != 0:
            raise ValueError(f"{suite} has one task (index 0), got {task_index}")
        unknown = [c for c in obs_spec.cameras if c not in CAMERA_NAMES]
        if unknown:
            raise ValueError(f"unknown SIMPLER camera(s) {unknown}; valid: {', '.join(CAMERA_NAMES)}")
        self.protocol_ = p = _protocol(suite, required=False)  # drawing the layouts needs the env
        self.spec_task = TaskSpec(suite, 0, p.env_id, _instruction(p.env_id), p.n_init_states, p.max_steps)
        self.obs_spec = obs_spec
        self.render_mode = "rgb_array"
        _, _, self.source_name, self.target_name, self.goal_relation = SIMPLER_TASKS[SIMPLER_TRAIN_SUITES.get(suite, suite)]
        cls = env_class(p.env_id)
        try:
            self._env = cls(obs_mode="state_dict", sim_backend="cpu", render_backend=render_backend(), num_envs=1)
        except RuntimeError as err:
            if "rendering device" in str(err) or "vulkan" in str(err).lower():
                raise RuntimeError(
                    f"{err}. SAPIEN needs a Vulkan device; on a CPU-only Debian 12 install Mesa >= 25 lavapipe: "
                    "apt-get install -t bookworm-backports mesa-vulkan-drivers"
                ) from err
            raise
        space = self._env.single_action_space
        self.action_space = gym.spaces.Box(space.low, space.high, shape=(p.action_dim,), dtype=np.float32)
        self._sim_names = {self.source_name: self._env.source_obj_name, self.target_name: self._env.target_obj_name}
        self.evaluation_configs = (_np(self._env.xyz_configs), _np(self._env.quat_configs))
        """ManiSkill's position (P, 2, 3) and orientation (Q, 2, 4) rows of the evaluation episodes."""
        self.timers = StepTimers()
        self._steps = 0
        self._success_any = False
        self._last_info: dict = {}
        self._version = 0
        """Bumped with every new observation (reset, step, restore): identifies the simulator state."""
        self._frame: tuple[int, np.ndarray] | None = None
        """(version, native RGB frame): one render serves the policy's images and the video frame."""

    # -- gymnasium API -------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        init_index = int((options or {}).get("init_index", 0))
        if not 0 <= init_index < self.protocol_.n_init_states:
            raise ValueError(f"init_index {init_index} out of range 0..{self.protocol_.n_init_states - 1}")
        self.timers.reset()
        if self.spec_task.suite in SIMPLER_TRAIN_SUITES:
            self.place(*simpler_layouts.configs_of(layouts.load(self.spec_task.suite)[0].states[init_index]))
        else:
            self._reset_episode(init_index)
        self._steps = 0
        self._success_any = False
        self._last_info = {}
        return self._observation(), {"success": False, "init_index": init_index}

    def _reset_episode(self, episode: int) -> None:
        """ManiSkill's reset to `episode`: its layout is a function of the episode id alone; the env itself settles
        the objects."""
        import torch

        timed(self.timers, "physics_s", self._env.reset, seed=self.protocol_.env_seed,
              options={"episode_id": torch.tensor([episode])})

    def place(self, xyz: np.ndarray, quat: np.ndarray) -> np.ndarray:
        """Reset to a layout given as one config row (source, target): xyz (2, 3), quat (2, 4) wxyz, placed and
        settled as an evaluation episode's; returns where the objects came to rest, (2, 3) world metres."""
        import torch

        saved = self._env.xyz_configs, self._env.quat_configs
        self._env.xyz_configs = torch.as_tensor(np.asarray(xyz)[None], dtype=torch.float32)
        self._env.quat_configs = torch.as_tensor(np.asarray(quat)[None], dtype=torch.float32)
        try:
            self._reset_episode(0)
        finally:
            self._env.xyz_configs, self._env.quat_configs = saved
        return np.stack([_np(self._env.objs[self._sim_names[name]].pose.raw_pose)[0, :3]
                         for name in (self.source_name, self.target_name)]).astype(np.float64)

    def step(self, action):
        action = np.asarray(action, np.float32).reshape(self.protocol_.action_dim)
        _, _, _, _, raw = timed(self.timers, "physics_s", self._env.step, action)
        self._steps += 1
        self._last_info = raw
        success = bool(_np(raw["success"]).reshape(-1)[0])
        self._success_any |= success
        truncated = self._steps >= self.protocol_.max_steps
        info = {"success": success}
        if truncated:
            info["partial"] = self.partial_metrics()
        # SimplerEnv judges success at the final step: never terminate early.
        return self._observation(), float(success), False, truncated, info

    def partial_metrics(self) -> dict[str, bool]:
        """SimplerEnv's partial metrics so far: success at any step, source grasped (any step / >= 5 in a row)."""
        raw = self._last_info

        def flag(key: str) -> bool:
            return bool(_np(raw[key]).reshape(-1)[0]) if key in raw else False

        return {
            "success_any": self._success_any,
            "grasped": flag("is_src_obj_grasped"),
            "consecutive_grasp": flag("consecutive_grasp"),
        }

    def render(self) -> np.ndarray:
        """Upright agentview RGB frame at VIDEO_RESOLUTION, for episode videos."""
        return _resize(self._render_native(), VIDEO_RESOLUTION)

    def state(self) -> np.ndarray:
        """ManiSkill's flat `get_state()` (every actor's pose/velocity, robot qpos/qvel), float64.

        `self._env.set_state(...)` restores the scene for re-rendering. It does not hold the EE controller's
        accumulated target pose, so an exact physics replay re-executes the actions from `reset` instead.
        """
        return _np(self._env.get_state())[0].astype(np.float64)

    def restore(self, state: np.ndarray) -> Observation:
        import torch

        timed(self.timers, "physics_s", self._env.set_state, torch.as_tensor(state[None], dtype=torch.float32))
        return self._observation()

    # -- observations --------------------------------------------------------------------------------------
    def _observation(self) -> Observation:
        pose = self._ee_pose()
        proprio = {
            "eef_pos": pose[:3].astype(np.float32),
            "eef_quat": pose[[4, 5, 6, 3]].astype(np.float32),  # wxyz -> xyzw (robosuite convention)
            "gripper_qpos": _np(self._env.agent.robot.get_qpos())[0, -2:].astype(np.float32),
        }
        privileged = self._privileged_state() if self.obs_spec.privileged else None
        self._version += 1
        self._frame = None
        return Observation(proprio, privileged, self._render_declared, self._version, lambda: self._version)

    def _ee_pose(self) -> np.ndarray:
        link = self._env.agent.robot.links_map["ee_gripper_link"]
        return _np(link.pose.raw_pose)[0].astype(np.float64)

    def _render_declared(self) -> dict[str, np.ndarray]:
        if not self.obs_spec.cameras:
            return {}
        frame = self._render_native()
        return {c: _resize(frame, self.obs_spec.resolution) for c in self.obs_spec.cameras}

    def _render_native(self) -> np.ndarray:
        """The 3rd-view camera at its native 480x640 with the real-photo overlay, as SimplerEnv's obs."""
        if self._frame is not None and self._frame[0] == self._version:
            return self._frame[1]
        frame = timed(self.timers, "render_s", self._render_sensor, CAMERA_NAMES["agentview"])
        self.timers.renders += 1
        self._frame = (self._version, frame)
        return frame

    def _render_sensor(self, uid: str) -> np.ndarray:
        # What ManiSkill's rgb+segmentation obs mode does for this camera, on demand (mani-skill 3.0.1 API).
        env = self._env
        env.scene.update_render(update_sensors=True, update_human_render_cameras=False)
        camera = env.scene.sensors[uid]
        camera.capture()
        data = camera.get_obs(rgb=True, segmentation=True, depth=False, position=False)
        rgb = data["rgb"]
        if env.rgb_overlay_mode != "none" and uid in (env._rgb_overlay_images or {}):
            rgb = env._green_sceen_rgb(rgb, data["segmentation"], env._rgb_overlay_images[uid])
        return np.ascontiguousarray(_np(rgb)[0].astype(np.uint8))

    def _privileged_state(self) -> PrivilegedState:
        env = self._env
        objects, half_extents = {}, {}
        for name, sim_name in self._sim_names.items():
            objects[name] = _np(env.objs[sim_name].pose.raw_pose)[0].astype(np.float64)
            bbox = env.model_db[sim_name]["bbox"]
            scale = float(env.episode_model_scales[sim_name])
            half_extents[name] = (np.asarray(bbox["max"]) - np.asarray(bbox["min"])) * scale / 2
        objects["source"] = objects[self.source_name]
        objects["target"] = objects[self.target_name]
        half_extents["source"] = half_extents[self.source_name]
        half_extents["target"] = half_extents[self.target_name]
        sites = {}
        if hasattr(env, "sink"):
            sites["sink"] = _np(env.sink.pose.raw_pose)[0].astype(np.float64)
        base = _np(env.agent.robot.pose.raw_pose)[0].astype(np.float64)
        extra = {
            "half_extents": half_extents,  # object frame, metres: SimplerEnv's model_db bbox x scale / 2
            "table_z": SIMPLER_TABLE_TOP_Z,
            "robot_base": base,
            "eef_pose": self._ee_pose(),
            "gripper_qpos": _np(env.agent.robot.get_qpos())[0, -2:].astype(np.float64),
            "is_src_obj_grasped": self.partial_metrics()["grasped"],
            "sim_names": dict(self._sim_names),
            "frames": "poses: world, xyz + quat wxyz; actions: xyz delta in robot_base frame (see protocol)",
        }
        goal = ((self.goal_relation, self.source_name, self.target_name),)
        return PrivilegedState(objects=objects, sites=sites, goal=goal, extra=extra)


def _resize(frame: np.ndarray, resolution: tuple[int, int]) -> np.ndarray:
    h, w = resolution
    if frame.shape[:2] == (h, w):
        return frame
    import cv2

    return np.ascontiguousarray(cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA))


SimplerSuite.ENV = SimplerEnv
