"""Training layouts for the SIMPLER Bridge tasks, held apart from the 24 evaluation layouts (issue 16).

`simpler_<task>_train` (`tasks.protocol.SIMPLER_TRAIN_SUITES`) runs a task on jittered copies of its evaluation
layouts (`SimplerTrainProtocol`: how they are drawn and how they differ). They are drawn and committed like
LIBERO's (`tasks.layouts`: `python -m tasks.layouts simpler_carrot_train`), because the distance check needs the
simulator: the objects are compared where the env's own settling leaves them (the eggplant slides up to 5 cm down
the sink, where every evaluation layout ends within a millimetre of another).

A layout's state (20 values) is [settled source xyz, settled target xyz, config xyz (source, target),
config quat wxyz (source, target)]: where the objects came to rest, then the row ManiSkill's `xyz_configs` /
`quat_configs` take, so the env places it the way it places an evaluation episode.
"""
from __future__ import annotations

import numpy as np

from tasks.layouts import TaskLayouts, draw_layouts
from tasks.protocol import SIMPLER_SUITES, SIMPLER_TRAIN_SUITES, SimplerTrainProtocol, simpler_protocol

SETTLED, CONFIG_XYZ, CONFIG_QUAT = slice(0, 6), slice(6, 12), slice(12, 20)
"""Columns of a layout state."""


def evaluation_configs(xyz_configs: np.ndarray, quat_configs: np.ndarray, n_episodes: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(xyz (n, 2, 3), quat (n, 2, 4)) of episodes 0..n-1 as ManiSkill 3.0.1's `BaseBridgeEnv._initialize_episode`
    maps an episode id to its rows: position `(id % (P * Q)) // Q`, orientation `id % Q` of P and Q rows."""
    xyz_configs, quat_configs = np.asarray(xyz_configs, np.float64), np.asarray(quat_configs, np.float64)
    ids = np.arange(n_episodes)
    n_quat = len(quat_configs)
    return xyz_configs[(ids % (len(xyz_configs) * n_quat)) // n_quat], quat_configs[ids % n_quat]


def layout_state(settled: np.ndarray, xyz: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """One layout's state from its settled positions (2, 3), config positions (2, 3) and orientations (2, 4)."""
    return np.concatenate([np.ravel(settled), np.ravel(xyz), np.ravel(quat)]).astype(np.float64)


def configs_of(state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (xyz (2, 3), quat (2, 4)) config rows a layout state places."""
    return state[CONFIG_XYZ].reshape(2, 3), state[CONFIG_QUAT].reshape(2, 4)


def xy_index(protocol: SimplerTrainProtocol) -> np.ndarray:
    """(objects, 2) settled x, y columns of the objects a training layout moves (`tasks.layouts.layout_distance`):
    a fixed target is at the same place in every layout and would only shrink the distance."""
    moving = (np.asarray(protocol.xy_jitter) > 0) | (np.asarray(protocol.yaw_jitter) > 0)
    return np.array([[3 * i, 3 * i + 1] for i in np.flatnonzero(moving)])


def drift(state: np.ndarray) -> float:
    """Metres the farthest object moved in xy from where it was placed to where it came to rest."""
    settled, placed = state[SETTLED].reshape(2, 3), state[CONFIG_XYZ].reshape(2, 3)
    return float(np.linalg.norm(settled[:, :2] - placed[:, :2], axis=-1).max())


def _turn_z(quat: np.ndarray, angle: float) -> np.ndarray:
    """wxyz `quat` turned by `angle` rad about the world z axis (the rotation applied after it)."""
    w, x, y, z = quat
    c, s = np.cos(angle / 2), np.sin(angle / 2)
    return np.array([c * w - s * z, c * x - s * y, c * y + s * x, c * z + s * w])


def jittered(protocol: SimplerTrainProtocol, xyz: np.ndarray, quat: np.ndarray, draw: int
             ) -> tuple[np.ndarray, np.ndarray] | None:
    """Draw `draw`'s config rows (see `SimplerTrainProtocol`) around the evaluation configs `xyz` (n, 2, 3), `quat`
    (n, 2, 4); None when its objects are closer than `min_separation_ratio` x the evaluation layouts' closest."""
    task = SIMPLER_SUITES.index(SIMPLER_TRAIN_SUITES[protocol.suite])
    rng = np.random.default_rng([protocol.layout_seed_base, task, draw])
    base = int(rng.integers(len(xyz)))
    new = xyz[base].copy()
    new[:, :2] += rng.uniform(-1, 1, size=(2, 2)) * np.asarray(protocol.xy_jitter)[:, None]
    turns = rng.uniform(-1, 1, size=2) * np.asarray(protocol.yaw_jitter)
    separation = np.linalg.norm(xyz[:, 0, :2] - xyz[:, 1, :2], axis=-1).min()
    if np.linalg.norm(new[0, :2] - new[1, :2]) < protocol.min_separation_ratio * separation:
        return None
    return new, np.stack([_turn_z(q, a) for q, a in zip(quat[base], turns)])


def task_layouts(env, n: int | None = None) -> TaskLayouts:
    """`n` (default: the protocol's) training layouts of a training-layout suite's env (`SimplerEnv`): the 24
    evaluation layouts and every draw placed and settled by the env, compared settled (`tasks.layouts`)."""
    protocol = env.protocol_
    xyz, quat = evaluation_configs(*env.evaluation_configs, simpler_protocol(SIMPLER_TRAIN_SUITES[protocol.suite])
                                   .n_init_states)
    evals = np.stack([layout_state(env.place(x, q), x, q) for x, q in zip(xyz, quat)])

    def sample(draw: int) -> tuple[np.ndarray, float] | None:
        rows = jittered(protocol, xyz, quat, draw)
        if rows is None:
            return None
        state = layout_state(env.place(*rows), *rows)
        moved = drift(state)
        return None if moved > protocol.max_settle_drift else (state, moved)

    return draw_layouts(sample, evals, xy_index(protocol), n or protocol.n_init_states, protocol.layout_min_distance)
