"""SIMPLER Bridge (WidowX) suites (simpler_carrot/spoon/stack/eggplant) behind the task-suite protocol.

The environments are SimplerEnv's Bridge visual-matching tasks as ManiSkill3 (PyPI `mani-skill==3.0.1`)
ships them. Assets come from an offline copy (`<repo>/../shared/assets/simpler`, or `$VLA_SIMPLER_ASSETS`)
that `prepare_assets` mirrors into a writable cache (`~/.cache/vla-bench/simpler-assets`, or
`$VLA_SIMPLER_ASSET_CACHE`) which `MS_ASSET_DIR` points at. Official files missing from the copy are replaced
by generated stand-ins (a box table stage, a collision-mesh eggplant); `SimplerSuite.stand_ins()` and
`versions()` say which, so every run manifest records it.

The ManiSkill env runs with obs_mode "state_dict", so `step` is physics only; the 3rd-view camera (with the
real-photo greenscreen overlay, as SimplerEnv) is rendered when an observation's images are first accessed.
Rendering needs a Vulkan device: on a CPU-only machine, Mesa >= 25's lavapipe (Debian 12: bookworm-backports
`mesa-vulkan-drivers`).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import gymnasium as gym
import numpy as np

from core.paths import REPO_ROOT as REPO
from tasks.base import ObsSpec, Observation, PrivilegedState, StepTimers, TaskEnv, TaskSpec, timed
from tasks.protocol import (
    SIMPLER_SUITES,
    SIMPLER_TABLE_TOP_Z,
    SIMPLER_TASKS,
    protocol_dict,
    simpler_protocol,
)

CAMERA_NAMES = {"agentview": "3rd_view_camera"}
"""Logical camera name -> ManiSkill sensor (the one SimplerEnv overlays the real photo on)."""

VIDEO_RESOLUTION = (240, 320)
"""Half the native 480x640, same aspect."""

BRIDGE_DIR = "data/tasks/bridge_v2_real2sim_dataset"
STAND_IN_MANIFEST = "stand_ins.json"

# Stage placement used by ManiSkill's BaseBridgeEnv._load_scene: the stage file is loaded with a +90 deg
# rotation about x and the actor is placed at -scene_offset. A stand-in must be authored in that frame.
_STAGE_ROT_X = np.pi / 2
_STAGE_TRANSLATION = (2.0634, 2.8313, 0.0)
_TABLE_THICKNESS = 0.05
_TABLE_XY = ((-0.8, 0.6), (-0.6, 0.6))
"""World x and y range of the stand-in table, metres: covers the robot base, every spawn area and the sink."""

STAND_INS = {
    # official relative path (under MS_ASSET_DIR) -> (stand-in file written, what it is)
    f"{BRIDGE_DIR}/stages/bridge_table_1_v1.glb": (
        f"{BRIDGE_DIR}/stages/bridge_table_1_v1.glb",
        f"box table, top at z={SIMPLER_TABLE_TOP_Z} m (hidden by the real-photo overlay)",
    ),
    f"{BRIDGE_DIR}/stages/bridge_table_1_v2.glb": (
        f"{BRIDGE_DIR}/stages/bridge_table_1_v2.glb",
        f"box table, top at z={SIMPLER_TABLE_TOP_Z} m (hidden by the real-photo overlay; no basket collision)",
    ),
    f"{BRIDGE_DIR}/custom/models/eggplant/textured.dae": (
        # ManiSkill looks for textured.obj, then .dae, then .glb: a .glb stand-in never shadows the official .dae
        f"{BRIDGE_DIR}/custom/models/eggplant/textured.glb",
        "eggplant visual = its collision mesh, flat purple",
    ),
}


def asset_source() -> Path:
    """The read-only offline asset copy (a folder holding `data/`)."""
    return Path(os.environ.get("VLA_SIMPLER_ASSETS", REPO.parent / "shared" / "assets" / "simpler"))


def asset_cache() -> Path:
    """The writable folder MS_ASSET_DIR points at."""
    default = Path.home() / ".cache" / "vla-bench" / "simpler-assets"
    return Path(os.environ.get("VLA_SIMPLER_ASSET_CACHE", default))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sync_tree(src: Path, dst: Path) -> None:
    """Copy files of src into dst where missing or different in size/mtime; dst files stay writable."""
    for root, _, files in os.walk(src):
        out = dst / Path(root).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in files:
            s, d = Path(root) / name, out / name
            st = s.stat()
            if d.exists() and d.stat().st_size == st.st_size and int(d.stat().st_mtime) == int(st.st_mtime):
                continue
            tmp = d.with_name(d.name + ".tmp")
            shutil.copyfile(s, tmp)
            os.chmod(tmp, 0o644)
            os.utime(tmp, (st.st_atime, st.st_mtime))
            os.replace(tmp, d)


def _write_table_stage(path: Path) -> None:
    import trimesh

    (x0, x1), (y0, y1) = _TABLE_XY
    box = trimesh.creation.box(extents=[x1 - x0, y1 - y0, _TABLE_THICKNESS])
    box.apply_translation([(x0 + x1) / 2, (y0 + y1) / 2, SIMPLER_TABLE_TOP_Z - _TABLE_THICKNESS / 2])
    stage_to_world = trimesh.transformations.rotation_matrix(_STAGE_ROT_X, [1, 0, 0])
    stage_to_world[:3, 3] = _STAGE_TRANSLATION
    box.apply_transform(np.linalg.inv(stage_to_world))  # author it in the stage frame ManiSkill loads it in
    _export(box, path)


def _write_eggplant_visual(path: Path) -> None:
    import trimesh

    mesh = trimesh.load(path.parent / "collision.obj", force="mesh")
    # a material colour (SAPIEN ignores glTF vertex colours)
    material = trimesh.visual.material.PBRMaterial(baseColorFactor=[75, 35, 95, 255], roughnessFactor=0.6)
    mesh.visual = trimesh.visual.TextureVisuals(material=material)
    _export(mesh, path)


def _export(mesh, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    mesh.export(tmp)
    os.replace(tmp, path)


@dataclass(frozen=True)
class AssetInfo:
    ms_asset_dir: Path
    stand_ins: tuple[str, ...]
    """Official files replaced by generated stand-ins, each as 'path: what it is'; empty with the full set."""


@lru_cache(maxsize=None)
def prepare_assets() -> AssetInfo:
    """Mirror the offline assets into the cache, generate stand-ins for missing files, set MS_ASSET_DIR.

    A file is official when it is in the source copy, or already in the cache and not recorded there as a
    stand-in (e.g. after `MS_ASSET_DIR=<cache> python -m mani_skill.utils.download_asset bridge_v2_real2sim`).
    Safe to call from several worker processes at once (file lock).
    """
    src, cache = asset_source(), asset_cache()
    if not (src / "data").is_dir() and not (cache / BRIDGE_DIR).is_dir():
        raise FileNotFoundError(
            f"SIMPLER assets not found: neither {src}/data (set VLA_SIMPLER_ASSETS) nor {cache}/{BRIDGE_DIR}"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest_path = cache / STAND_IN_MANIFEST
        recorded = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        if (src / "data").is_dir():
            _sync_tree(src / "data", cache / "data")
        stand_ins = {}
        for official, (written, what) in STAND_INS.items():
            if (cache / official).exists() and official not in recorded:
                if written != official:
                    (cache / written).unlink(missing_ok=True)  # an official file is back: drop the stand-in
                continue
            path = cache / written
            if official in recorded and path.exists() and _sha256(path) == recorded[official]["sha256"]:
                stand_ins[official] = recorded[official]
                continue
            (_write_table_stage if "stages/" in official else _write_eggplant_visual)(path)
            stand_ins[official] = {"file": written, "what": what, "sha256": _sha256(path)}
        tmp = manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stand_ins, indent=1, sort_keys=True))
        os.replace(tmp, manifest_path)
    _point_maniskill_at(cache)
    return AssetInfo(cache, tuple(f"{k}: {v['what']}" for k, v in sorted(stand_ins.items())))


def _point_maniskill_at(cache: Path) -> None:
    """ManiSkill reads MS_ASSET_DIR once, at import: set it before, and refuse a mismatch after."""
    if "mani_skill" in sys.modules:
        import mani_skill

        if Path(mani_skill.ASSET_DIR).resolve() != (cache / "data").resolve():
            raise RuntimeError(
                f"mani_skill was imported with ASSET_DIR={mani_skill.ASSET_DIR}; SIMPLER needs "
                f"MS_ASSET_DIR={cache} set before mani_skill is first imported"
            )
    os.environ["MS_ASSET_DIR"] = str(cache)


def render_backend() -> str:
    """ManiSkill `render_backend` argument; override with $VLA_SIMPLER_RENDER_BACKEND (e.g. "gpu").

    The one place for this workaround: SAPIEN names the Vulkan CPU device (lavapipe) "pci:0", but ManiSkill
    3.0.1 splits render-backend strings on ':' (as in "cuda:1") and mis-parses it. "cpu" reaches the same
    device: ManiSkill maps it to `sapien.Device("cpu")`, which SAPIEN resolves to the CPU Vulkan driver.
    """
    return os.environ.get("VLA_SIMPLER_RENDER_BACKEND", "cpu")


@lru_cache(maxsize=None)
def _env_class(env_id: str):
    """The ManiSkill env class, made to accept obs_mode "state_dict" and with per-instance greenscreen state."""
    prepare_assets()
    logging.getLogger("mani_skill").setLevel(logging.ERROR)
    import mani_skill.envs  # noqa: F401 - registers the environments
    from mani_skill.utils.registration import REGISTERED_ENVS

    base = REGISTERED_ENVS[env_id].cls

    class LazyRenderBridgeEnv(base):
        # The Bridge envs only list "rgb+segmentation", which renders the camera on every step; "state_dict"
        # steps physics only and we render the sensor on demand (`SimplerEnv._render_native`).
        SUPPORTED_OBS_MODES = (*base.SUPPORTED_OBS_MODES, "state_dict")

        def __init__(self, **kwargs):
            # ManiSkill 3.0.1 keeps these as mutable *class* attributes of BaseDigitalTwinEnv, so a second
            # Bridge env in one process would share (and corrupt) the first one's overlay photo and keep-ids.
            self._rgb_overlay_images = {}
            self._objects_to_remove_from_greenscreen = []
            super().__init__(**kwargs)

    LazyRenderBridgeEnv.__name__ = LazyRenderBridgeEnv.__qualname__ = f"LazyRender{base.__name__}"
    return LazyRenderBridgeEnv


class SimplerSuite:
    """One SIMPLER Bridge task as a suite (SimplerEnv reports each task separately)."""

    def __init__(self, name: str):
        if name not in SIMPLER_SUITES:
            raise ValueError(f"unknown SIMPLER suite {name!r}; valid: {', '.join(SIMPLER_SUITES)}")
        self.name = name
        self._protocol = simpler_protocol(name)

    def tasks(self) -> list[TaskSpec]:
        p = self._protocol
        return [TaskSpec(self.name, 0, p.env_id, _instruction(p.env_id), p.n_init_states, p.max_steps)]

    def make_env(self, task_index: int, obs_spec: ObsSpec) -> "SimplerEnv":
        return SimplerEnv(self.name, task_index, obs_spec)

    def protocol(self) -> dict:
        return protocol_dict(self._protocol)

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
        self.protocol_ = p = simpler_protocol(suite)
        self.spec_task = TaskSpec(suite, 0, p.env_id, _instruction(p.env_id), p.n_init_states, p.max_steps)
        self.obs_spec = obs_spec
        self.render_mode = "rgb_array"
        _, _, self.source_name, self.target_name, self.goal_relation = SIMPLER_TASKS[suite]
        cls = _env_class(p.env_id)
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
        import torch

        init_index = int((options or {}).get("init_index", 0))
        if not 0 <= init_index < self.protocol_.n_init_states:
            raise ValueError(f"init_index {init_index} out of range 0..{self.protocol_.n_init_states - 1}")
        self.timers.reset()
        # The episode's layout is a function of episode_id alone; the env itself settles the objects.
        timed(
            self.timers, "physics_s", self._env.reset,
            seed=self.protocol_.env_seed, options={"episode_id": torch.tensor([init_index])},
        )
        self._steps = 0
        self._success_any = False
        self._last_info = {}
        return self._observation(), {"success": False, "init_index": init_index}

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

    def close(self) -> None:
        env = getattr(self, "_env", None)
        if env is not None:
            env.close()
            self._env = None

    def protocol(self) -> dict:
        return protocol_dict(self.protocol_)

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


def download_official_assets() -> int:
    """`make assets-simpler`, for a machine with internet: fetch ManiSkill's official Bridge assets into the
    cache, replacing the generated stand-ins (their files and record are removed first, so an interrupted
    download simply falls back to stand-ins again at the next run)."""
    import subprocess

    cache = asset_cache()
    cache.mkdir(parents=True, exist_ok=True)
    (cache / STAND_IN_MANIFEST).unlink(missing_ok=True)
    for written, _ in STAND_INS.values():
        (cache / written).unlink(missing_ok=True)
    env = {**os.environ, "MS_ASSET_DIR": str(cache)}
    for uid in ("bridge_v2_real2sim", "widowx250s"):
        proc = subprocess.run([sys.executable, "-m", "mani_skill.utils.download_asset", uid, "-y"], env=env)
        if proc.returncode != 0:
            print(f"error: downloading SIMPLER asset {uid!r} failed (needs internet); stand-ins stay in use",
                  file=sys.stderr)
            return 2
    print(f"official SIMPLER assets in {cache}; runs now record simpler_assets=official")
    return 0


if __name__ == "__main__":
    raise SystemExit(download_official_assets())
