"""Demonstrations in LIBERO's official HDF5 layout (robomimic style), written from expert runs and read back.

`make demos` = an expert evaluation run that saves each episode's simulator states and actions (physics only,
fast), then `build_demos`: for every successful episode, restore each stored state, read proprio, and render
camera frames only every `frame_stride` steps (rendering is ~90% of the cost), one HDF5 file per task:

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
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

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


def quat_xyzw_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """(..., 4) xyzw quaternions -> (..., 3) axis-angle, angle in [0, pi] (the sign of q is irrelevant)."""
    q = np.asarray(q, np.float64)
    q = q * np.where(q[..., 3:4] < 0, -1.0, 1.0)
    w = np.clip(q[..., 3:4], -1.0, 1.0)
    s = np.sqrt(np.maximum(1.0 - w * w, 0.0))
    angle = 2.0 * np.arccos(w)
    return np.where(s > 1e-8, q[..., :3] * angle / np.maximum(s, 1e-8), 0.0)


def write_task_demos(path: Path, demos: list[Demo], attrs: dict) -> None:
    """Write one task's demos atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.hdf5")
    with h5py.File(tmp, "w") as f:
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
    os.replace(tmp, path)


def read_demos(path: Path, cameras: tuple[str, ...] = ("agentview", "wrist")) -> list[Demo]:
    """Read our files or official LIBERO ones; images come back upright with their step indices."""
    demos = []
    with h5py.File(path, "r") as f:
        data = f["data"]
        instruction = json.loads(data.attrs["problem_info"])["language_instruction"]
        orientation = data.attrs.get("image_orientation", "opengl")
        names = sorted(data.keys(), key=lambda k: int(k.split("_")[1]))
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


def demo_path(out_dir: Path, suite: str, task_name: str) -> Path:
    return Path(out_dir) / suite / f"{task_name}_demo.hdf5"


@dataclass(frozen=True)
class TaskJob:
    suite: str
    task_index: int
    task_name: str
    instruction: str
    trajectories: tuple[tuple[int, str, str], ...]
    """(init index, .npz path, calls JSON) of the task's successful episodes."""
    out: str
    cameras: tuple[str, ...]
    resolution: tuple[int, int]
    frame_stride: int
    demonstrator: str
    """Policy name of the runs (e.g. `expert`, `expert_dart`)."""


def action_labels(calls_json: str, executed: np.ndarray) -> np.ndarray:
    """The actions a demo teaches: the executed ones, or the demonstrator's own where its calls report them
    (`info["labels"]`, one per executed step: `expert_dart` executes perturbed actions)."""
    labels = [label for call in json.loads(calls_json) for label in call.get("labels", [])]
    if not labels:
        return executed
    labels = np.asarray(labels, executed.dtype)[:len(executed)]
    if labels.shape != executed.shape:
        raise ValueError(f"labels of shape {labels.shape} do not match the executed actions {executed.shape}")
    return labels


def _replay(env, trajectory: Path, calls_json: str, job: TaskJob) -> Demo:
    """Restore every stored state: proprio at each step, images every `frame_stride` steps."""
    data = np.load(trajectory)
    states, actions = data["states"], action_labels(calls_json, data["actions"])
    pos, quat, grip, frame_index = [], [], [], []
    images: dict[str, list[np.ndarray]] = {c: [] for c in job.cameras}
    for t, state in enumerate(states):
        obs = env.restore(state)
        pos.append(obs.proprio["eef_pos"])
        quat.append(obs.proprio["eef_quat"])
        grip.append(obs.proprio["gripper_qpos"])
        if t % job.frame_stride == 0:
            frame_index.append(t)
            for camera, frame in obs.images.items():
                images[camera].append(frame)
    return Demo(
        instruction=job.instruction, actions=actions, states=states, ee_pos=np.asarray(pos, np.float64),
        ee_ori=quat_xyzw_to_axis_angle(np.asarray(quat)), gripper_states=np.asarray(grip, np.float64),
        images={c: np.stack(v) for c, v in images.items()}, frame_index=np.asarray(frame_index, np.int64),
    )


def _build_task(job: TaskJob) -> str:
    from tasks import make_suite
    from tasks.base import ObsSpec

    suite = make_suite(job.suite)
    env = suite.make_env(job.task_index, ObsSpec(cameras=job.cameras, resolution=job.resolution))
    try:
        demos = [_replay(env, Path(path), calls, job) for _, path, calls in job.trajectories]
    finally:
        env.close()
    attrs = {
        "problem_info": {"problem_name": job.task_name, "domain_name": job.suite, "language_instruction": job.instruction},
        "env_args": {"suite": job.suite, "task_index": job.task_index, "cameras": list(job.cameras),
                     "resolution": list(job.resolution), "protocol": suite.protocol()},
        "bddl_file_name": job.task_name,
        "image_orientation": ORIENTATION,
        "frame_stride": job.frame_stride,
        "suite": job.suite,
        "task_index": job.task_index,
        "init_state_indices": json.dumps([i for i, _, _ in job.trajectories]),
        "demonstrator": job.demonstrator,
    }
    write_task_demos(Path(job.out), demos, attrs)
    return job.out


def build_demos(episodes: pd.DataFrame, out_dir: Path, cameras: tuple[str, ...], resolution: tuple[int, int],
                frame_stride: int, workers: int, progress: bool = True) -> list[Path]:
    """One HDF5 per task from the successful episodes (with trajectories) in `episodes`; skips finished files."""
    from tqdm import tqdm

    ok = episodes[episodes["success"] & (episodes["trajectory"] != "")]
    jobs = []
    for (suite, task_index, task_name), group in ok.groupby(["suite", "task_index", "task_name"]):
        out = demo_path(out_dir, suite, task_name)
        group = group.sort_values("init_index")
        demonstrator = group["policy"].iloc[0]
        if out.exists():
            with h5py.File(out) as f:
                held = f["data"].attrs.get("demonstrator", "expert")  # files from before the attribute: expert
            if held != demonstrator:
                raise ValueError(f"{out} holds demos of {held!r}, not {demonstrator!r}: choose another DEMOS folder")
            continue
        jobs.append(TaskJob(suite, int(task_index), task_name, group["instruction"].iloc[0],
                            tuple(zip(group["init_index"].astype(int), group["trajectory"], group["calls"])), str(out),
                            cameras, resolution, frame_stride, demonstrator))
    done = sorted(demo_path(out_dir, s, n) for s, n in ok[["suite", "task_name"]].drop_duplicates().itertuples(index=False))
    if jobs:
        with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            for _ in tqdm(pool.imap_unordered(_build_task, jobs), total=len(jobs), unit="task", disable=not progress):
                pass
    return done
