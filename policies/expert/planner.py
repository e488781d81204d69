"""Goal parsing and grasp/place geometry for the scripted expert.

Everything here is a pure function of the privileged ground truth (metres, world frame, quaternions wxyz):
which object to move where, the top-down grasp (grip-site position + yaw), the carry height and the
release height. No simulator access.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.expert.geometry import BOWLS, CONTAINERS, ROUND, Box, category, wrap_half_pi

GRIPPER_MAX_WIDTH = 0.075
"""Widest object span the Panda fingers close around with margin, metres."""
BOWL_RIM_RADIUS = 0.047
"""Horizontal distance from a bowl's axis to the grasp point on its wall, metres."""
BOWL_RIM_DEPTH = 0.022
"""Grip-site depth below a bowl's rim when grasping the wall, metres."""
RIM_GRASP_WIDTH = 0.05
"""Finger opening for rim grasps: a narrow hand fits between a bowl and drawer walls or neighbours, metres."""
GRASP_DEPTH = 0.03
"""Grip-site depth below an ordinary object's top, metres (clamped above its bottom by FINGER_CLEARANCE)."""
GRASP_DEPTH_BY_CATEGORY = {"wine_bottle": 0.075}
"""Deeper grasps where the top is a narrow neck (grip the body instead), metres below the top."""
FINGER_CLEARANCE = 0.012
"""Lowest grip-site height above an object's bottom: the fingertips reach ~1 cm below the grip site."""
CLEARANCE = 0.04
"""Vertical margin kept between a carried object and anything it passes over, metres."""
REACH_X = 0.13
"""World x beyond which a top-down hand at rim height gets close to the arm's reach limit, metres."""
AVOID_ANGLE = 0.7
"""Rim directions within this angle (rad) of a direction that already failed are penalised."""
RELEASE_GAP = 0.012
"""Height of a carried object's bottom above the receiving surface when the gripper opens, metres."""


@dataclass(frozen=True)
class PickPlace:
    """Move `obj` (body) onto/into `target` (body or site), as the goal predicate `relation` asks."""

    relation: str
    obj: str
    target: str


@dataclass(frozen=True)
class Unsupported:
    reason: str


@dataclass(frozen=True)
class Grasp:
    pos: np.ndarray
    """(3,) grip-site position, metres."""
    yaw: float
    """Finger-closing axis yaw, rad (see geometry.top_down)."""
    width: float | None = None
    """Finger opening to pre-shape to before descending, metres; None = fully open."""
    theta: float | None = None
    """Rim grasps: direction (rad, world yaw) from the bowl's axis to the grasp point; None otherwise."""


def parent_object(site: str, objects: dict[str, np.ndarray]) -> str | None:
    """The object a site belongs to: the longest object name that prefixes the site name."""
    owners = [o for o in objects if site.startswith(o + "_")]
    return max(owners, key=len) if owners else None


def parse_goal(goal, objects: dict, sites: dict) -> PickPlace | Unsupported:
    """Pick the single pick-and-place task the goal asks for, or say why it is not supported."""
    moves, other = [], []
    for pred in goal:
        if len(pred) == 3 and pred[0] in ("on", "in") and pred[1] in objects:
            moves.append(PickPlace(pred[0], pred[1], pred[2]))
        else:
            other.append(pred)
    if other:
        return Unsupported(f"predicate {' '.join(other[0])}")
    if len(moves) != 1:
        return Unsupported(f"{len(moves)} pick-and-place predicates")
    move = moves[0]
    if move.target not in objects and move.target not in sites:
        return Unsupported(f"unknown target {move.target}")
    owner = parent_object(move.target, objects) if move.target in sites else None
    if owner is not None and category(owner) == "wooden_cabinet" and not move.target.endswith("_top_side"):
        return Unsupported(f"placing inside drawer {move.target}")
    if owner is not None and category(owner) == "wine_rack":
        return Unsupported(f"placing into rack {move.target}")
    return move


def _rect_distance(p: np.ndarray, box: Box) -> float:
    """Horizontal distance from point p to the box's world xy rectangle (0 inside)."""
    d = np.maximum(np.maximum(box.wlo[:2] - p[:2], p[:2] - box.whi[:2]), 0.0)
    return float(np.linalg.norm(d))


def _enclosing_cabinet(box: Box, others: list[Box]) -> Box | None:
    """A cabinet whose footprint contains the object's centre below its top (the object is in a drawer)."""
    for o in others:
        if category(o.name) != "wooden_cabinet" or box.top > o.top:
            continue
        local = o.rot.T @ (box.pos - o.pos)
        if np.all(local[:2] > o.lo[:2] - 0.06) and np.all(local[:2] < o.hi[:2] + 0.06):
            return o
    return None


def plan_grasp(obj: str, objects: dict, current_yaw: float, avoid: tuple[float, ...] = ()) -> Grasp:
    """Top-down grasp of `obj`: position of the grip site between the fingertips, and the yaw.

    `avoid`: rim directions (rad) of earlier rim grasps that stalled or missed; others are preferred."""
    box = Box(obj, objects[obj])
    others = [Box(n, p) for n, p in objects.items() if n != obj]
    if box.cat in BOWLS:
        # Straddle the wall: fingers close radially. Pick the rim point with the most free space around it
        # (neighbours, fixtures), mildly preferring little wrist rotation.
        thetas = np.linspace(-np.pi, np.pi, 24, endpoint=False)
        drawer = _enclosing_cabinet(box, others)
        if drawer is not None:
            # Inside an open drawer the front and back walls are closest: straddle the rim across the
            # drawer's width, i.e. along the cabinet's local x axis.
            ax = drawer.rot[:2, 0]
            base = float(np.arctan2(ax[1], ax[0]))
            thetas = np.array([base, base + np.pi])
        best = None
        for theta in thetas:
            radial = np.array([np.cos(theta), np.sin(theta)])
            point = box.pos[:2] + BOWL_RIM_RADIUS * radial
            yaw = wrap_half_pi(float(np.arctan2(radial[0], -radial[1])), 0.0)
            near = [o for o in others if o.top > box.bottom + 0.01]
            clear = min([_rect_distance(np.append(point, 0), o) for o in near] + [0.08])
            # The hand spans ~0.22 m along the finger axis: it must pass above whatever lies under it.
            hand_need = _hand_clearance_z(point, np.array([np.sin(yaw), -np.cos(yaw)]), others)
            blocked = max(0.0, hand_need - (box.top - BOWL_RIM_DEPTH))
            # Far rim points sit near the arm's reach limit with the hand vertical: the approach stalls there.
            reach = 2.0 * max(0.0, point[0] - REACH_X)
            tried = sum(
                0.1 for a in avoid if abs((theta - a + np.pi) % (2 * np.pi) - np.pi) < AVOID_ANGLE
            )
            score = min(clear, 0.06) - 0.02 * abs(yaw - current_yaw) - 5.0 * blocked - reach - tried
            if best is None or score > best[0]:
                best = (score, point, yaw, theta)
        _, point, yaw, theta = best
        return Grasp(
            np.array([point[0], point[1], box.top - BOWL_RIM_DEPTH]), yaw, RIM_GRASP_WIDTH, float(theta)
        )
    z_nominal = max(box.top - GRASP_DEPTH_BY_CATEGORY.get(box.cat, GRASP_DEPTH), box.bottom + FINGER_CLEARANCE)
    z_max = box.top - 0.008
    if box.cat in ROUND:
        yaws = [wrap_half_pi(float(y), 0.0) for y in np.linspace(0, np.pi, 12, endpoint=False)]
        shifts = [0.0]
    else:
        (short_dir, _), (long_dir, long_len) = box.horizontal_axes()
        yaws = [wrap_half_pi(float(np.arctan2(short_dir[0], -short_dir[1])), 0.0)]
        if long_len < GRIPPER_MAX_WIDTH - 0.01:
            yaws.append(wrap_half_pi(float(np.arctan2(long_dir[0], -long_dir[1])), 0.0))
        shifts = [0.0, 0.015, -0.015, 0.03, -0.03] if long_len > 0.07 else [0.0]
    best = None
    for k, yaw in enumerate(yaws):
        finger_axis = np.array([np.sin(yaw), -np.cos(yaw)])
        across = np.array([np.cos(yaw), np.sin(yaw)])
        for shift in shifts:
            along = long_dir if box.cat not in ROUND else across
            xy = box.centre[:2] + shift * along
            need = _hand_clearance_z(xy, finger_axis, others)
            # Rank by how far the hand has to rise above the nominal grasp, then by wrist rotation and shift.
            cost = max(0.0, need - z_nominal) * 10 + 0.01 * abs(yaw - wrap_half_pi(current_yaw, 0.0)) + abs(shift)
            if best is None or cost < best[0]:
                best = (cost, xy, yaw, need)
    _, xy, yaw, need = best
    z = min(max(z_nominal, need), z_max)
    return Grasp(np.array([xy[0], xy[1], z]), yaw)


HAND_HALF = (0.11, 0.04, 0.03)
"""Panda hand collision box around the grip site, metres: half-length along the finger axis, half-width across,
height of its underside above the grip site."""
FINGER_HALF = (0.07, 0.015, -0.01)
"""Open fingers: half-length along the finger axis, half-width across, lowest point relative to the grip site."""


def _hand_clearance_z(xy: np.ndarray, finger_axis: np.ndarray, others: list[Box]) -> float:
    """Lowest grip-site height at which the open hand over `xy` clears all other objects, metres."""
    need = -np.inf
    across = np.array([-finger_axis[1], finger_axis[0]])
    for o in others:
        corners = np.array([[o.wlo[0], o.wlo[1]], [o.wlo[0], o.whi[1]], [o.whi[0], o.wlo[1]], [o.whi[0], o.whi[1]]])
        rel = corners - xy
        u, w = rel @ finger_axis, rel @ across
        for half_len, half_w, bottom in (HAND_HALF, FINGER_HALF):
            # Separating-axis test between the hand rectangle and the obstacle's world rectangle.
            if u.max() < -half_len or u.min() > half_len or w.max() < -half_w or w.min() > half_w:
                continue
            hand_x = abs(finger_axis[0]) * half_len + abs(across[0]) * half_w
            hand_y = abs(finger_axis[1]) * half_len + abs(across[1]) * half_w
            if xy[0] + hand_x < o.wlo[0] or xy[0] - hand_x > o.whi[0]:
                continue
            if xy[1] + hand_y < o.wlo[1] or xy[1] - hand_y > o.whi[1]:
                continue
            need = max(need, o.top + 0.01 - bottom)
    return need


def place_target(move: PickPlace, objects: dict, sites: dict) -> tuple[np.ndarray, float]:
    """Where the carried object's centre goes (xy) and the height its bottom is released at, metres."""
    if move.target in objects:
        tbox = Box(move.target, objects[move.target])
        xy = tbox.centre[:2]
        surface = tbox.top
    else:
        site = sites[move.target]
        xy = np.asarray(site[:2], np.float64)
        owner = parent_object(move.target, objects)
        surface = Box(owner, objects[owner]).top if owner else float(site[2])
    return xy, surface + RELEASE_GAP


def clearance_bottom(
    move: PickPlace, objects: dict, here_xy: np.ndarray, goal_xy: np.ndarray, lookahead: float = 0.12
) -> float:
    """Lowest safe height of the carried object's bottom at `here_xy`, metres.

    Considers every other object whose xy rectangle, grown by the carried object's footprint radius, comes
    within reach of the next `lookahead` metres of the straight path toward `goal_xy`.
    """
    carried = Box(move.obj, objects[move.obj])
    margin = carried.footprint_radius() * 0.8 + 0.015
    a = np.asarray(here_xy[:2], np.float64)
    ab = np.asarray(goal_xy[:2], np.float64) - a
    n = float(np.linalg.norm(ab))
    samples = [a + ab * min(1.0, d / max(n, 1e-9)) for d in np.linspace(0.0, lookahead, 7)]
    highest = -np.inf
    for name, pose in objects.items():
        if name == move.obj:
            continue
        box = Box(name, pose)
        if min(_rect_distance(np.append(p, 0), box) for p in samples) < margin:
            highest = max(highest, box.top)
    return highest + CLEARANCE


def hand_clearance_path(
    eef_xy: np.ndarray, goal_xy: np.ndarray, yaw: float, objects: dict, carried: str, lookahead: float = 0.12
) -> float:
    """Lowest grip-site height at which the hand clears every object except `carried` over the next
    `lookahead` metres of the straight path from eef_xy toward goal_xy, metres."""
    others = [Box(n, p) for n, p in objects.items() if n != carried]
    axis = np.array([np.sin(yaw), -np.cos(yaw)])
    a = np.asarray(eef_xy[:2], np.float64)
    ab = np.asarray(goal_xy[:2], np.float64) - a
    n = float(np.linalg.norm(ab))
    need = -np.inf
    for d in np.linspace(0.0, lookahead, 5):
        need = max(need, _hand_clearance_z(a + ab * min(1.0, d / max(n, 1e-9)), axis, others))
    return need


def is_container(name: str) -> bool:
    return category(name) in CONTAINERS
