"""Rotation conventions shared by simulators, policies and demonstrations: quaternions are xyzw here."""
from __future__ import annotations

import numpy as np


def quat_xyzw_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """(..., 4) xyzw quaternions -> (..., 3) axis-angle, angle in [0, pi] (the sign of q is irrelevant)."""
    q = np.asarray(q, np.float64)
    q = q * np.where(q[..., 3:4] < 0, -1.0, 1.0)
    w = np.clip(q[..., 3:4], -1.0, 1.0)
    s = np.sqrt(np.maximum(1.0 - w * w, 0.0))
    angle = 2.0 * np.arccos(w)
    return np.where(s > 1e-8, q[..., :3] * angle / np.maximum(s, 1e-8), 0.0)


def axis_angle_to_rot6d(v: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle (rad) -> (..., 6): the rotation matrix's first two columns, column 0 first. Continuous
    in the rotation (Zhou et al., "On the Continuity of Rotation Representations", CVPR 2019), where axis-angle
    jumps from angle pi to -pi about the same axis."""
    v = np.asarray(v, np.float64)
    angle = np.linalg.norm(v, axis=-1, keepdims=True)
    k = v / np.maximum(angle, 1e-12)
    kx, ky, kz = k[..., 0:1], k[..., 1:2], k[..., 2:3]
    c, s = np.cos(angle), np.sin(angle)
    t = 1.0 - c
    # Rodrigues: R = c I + s [k]x + t k k^T; columns 0 and 1.
    col0 = np.concatenate([c + t * kx * kx, t * kx * ky + s * kz, t * kx * kz - s * ky], axis=-1)
    col1 = np.concatenate([t * kx * ky - s * kz, c + t * ky * ky, t * ky * kz + s * kx], axis=-1)
    return np.concatenate([col0, col1], axis=-1)
