"""Rotation helpers and per-category object extents for the scripted expert.

Conventions: positions in metres, world frame; object poses are (7,) xyz + quaternion wxyz (as in
`PrivilegedState`); the end-effector quaternion from proprio is xyzw (robosuite convention).
"""
from __future__ import annotations

import re

import numpy as np

# Local-frame axis-aligned bounding boxes (lo, hi) of the collision geometry of each object category,
# relative to the body origin, metres. Measured once from the LIBERO assets; anything unknown falls back
# to DEFAULT_EXTENT. The expert only uses them to derive grasp heights, tops and footprints.
EXTENTS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "akita_black_bowl": ((-0.054, -0.054, 0.002), (0.053, 0.053, 0.052)),
    "cookies": ((-0.031, -0.041, -0.009), (0.031, 0.041, 0.009)),
    "glazed_rim_porcelain_ramekin": ((-0.045, -0.044, 0.001), (0.045, 0.045, 0.043)),
    "plate": ((-0.068, -0.068, -0.003), (0.070, 0.069, 0.016)),
    "wooden_cabinet": ((-0.123, -0.109, 0.005), (0.131, 0.112, 0.223)),
    "white_cabinet": ((-0.123, -0.109, 0.005), (0.131, 0.112, 0.223)),
    "flat_stove": ((-0.052, -0.095, -0.020), (0.245, 0.095, 0.050)),
    "alphabet_soup": ((-0.031, -0.039, -0.035), (0.031, 0.038, 0.028)),
    "basket": ((-0.084, -0.079, 0.004), (0.085, 0.079, 0.146)),
    "salad_dressing": ((-0.027, -0.073, -0.018), (0.025, 0.073, 0.018)),
    "cream_cheese": ((-0.041, -0.021, -0.009), (0.041, 0.021, 0.009)),
    "milk": ((-0.026, -0.070, -0.026), (0.027, 0.061, 0.026)),
    "tomato_sauce": ((-0.031, -0.039, -0.034), (0.031, 0.038, 0.028)),
    "butter": ((-0.038, -0.020, -0.009), (0.038, 0.020, 0.009)),
    "orange_juice": ((-0.027, -0.070, -0.026), (0.026, 0.061, 0.026)),
    "ketchup": ((-0.028, -0.072, -0.018), (0.029, 0.073, 0.019)),
    "bbq_sauce": ((-0.023, -0.015, -0.055), (0.023, 0.015, 0.052)),
    "chocolate_pudding": ((-0.041, -0.023, -0.013), (0.040, 0.023, 0.014)),
    "wine_bottle": ((-0.021, -0.022, 0.001), (0.022, 0.022, 0.158)),
    "wine_rack": ((-0.134, -0.124, -0.002), (0.134, 0.129, 0.328)),
    "moka_pot": ((-0.041, -0.056, -0.066), (0.041, 0.091, 0.086)),
    "porcelain_mug": ((-0.065, -0.049, 0.002), (0.060, 0.047, 0.108)),
    "red_coffee_mug": ((-0.061, -0.047, -0.002), (0.062, 0.046, 0.131)),
    "white_yellow_mug": ((-0.071, -0.053, -0.000), (0.068, 0.053, 0.103)),
    "black_book": ((-0.015, -0.067, 0.002), (0.014, 0.043, 0.137)),
    "chefmate_8_frypan": ((-0.097, -0.103, 0.001), (0.259, 0.101, 0.059)),
    "desk_caddy": ((-0.076, -0.217, 0.001), (0.075, 0.216, 0.168)),
    "microwave": ((-0.173, -0.11, 0.0), (0.172, 0.111, 0.187)),
}
DEFAULT_EXTENT = ((-0.03, -0.03, -0.03), (0.03, 0.03, 0.03))

# Articulated fixture parts, measured once from the LIBERO assets (wooden/white cabinets share one model, and
# every scene uses the same flat stove). Local frames are the fixture body's; metres, radians.
DRAWER_HANDLE = np.array([-0.006, -0.113, -0.004])
"""A drawer's handle bar (16 mm square, 9 cm long along local x) relative to the drawer's region site (which
slides with the drawer), cabinet frame."""
DRAWER_OUT = np.array([0.0, -1.0, 0.0])
"""Direction a drawer slides out (its joint position goes negative), cabinet frame."""
DRAWER_FLOOR = 0.027
"""Height of a drawer's floor below its region site."""
DRAWER_INNER_FRONT = -0.084
"""Local y of a drawer front's inner face relative to its region site (the drawer is 17 cm deep inside and opens
up to 16 cm; the handles of the drawers above stick out 3 cm from the cabinet)."""
DRAWER_PLACE_GAP = 0.005
"""Gap between an object put into a drawer and the inside of the drawer's front, metres: the object goes as far
out as it can, clear of the handles of the drawers above."""
DRAWER_OPEN, DRAWER_CLOSED = -0.14, 0.0
"""LIBERO's `Open` holds below the first slide position, `Close` above the second (cabinet `is_open`/`is_close`)."""
KNOB_FIN = np.array([-0.0174, 0.0014])
"""Centre of a stove knob's fin (7 cm long along local x, 2.4 cm thick) relative to the knob axis, which is the
stove body's origin, at knob angle 0, stove frame."""
KNOB_FIN_TOP = 0.05
"""Height of the fin's top above the stove body's origin."""
KNOB_ON = 0.5
"""Knob angle at and above which LIBERO counts the stove as turned on (`FlatStove.turn_on`), rad."""

DOOR_HINGE = np.array([-0.1725, -0.088, 0.096])
"""A microwave's door hinge (a vertical axis) relative to the microwave's body origin, microwave frame; the door
turns about it from open (-1.58 rad as LIBERO sets it) to shut (0, the joint's limit). Door frame: local x along the
door from the hinge (the door is 26 cm long, 18.5 cm tall, centred on the hinge's height), local y into the oven."""
DOOR_OUTER_FACE = -0.025
"""Local y of the door's outer face (the handle stands out 3 cm further, 24 cm from the hinge), door frame."""
DOOR_SHUT = -0.005
"""Door angle above which LIBERO counts a microwave as closed (`Microwave.is_close`), rad."""

CABINET_CARCASS = ((-0.123, -0.078, 0.005), (0.131, 0.112, 0.223))
"""A cabinet's body without its drawers' fronts and handles (local frame, lo/hi, as EXTENTS)."""
DRAWER_BOX = ((-0.11, -0.0892, -0.0375), (0.11, 0.0831, 0.032))
"""A drawer's body relative to its region site, cabinet frame (lo/hi)."""
HANDLE_BOX = ((-0.052, -0.121, -0.015), (0.04, -0.089, 0.007))
"""A drawer's handle bar with its mounts relative to the drawer's region site, cabinet frame (lo/hi)."""

# The Panda hand's collision geometry (robosuite meshes) as boxes in the end-effector frame (origin at the grip
# site; x across the fingers, y the closing axis, z the approach axis, pointing out of the fingertips), lo/hi.
HAND_BOX = ((-0.0316, -0.102, -0.123), (0.0316, 0.102, -0.031))
FINGERS_CLOSED_BOX = ((-0.0105, -0.0264, -0.0445), (0.0105, 0.0264, 0.0092))

ROUND = {"akita_black_bowl", "alphabet_soup", "tomato_sauce", "glazed_rim_porcelain_ramekin", "plate", "wine_bottle"}
"""Categories whose horizontal footprint is (nearly) circular: grasp yaw is free."""

RIMS: dict[str, tuple[tuple[float, float], float, float | None]] = {
    "akita_black_bowl": ((0.0, 0.0), 0.047, None),
    "porcelain_mug": ((0.0125, -0.001), 0.0455, np.pi),
    "white_yellow_mug": ((-0.0185, 0.0), 0.050, 0.0),
}
"""Categories too wide for the gripper, grasped at the rim with the fingers straddling the wall (a bowl, mugs): the
rim's centre in the object frame (xy), the radius of the grasp point on the wall, and the direction of a handle
in the object frame (rad; rim points near it are avoided) or None, metres."""
HOLDS: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "moka_pot": ((0.03, 0.0, 0.057, np.pi / 2), (-0.03, 0.0, 0.057, np.pi / 2)),
}
"""Categories grasped at fixed places in the object frame: (x, y, z of the grip site, direction of the closing
axis, rad). A moka pot (13 cm tall, 8 cm wide, a handle and a spout on opposite sides, a knob on top) is held
across the top of its body, off to the side so the hand clears the knob (the hand's underside is 3 cm above the
grip site)."""

CONTAINERS = {"akita_black_bowl", "basket", "plate"}
"""Categories that receive objects: release just above their top/rim."""


def category(name: str) -> str:
    """`akita_black_bowl_1` -> `akita_black_bowl` (strips the instance index)."""
    return re.sub(r"_\d+$", "", name)


def quat_wxyz_to_mat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(q, np.float64) / max(np.linalg.norm(q), 1e-12)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def quat_wxyz_from_mat(r: np.ndarray) -> np.ndarray:
    """Unit quaternion wxyz of rotation matrix r (inverse of `quat_wxyz_to_mat`)."""
    w = np.sqrt(max(0.0, 1.0 + np.trace(r))) / 2.0
    if w > 1e-3:
        return np.array([w, (r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w),
                         (r[1, 0] - r[0, 1]) / (4 * w)])
    # Near a half turn: from the largest diagonal element (Shepperd).
    i = int(np.argmax(np.diag(r)))
    j, k = (i + 1) % 3, (i + 2) % 3
    v = np.sqrt(max(0.0, 1.0 + r[i, i] - r[j, j] - r[k, k])) / 2.0
    q = np.zeros(4)
    q[0], q[1 + i] = (r[k, j] - r[j, k]) / (4 * v), v
    q[1 + j], q[1 + k] = (r[j, i] + r[i, j]) / (4 * v), (r[k, i] + r[i, k]) / (4 * v)
    return q


def quat_xyzw_to_mat(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, np.float64)
    return quat_wxyz_to_mat(q[[3, 0, 1, 2]])


def rotvec_from_mat(r: np.ndarray) -> np.ndarray:
    """Axis-angle vector (rad) of rotation matrix r (log map), robust near 0 and pi."""
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-6:
        return np.zeros(3)
    if np.pi - angle < 1e-4:
        # Near pi the antisymmetric part vanishes: take the axis from the symmetric part.
        axis = np.sqrt(np.maximum((np.diag(r) + 1.0) / 2.0, 0.0))
        i = int(np.argmax(axis))
        axis[(i + 1) % 3] *= np.sign(r[i, (i + 1) % 3] + 1e-12)
        axis[(i + 2) % 3] *= np.sign(r[i, (i + 2) % 3] + 1e-12)
        return axis / np.linalg.norm(axis) * angle
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) / (2.0 * np.sin(angle))
    return axis * angle


def mat_from_rotvec(v: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    k = np.asarray(v) / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


TOP_DOWN = np.diag([1.0, -1.0, -1.0])
"""End-effector orientation pointing straight down with yaw 0 (fingers close along world y)."""


def top_down(yaw: float) -> np.ndarray:
    """Top-down gripper orientation whose finger-closing axis is (sin yaw, -cos yaw, 0)."""
    return rot_z(yaw) @ TOP_DOWN


def gripper_yaw(r: np.ndarray) -> float:
    """Yaw of the finger-closing axis (column 1 of the eef rotation), inverse of `top_down`."""
    return float(np.arctan2(r[0, 1], -r[1, 1]))


def pointing(direction: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """End-effector orientation pointing horizontally along `direction` (xy), the fingers closing vertically
    (closing axis +z) when `roll` is 0 and tilted by `roll` (rad) about the pointing axis otherwise (pi: -z)."""
    z = np.array([direction[0], direction[1], 0.0])
    z /= max(np.linalg.norm(z), 1e-9)
    side = np.cross(np.array([0.0, 0.0, 1.0]), z)
    y = np.cos(roll) * np.array([0.0, 0.0, 1.0]) - np.sin(roll) * side
    return np.column_stack([np.cross(y, z), y, z])


def wrap_pi(angle: float) -> float:
    """The angle in [-pi, pi), rad."""
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def wrap_half_pi(yaw: float, ref: float = 0.0) -> float:
    """The gripper is symmetric under a half turn: return yaw + k*pi closest to ref."""
    return float(ref + (yaw - ref + np.pi / 2) % np.pi - np.pi / 2)


class Box:
    """World-frame view of an object's local bounding box at a given pose."""

    def __init__(self, name: str, pose: np.ndarray):
        self.name = name
        self.cat = category(name)
        lo, hi = EXTENTS.get(self.cat, DEFAULT_EXTENT)
        self.lo, self.hi = np.asarray(lo), np.asarray(hi)
        self.pos = np.asarray(pose[:3], np.float64)
        self.rot = quat_wxyz_to_mat(pose[3:7])
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        world = corners @ self.rot.T + self.pos
        self.wlo, self.whi = world.min(0), world.max(0)
        self.centre = (self.rot @ ((self.lo + self.hi) / 2)) + self.pos

    @property
    def top(self) -> float:
        return float(self.whi[2])

    @property
    def bottom(self) -> float:
        return float(self.wlo[2])

    def horizontal_axes(self) -> list[tuple[np.ndarray, float]]:
        """The two local axes closest to horizontal: (unit xy direction, full extent along it), short first."""
        tilt = np.abs(self.rot[2, :])  # |z component| of each local axis in world
        order = [int(i) for i in np.argsort(tilt)[:2]]
        axes = []
        for i in order:
            d = self.rot[:2, i]
            n = np.linalg.norm(d)
            axes.append((d / max(n, 1e-9), float(self.hi[i] - self.lo[i])))
        return sorted(axes, key=lambda a: a[1])

    def footprint_radius(self) -> float:
        return float(0.5 * np.linalg.norm(self.whi[:2] - self.wlo[:2]))
