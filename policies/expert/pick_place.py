"""The pick-and-place skill of the LIBERO expert as named phases (see `control.py` for the phase contract).

approach (above the grasp, fingers pre-shaped) -> descend -> grasp (close until the fingers stop) -> lift ->
transport (above the place target, flying only as high as obstacles ahead demand) -> lower -> release (open)
-> retreat -> done. A grasp that did not lift the object, or an object that slipped out in transport, goes
through regrasp (open, back off upwards) to a fresh approach, at most `ExpertConfig.max_retries` times.
Every phase holds the hand top-down at the grasp yaw. Distances are metres, angles radians, counts steps.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from policies.expert.control import CLOSE, OPEN, PROGRESS, Command, Phase, View
from policies.expert.geometry import Box, gripper_yaw, top_down
from policies.expert.planner import clearance_bottom, hand_clearance_path, place_target, plan_grasp

if TYPE_CHECKING:
    from policies.expert.libero import LiberoExpert

APPROACH_CEILING = 0.1
"""Highest the approach waypoint sits above the pre-grasp point, metres: a hand below that keeps its height
(it travels sideways, then descends), a hand above it comes down to it."""
PRESHAPE_RANGE = 0.08
"""Distance to the approach waypoint within which the fingers pre-shape to the grasp width, metres."""
AT_REST_STEP = 0.004
"""Hand displacement per step below which the hand counts as at rest, metres."""
APPROACH_TOL = 0.012
"""Distance to the approach waypoint at which the descent may start, metres."""
APPROACH_ANGLE_TOL = 0.08
"""Orientation error at which the descent may start, rad."""
REROUTE_STALL = 12
"""Approach steps without progress after which a rim grasp point counts as unreachable, steps."""
REROUTE_MIN_DIST = 0.02
"""Distance to the approach waypoint beyond which a stalled rim approach is rerouted, metres."""
MAX_AVOIDED = 3
"""Rim directions given up at most before the approach sticks with its plan."""
DESCEND_TOL = 0.006
"""Distance to the grasp point at which the fingers close, metres."""
FINGERS_STILL = 4e-4
"""Finger-opening change per step below which the fingers have stopped, metres."""
GRASP_MIN_STEPS = 6
"""Steps the close command is held at least before the fingers may count as stopped."""
LIFTED_RISE = 0.015
"""Rise of the object above its height before the grasp that shows the grasp holds it, metres."""
MISS_CHECK_RISE = 0.03
"""Rise of the hand above the grasp point at which an object that has not risen counts as missed, metres."""
LIFT_TOL = 0.02
"""Hand height below the carry height at which transport starts, metres."""
REGRASP_TOL = 0.015
"""Distance to the back-off point at which a fresh approach starts, metres."""
DROP_SLIP = 0.05
"""Change of the object's offset from the hand that shows it left the hand, metres."""
TRANSPORT_TOL = 0.01
"""Distance to the hover point at which lowering starts, metres."""
TRANSPORT_STALL_RANGE = 0.03
"""Distance to the hover point within which a stalled transport lowers anyway, metres."""
LOWER_TOL = 0.008
"""Distance to the release point at which the gripper opens, metres."""
RELEASE_MIN_STEPS = 5
"""Steps the open command is held at least before the fingers may count as stopped."""
RETREAT_RISE = 0.1
"""Rise of the hand above the release point after opening, metres."""
RETREAT_TOL = 0.02
"""Distance to the retreat point at which the expert is done, metres."""
SHAPE_UNDER = 0.025
"""Finger opening below a pre-shape width at which the fingers open fully first, metres."""
SHAPE_OVER = 0.004
"""Finger opening above a pre-shape width at which the fingers close further, metres."""
SHAPED_OVER = 0.01
"""Finger opening above a pre-shape width still counted as shaped, metres."""


# -- phases ------------------------------------------------------------------------------------------------
def approach(ex: LiberoExpert, v: View) -> Command:
    """Fly to above the grasp point, yaw the hand and pre-shape the fingers; reroute around rim points the
    hand makes no progress toward."""
    s, obj = ex.state, ex.task.obj
    if s.steps_in_phase == 1 or s.grasp is None:
        # Plan once per approach (re-planning every step lets near-tied rim choices flip-flop); afterwards
        # only follow the object's drift.
        s.grasp = plan_grasp(obj, v.objects, gripper_yaw(v.eef_rot), tuple(s.avoid))
        s.grasp_obj_pos = v.objects[obj][:3].copy()
        s.approach_best, s.approach_stall = np.inf, 0
    elif not v.predicted:
        drift = v.objects[obj][:3] - s.grasp_obj_pos
        s.grasp = replace(s.grasp, pos=s.grasp.pos + drift)
        s.grasp_obj_pos = v.objects[obj][:3].copy()
    s.obj_start_z = float(v.objects[obj][2])
    pre = s.grasp.pos + np.array([0, 0, ex.config.approach_height])
    target = np.array([pre[0], pre[1], max(pre[2], min(v.eef_pos[2], pre[2] + APPROACH_CEILING))])
    pos_a, rot_a, dist, ang = ex.servo(v, target, top_down(s.grasp.yaw))
    gripper = _shape(v, s.grasp.width if dist < PRESHAPE_RANGE else None)
    at_rest = v.predicted or np.linalg.norm(v.eef_pos - s.last_pos) < AT_REST_STEP
    if not v.predicted and s.grasp.theta is not None:
        # A rim point the hand cannot reach (arm limit, obstacle) shows as no progress: pick another.
        if dist < s.approach_best - PROGRESS:
            s.approach_best, s.approach_stall = dist, 0
        else:
            s.approach_stall += 1
    arrived = dist < APPROACH_TOL and ang < APPROACH_ANGLE_TOL and at_rest and _shaped(v, s.grasp.width)
    if arrived or ex.timed_out():
        ex.goto("descend")
    elif s.approach_stall >= REROUTE_STALL and dist > REROUTE_MIN_DIST and len(s.avoid) < MAX_AVOIDED:
        s.avoid.append(s.grasp.theta)
        s.grasp = None
        ex.goto("approach")
    return pos_a, rot_a, gripper


def descend(ex: LiberoExpert, v: View) -> Command:
    """Straight down to the grasp point, keeping the pre-shape."""
    s = ex.state
    pos_a, rot_a, dist, _ = ex.servo(v, s.grasp.pos, top_down(s.grasp.yaw))
    gripper = _shape(v, s.grasp.width)
    if dist < DESCEND_TOL or ex.stalled(dist) or ex.timed_out():
        s.hold_pos = v.eef_pos.copy()
        ex.goto("grasp")
    return pos_a, rot_a, gripper


def grasp(ex: LiberoExpert, v: View) -> Command:
    """Close in place until the fingers stop, then measure the hold and plan the carry."""
    s = ex.state
    pos_a, rot_a, _, _ = ex.servo(v, s.hold_pos, top_down(s.grasp.yaw))
    if (s.steps_in_phase >= GRASP_MIN_STEPS and _fingers_still(ex, v)) or ex.timed_out():
        _start_carry(ex, v)
        ex.goto("lift")
    return pos_a, rot_a, CLOSE


def lift(ex: LiberoExpert, v: View) -> Command:
    """Straight up to the carry height; an object that stays behind is a missed grasp."""
    s = ex.state
    target = np.array([s.hold_pos[0], s.hold_pos[1], s.carry_z])
    pos_a, rot_a, _, _ = ex.servo(v, target, top_down(s.grasp.yaw))
    rise_left = max(0.0, s.carry_z - v.eef_pos[2])
    lifted = v.predicted or float(v.objects[ex.task.obj][2]) > s.obj_start_z + LIFTED_RISE
    if v.eef_pos[2] > s.hold_pos[2] + MISS_CHECK_RISE and not lifted and s.retries < ex.config.max_retries:
        s.retries += 1
        if s.grasp.theta is not None:
            s.avoid.append(s.grasp.theta)
        ex.goto("regrasp")
    elif rise_left < LIFT_TOL or ex.timed_out():
        ex.goto("transport")
    return pos_a, rot_a, CLOSE


def regrasp(ex: LiberoExpert, v: View) -> Command:
    """The grasp missed: open and back off upwards, then plan a fresh grasp from the new object pose."""
    s = ex.state
    target = s.hold_pos + np.array([0, 0, ex.config.approach_height])
    pos_a, rot_a, dist, _ = ex.servo(v, target, top_down(s.grasp.yaw))
    if dist < REGRASP_TOL or ex.timed_out():
        ex.goto("approach")
    return pos_a, rot_a, OPEN


def transport(ex: LiberoExpert, v: View) -> Command:
    """Carry the object to above the place target; fly low: only as high as obstacles just ahead demand,
    never below the hover point."""
    goals = _carry_goal(ex, v)
    if goals is None:
        return _hold_open()
    xy, goal_xy = goals
    s, task = ex.state, ex.task
    obj_xy = v.eef_pos[:2] + s.offset[:2] + _centre_shift(ex, v)
    need = max(
        clearance_bottom(task, v.objects, obj_xy, xy) + s.bottom_below_eef,
        hand_clearance_path(v.eef_pos[:2], goal_xy, s.grasp.yaw, v.objects, task.obj),
    )
    hover = s.release_z + s.bottom_below_eef + ex.config.hover_height
    target = np.array([goal_xy[0], goal_xy[1], max(need, hover)])
    pos_a, rot_a, dist, _ = ex.servo(v, target, top_down(s.grasp.yaw))
    if dist < TRANSPORT_TOL or ex.stalled(dist, TRANSPORT_STALL_RANGE) or ex.timed_out():
        ex.goto("lower")
    return pos_a, rot_a, CLOSE


def lower(ex: LiberoExpert, v: View) -> Command:
    """Down to the release height over the place target."""
    goals = _carry_goal(ex, v)
    if goals is None:
        return _hold_open()
    _, goal_xy = goals
    s = ex.state
    target = np.array([goal_xy[0], goal_xy[1], s.release_z + s.bottom_below_eef])
    pos_a, rot_a, dist, _ = ex.servo(v, target, top_down(s.grasp.yaw))
    if dist < LOWER_TOL or ex.stalled(dist) or ex.timed_out():
        s.hold_pos = v.eef_pos.copy()
        ex.goto("release")
    return pos_a, rot_a, CLOSE


def release(ex: LiberoExpert, v: View) -> Command:
    """Open in place until the fingers stop."""
    s = ex.state
    pos_a, rot_a, _, _ = ex.servo(v, s.hold_pos, top_down(s.grasp.yaw))
    if (s.steps_in_phase >= RELEASE_MIN_STEPS and _fingers_still(ex, v)) or ex.timed_out():
        ex.goto("retreat")
    return pos_a, rot_a, OPEN


def retreat(ex: LiberoExpert, v: View) -> Command:
    """Rise clear of the placed object."""
    s = ex.state
    target = s.hold_pos + np.array([0, 0, RETREAT_RISE])
    pos_a, rot_a, dist, _ = ex.servo(v, target, top_down(s.grasp.yaw))
    if dist < RETREAT_TOL or ex.timed_out():
        ex.goto("done")
    return pos_a, rot_a, OPEN


def done(ex: LiberoExpert, v: View) -> Command:
    """Hold still, gripper open, until the episode ends."""
    return _hold_open()


# max_steps: each phase's safety timeout, steps.
PHASES: dict[str, Phase] = {
    "approach": Phase(approach, max_steps=80),
    "descend": Phase(descend, max_steps=40),
    "grasp": Phase(grasp, max_steps=20),
    "lift": Phase(lift, max_steps=40, carries=True),
    "regrasp": Phase(regrasp, max_steps=25),
    "transport": Phase(transport, max_steps=80, carries=True),
    "lower": Phase(lower, max_steps=50, carries=True),
    "release": Phase(release, max_steps=15),
    "retreat": Phase(retreat, max_steps=30),
    "done": Phase(done),
}
FIRST = "approach"
"""The phase an episode starts in."""


# -- helpers -----------------------------------------------------------------------------------------------
def _hold_open() -> Command:
    """Stand still with the gripper opening."""
    return np.zeros(3), np.zeros(3), OPEN


def _start_carry(ex: LiberoExpert, v: View) -> None:
    """After closing: measure the hand-object offset and fix carry and release heights."""
    s, task = ex.state, ex.task
    box = Box(task.obj, v.objects[task.obj])
    s.offset = v.objects[task.obj][:3] - v.eef_pos
    s.bottom_below_eef = float(v.eef_pos[2] - box.bottom)
    goal_xy, s.release_z = place_target(task, v.objects, v.sites)
    clear = clearance_bottom(task, v.objects, box.centre[:2], goal_xy, lookahead=0.05)
    s.carry_z = max(clear + s.bottom_below_eef, v.eef_pos[2] + ex.config.lift_height)


def _carry_goal(ex: LiberoExpert, v: View) -> tuple[np.ndarray, np.ndarray] | None:
    """(place target xy of the object's centre, eef xy that puts it there), metres; None when the object left
    the hand (the machine is in regrasp then, while retries last)."""
    s, task = ex.state, ex.task
    if not v.predicted:
        # Track the object's slip in the hand so it lands where intended; a dropped object is re-grasped.
        offset = v.objects[task.obj][:3] - v.eef_pos
        if np.linalg.norm(offset - s.offset) > DROP_SLIP and s.retries < ex.config.max_retries:
            s.retries += 1
            s.hold_pos = v.eef_pos.copy()
            ex.goto("regrasp")
            return None
        s.offset = offset
    xy, _ = place_target(task, v.objects, v.sites)
    return xy, xy - s.offset[:2] - _centre_shift(ex, v)


def _centre_shift(ex: LiberoExpert, v: View) -> np.ndarray:
    """Offset between the carried object's body origin and its geometric centre, xy metres."""
    box = Box(ex.task.obj, v.objects[ex.task.obj])
    return box.centre[:2] - box.pos[:2]


def _fingers_still(ex: LiberoExpert, v: View) -> bool:
    """The finger opening stopped changing (always true inside an open-loop prediction)."""
    return v.predicted or abs(v.grip - ex.state.last_grip) < FINGERS_STILL


def _shape(v: View, width: float | None) -> float:
    """Gripper command pre-shaping the finger opening to `width` m (None: open); 0 holds the opening."""
    if width is None or v.grip < width - SHAPE_UNDER:
        return OPEN
    return CLOSE if v.grip > width + SHAPE_OVER else 0.0


def _shaped(v: View, width: float | None) -> bool:
    """The fingers are pre-shaped to `width` m (None: any opening; always true inside a prediction)."""
    return v.predicted or width is None or width - SHAPE_UNDER <= v.grip <= width + SHAPED_OVER
