"""Real observations to measure policy calls on: camera frames and proprio recorded from expert episodes, cached.

The scripted expert drives init state 0 of each task of a suite and a frame is kept every `stride` steps (as a
chunked policy would see them), so measurements see real scenes, not blank images. Recordings are cached under
`<results>/observations/`, keyed by suite, cameras, resolution, count and stride.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from core.io import atomic_path
from tasks.base import ObsSpec, Observation, TaskSpec


@dataclass(frozen=True)
class Recorded:
    """One observation recorded from a real episode, replayable into any policy observing a subset of its cameras."""

    task: TaskSpec
    proprio: dict[str, np.ndarray]
    images: dict[str, np.ndarray]
    """Camera name -> (H, W, 3) uint8 upright RGB."""

    def observation(self) -> Observation:
        return Observation(self.proprio, None, lambda: self.images, 0, lambda: 0)


def shared_spec(specs: Iterable[ObsSpec]) -> ObsSpec:
    """One recording that serves every spec: the union of their cameras at their common resolution. ValueError
    when policies with cameras observe at different resolutions, or one needs privileged simulator state (recorded
    observations carry none)."""
    specs = list(specs)
    if any(s.privileged for s in specs):
        raise ValueError("a privileged-state policy (scripted expert) acts on simulator ground truth, which recorded "
                         "observations do not hold; profile policies that observe cameras and proprio")
    cameras = tuple(dict.fromkeys(c for s in specs for c in s.cameras))
    resolutions = {s.resolution for s in specs if s.cameras}
    if len(resolutions) > 1:
        raise ValueError(f"policies observe at different resolutions {sorted(resolutions)}; profile policies "
                         f"with the same image size")
    return ObsSpec(cameras=cameras, resolution=resolutions.pop() if resolutions else ObsSpec().resolution)


def record_observations(suite_name: str, spec: ObsSpec, count: int, root: Path, stride: int = 8) -> list[Recorded]:
    """`count` observations in `spec`'s cameras and resolution from expert episodes (init state 0) spread over the
    suite's tasks, a frame every >= `stride` env steps; read back from `<root>/observations/` when recorded before
    with the same suite, cameras, resolution, count and stride."""
    from policies import make_policy
    from tasks import make_suite

    suite = make_suite(suite_name)
    tasks = suite.tasks()
    h, w = spec.resolution
    name = f"{suite_name}_{'-'.join(spec.cameras) or 'nocam'}_{h}x{w}_{count}_s{stride}.npz"
    cache = Path(root) / "observations" / name
    if cache.exists():
        data = np.load(cache)
        keys = [k[len("proprio/"):] for k in data.files if k.startswith("proprio/")]
        return [Recorded(tasks[int(t)], {k: data[f"proprio/{k}"][i] for k in keys},
                         {c: data[f"images/{c}"][i] for c in spec.cameras}) for i, t in enumerate(data["task"])]
    expert = make_policy("expert")
    full = ObsSpec(cameras=spec.cameras, resolution=spec.resolution, proprio=True, privileged=True)
    per_task = [count // len(tasks) + (i < count % len(tasks)) for i in range(len(tasks))]
    out: list[Recorded] = []
    for task, n in zip(tasks, per_task):
        if n == 0:
            continue
        env = suite.make_env(task.index, full)
        try:
            obs, _ = env.reset(seed=0, options={"init_index": 0})
            expert.reset(task, 0)
            since, done, kept = stride, False, 0
            while kept < n and not done:
                if since >= stride:
                    out.append(Recorded(task, {k: np.array(v) for k, v in obs.proprio.items()}, dict(obs.images)))
                    kept, since = kept + 1, 0
                for action in np.atleast_2d(expert.act(obs).actions):
                    obs, _, terminated, truncated, _ = env.step(action)
                    since += 1
                    done = terminated or truncated
                    if done:
                        break
        finally:
            env.close()
    arrays = {"task": np.array([r.task.index for r in out])}
    arrays.update({f"proprio/{k}": np.stack([r.proprio[k] for r in out]) for k in out[0].proprio})
    arrays.update({f"images/{c}": np.stack([r.images[c] for r in out]) for c in spec.cameras})
    with atomic_path(cache) as tmp:
        np.savez_compressed(tmp, **arrays)
    return out
