"""`make demos`: an expert evaluation run that saves each episode's simulator states and actions (physics only,
fast), then `build_demos`: for every successful episode, restore each stored state, read proprio, and render
camera frames only every `frame_stride` steps (rendering is ~90% of the cost), one file per task in the format
of `core.demofile`. A training-layout suite's demos (`libero_spatial_train`, `tasks.layouts`) are files of its
parent suite (`<out>/libero_spatial/`, what teacher training for libero_spatial reads), marked with their suite.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from core.demofile import ORIENTATION, Demo, demo_path, write_task_demos
from core.geometry import quat_xyzw_to_axis_angle
from tasks.protocol import TRAIN_SUITES


@dataclass(frozen=True)
class TaskJob:
    suite: str
    task_index: int
    task_name: str
    instruction: str
    trajectories: tuple[tuple[int, str, tuple[str, ...]], ...]
    """(init index, .npz path, each call's info JSON in call order) of the task's successful episodes."""
    out: str
    cameras: tuple[str, ...]
    resolution: tuple[int, int]
    frame_stride: int
    demonstrator: str
    """Policy name of the runs (e.g. `expert`, `expert_dart`)."""

    # An executor unit (`harness.executors`): one task's demo file, rendered with a worker's environment.
    spec_hash = ""

    @property
    def key(self) -> str:
        return self.out

    @property
    def env_key(self) -> tuple[str, int]:
        return self.suite, self.task_index

    def run(self, worker) -> str:
        return _build_task(self, worker)


def folder_suite(suite: str) -> str:
    """The suite whose folder holds `suite`'s demo files: the parent of a training-layout suite, else itself."""
    return TRAIN_SUITES.get(suite, suite)


def check_demo_folder(out_dir: Path, suite: str) -> None:
    """ValueError (one line) when `suite`'s demo folder already holds files of another suite (evaluation init states
    and training layouts share a folder name, so they need different `out_dir`s)."""
    for path in sorted((Path(out_dir) / folder_suite(suite)).glob("*_demo.hdf5")):
        with h5py.File(path) as f:
            held = f["data"].attrs.get("suite", path.parent.name)
        if held != suite:
            raise ValueError(f"{path.parent} holds demos of {held!r}, not {suite!r}: choose another DEMOS folder")


def action_labels(infos: tuple[str, ...], executed: np.ndarray) -> np.ndarray:
    """The actions a demo teaches: the executed ones, or the demonstrator's own where its calls report them
    (`info["labels"]`, one per executed step: `expert_dart` executes perturbed actions)."""
    labels = [label for info in infos for label in json.loads(info).get("labels", [])]
    if not labels:
        return executed
    labels = np.asarray(labels, executed.dtype)[:len(executed)]
    if labels.shape != executed.shape:
        raise ValueError(f"labels of shape {labels.shape} do not match the executed actions {executed.shape}")
    return labels


def _replay(env, trajectory: Path, infos: tuple[str, ...], job: TaskJob) -> Demo:
    """Restore every stored state: proprio at each step, images every `frame_stride` steps."""
    data = np.load(trajectory)
    states, actions = data["states"], action_labels(infos, data["actions"])
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


def _build_task(job: TaskJob, worker) -> str:
    from tasks.base import ObsSpec

    env = worker.env(job, ObsSpec(cameras=job.cameras, resolution=job.resolution))
    demos = [_replay(env, Path(path), infos, job) for _, path, infos in job.trajectories]
    attrs = {
        "problem_info": {"problem_name": job.task_name, "domain_name": job.suite, "language_instruction": job.instruction},
        "env_args": {"suite": job.suite, "task_index": job.task_index, "cameras": list(job.cameras),
                     "resolution": list(job.resolution), "protocol": env.protocol()},
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


def build_demos(episodes: pd.DataFrame, calls: pd.DataFrame, out_dir: Path, cameras: tuple[str, ...],
                resolution: tuple[int, int], frame_stride: int, workers: int, progress: bool = True) -> list[Path]:
    """One HDF5 per task from the successful episodes (with trajectories) in `episodes` and their `calls`; skips
    finished files."""
    from tqdm import tqdm

    ok = episodes[episodes["success"] & (episodes["trajectory"] != "")]
    infos = calls.sort_values("call").groupby("key")["info"].agg(tuple)
    jobs = []
    for suite in ok["suite"].unique():
        check_demo_folder(out_dir, suite)
    for (suite, task_index, task_name), group in ok.groupby(["suite", "task_index", "task_name"]):
        out = demo_path(out_dir, folder_suite(suite), task_name)
        group = group.sort_values("init_index")
        demonstrator = group["policy"].iloc[0]
        if out.exists():
            with h5py.File(out) as f:
                held = f["data"].attrs.get("demonstrator", "expert")  # files from before the attribute: expert
            if held != demonstrator:
                raise ValueError(f"{out} holds demos of {held!r}, not {demonstrator!r}: choose another DEMOS folder")
            continue
        jobs.append(TaskJob(suite, int(task_index), task_name, group["instruction"].iloc[0],
                            tuple(zip(group["init_index"].astype(int), group["trajectory"],
                                      group["key"].map(lambda k: infos.get(k, ())))), str(out),
                            cameras, resolution, frame_stride, demonstrator))
    done = sorted(demo_path(out_dir, folder_suite(s), n) for s, n in ok[["suite", "task_name"]].drop_duplicates().itertuples(index=False))
    if jobs:
        from harness.executors import LocalPool

        for outcome in tqdm(LocalPool(workers).run(jobs, {}), total=len(jobs), unit="task", disable=not progress):
            if outcome.record is None:
                raise RuntimeError(f"rendering demos into {outcome.unit.out} failed: {outcome.crash}")
    return done
