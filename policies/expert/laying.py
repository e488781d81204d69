"""The LIBERO expert's skill for putting an object down lying on its side (`PickPlace.lay`: a bottle into a wine
rack's groove), as named phases (see `control.py`).

side_reach (the hand horizontal, pointing at the upright object from the side where it keeps clearest of
everything, lined up over a standoff short of a side grip, `planner.SIDE_GRIPS`) -> side_lower -> side_insert
(along the pointing axis around the object) -> side_grip (close) -> side_lift -> tip (turn the hand top-down about
the grip: the object now lies under the hand along the old pointing direction) -> then pick-and-place's lift ->
transport -> lower -> release -> retreat (`pick_place.PHASES`), which carry it lying, turn it along its slot and
put it down at its rest pose (`planner.lying_box`). Metres, radians, steps.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from policies.expert.articulated import (CONTACT_TOL, FINGER_POINTS, GRIP_MIN_STEPS, HAND_POINTS, REACH_ANGLE_TOL,
                                         REACH_TOL, ROBOT_SIDE, gaps, solids)
from policies.expert.control import CLOSE, OPEN, Command, Phase, View, at_rest, gripper_settled
from policies.expert.geometry import Box, category, pointing, top_down
from policies.expert.pick_place import start_carry
from policies.expert.planner import SIDE_GRIPS, Grasp

if TYPE_CHECKING:
    from policies.expert.libero import LiberoExpert

SIDE_STANDOFF = 0.07
"""Distance short of the grip along the pointing axis at which the hand comes down beside the object, metres."""
SIDE_ABOVE = 0.1
"""Highest the hand lines up above the standoff point before coming down to it, metres."""
SIDE_ROLL = -np.pi / 2
"""Roll of the side-gripping hand about its pointing axis: the fingers close horizontally, the back of the hand
(end-effector x) down; rolled the other way the wrist runs into its joint limits pointing along most directions
(measured in LIBERO), rad."""
SIDE_YAWS = 16
"""Pointing directions the side grip is chosen from (evenly around the object)."""
SIDE_CLEAR = 0.015
"""Clearance of the hand from everything beyond which grips count as clear (then: lowest, pointing away from the
arm's base), metres."""
TIP_RATE = 0.3
"""Largest rotation action while tipping (about 0.04 rad per step: the grip stays within 1.5 cm), units of action."""
TIP_RISE = 0.08
"""Rise of the grip before the hand tips over: the object's foot swings out by the grip's height on it, metres."""


def _plan_grip(ex: LiberoExpert, v: View) -> None:
    """Fix the side grip once per step: the grip point in the object's frame and the hand orientation (horizontal,
    pointing at the object's axis, the fingers closing horizontally), chosen so that the hand, on its way down
    beside the object and in along the pointing axis, keeps clearest of everything."""
    s, obj = ex.state, ex.task.obj
    box = Box(obj, v.objects[obj])
    boxes = solids(v, obj)
    pts = np.concatenate([HAND_POINTS, FINGER_POINTS])
    best = None
    for k, height in enumerate(SIDE_GRIPS[category(obj)]):
        grip = box.pos + box.rot[:, 2] * height
        for a in np.linspace(-np.pi, np.pi, SIDE_YAWS, endpoint=False):
            p = np.array([np.cos(a), np.sin(a), 0.0])
            rot = pointing(p, SIDE_ROLL)
            path = [grip - p * t for t in np.linspace(0.0, SIDE_STANDOFF, 5)]
            path += [path[-1] + np.array([0.0, 0.0, dz]) for dz in np.linspace(0.02, SIDE_ABOVE, 4)]
            clear = min(float(gaps(pts @ rot.T + q, boxes).min()) for q in path)
            # Of clear grips the lowest, then the hand pointing back toward the arm's side of the table, where the
            # wrist tips it over without running into its limits (measured in LIBERO).
            score = (min(clear, SIDE_CLEAR), -k, float(p[:2] @ ROBOT_SIDE))
            if best is None or score > best[0]:
                best = (score, box.rot.T @ (grip - box.pos), rot)
    s.memo["grip"], s.memo["rot"] = best[1], best[2]


def _grip(ex: LiberoExpert, v: View) -> np.ndarray:
    """The side grip point where the object is now, world."""
    box = Box(ex.task.obj, v.objects[ex.task.obj])
    return box.pos + box.rot @ ex.state.memo["grip"]


def side_reach(ex: LiberoExpert, v: View) -> Command:
    """Over the standoff point beside the object, the hand turning horizontal, fingers open."""
    s = ex.state
    if "grip" not in s.memo:
        _plan_grip(ex, v)
    rot = s.memo["rot"]
    pre = _grip(ex, v) - rot[:, 2] * SIDE_STANDOFF
    target = np.array([pre[0], pre[1], max(pre[2], min(v.eef_pos[2], pre[2] + SIDE_ABOVE))])
    pos_a, rot_a, dist, ang = ex.servo(v, target, rot)
    if (dist < REACH_TOL and ang < REACH_ANGLE_TOL and at_rest(ex, v)) or ex.timed_out():
        ex.goto("side_lower")
    return pos_a, rot_a, OPEN


def side_lower(ex: LiberoExpert, v: View) -> Command:
    rot = ex.state.memo["rot"]
    pos_a, rot_a, dist, _ = ex.servo(v, _grip(ex, v) - rot[:, 2] * SIDE_STANDOFF, rot)
    if dist < REACH_TOL or ex.stalled(dist) or ex.timed_out():
        ex.goto("side_insert")
    return pos_a, rot_a, OPEN


def side_insert(ex: LiberoExpert, v: View) -> Command:
    """In along the pointing axis until the object is between the fingers."""
    s = ex.state
    pos_a, rot_a, dist, _ = ex.servo(v, _grip(ex, v), s.memo["rot"])
    if dist < CONTACT_TOL or ex.stalled(dist, 0.02) or ex.timed_out():
        s.hold_pos = v.eef_pos.copy()
        s.obj_start_z = float(v.objects[ex.task.obj][2])
        ex.goto("side_grip")
    return pos_a, rot_a, OPEN


def side_grip(ex: LiberoExpert, v: View) -> Command:
    s = ex.state
    pos_a, rot_a, _, _ = ex.servo(v, s.hold_pos, s.memo["rot"])
    if gripper_settled(ex, v, GRIP_MIN_STEPS):
        s.hold_pos = s.hold_pos + np.array([0.0, 0.0, TIP_RISE])
        ex.goto("side_lift")
    return pos_a, rot_a, CLOSE


def side_lift(ex: LiberoExpert, v: View) -> Command:
    s = ex.state
    pos_a, rot_a, dist, _ = ex.servo(v, s.hold_pos, s.memo["rot"])
    if dist < REACH_TOL or ex.timed_out():
        ex.goto("tip")
    return pos_a, rot_a, CLOSE


def tip(ex: LiberoExpert, v: View) -> Command:
    """Turn the hand top-down about the grip (about the closing axis): the object comes to lie along the old
    pointing direction; then carry it as a pick-and-place from the top-down grasp it now is."""
    s = ex.state
    closing = s.memo["rot"][:, 1]
    yaw = float(np.arctan2(closing[0], -closing[1]))  # the top-down hand with the same closing axis
    pos_a, rot_a, _, ang = ex.servo(v, s.hold_pos, top_down(yaw))
    # Slowly: turning fast, the arm lets the grip wander off by up to 15 cm.
    rot_a = rot_a * min(1.0, TIP_RATE / max(float(np.linalg.norm(rot_a)), 1e-9))
    if (ang < REACH_ANGLE_TOL and at_rest(ex, v)) or ex.timed_out():
        s.grasp = Grasp(v.eef_pos.copy(), yaw)
        s.hold_pos = v.eef_pos.copy()
        start_carry(ex, v)
        ex.goto("lift")
    return pos_a, rot_a, CLOSE


# max_steps: each phase's safety timeout, steps.
PHASES: dict[str, Phase] = {
    "side_reach": Phase(side_reach, max_steps=100),
    "side_lower": Phase(side_lower, max_steps=40),
    "side_insert": Phase(side_insert, max_steps=40),
    "side_grip": Phase(side_grip, max_steps=20),
    "side_lift": Phase(side_lift, max_steps=40, carries=True),
    "tip": Phase(tip, max_steps=60, carries=True),
}
FIRST = "side_reach"
"""The phase a lying placement starts in."""
