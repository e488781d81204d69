"""Training layouts: scenes for demonstrations, held apart from the evaluation init states (issue 16).

Suite `<suite>_train` (`tasks.protocol.LIBERO_TRAIN_SUITES`) is a standard LIBERO suite whose init states are
training layouts: flattened simulator states in the format of LIBERO's init states, drawn by the task env's own
samplers (`LiberoEnv.sample_layout`) on the task's fixture layout, and rejected when within
`LiberoTrainProtocol.layout_min_distance` of any evaluation init state of the task. They are generated once and
committed (`tasks/data/layouts/<suite>.npz`, ~75 kB each), so an episode is a function of its unit alone and
drawing costs nothing at run time; regenerating gives bit-identical states (tested):

    python -m tasks.layouts libero_spatial_train [--tasks 0,1] [--layouts 50]
    python -m tasks.layouts simpler_carrot_train

The file holds per task `t<i>_states` (n, S), `t<i>_draws` (n,) (layout i was seeded `[seed base, i's task, draw]`),
`t<i>_nearest` (n,) (metres to the nearest evaluation init state), `t<i>_drift` (n,) (metres the farthest object
moves in xy over the settle steps: recorded, not filtered, as LIBERO's evaluation init states drift alike) and
the constants it was drawn under. SIMPLER's `simpler_<task>_train` suites are drawn and stored the same way
(`tasks.simpler.layouts`: their states, the distance and the drift).
"""
from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from core.io import atomic_path
from tasks.protocol import LIBERO_TRAIN_SUITES, SIMPLER_TRAIN_SUITES, TRAIN_SUITES, LiberoTrainProtocol, simpler_protocol

LAYOUTS_DIR = Path(__file__).parent / "data" / "layouts"
N_LAYOUTS = 50
"""Layouts per task in the committed files, as LIBERO's datasets hold 50 demonstrations per task."""


def constants(suite: str) -> dict:
    """The protocol fields (`LAYOUT_CONSTANTS`) a suite's layouts file records, as JSON-like values; the file is
    refused when they differ from the protocol's."""
    protocol = simpler_protocol(suite) if suite in SIMPLER_TRAIN_SUITES else LiberoTrainProtocol
    return {k: np.asarray(getattr(protocol, k)).tolist() for k in protocol.LAYOUT_CONSTANTS}


def layouts_file(suite: str) -> Path:
    return LAYOUTS_DIR / f"{suite}.npz"


def layout_distance(a: np.ndarray, b: np.ndarray, xy_index: np.ndarray) -> np.ndarray:
    """(n, m) distances, metres, between layouts `a` (n, S) and `b` (m, S): the largest xy distance of any movable
    object. `xy_index` (k, 2) gives each object's x and y positions in a flattened state (`LiberoEnv.movable_xy_index`)."""
    pa, pb = np.atleast_2d(a)[:, xy_index], np.atleast_2d(b)[:, xy_index]
    return np.linalg.norm(pa[:, None] - pb[None], axis=-1).max(-1)


@dataclass(frozen=True)
class TaskLayouts:
    states: np.ndarray
    """(n, S) flattened simulator states, layout i in row i."""
    draws: np.ndarray
    """(n,) the draw each layout came from: seed `[seed base, task index, draw]`; skipped draws were rejected."""
    nearest: np.ndarray
    """(n,) metres from each layout to its nearest evaluation init state (`layout_distance`)."""
    drift: np.ndarray
    """(n,) metres the farthest movable object of each layout moves in xy over the settle steps (`sample_layout`)."""

    @property
    def rejected(self) -> int:
        """Draws rejected before the last kept one."""
        return int(self.draws[-1]) + 1 - len(self.draws)


MAX_DRAWS_PER_LAYOUT = 20
"""`draw_layouts` gives up after this many draws per requested layout (a sampler too narrow for the threshold)."""

FIELDS = ("states", "draws", "nearest", "drift")
"""`TaskLayouts` fields, stored per task as `t<i>_<field>`."""


def draw_layouts(sample: Callable[[int], tuple[np.ndarray, float] | None], eval_states: np.ndarray,
                 xy_index: np.ndarray, n: int, min_distance: float) -> TaskLayouts:
    """The first `n` draws of `sample(0), sample(1), ...` (each a state and its settle drift, metres, or None for a
    draw the sampler rejects itself) at least `min_distance` metres (`layout_distance`) from every row of
    `eval_states`; RuntimeError after `MAX_DRAWS_PER_LAYOUT * n` draws."""
    states, draws, nearest, drift = [], [], [], []
    draw = 0
    while len(states) < n:
        if draw == MAX_DRAWS_PER_LAYOUT * n:
            raise RuntimeError(f"only {len(states)} of {n} layouts in {draw} draws are {min_distance} m from every "
                               f"evaluation init state: the task's samplers are too narrow for that threshold")
        drawn = sample(draw)
        if drawn is None:
            draw += 1
            continue
        state, moved = drawn
        d = float(layout_distance(state, eval_states, xy_index).min())
        if d >= min_distance:
            states.append(state)
            draws.append(draw)
            nearest.append(d)
            drift.append(moved)
        draw += 1
    return TaskLayouts(np.stack(states), np.asarray(draws, np.int64), np.asarray(nearest, np.float64),
                       np.asarray(drift, np.float64))


def task_layouts(env, protocol: LiberoTrainProtocol, n: int) -> TaskLayouts:
    """`n` training layouts of `env`'s task (a `LiberoEnv` of the parent suite: its init states are the evaluation
    ones)."""
    task = env.spec_task.index
    return draw_layouts(
        lambda draw: env.sample_layout((protocol.layout_seed_base, task, draw), protocol.robot_init_noise),
        np.asarray(env._init_states), env.movable_xy_index(), n, protocol.layout_min_distance)


@lru_cache(maxsize=None)
def digest(suite: str) -> str:
    """sha256 of the suite's committed layouts file; ValueError (one line) when there is none."""
    path = layouts_file(suite)
    if not path.exists():
        raise ValueError(f"no training layouts for {suite} ({path}): generate them with `python -m tasks.layouts {suite}`")
    return hashlib.sha256(path.read_bytes()).hexdigest()


@lru_cache(maxsize=None)
def load(suite: str) -> dict[int, TaskLayouts]:
    """Task index -> its committed layouts; ValueError (one line) when the file is missing or was drawn under other
    constants than the protocol's (`constants`)."""
    digest(suite)
    with np.load(layouts_file(suite)) as f:
        data = dict(f)
    expected = constants(suite)
    held = {k: data[k].tolist() if k in data else None for k in expected}
    if held != expected:
        raise ValueError(f"{layouts_file(suite)} was drawn with {held}, the protocol says {expected}: regenerate it "
                         f"with `python -m tasks.layouts {suite}`")
    tasks = sorted(int(k[1:].partition("_")[0]) for k in data if k.endswith("_states"))
    return {t: TaskLayouts(*(data[f"t{t}_{k}"] for k in FIELDS)) for t in tasks}


def save(suite: str, layouts: dict[int, TaskLayouts]) -> None:
    """Write `layouts` (task index -> layouts) as the suite's layouts file, atomically."""
    arrays = {k: np.asarray(v) for k, v in constants(suite).items()}
    for t, tl in sorted(layouts.items()):
        arrays.update({f"t{t}_{k}": getattr(tl, k) for k in FIELDS})
    with atomic_path(layouts_file(suite)) as tmp:
        np.savez_compressed(tmp, **arrays)
    digest.cache_clear()
    load.cache_clear()


def generate(suite: str, tasks: list[int] | None = None, n: int | None = None, log=print) -> None:
    """Draw `n` layouts (default: LIBERO's `N_LAYOUTS`, SIMPLER's protocol's) for each of `tasks` (default: all) of a
    training-layout suite and save them with the file's other tasks; the file is written after every task, so an
    interrupted run loses one task at most."""
    from tasks.base import ObsSpec

    if suite not in TRAIN_SUITES:
        raise ValueError(f"unknown training-layout suite {suite!r}; valid: {', '.join(TRAIN_SUITES)}")
    try:
        held = load(suite) if layouts_file(suite).exists() else {}
    except ValueError as err:  # drawn under other constants: none of it is kept
        log(f"{str(err).partition(': regenerate')[0]}: drawing every task anew")
        held = {}
    if suite in SIMPLER_TRAIN_SUITES:
        from tasks.simpler.layouts import task_layouts as draw
        from tasks.simpler.suite import SimplerEnv

        n_tasks, make_env = 1, lambda t: SimplerEnv(suite, t, ObsSpec())  # its suite needs the file being drawn
    else:
        from tasks.libero import LiberoEnv, LiberoSuite
        from tasks.protocol import libero_train_protocol

        parent, protocol, n = LIBERO_TRAIN_SUITES[suite], libero_train_protocol(suite, ""), n or N_LAYOUTS
        n_tasks, make_env = len(LiberoSuite(parent).tasks()), lambda t: LiberoEnv(parent, t, ObsSpec())

        def draw(env, count):
            return task_layouts(env, protocol, count)

    for t in range(n_tasks) if tasks is None else tasks:
        env = make_env(t)
        try:
            held[t] = tl = draw(env, n)
        finally:
            env.close()
        save(suite, held)
        log(f"{suite} task {t}: {len(tl.states)} layouts, {tl.rejected} draw(s) rejected; nearest evaluation init state median {1000 * np.median(tl.nearest):.1f} mm, min "
            f"{1000 * tl.nearest.min():.1f} mm; settle drift max {1000 * tl.drift.max():.2f} mm")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tasks.layouts", description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=list(TRAIN_SUITES))
    parser.add_argument("--tasks", default="", help="comma-separated task indices (default: all)")
    parser.add_argument("--layouts", type=int, default=None,
                        help=f"layouts per task (default: LIBERO {N_LAYOUTS}, SIMPLER the protocol's)")
    args = parser.parse_args(argv)
    generate(args.suite, [int(t) for t in args.tasks.split(",")] if args.tasks else None, args.layouts)


if __name__ == "__main__":
    main()
