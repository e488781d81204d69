"""The demonstration file format: LIBERO's official HDF5 layout (robomimic style), one file per task.

Written by `harness.demos` from expert runs, read by training (`policies.vla.train`):

    data                  attrs: problem_info (JSON: problem_name, domain_name, language_instruction),
                                 env_args (JSON), bddl_file_name, num_demos, total, image_orientation,
                                 frame_stride, suite, task_index, demonstrator (policy name)
    data/demo_i           attrs: num_samples, init_state_index
        actions (T, 7)  states (T, S)  rewards (T,)  dones (T,)
        obs/ee_pos (T, 3)  obs/ee_ori (T, 3, axis-angle)  obs/ee_states (T, 6)  obs/gripper_states (T, 2)
        obs/agentview_rgb (F, H, W, 3)  obs/eye_in_hand_rgb (F, H, W, 3)  obs/frame_index (F,)

Official LIBERO files have images at every step (frame_stride 1, no frame_index) in MuJoCo's OpenGL
orientation; `read_demos` reads both and returns upright images (protocol: rot180).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from core.io import atomic_path

CAMERA_KEYS = {"agentview": "agentview_rgb", "wrist": "eye_in_hand_rgb"}
"""Logical camera -> dataset key under obs/ (LIBERO's names)."""
ORIENTATION = "rot180"
"""How our stored images relate to MuJoCo's framebuffer: already rotated upright, as policies see them."""


@dataclass
class Demo:
    instruction: str
    actions: np.ndarray
    states: np.ndarray
    ee_pos: np.ndarray
    ee_ori: np.ndarray
    """Axis-angle (rad) of the end-effector orientation."""
    gripper_states: np.ndarray
    images: dict[str, np.ndarray] = field(default_factory=dict)
    """Logical camera -> (F, H, W, 3) uint8 upright frames, taken at steps `frame_index`."""
    frame_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def proprio(self) -> np.ndarray:
        """(T, 8): ee_pos, ee_ori, gripper_states, the policy's proprio vector."""
        return np.concatenate([self.ee_pos, self.ee_ori, self.gripper_states], axis=1).astype(np.float32)


def _demo_number(name: str) -> int:
    """`demo_12` -> 12: demos in the order they were written (not `demo_10` before `demo_2`)."""
    return int(name.split("_")[1])


def write_task_demos(path: Path, demos: list[Demo], attrs: dict) -> None:
    """Write one task's demos atomically."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        for key, value in attrs.items():
            data.attrs[key] = json.dumps(value) if isinstance(value, dict) else value
        data.attrs["num_demos"] = len(demos)
        data.attrs["total"] = int(sum(len(d.actions) for d in demos))
        for i, d in enumerate(demos):
            g = data.create_group(f"demo_{i}")
            t = len(d.actions)
            g.attrs["num_samples"] = t
            g.create_dataset("actions", data=d.actions.astype(np.float64))
            g.create_dataset("states", data=d.states.astype(np.float64))
            rewards = np.zeros(t, np.uint8)
            rewards[-1] = 1
            g.create_dataset("rewards", data=rewards)
            g.create_dataset("dones", data=rewards.copy())
            obs = g.create_group("obs")
            obs.create_dataset("ee_pos", data=d.ee_pos)
            obs.create_dataset("ee_ori", data=d.ee_ori)
            obs.create_dataset("ee_states", data=np.concatenate([d.ee_pos, d.ee_ori], axis=1))
            obs.create_dataset("gripper_states", data=d.gripper_states)
            obs.create_dataset("frame_index", data=d.frame_index)
            for camera, frames in d.images.items():
                obs.create_dataset(CAMERA_KEYS[camera], data=frames, compression="gzip", compression_opts=4,
                                   chunks=(1, *frames.shape[1:]))


def read_demos(path: Path, cameras: tuple[str, ...] = ("agentview", "wrist")) -> list[Demo]:
    """Read our files or official LIBERO ones; images come back upright with their step indices."""
    demos = []
    with h5py.File(path, "r") as f:
        data = f["data"]
        instruction = json.loads(data.attrs["problem_info"])["language_instruction"]
        orientation = data.attrs.get("image_orientation", "opengl")
        names = sorted(data.keys(), key=_demo_number)
        for name in names:
            g = data[name]
            obs = g["obs"]
            t = len(g["actions"])
            images = {}
            for camera in cameras:
                key = CAMERA_KEYS[camera]
                if key in obs:
                    frames = obs[key][()]
                    images[camera] = frames if orientation == ORIENTATION else np.ascontiguousarray(frames[:, ::-1, ::-1])
            frame_index = obs["frame_index"][()] if "frame_index" in obs else np.arange(t)
            demos.append(Demo(
                instruction=instruction, actions=g["actions"][()], states=g["states"][()],
                ee_pos=obs["ee_pos"][()], ee_ori=obs["ee_ori"][()], gripper_states=obs["gripper_states"][()],
                images=images, frame_index=frame_index,
            ))
    return demos


def _first_demo_frames(path: Path) -> dict[str, tuple[int, int]]:
    """Camera -> (H, W) of the frames the file's first demo holds."""
    with h5py.File(path, "r") as f:
        data = f["data"]
        obs = data[min(data.keys(), key=_demo_number)]["obs"]
        return {c: tuple(obs[key].shape[1:3]) for c, key in CAMERA_KEYS.items() if key in obs}


def demo_cameras(paths: list[Path]) -> tuple[str, ...]:
    """The cameras (in `CAMERA_KEYS` order) whose frames every file's first demo holds: LIBERO's files hold
    agentview and wrist, SIMPLER's agentview only."""
    held = set(CAMERA_KEYS)
    for path in paths:
        held &= set(_first_demo_frames(path))
    return tuple(c for c in CAMERA_KEYS if c in held)


def demo_resolution(paths: list[Path], cameras: tuple[str, ...]) -> int:
    """The square frame size (pixels) of `cameras` in every file's first demo; ValueError naming the files when
    they differ or a frame is not square."""
    sizes = {path: {frames[c] for c in cameras} for path, frames in ((p, _first_demo_frames(p)) for p in paths)}
    found = set().union(*sizes.values())
    if len(found) != 1 or len({*next(iter(found))}) != 1:
        raise ValueError(f"demo frames must share one square size; found {sorted(found)} in "
                         f"{', '.join(sorted(str(p) for p in sizes))}")
    return next(iter(found))[0]


def demo_path(out_dir: Path, suite: str, task_name: str) -> Path:
    return Path(out_dir) / suite / f"{task_name}_demo.hdf5"
