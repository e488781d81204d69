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
