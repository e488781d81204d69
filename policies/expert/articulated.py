"""The LIBERO expert's skills on articulated fixtures and wide objects, as named phases (see `control.py`).

Drawer opening (`Articulate` "open" on a drawer's region site, to `Articulate.to` or all the way): pull_reach (in
front of the handle, the hand turned horizontal, the fingers closing across the bar) -> pull_insert (around the
bar) -> pull_grip (close) -> pull (out along the slide) -> pull_release -> pull_retreat -> done; a drawer already
ajar is pushed open from inside instead: nudge_reach (above the gap behind its front) -> nudge_lower -> nudge
(out along the slide) -> nudge_retreat -> done.
Drawer closing ("close"): shove_reach (above the point in front of the handle, fingers closed, the hand tipped so
the arm stays back from the cabinet) -> shove_lower -> shove (in along the slide until it counts as closed) ->
shove_retreat -> done.
Knob turning (`TurnOn`): knob_reach (above the knob's fin, yaw across it) -> knob_descend -> knob_grip ->
knob_twist (rotate the hand about the knob axis until the stove counts as on) -> knob_release ->
knob_retreat -> done.
Door swinging (`Articulate` "close" on a fixture with a hinged door, a microwave's): swing_reach (high over the
point just outside the door's outer face, fingers closed) -> swing_lower -> swing (round the hinge, leading the
door's angle, until it counts as shut) -> swing_retreat -> done.
Pushing (`Push`, a plate to a table region, along a planned path of one or two legs, clear of everything and within
the arm's reach): per leg push_reach (above the point behind the object, or for a dish, `PUSH_DISH`, inside it
behind its far wall) -> push_lower -> push (the closed fingers on the object, kept on the line through its centre
toward the waypoint) -> push_retreat (back off and rise) -> the next leg, or done.

A skill whose effect already holds goes straight to done. Joint positions come from `View.joints`; part
positions from the fixture pose and the measured offsets in `geometry.py`. Metres, radians, steps.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from policies.expert.control import CLOSE, OPEN, Command, Phase, View, at_rest, gripper_settled, hold_open
from policies.expert.geometry import (DOOR_HINGE, DOOR_OUTER_FACE, DOOR_SHUT, DRAWER_BOX, DRAWER_CLOSED,
                                      DRAWER_HANDLE, DRAWER_INNER_FRONT, DRAWER_OPEN, DRAWER_OUT, FINGERS_CLOSED_BOX,
                                      HAND_BOX, KNOB_FIN, KNOB_FIN_TOP, KNOB_ON, ROUND, Box,
                                      category, gripper_yaw, mat_from_rotvec, pointing, quat_wxyz_to_mat, rot_z,
                                      top_down, wrap_half_pi)
from policies.expert.planner import DRAWER_AJAR, DRAWER_FULL, DRAWERS, drawer_solids, footprint_half, reach_margin

if TYPE_CHECKING:
    from policies.expert.libero import LiberoExpert

REACH_TOL = 0.012
"""Distance to a pre-contact waypoint at which the next phase starts, metres."""
REACH_ANGLE_TOL = 0.1
"""Orientation error at which the next phase may start, rad."""
CONTACT_TOL = 0.006
"""Distance to a contact point at which the fingers close, metres."""
GRIP_MIN_STEPS = 6
"""Steps a close or open command is held at least before the fingers may count as stopped."""

PULL_STANDOFF = 0.08
"""Distance in front of the handle (along the slide) the hand lines up at before moving onto it, metres."""
PULL_DEPTH = 0.003
"""Grip site this far past the handle bar's centre, toward the drawer front, metres."""
PULL_TARGET = DRAWER_FULL
"""Slide position the pull aims for (LIBERO counts a drawer as open below -0.14; the slide ends at -0.16), m."""
PULL_LEAD = 0.015
"""How far ahead of the handle the pull waypoint runs along the slide, metres."""
PULL_ROLL = 0.7
"""Tilt of the closing axis from vertical while holding a handle, rad (the bar is long along it)."""
PULL_SLIP = 0.03
"""Hand-to-handle offset change that shows the handle slipped out of the fingers, metres."""
PULL_RETREAT = 0.06
"""Back-off along the slide after letting go of the handle, metres (then up by RISE)."""
RISE = 0.08
"""Rise after a skill lets go, metres."""

SHOVE_STANDOFF = 0.05
"""Distance in front of the drawer front at which the closed fingers come down, metres."""
SHOVE_DEPTH = -0.02
"""Grip-site height above the handle bar's centre while pushing a drawer shut, metres: the fingers reach the
bar and the front below it while the hand stays clear of the drawer above (and of its handle)."""
SHOVE_CONTACT = 0.016
"""Grip site in front of the handle bar's centre when the closed pads touch it, metres."""
SHOVE_PAST = 0.03
"""How far past the closed position the shove waypoint aims, metres (the slide stops it)."""
SHOVE_TILT = 0.7
"""Tilt of the shoving hand from vertical, rad (see `_shove_rot`)."""
NUDGE_MIN = DRAWER_AJAR
"""Slide travel from which a drawer is pushed open from inside (the closed fingers fit behind its front), m."""
NUDGE_INSET = 0.018
"""Grip site this far behind the inside of the drawer's front, metres (the fingers are 2.1 cm thick)."""
NUDGE_DEPTH = 0.02
"""Grip site this far below the top of the drawer's front, metres."""
NUDGE_APPROACH = 0.08
"""Height above the nudge point at which the hand lines up, metres."""
SHOVE_TARGET = 0.003
"""Slide position at which the drawer counts as shut for the shove (LIBERO: above 0), metres."""

KNOB_GRIP_DEPTH = 0.016
"""Grip site below the fin's top, metres."""
KNOB_REACH_TOL = 0.006
"""Distance to the line-up point at which the descent onto the fin starts (the open fingers clear the fin by
2.5 cm on either side), metres."""
KNOB_TARGET = 0.85
"""Knob angle the twist aims for, rad (on from KNOB_ON; the joint stops at 2.1)."""
KNOB_LEAD = 0.35
"""How far ahead of the knob's angle the twisting hand leads, rad."""
KNOB_APPROACH = 0.07
"""Distance back along the approach axis from the grip point at which the hand lines up, metres."""
KNOB_TILT = 0.5
"""Tilt of the hand from vertical while turning a knob, rad (see `_knob_rot`)."""
SWING_RADIUS = 0.11
"""Distance from a door's hinge at which the fingers push it shut (short of its handle, which the hand along the
door would hit), metres."""
SWING_HEIGHT = -0.02
"""Grip-site height above the hinge's centre while swinging a door: the closed fingers reach 4.5 cm above the grip
site and 1 cm below, so they press the door's middle, metres."""
SWING_ABOVE = 0.14
"""Height above the push's start at which the hand lines up over it: the door's top is 11 cm above it, metres."""
SWING_STANDOFF = 0.02
"""Gap between the fingers and the door's outer face when they come down beside it, metres."""
SWING_LEAD = 0.3
"""How far ahead of the door's angle the pushing hand leads, rad."""
SWING_PAST = 0.1
"""How far past shut the lead runs (the hinge's limit stops the door), rad."""
SWING_BACKOFF = 0.03
"""Back-off from a door swung shut before rising, metres."""
ROBOT_SIDE = np.array([-1.0, 0.0])
"""Horizontal direction from the table toward the arm's base in every LIBERO scene (the robot stands at -x)."""

PUSH_GOAL_SLACK = 0.02
"""Largest offset of the push goal from the region site's centre, metres (regions are at least 2.5 cm across
each way; the goal within that is the one clearest of other objects)."""
PUSH_CLEAR = 0.015
"""Clearance from other objects beyond which a push path or goal counts as clear, metres."""
PUSH_CORNER = 0.05
"""Path length a corner counts as when choosing between clear push paths, metres."""
PUSH_STANDOFF = 0.015
"""Gap between the fingers and the object's edge when they come down behind it, metres."""
PUSH_PRESS = 0.005
"""How far into the object's edge the pusher point sits while pushing (keeps contact), metres."""
PUSH_LEAD = 0.02
"""How far ahead along the push the waypoint leads the pusher, metres."""
PUSH_SPEED = 0.5
"""Largest horizontal action while pushing (about 6 mm per step), units of action."""
PUSH_FLOOR = 0.006
"""Height of the fingers' lowest point above the table (the pushed object's bottom) while pushing, metres."""
PUSH_DISH = {"plate": (0.004, 0.047)}
"""Categories pushed from inside, the closed fingers down in the dish (a plate: its rim is too low and its sides
slope in under it, so fingers outside slide under or over it, and the room behind it may be taken by a fixture):
(height of the fingers' lowest point above the object's bottom, 5 mm into its floor: they press on it and drag it
along, and hold down its back, which a push on the sloping wall ahead tips up; radius at which the fingers' front
meets the wall at floor level), metres."""
PUSH_FACE = 0.006
"""Finger points within this distance of the foremost one along the push form the pushing face, metres."""
PUSH_TILTS = (0.0, 0.3, 0.5, 0.7)
"""Tilts of the pushing hand the planner chooses from, rad (see `_pusher_rot`)."""
PUSH_SIDE_SHIFTS = (0.0, 0.02, -0.02, 0.035, -0.035)
"""Sideways shifts of a wide pusher from the line through the object's centre the planner chooses from,
metres: the closed fingers are 5 cm wide, so up to 2.6 cm the push stays straight (and beyond, the steering
corrects the drift) while the 20 cm hand above them clears what stands beside the path."""
PUSH_CORNER_STEP = 0.02
PUSH_CORNER_REACH = 0.1
"""Corners of two-leg push paths: a grid of this spacing over the rectangle spanned by the start and the goal,
grown by PUSH_CORNER_REACH each way, metres."""
PUSH_APPROACH = 0.06
"""Height above the pushing point at which the hand lines up before coming down, metres."""
PUSH_DONE_TOL = 0.008
"""Distance of the object's centre from the goal point at which the push ends, metres."""
PUSH_LEG_TOL = 0.015
"""Distance of the object's centre from an intermediate waypoint at which the next leg starts, metres."""


def _pose(v: View, name: str) -> tuple[np.ndarray, np.ndarray]:
    pose = v.objects[name]
    return np.asarray(pose[:3]), quat_wxyz_to_mat(pose[3:7])


def _rise(ex: LiberoExpert, v: View, base: np.ndarray, rot: np.ndarray, gripper: float) -> Command:
    """Straight up RISE from `base`, then done."""
    pos_a, rot_a, dist, _ = ex.servo(v, base + np.array([0.0, 0.0, RISE]), rot)
    if dist < REACH_TOL or ex.timed_out():
        ex.goto("done")
    return pos_a, rot_a, gripper


# -- drawers -----------------------------------------------------------------------------------------------
def _slide(v: View, site: str) -> float:
    return float(v.joints[site][0])


def _open_to(task) -> float:
    """Slide position the opening aims for."""
    return PULL_TARGET if task.to is None else task.to


def _drawer(v: View, site: str, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """(handle bar centre, unit pull direction), world."""
    _, rot = _pose(v, owner)
    return np.asarray(v.sites[site][:3]) + rot @ DRAWER_HANDLE, rot @ DRAWER_OUT


def _pull_rot(ex: LiberoExpert, v: View, out: np.ndarray) -> np.ndarray:
    """Horizontal hand pointing into the drawer, the closing axis tilted PULL_ROLL from vertical (the hand is
    ~21 cm long along it: upright, its lower end would reach down to whatever stands in front of a middle
    drawer); of the rolls that do so, the one nearest the hand's current orientation, fixed once per pull."""
    s = ex.state
    if "roll" not in s.memo:
        rolls = [PULL_ROLL, -PULL_ROLL, np.pi - PULL_ROLL, PULL_ROLL - np.pi]
        s.memo["roll"] = max(rolls, key=lambda r: np.trace(pointing(-out, r) @ v.eef_rot.T))
    return pointing(-out, s.memo["roll"])


def pull_reach(ex: LiberoExpert, v: View) -> Command:
    """Line up in front of the handle, hand horizontal, fingers open (a drawer already open by NUDGE_MIN is
    pushed further open from inside instead; one open all the way is done)."""
    task = ex.task
    if ex.state.steps_in_phase == 1:
        q = _slide(v, task.target)
        if q <= _open_to(task) + 0.004:
            ex.goto("done")
            return hold_open()
        if q < -NUDGE_MIN:
            ex.goto("nudge_reach")
            return hold_open()
    handle, out = _drawer(v, task.target, task.owner)
    pos_a, rot_a, dist, ang = ex.servo(v, handle + out * PULL_STANDOFF, _pull_rot(ex, v, out))
    if (dist < REACH_TOL and ang < REACH_ANGLE_TOL and at_rest(ex, v)) or ex.timed_out():
        ex.goto("pull_insert")
    return pos_a, rot_a, OPEN


def pull_insert(ex: LiberoExpert, v: View) -> Command:
    """Move in around the handle bar."""
    task, s = ex.task, ex.state
    handle, out = _drawer(v, task.target, task.owner)
    pos_a, rot_a, dist, _ = ex.servo(v, handle - out * PULL_DEPTH, _pull_rot(ex, v, out))
    if dist < CONTACT_TOL or ex.stalled(dist, 0.02) or ex.timed_out():
        s.hold_pos = v.eef_pos.copy()
        ex.goto("pull_grip")
    return pos_a, rot_a, OPEN


def pull_grip(ex: LiberoExpert, v: View) -> Command:
    """Close on the bar; remember where the hand holds it."""
    task, s = ex.task, ex.state
    handle, out = _drawer(v, task.target, task.owner)
    pos_a, rot_a, _, _ = ex.servo(v, s.hold_pos, _pull_rot(ex, v, out))
    if gripper_settled(ex, v, GRIP_MIN_STEPS):
        s.offset = v.eef_pos - handle
        ex.goto("pull")
    return pos_a, rot_a, CLOSE


def pull(ex: LiberoExpert, v: View) -> Command:
    """Pull along the slide, the waypoint leading the handle, until the drawer counts as open."""
    task, s = ex.task, ex.state
    handle, out = _drawer(v, task.target, task.owner)
    q = _slide(v, task.target)
    left = max(0.0, q - _open_to(task))  # slide travel still to go (the slide opens toward negative positions)
    target = handle + s.offset + out * min(PULL_LEAD, left + 0.005)
    pos_a, rot_a, _, _ = ex.servo(v, target, _pull_rot(ex, v, out))
    slipped = not v.predicted and np.linalg.norm(v.eef_pos - handle - s.offset) > PULL_SLIP
    if q <= _open_to(task) + 0.004 or slipped or ex.timed_out():
        s.hold_pos = v.eef_pos.copy()
        s.memo["slipped"] = bool(slipped and q > DRAWER_OPEN - 0.005)
        ex.goto("pull_release")
    return pos_a, rot_a, CLOSE


def pull_release(ex: LiberoExpert, v: View) -> Command:
    """Let go of the handle."""
    task, s = ex.task, ex.state
    _, out = _drawer(v, task.target, task.owner)
    pos_a, rot_a, _, _ = ex.servo(v, s.hold_pos, _pull_rot(ex, v, out))
    if gripper_settled(ex, v, GRIP_MIN_STEPS):
        ex.goto("pull_retreat")
    return pos_a, rot_a, OPEN


def pull_retreat(ex: LiberoExpert, v: View) -> Command:
    """Back off along the slide; retry the pull if the handle slipped before the drawer opened, else rise."""
    task, s = ex.task, ex.state
    _, out = _drawer(v, task.target, task.owner)
    base = s.hold_pos + out * PULL_RETREAT
    rot = _pull_rot(ex, v, out)
    if "rising" not in s.memo:
        pos_a, rot_a, dist, _ = ex.servo(v, base, rot)
        if dist < REACH_TOL or ex.timed_out():
            if s.memo.get("slipped") and s.retries < ex.config.max_retries:
                s.retries += 1
                ex.goto("pull_reach")
            else:
                s.memo["rising"] = True
        return pos_a, rot_a, OPEN
    return _rise(ex, v, base, rot, OPEN)


def _nudge_point(v: View, site: str, owner: str) -> np.ndarray:
    """Grip site just behind the inside of the drawer's front, the fingers reaching below the front's top."""
    _, rot = _pose(v, owner)
    local = np.array([DRAWER_HANDLE[0], DRAWER_INNER_FRONT + NUDGE_INSET, DRAWER_BOX[1][2] - NUDGE_DEPTH])
    return np.asarray(v.sites[site][:3]) + rot @ local


def nudge_reach(ex: LiberoExpert, v: View) -> Command:
    """Above the gap inside the opened drawer, just behind its front, fingers closing across the slide."""
    task = ex.task
    _, out = _drawer(v, task.target, task.owner)
    point = _nudge_point(v, task.target, task.owner)
    pre = point + np.array([0.0, 0.0, NUDGE_APPROACH])
    target = np.array([pre[0], pre[1], max(pre[2], min(v.eef_pos[2], pre[2] + 0.1))])
    pos_a, rot_a, dist, ang = ex.servo(v, target, top_down(_shove_yaw(ex, v, out)))
    if (dist < REACH_TOL and ang < REACH_ANGLE_TOL and at_rest(ex, v)) or ex.timed_out():
        ex.goto("nudge_lower")
    return pos_a, rot_a, CLOSE


def nudge_lower(ex: LiberoExpert, v: View) -> Command:
    task = ex.task
    _, out = _drawer(v, task.target, task.owner)
    point = _nudge_point(v, task.target, task.owner)
    pos_a, rot_a, dist, _ = ex.servo(v, point, top_down(_shove_yaw(ex, v, out)))
    if dist < CONTACT_TOL or ex.stalled(dist, 0.02) or ex.timed_out():
        ex.goto("nudge")
    return pos_a, rot_a, CLOSE


def nudge(ex: LiberoExpert, v: View) -> Command:
    """Push the drawer's front out from inside until the drawer is open all the way."""
    task, s = ex.task, ex.state
    _, out = _drawer(v, task.target, task.owner)
    q = _slide(v, task.target)
    target = _nudge_point(v, task.target, task.owner) + out * min(PULL_LEAD, max(0.0, q - _open_to(task)) + 0.005)
    pos_a, rot_a, _, _ = ex.servo(v, target, top_down(_shove_yaw(ex, v, out)))
    if q <= _open_to(task) + 0.004 or ex.timed_out():
        s.hold_pos = v.eef_pos.copy()
        ex.goto("nudge_retreat")
    return pos_a, rot_a, CLOSE


def nudge_retreat(ex: LiberoExpert, v: View) -> Command:
    task, s = ex.task, ex.state
    _, out = _drawer(v, task.target, task.owner)
    return _rise(ex, v, s.hold_pos, top_down(_shove_yaw(ex, v, out)), CLOSE)


def shove_reach(ex: LiberoExpert, v: View) -> Command:
    """Above the point in front of the drawer's handle, top-down, fingers closing."""
    task, s = ex.task, ex.state
    if s.steps_in_phase == 1 and _slide(v, task.target) > SHOVE_TARGET:
        ex.goto("done")
        return hold_open()
    handle, out = _drawer(v, task.target, task.owner)
    start = handle + out * SHOVE_STANDOFF + np.array([0.0, 0.0, SHOVE_DEPTH])
    target = start + np.array([0.0, 0.0, max(0.0, min(v.eef_pos[2] - start[2], 0.1))])
    pos_a, rot_a, dist, ang = ex.servo(v, target, _shove_rot(ex, v, out))
    if (np.linalg.norm(v.eef_pos[:2] - start[:2]) < REACH_TOL and ang < REACH_ANGLE_TOL) or ex.timed_out():
        ex.goto("shove_lower")
    return pos_a, rot_a, CLOSE


def shove_lower(ex: LiberoExpert, v: View) -> Command:
    """Down in front of the handle."""
    task = ex.task
    handle, out = _drawer(v, task.target, task.owner)
    target = handle + out * SHOVE_STANDOFF + np.array([0.0, 0.0, SHOVE_DEPTH])
    pos_a, rot_a, dist, _ = ex.servo(v, target, _shove_rot(ex, v, out))
    if dist < REACH_TOL or ex.stalled(dist) or ex.timed_out():
        ex.goto("shove")
    return pos_a, rot_a, CLOSE


def shove(ex: LiberoExpert, v: View) -> Command:
    """Push the handle in along the slide until the drawer counts as closed."""
    task, s = ex.task, ex.state
    handle, out = _drawer(v, task.target, task.owner)
    q = _slide(v, task.target)
    # The handle's position when the drawer is shut, then a little past it (the slide's end stops the drawer).
    shut = handle + out * (q - DRAWER_CLOSED)
    target = shut + out * (SHOVE_CONTACT - SHOVE_PAST) + np.array([0.0, 0.0, SHOVE_DEPTH])
    pos_a, rot_a, _, _ = ex.servo(v, target, _shove_rot(ex, v, out))
    if q > SHOVE_TARGET or ex.timed_out():
        s.hold_pos = v.eef_pos.copy()
        ex.goto("shove_retreat")
    return pos_a, rot_a, CLOSE


def shove_retreat(ex: LiberoExpert, v: View) -> Command:
    """Back off from the drawer and rise."""
    task, s = ex.task, ex.state
    _, out = _drawer(v, task.target, task.owner)
    return _rise(ex, v, s.hold_pos + out * 0.03, _shove_rot(ex, v, out), CLOSE)


def _shove_rot(ex: LiberoExpert, v: View, out: np.ndarray) -> np.ndarray:
    """Fingers closing across the slide, the hand tipped SHOVE_TILT so the fingertips lead into the cabinet and
    the wrist (and the forearm behind it) stays back from the cabinet's body."""
    yaw = _shove_yaw(ex, v, out)
    closing = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    # Rotating by b about the closing axis tips the approach axis toward b * (cos yaw, sin yaw).
    b = -SHOVE_TILT if np.array([np.cos(yaw), np.sin(yaw)]) @ out[:2] > 0 else SHOVE_TILT
    return mat_from_rotvec(closing * b) @ top_down(yaw)


def _shove_yaw(ex: LiberoExpert, v: View, out: np.ndarray) -> float:
    """Fingers closing across the slide (the narrow side of the hand leads), fixed once per shove."""
    s = ex.state
    if "yaw" not in s.memo:
        # The closing axis (sin yaw, -cos yaw) is perpendicular to (cos yaw, sin yaw): yaw = the slide's direction.
        s.memo["yaw"] = wrap_half_pi(float(np.arctan2(out[1], out[0])), gripper_yaw(v.eef_rot))
    return s.memo["yaw"]


# -- knobs -------------------------------------------------------------------------------------------------
def _knob(v: View, stove: str) -> tuple[np.ndarray, float, float]:
    """(knob axis point at the stove origin, knob angle, fin direction yaw in the world), world."""
    pos, rot = _pose(v, stove)
    q = float(v.joints[stove][0])
    stove_yaw = float(np.arctan2(rot[1, 0], rot[0, 0]))
    return pos, q, stove_yaw + q


def _fin_grip(v: View, stove: str) -> tuple[np.ndarray, float]:
    """Grip point on the fin and the fin's direction (yaw), world."""
    axis, _, fin_yaw = _knob(v, stove)
    centre = axis[:2] + rot_z(fin_yaw)[:2, :2] @ KNOB_FIN
    return np.array([centre[0], centre[1], axis[2] + KNOB_FIN_TOP - KNOB_GRIP_DEPTH]), fin_yaw


def _knob_rot(ex: LiberoExpert, v: View, fin_yaw: float) -> np.ndarray:
    """Hand closing across the fin, tilted KNOB_TILT within the fin's plane so that the wrist leans away from
    the robot (the knobs sit close to the arm's base, where a vertical hand folds the elbow to its limit);
    of the two equivalent yaws the one nearer the hand's, fixed once per turn."""
    s = ex.state
    if "yaw_offset" not in s.memo:
        s.memo["yaw_offset"] = wrap_half_pi(fin_yaw, gripper_yaw(v.eef_rot)) - fin_yaw
    yaw = fin_yaw + s.memo["yaw_offset"]
    closing = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    # Rotating the down-pointing hand by b about the closing axis tips its approach axis toward
    # b * (cos yaw, sin yaw): lean it toward the robot's side of the table.
    along = np.array([np.cos(yaw), np.sin(yaw)])
    b = KNOB_TILT * (1.0 if along @ ROBOT_SIDE >= 0 else -1.0)
    return mat_from_rotvec(closing * b) @ top_down(yaw)


def knob_reach(ex: LiberoExpert, v: View) -> Command:
    """Above the fin, across it, fingers open."""
    s, stove = ex.state, ex.task.obj
    if s.steps_in_phase == 1 and _knob(v, stove)[1] >= KNOB_ON + 0.1:
        ex.goto("done")
        return hold_open()
    grip, fin_yaw = _fin_grip(v, stove)
    rot = _knob_rot(ex, v, fin_yaw)
    # Line up on the approach axis, KNOB_APPROACH back from the grip point.
    pre = grip - rot[:, 2] * KNOB_APPROACH
    target = np.array([pre[0], pre[1], max(pre[2], min(v.eef_pos[2], pre[2] + 0.1))])
    pos_a, rot_a, dist, ang = ex.servo(v, target, rot)
    if (dist < KNOB_REACH_TOL and ang < REACH_ANGLE_TOL and at_rest(ex, v)) or ex.timed_out():
        ex.goto("knob_descend")
    return pos_a, rot_a, OPEN


def knob_descend(ex: LiberoExpert, v: View) -> Command:
    """Along the approach axis onto the fin."""
    s, stove = ex.state, ex.task.obj
    grip, fin_yaw = _fin_grip(v, stove)
    pos_a, rot_a, dist, _ = ex.servo(v, grip, _knob_rot(ex, v, fin_yaw))
    if dist < CONTACT_TOL or ex.stalled(dist) or ex.timed_out():
        s.hold_pos = v.eef_pos.copy()
        ex.goto("knob_grip")
    return pos_a, rot_a, OPEN


def knob_grip(ex: LiberoExpert, v: View) -> Command:
    s, stove = ex.state, ex.task.obj
    _, fin_yaw = _fin_grip(v, stove)
    rot = _knob_rot(ex, v, fin_yaw)
    pos_a, rot_a, _, _ = ex.servo(v, s.hold_pos, rot)
    if gripper_settled(ex, v, GRIP_MIN_STEPS):
        axis, q, _ = _knob(v, stove)
        s.memo.update(q0=q, rot0=rot, arm=v.eef_pos - axis, turn=0.0)
        ex.goto("knob_twist")
    return pos_a, rot_a, CLOSE


def knob_twist(ex: LiberoExpert, v: View) -> Command:
    """Turn the hand about the knob axis, leading the knob's angle, until the stove counts as on."""
    s, stove = ex.state, ex.task.obj
    axis, q, _ = _knob(v, stove)
    s.memo["turn"] = turn = min(q + KNOB_LEAD, KNOB_TARGET) - s.memo["q0"]
    pos_a, rot_a, _, _ = ex.servo(v, axis + rot_z(turn) @ s.memo["arm"], rot_z(turn) @ s.memo["rot0"])
    if q >= KNOB_TARGET - 0.05 or ex.timed_out():
        s.hold_pos = v.eef_pos.copy()
        ex.goto("knob_release")
    return pos_a, rot_a, CLOSE


def _twisted(ex: LiberoExpert) -> np.ndarray:
    return rot_z(ex.state.memo["turn"]) @ ex.state.memo["rot0"]


def knob_release(ex: LiberoExpert, v: View) -> Command:
    s = ex.state
    pos_a, rot_a, _, _ = ex.servo(v, s.hold_pos, _twisted(ex))
    if gripper_settled(ex, v, GRIP_MIN_STEPS):
        ex.goto("knob_retreat")
    return pos_a, rot_a, OPEN


def knob_retreat(ex: LiberoExpert, v: View) -> Command:
    return _rise(ex, v, ex.state.hold_pos, _twisted(ex), OPEN)


# -- hinged doors ------------------------------------------------------------------------------------------
def _door(v: View, fixture: str) -> tuple[np.ndarray, float, float]:
    """(hinge point, door yaw: the direction of its local x, the yaw it has when shut), world."""
    pos, rot = _pose(v, fixture)
    shut = float(np.arctan2(rot[1, 0], rot[0, 0]))
    return pos + rot @ DOOR_HINGE, shut + float(v.joints[fixture][0]), shut


def _swing_point(v: View, fixture: str, yaw: float, standoff: float) -> np.ndarray:
    """Grip site with the closed fingers `standoff` outside the door's outer face, SWING_RADIUS from the hinge,
    the door turned to `yaw`."""
    hinge, _, _ = _door(v, fixture)
    along, into = np.array([np.cos(yaw), np.sin(yaw), 0.0]), np.array([-np.sin(yaw), np.cos(yaw), 0.0])
    reach = DOOR_OUTER_FACE - FINGERS_CLOSED_BOX[1][0] - standoff
    return hinge + along * SWING_RADIUS + into * reach + np.array([0.0, 0.0, SWING_HEIGHT])


def _swing_rot(ex: LiberoExpert, yaw: float) -> np.ndarray:
    """Top-down hand, fingers closing along the door (their flat side on it), turning with the door; of the two
    equivalent yaws the one nearer 0, the yaw every episode starts at (the other, turned on from the hand's yaw
    after loading the oven, runs the wrist into its joint limit and the hand off its path), fixed once per swing."""
    s = ex.state
    if "yaw_offset" not in s.memo:
        s.memo["yaw_offset"] = wrap_half_pi(yaw + np.pi / 2) - yaw
    return top_down(yaw + s.memo["yaw_offset"])


def swing_reach(ex: LiberoExpert, v: View) -> Command:
    """Above the point outside the open door where the push starts, fingers closed (a shut door is done)."""
    s, fixture = ex.state, ex.task.owner
    if s.steps_in_phase == 1 and float(v.joints[fixture][0]) > DOOR_SHUT:
        ex.goto("done")
        return hold_open()
    _, yaw, _ = _door(v, fixture)
    # Line up high enough that the fingers pass over the door's top on the way.
    target = _swing_point(v, fixture, yaw, SWING_STANDOFF) + np.array([0.0, 0.0, SWING_ABOVE])
    pos_a, rot_a, dist, ang = ex.servo(v, target, _swing_rot(ex, yaw))
    if (dist < REACH_TOL and ang < REACH_ANGLE_TOL and at_rest(ex, v)) or ex.timed_out():
        ex.goto("swing_lower")
    return pos_a, rot_a, CLOSE


def swing_lower(ex: LiberoExpert, v: View) -> Command:
    fixture = ex.task.owner
    _, yaw, _ = _door(v, fixture)
    pos_a, rot_a, dist, _ = ex.servo(v, _swing_point(v, fixture, yaw, SWING_STANDOFF), _swing_rot(ex, yaw))
    if dist < REACH_TOL or ex.stalled(dist) or ex.timed_out():
        ex.goto("swing")
    return pos_a, rot_a, CLOSE


def swing(ex: LiberoExpert, v: View) -> Command:
    """Push the door round its hinge, the hand leading the door's angle, until it counts as shut."""
    s, fixture = ex.state, ex.task.owner
    _, yaw, shut = _door(v, fixture)
    lead = min(yaw + SWING_LEAD, shut + SWING_PAST)
    pos_a, rot_a, _, _ = ex.servo(v, _swing_point(v, fixture, lead, -PUSH_PRESS), _swing_rot(ex, lead))
    if float(v.joints[fixture][0]) > DOOR_SHUT or ex.timed_out():
        s.hold_pos = v.eef_pos.copy()
        s.memo["back"] = -np.array([-np.sin(yaw), np.cos(yaw), 0.0]) * SWING_BACKOFF
        ex.goto("swing_retreat")
    return pos_a, rot_a, CLOSE


def swing_retreat(ex: LiberoExpert, v: View) -> Command:
    """Back off the door and rise."""
    s = ex.state
    _, yaw, _ = _door(v, ex.task.owner)
    return _rise(ex, v, s.hold_pos + s.memo["back"], _swing_rot(ex, yaw), CLOSE)


# -- pushing -----------------------------------------------------------------------------------------------
def solids(v: View, skip: str) -> np.ndarray:
    """(n, 2, 3) world bounds (lo, hi) of everything on the table but `skip`: each object's box (`Box`), a
    cabinet as its carcass and its drawers where they are (`planner.drawer_solids`)."""
    boxes = []
    for name, pose in v.objects.items():
        if name == skip:
            continue
        if category(name) in DRAWERS:
            boxes += [(sol.wlo, sol.whi) for sol in drawer_solids(v.objects, v.sites, v.joints, name)]
        else:
            b = Box(name, pose)
            boxes.append((b.wlo, b.whi))
    return np.array(boxes).reshape(-1, 2, 3)


def gaps(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(n,) distance of each point to the nearest box (negative: depth inside it), metres."""
    if len(boxes) == 0:
        return np.full(len(points), 1.0)
    lo, hi = boxes[None, :, 0], boxes[None, :, 1]
    p = points[:, None, :]
    outside = np.linalg.norm(np.maximum(np.maximum(lo - p, p - hi), 0.0), axis=2)
    inside = np.minimum(p - lo, hi - p).min(axis=2)
    return np.where(outside > 0, outside, -np.maximum(inside, 0.0)).min(axis=1)


_GRID = np.array([[a, b, c] for a in (0.0, 0.5, 1.0) for b in (0.0, 0.25, 0.5, 0.75, 1.0) for c in (0.0, 0.5, 1.0)])
"""Sample points of a box, as fractions of its extent along each axis."""


def _box_points(lo, hi) -> np.ndarray:
    return np.asarray(lo) + _GRID * (np.asarray(hi) - np.asarray(lo))


HAND_POINTS = _box_points(*HAND_BOX)
FINGER_POINTS = _box_points(*FINGERS_CLOSED_BOX)
"""Sample points of the hand's and the closed fingers' collision boxes, end-effector frame."""


def _pusher_rot(direction: np.ndarray, narrow: bool, tilt: float, ref_yaw: float) -> np.ndarray:
    """Hand for pushing along `direction`: closing axis along it (narrow) or across it, the approach axis
    tipped `tilt` rad back against the push (fingertips trailing, the hand leaning over the object)."""
    closing = direction if narrow else np.array([-direction[1], direction[0]])
    yaw = wrap_half_pi(float(np.arctan2(closing[0], -closing[1])), ref_yaw)
    axis = np.array([direction[1], -direction[0], 0.0])  # direction x z: rotating about it by -tilt tips back
    return mat_from_rotvec(axis * -tilt) @ top_down(yaw)


def _pusher_offsets(box: Box, rot: np.ndarray, direction: np.ndarray) -> tuple[float, float, float] | None:
    """(grip-site height above the object's bottom; front: distance along the push from the grip site to the
    fingers' front; contact: signed distance along the push from the object's centre to the face the fingers'
    front meets) for a hand orientation, or None when it cannot push the object. From outside (contact behind the
    centre) the fingers' lowest point stays PUSH_FLOOR over the table and their front comes down below the
    object's top; from inside a dish (PUSH_DISH) the fingers hang just over its floor and meet its inner wall
    ahead of the centre."""
    fingers = FINGER_POINTS @ rot.T
    ahead = fingers[:, :2] @ direction
    front = fingers[ahead >= ahead.max() - PUSH_FACE]
    dish = PUSH_DISH.get(box.cat)
    if dish is not None:
        return dish[0] - float(fingers[:, 2].min()), float(ahead.max()), dish[1]
    height = PUSH_FLOOR - float(fingers[:, 2].min())
    if float(front[:, 2].min()) + height > box.top - box.bottom - 0.005:
        return None
    return height, float(ahead.max()), -footprint_half(box)


def _body_points(box: Box) -> np.ndarray:
    """Sample points of the pushed object relative to its centre xy (world heights): over its box, or for a round
    one (`ROUND`) over the cylinder in it (the box's corners stick out of a plate by 3 cm)."""
    lo, hi = box.wlo - box.centre * [1, 1, 0], box.whi - box.centre * [1, 1, 0]
    if box.cat not in ROUND:
        return lo + _GRID * (hi - lo)
    a = np.linspace(-np.pi, np.pi, 16, endpoint=False)
    ring = footprint_half(box) * np.column_stack([np.cos(a), np.sin(a)])
    return np.array([[x, y, z] for x, y in np.vstack([ring, [[0.0, 0.0]]]) for z in np.linspace(lo[2], hi[2], 3)])


def _push_plan(ex: LiberoExpert, v: View) -> list[dict]:
    """Legs of the push, planned once: a goal point within PUSH_GOAL_SLACK of the region's centre, a path to it
    (straight, or with one corner), and per leg the pusher pose (`_pusher_rot`), chosen so that the object's
    box and the hand behind it keep clearest of everything else (`solids`); of clear ones the shortest."""
    s, task = ex.state, ex.task
    if "legs" in s.memo:
        return s.memo["legs"]
    box = Box(task.obj, v.objects[task.obj])
    boxes = solids(v, task.obj)
    start, centre = box.centre[:2], np.asarray(v.sites[task.target][:2])
    body = _body_points(box)
    ref_yaw = gripper_yaw(v.eef_rot)

    def body_gap(p: np.ndarray) -> float:
        return float(gaps(body + np.append(p, 0.0), boxes).min())

    offsets = [np.array([dx, dy]) for dx in (0.0, -PUSH_GOAL_SLACK, PUSH_GOAL_SLACK)
               for dy in (0.0, -PUSH_GOAL_SLACK, PUSH_GOAL_SLACK)]
    goal = max((centre + o for o in offsets), key=lambda g: (min(body_gap(g), PUSH_CLEAR), -np.linalg.norm(g - centre)))
    paths = [[goal]]
    lo_xy, hi_xy = np.minimum(start, goal) - PUSH_CORNER_REACH, np.maximum(start, goal) + PUSH_CORNER_REACH
    for x in np.arange(lo_xy[0], hi_xy[0], PUSH_CORNER_STEP):
        for y in np.arange(lo_xy[1], hi_xy[1], PUSH_CORNER_STEP):
            paths.append([np.array([x, y]), goal])
    if box.cat in PUSH_DISH:
        # Upright, on the line through the centre, the closing axis along the push: the closed fingers reach from
        # the wall ahead back over the middle of the floor, holding the dish down against the tipping.
        poses = [(True, 0.0, 0.0)]
    else:
        poses = [(False, tilt, side) for tilt in PUSH_TILTS for side in PUSH_SIDE_SHIFTS]
        poses += [(True, tilt, 0.0) for tilt in PUSH_TILTS]

    def plan(path: list[np.ndarray]) -> tuple[tuple[float, float], list[dict]]:
        worst, length, here, legs = np.inf, 0.0, start, []
        for w in path:
            leg = w - here
            n = float(np.linalg.norm(leg))
            if n < 1e-6:
                continue
            d = leg / n
            samples = [here + leg * t for t in np.linspace(0.0, 1.0, max(2, int(n / 0.03) + 1))]
            worst = min([worst] + [body_gap(p) for p in samples])
            best = None
            across = np.array([-d[1], d[0]])
            for narrow, tilt, side in poses:
                rot = _pusher_rot(d, narrow, tilt, ref_yaw)
                offsets = _pusher_offsets(box, rot, d)
                if offsets is None:
                    continue
                height, front, contact = offsets
                reach = front + PUSH_STANDOFF - contact
                pts = np.concatenate([HAND_POINTS, FINGER_POINTS]) @ rot.T
                # The hand keeps clear of everything and within the arm's reach at table height.
                clear = min(min(float(gaps(pts + np.append(grip, box.bottom + height), boxes).min()),
                                reach_margin(grip))
                            for grip in (p - d * reach + across * side for p in samples))
                if best is None or min(clear, PUSH_CLEAR) > min(best[0], PUSH_CLEAR) + 1e-9:
                    best = (clear, dict(waypoint=w, narrow=narrow, tilt=tilt, side=side, dir0=d))
            if best is None:
                return (-np.inf, -np.inf), []
            worst = min(worst, best[0])
            legs.append(best[1])
            length += n
            here = w
        return (min(worst, PUSH_CLEAR), -length - PUSH_CORNER * (len(legs) - 1)), legs

    s.memo["legs"] = max((plan(path) for path in paths), key=lambda r: r[0])[1]
    s.memo["table_z"] = box.bottom
    return s.memo["legs"]


def _push_leg(ex: LiberoExpert, v: View) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """(object centre xy, unit push direction toward the current waypoint, distance to it, the leg)."""
    s = ex.state
    legs = _push_plan(ex, v)
    leg = legs[min(s.memo.get("leg", 0), len(legs) - 1)]
    centre = Box(ex.task.obj, v.objects[ex.task.obj]).centre[:2]
    d = leg["waypoint"] - centre
    n = float(np.linalg.norm(d))
    if "dir" not in leg or n > PUSH_LEG_TOL:
        leg["dir"] = d / n if n > 1e-6 else leg.get("dir", np.array([1.0, 0.0]))
    return centre, leg["dir"], n, leg


def _pusher_pose(ex: LiberoExpert, v: View, centre: np.ndarray, d: np.ndarray, leg: dict,
                 standoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Grip-site position and hand orientation with the fingers' front `standoff` short of the face they push
    (`_pusher_offsets`)."""
    if "rot" not in leg:
        leg["rot"] = _pusher_rot(d, leg["narrow"], leg["tilt"], gripper_yaw(v.eef_rot))
    box = Box(ex.task.obj, v.objects[ex.task.obj])
    # The orientation is fixed per leg; the offsets follow the direction as the push steers.
    height, front, contact = _pusher_offsets(box, leg["rot"], d) or _pusher_offsets(box, leg["rot"], leg["dir0"])
    xy = centre + d * (contact - front - standoff) + np.array([-d[1], d[0]]) * leg["side"]
    # Heights from the table (the object's bottom when the push was planned): an object tipped by the push is not
    # followed up or down.
    return np.array([xy[0], xy[1], ex.state.memo["table_z"] + height]), leg["rot"]


def push_reach(ex: LiberoExpert, v: View) -> Command:
    """Above the point behind the object (as seen from the waypoint), fingers closing."""
    s = ex.state
    if s.steps_in_phase == 1 and "leg" not in s.memo:
        s.memo["leg"] = 0
        box = Box(ex.task.obj, v.objects[ex.task.obj])
        if np.linalg.norm(np.asarray(v.sites[ex.task.target][:2]) - box.centre[:2]) < PUSH_DONE_TOL:
            ex.goto("done")
            return hold_open()
    centre, d, _, leg = _push_leg(ex, v)
    point, rot = _pusher_pose(ex, v, centre, d, leg, PUSH_STANDOFF)
    pre = point - rot[:, 2] * PUSH_APPROACH
    target = np.array([pre[0], pre[1], max(pre[2], min(v.eef_pos[2], pre[2] + 0.1))])
    pos_a, rot_a, dist, ang = ex.servo(v, target, rot)
    if (dist < REACH_TOL and ang < REACH_ANGLE_TOL and at_rest(ex, v)) or ex.timed_out():
        ex.goto("push_lower")
    return pos_a, rot_a, CLOSE


def push_lower(ex: LiberoExpert, v: View) -> Command:
    """Along the approach axis down behind the object."""
    centre, d, _, leg = _push_leg(ex, v)
    point, rot = _pusher_pose(ex, v, centre, d, leg, PUSH_STANDOFF)
    pos_a, rot_a, dist, _ = ex.servo(v, point, rot)
    if dist < CONTACT_TOL or ex.stalled(dist, 0.02) or ex.timed_out():
        ex.goto("push")
    return pos_a, rot_a, CLOSE


def push(ex: LiberoExpert, v: View) -> Command:
    """Push toward the waypoint, the pusher kept on the line through the object's centre (steering it); at a
    waypoint the next leg starts from above."""
    s = ex.state
    centre, d, dist, leg = _push_leg(ex, v)
    last = s.memo["leg"] >= len(s.memo["legs"]) - 1
    behind, rot = _pusher_pose(ex, v, centre, d, leg, -PUSH_PRESS)
    target = behind + np.append(d * min(PUSH_LEAD, dist), 0.0)
    pos_a, rot_a, _, _ = ex.servo(v, target, rot)
    n = np.linalg.norm(pos_a[:2])
    if n > PUSH_SPEED:
        pos_a[:2] *= PUSH_SPEED / n
    if dist < (PUSH_DONE_TOL if last else PUSH_LEG_TOL) or ex.timed_out():
        s.hold_pos = v.eef_pos.copy()
        s.memo["back"] = (-d, rot)
        if not last:
            s.memo["leg"] += 1
            s.memo["next"] = True
        ex.goto("push_retreat")
    return pos_a, rot_a, CLOSE


def push_retreat(ex: LiberoExpert, v: View) -> Command:
    """Back off and rise; then the next leg, or done."""
    s = ex.state
    back, rot = s.memo["back"]
    base = s.hold_pos + np.append(back * 0.02, 0.0)
    pos_a, rot_a, dist, _ = ex.servo(v, base + np.array([0.0, 0.0, RISE]), rot)
    if dist < REACH_TOL or ex.timed_out():
        ex.goto("push_reach" if s.memo.pop("next", False) else "done")
    return pos_a, rot_a, CLOSE


# max_steps: each phase's safety timeout, steps.
PHASES: dict[str, Phase] = {
    "pull_reach": Phase(pull_reach, max_steps=100),
    "pull_insert": Phase(pull_insert, max_steps=40),
    "pull_grip": Phase(pull_grip, max_steps=20),
    "pull": Phase(pull, max_steps=80),
    "pull_release": Phase(pull_release, max_steps=15),
    "pull_retreat": Phase(pull_retreat, max_steps=40),
    "nudge_reach": Phase(nudge_reach, max_steps=100),
    "nudge_lower": Phase(nudge_lower, max_steps=40),
    "nudge": Phase(nudge, max_steps=60),
    "nudge_retreat": Phase(nudge_retreat, max_steps=30),
    "shove_reach": Phase(shove_reach, max_steps=100),
    "shove_lower": Phase(shove_lower, max_steps=40),
    "shove": Phase(shove, max_steps=160),
    "shove_retreat": Phase(shove_retreat, max_steps=40),
    "knob_reach": Phase(knob_reach, max_steps=100),
    "knob_descend": Phase(knob_descend, max_steps=40),
    "knob_grip": Phase(knob_grip, max_steps=20),
    "knob_twist": Phase(knob_twist, max_steps=60),
    "knob_release": Phase(knob_release, max_steps=15),
    "knob_retreat": Phase(knob_retreat, max_steps=30),
    "swing_reach": Phase(swing_reach, max_steps=100),
    "swing_lower": Phase(swing_lower, max_steps=40),
    "swing": Phase(swing, max_steps=150),
    "swing_retreat": Phase(swing_retreat, max_steps=30),
    "push_reach": Phase(push_reach, max_steps=100),
    "push_lower": Phase(push_lower, max_steps=40),
    "push": Phase(push, max_steps=150),
    "push_retreat": Phase(push_retreat, max_steps=40),
}
FIRST = {"open": "pull_reach", "close": "shove_reach", "swing": "swing_reach", "turnon": "knob_reach",
         "push": "push_reach"}
"""The first phase of each skill."""
