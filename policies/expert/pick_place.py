"""The pick-and-place skill of the LIBERO expert as named phases (see `control.py` for the phase contract).

approach (above the grasp, fingers pre-shaped) -> descend -> grasp (close until the fingers stop) -> lift ->
transport (above the place target, flying only as high as obstacles ahead demand) -> lower -> release (open)
-> retreat -> done. A grasp that did not lift the object, or an object that slipped out in transport, goes
through regrasp (open, back off upwards) to a fresh approach, at most `ExpertConfig.max_retries` times.
Every phase holds the hand top-down at the grasp yaw, from transport on at the carry yaw (the grasp yaw, turned over
the target so that an object put into a slot lies along it, `planner.place_yaw`). Into a fixture loaded through a
front opening (`planner.FRONT_LOADED`, a microwave) the object is held by its handle and lowered in front of the
opening, then carried in (insert) before the release. Distances are metres, angles radians, counts steps.

Grasps come from `planner.plan_grasp` (rim grasps for bowls and mugs, fixed holds for a moka pot, handles for
front loading, top grasps otherwise). Placing into a drawer also keeps the hand and the carried object clear of the
drawers that stick out (`planner.drawer_solids`), sliding an object out from under an opened drawer before lifting
it; mugs, which swing when held at the rim, are lowered until their foot lands; objects on
fixed holds are let go only once the fingers have opened, and the hand slides off them before rising.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from policies.expert.control import (CLOSE, OPEN, PROGRESS, Command, Phase, View, at_rest, fingers_still,
                                     gripper_settled, hold_open, shape, shaped)
from policies.expert.geometry import (EXTENTS, HAND_BOX, HOLDS, Box, category, gripper_yaw, top_down, wrap_half_pi,
                                      wrap_pi)
from policies.expert.planner import (BOWL_RIM_DEPTH, CLEARANCE, RELEASE_GAP, clearance_bottom, drawer_solids,
                                     drawer_target, front_opening, hand_clearance_path, parent_object, place_target,
                                     place_yaw, plan_grasp)

if TYPE_CHECKING:
    from policies.expert.libero import LiberoExpert

APPROACH_CEILING = 0.1
"""Highest the approach waypoint sits above the pre-grasp point, metres: a hand below that keeps its height
(it travels sideways, then descends), a hand above it comes down to it."""
PRESHAPE_RANGE = 0.08
"""Distance to the approach waypoint within which the fingers pre-shape to the grasp width, metres."""
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
PRECISE_TOL = 0.002
"""The same for a precise grasp (`Grasp.precise`), which also waits until the hand is at rest, metres."""
GRASP_MIN_STEPS = 6
"""Steps the close command is held at least before the fingers may count as stopped."""
LIFTED_RISE = 0.015
"""Rise of the object above its height before the grasp that shows the grasp holds it, metres."""
MISS_CHECK_RISE = 0.03
"""Rise of the hand above the grasp point at which an object that has not risen counts as missed, metres."""
LIFT_TOL = 0.02
"""Hand height below the carry height at which transport starts, metres."""
INSERT_DEPTH = 0.12
"""How far in front of its place an object put in through a front opening is lowered, then carried in, metres."""
FRONT_GAP = 0.005
"""Gap kept between the hand and a front opening's plane, metres."""
INSERT_TOL = 0.004
"""Distance to the place point at which an object carried in through a front opening is let go: every millimetre
counts for its centre of mass to stand over the oven's floor, metres."""
ESCAPE_GAP = 0.01
"""Clearance kept from a fixture part over the object while it is slid out from under it, metres."""
REGRASP_TOL = 0.015
"""Distance to the back-off point at which a fresh approach starts, metres."""
DROP_SLIP = 0.05
"""Change of the object's offset from the hand that shows it left the hand, metres."""
TRANSPORT_TOL = 0.01
"""Distance to the hover point at which lowering starts, metres."""
TRANSPORT_STALL_RANGE = 0.03
"""Distance to the hover point within which a stalled transport lowers anyway, metres."""
TURN_TOL = 0.08
"""Hand yaw error below which a transport that turns the object lowers it, rad."""
HOLD_BACKOFF = 0.025
"""Sideways move away from the object's axis after releasing a fixed hold, before rising, metres."""
HOLD_RELEASE_OPENING = 0.006
"""Opening the fingers gain before a release from a fixed hold counts as done, metres."""
SWINGS = {"porcelain_mug", "white_yellow_mug", "red_coffee_mug"}
"""Categories that swing when held at the rim (tall, their weight off the grasp point): lowered until their foot
is SWING_LAND over the surface (the hand aims SWING_SINK lower), not to a height measured at the grasp."""
SWING_SINK = 0.03
"""How far below the measured release height the hand aims when lowering a swinging object, metres."""
SWING_LAND = 0.006
"""Height of a swinging object's foot over the surface at which it is let go, metres."""
LOWER_TOL = 0.008
"""Distance to the release point at which the gripper opens, metres."""
RELEASE_MIN_STEPS = 5
"""Steps the open command is held at least before the fingers may count as stopped."""
RETREAT_RISE = 0.1
"""Rise of the hand above the release point after opening, metres."""
RETREAT_TOL = 0.02
"""Distance to the retreat point at which the expert is done, metres."""


# -- phases ------------------------------------------------------------------------------------------------
def approach(ex: LiberoExpert, v: View) -> Command:
    """Fly to above the grasp point, yaw the hand and pre-shape the fingers; reroute around rim points the
    hand makes no progress toward."""
    s, obj = ex.state, ex.task.obj
    if s.steps_in_phase == 1 or s.grasp is None:
        # Plan once per approach (re-planning every step lets near-tied rim choices flip-flop); afterwards
        # only follow the object's drift.
        s.grasp = plan_grasp(obj, v.objects, gripper_yaw(v.eef_rot), tuple(s.avoid), **_grasp_context(ex, v))
        s.grasp_obj_pos = v.objects[obj][:3].copy()
        s.approach_best, s.approach_stall = np.inf, 0
    elif not v.predicted:
        drift = v.objects[obj][:3] - s.grasp_obj_pos
        s.grasp = replace(s.grasp, pos=s.grasp.pos + drift)
        s.grasp_obj_pos = v.objects[obj][:3].copy()
    s.obj_start_z = float(v.objects[obj][2])
    pre = s.grasp.pos + np.array([0, 0, ex.config.approach_height if s.grasp.above is None else s.grasp.above])
    target = np.array([pre[0], pre[1], max(pre[2], min(v.eef_pos[2], pre[2] + APPROACH_CEILING))])
    moved = _moved_parts(ex, v)
    if moved and np.linalg.norm(v.eef_pos[:2] - pre[:2]) > APPROACH_TOL:
        # Fly above the fixture parts that moved (an opened drawer and its handle) until over the grasp.
        target[2] = max(target[2], hand_clearance_path(v.eef_pos[:2], pre[:2], s.grasp.yaw, {}, obj, **moved))
    pos_a, rot_a, dist, ang = ex.servo(v, target, top_down(s.grasp.yaw))
    gripper = shape(v, s.grasp.width if dist < PRESHAPE_RANGE else None)
    if not v.predicted and s.grasp.theta is not None:
        # A rim point the hand cannot reach (arm limit, obstacle) shows as no progress: pick another.
        if dist < s.approach_best - PROGRESS:
            s.approach_best, s.approach_stall = dist, 0
        else:
            s.approach_stall += 1
    arrived = dist < APPROACH_TOL and ang < APPROACH_ANGLE_TOL and at_rest(ex, v) and shaped(v, s.grasp.width)
    if arrived or ex.timed_out():
        ex.goto("descend")
    elif s.approach_stall >= REROUTE_STALL and dist > REROUTE_MIN_DIST and len(s.avoid) < MAX_AVOIDED:
        s.avoid.append(s.grasp.theta)
        s.grasp = None
        ex.goto("approach")
    return pos_a, rot_a, gripper


def descend(ex: LiberoExpert, v: View) -> Command:
    """Straight down to the grasp point, keeping the pre-shape; a precise grasp comes to rest on it."""
    s = ex.state
    pos_a, rot_a, dist, _ = ex.servo(v, s.grasp.pos, top_down(s.grasp.yaw))
    gripper = shape(v, s.grasp.width)
    if s.grasp.precise:
        arrived = dist < PRECISE_TOL and at_rest(ex, v)
    else:
        arrived = dist < DESCEND_TOL
    if arrived or ex.stalled(dist) or ex.timed_out():
        # Close where the hand is (closing fingers must not drag the object along), a precise grasp where it must be.
        s.hold_pos = s.grasp.pos.copy() if s.grasp.precise else v.eef_pos.copy()
        ex.goto("grasp")
    return pos_a, rot_a, gripper


def grasp(ex: LiberoExpert, v: View) -> Command:
    """Close in place until the fingers stop, then measure the hold and plan the carry."""
    s = ex.state
    pos_a, rot_a, _, _ = ex.servo(v, s.hold_pos, top_down(s.grasp.yaw))
    if gripper_settled(ex, v, GRASP_MIN_STEPS):
        start_carry(ex, v)
        ex.goto("lift")
    return pos_a, rot_a, CLOSE


def lift(ex: LiberoExpert, v: View) -> Command:
    """Straight up to the carry height; an object that stays behind is a missed grasp. From under a fixture part
    that moved over it (an opened drawer), out sideways first, no higher than the part lets it."""
    s = ex.state
    target = np.array([s.hold_pos[0], s.hold_pos[1], s.carry_z])
    under = None if v.predicted else _under_moved_part(ex, v)
    if under is not None:
        shift, room = under
        s.hold_pos[:2] = v.eef_pos[:2] + shift
        target = np.array([s.hold_pos[0], s.hold_pos[1], min(s.carry_z, v.eef_pos[2] + room)])
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
        return hold_open()
    xy, goal_xy = goals
    s, task = ex.state, ex.task
    obj_xy = v.eef_pos[:2] + s.offset[:2] + _centre_shift(ex, v)
    need = max(
        clearance_bottom(task, v.objects, obj_xy, xy, **_moved_parts(ex, v)) + s.bottom_below_eef,
        hand_clearance_path(v.eef_pos[:2], goal_xy, s.carry_yaw, v.objects, task.obj, **_moved_parts(ex, v)),
    )
    hover = s.release_z + s.bottom_below_eef + ex.config.hover_height
    target = np.array([goal_xy[0], goal_xy[1], max(need, hover)])
    # An object turned for a slot is turned once over the slot (turning while it travels, a tall one held near its
    # top swings round in the fingers), and goes down once it lies along the slot.
    near = float(np.linalg.norm(target - v.eef_pos)) < TRANSPORT_STALL_RANGE
    pos_a, rot_a, dist, ang = ex.servo(v, target, top_down(s.carry_yaw if near else s.grasp.yaw))
    turned = s.carry_yaw == s.grasp.yaw or (near and ang < TURN_TOL)
    if (turned and (dist < TRANSPORT_TOL or ex.stalled(dist, TRANSPORT_STALL_RANGE))) or ex.timed_out():
        ex.goto("lower")
    return pos_a, rot_a, CLOSE


def lower(ex: LiberoExpert, v: View) -> Command:
    """Down to the release height over the place target."""
    goals = _carry_goal(ex, v)
    if goals is None:
        return hold_open()
    xy, goal_xy = goals
    s = ex.state
    swings = category(ex.task.obj) in SWINGS and s.grasp.theta is not None  # held at the rim, not the handle
    if swings:
        # An object that swings in the hand makes the tracked offset wander: correct once for where the object
        # hangs now, then go straight down until its bottom reaches the release height.
        if "lower_xy" not in s.memo:
            s.memo["lower_xy"] = v.eef_pos[:2] + xy - Box(ex.task.obj, v.objects[ex.task.obj]).centre[:2]
        goal_xy = s.memo["lower_xy"]
    target = np.array([goal_xy[0], goal_xy[1], s.release_z + s.bottom_below_eef - (SWING_SINK if swings else 0.0)])
    pos_a, rot_a, dist, _ = ex.servo(v, target, top_down(s.carry_yaw))
    if swings:
        # Its bottom as if upright (it hangs tilted: the tilted box's lowest corner is lower than its foot).
        foot = float(v.objects[ex.task.obj][2]) + EXTENTS[category(ex.task.obj)][0][2]
        landed = not v.predicted and foot < s.release_z - RELEASE_GAP + SWING_LAND
        done = dist < LOWER_TOL or landed or ex.timed_out()
    else:
        done = dist < LOWER_TOL or ex.stalled(dist) or ex.timed_out()
    if done:
        s.hold_pos = v.eef_pos.copy()
        ex.goto("insert" if front_opening(ex.task, v.objects, v.sites) is not None else "release")
    return pos_a, rot_a, CLOSE


def insert(ex: LiberoExpert, v: View) -> Command:
    """At the release height, in through the front opening (`planner.FRONT_LOADED`)."""
    goals = _carry_goal(ex, v)
    if goals is None:
        return hold_open()
    s = ex.state
    target = np.array([goals[1][0], goals[1][1], s.release_z + s.bottom_below_eef])
    pos_a, rot_a, dist, _ = ex.servo(v, target, top_down(s.carry_yaw))
    if dist < INSERT_TOL or ex.stalled(dist, INSERT_TOL) or ex.timed_out():
        s.hold_pos = v.eef_pos.copy()
        ex.goto("release")
    return pos_a, rot_a, CLOSE


def release(ex: LiberoExpert, v: View) -> Command:
    """Open in place until the fingers stop."""
    s = ex.state
    pos_a, rot_a, _, _ = ex.servo(v, s.hold_pos, top_down(s.carry_yaw))
    opened = True
    if category(ex.task.obj) in HOLDS:
        # Held nearly wide open, the fingers are still for a while before they start to open: wait until they
        # have opened.
        start = s.memo.setdefault("release_grip", v.grip)
        opened = v.predicted or v.grip > start + HOLD_RELEASE_OPENING
    if (s.steps_in_phase >= RELEASE_MIN_STEPS and fingers_still(ex, v) and opened) or ex.timed_out():
        ex.goto("retreat")
    return pos_a, rot_a, OPEN


def retreat(ex: LiberoExpert, v: View) -> Command:
    """Rise clear of the placed object."""
    s = ex.state
    target = s.hold_pos + np.array([0, 0, RETREAT_RISE])
    if category(ex.task.obj) in HOLDS:
        # A fixed hold beside the object's axis: the open fingers still touch it; slide away from its axis first.
        if "away" not in s.memo:
            d = s.hold_pos[:2] - np.asarray(v.objects[ex.task.obj][:2])
            s.memo["away"] = np.append(d / max(float(np.linalg.norm(d)), 1e-6) * HOLD_BACKOFF, 0.0)
            s.memo["backed"] = False
        if not s.memo["backed"]:
            target = s.hold_pos + s.memo["away"]
    pos_a, rot_a, dist, _ = ex.servo(v, target, top_down(s.carry_yaw))
    if category(ex.task.obj) in HOLDS and not s.memo["backed"]:
        s.memo["backed"] = dist < RETREAT_TOL / 2
    elif dist < RETREAT_TOL or ex.timed_out():
        ex.goto("done")
    return pos_a, rot_a, OPEN


def done(ex: LiberoExpert, v: View) -> Command:
    """Hold still, gripper open, until the episode ends."""
    return hold_open()


# max_steps: each phase's safety timeout, steps.
PHASES: dict[str, Phase] = {
    "approach": Phase(approach, max_steps=80),
    "descend": Phase(descend, max_steps=40),
    "grasp": Phase(grasp, max_steps=20),
    "lift": Phase(lift, max_steps=40, carries=True),
    "regrasp": Phase(regrasp, max_steps=25),
    "transport": Phase(transport, max_steps=80, carries=True),
    "lower": Phase(lower, max_steps=50, carries=True),
    "insert": Phase(insert, max_steps=50, carries=True),
    "release": Phase(release, max_steps=15),
    "retreat": Phase(retreat, max_steps=30),
    "done": Phase(done),
}
FIRST = "approach"
"""The phase an episode starts in."""


# -- helpers -----------------------------------------------------------------------------------------------
def _grasp_context(ex: LiberoExpert, v: View) -> dict:
    """Extra inputs of `plan_grasp`: for a fixed hold of an object put beside others on a shared region, the side
    its foot swings to; when placing into a drawer, the drawers that stick out are obstacles and the hand
    must also clear the cabinet where the object is put down. Nothing otherwise."""
    task = ex.task
    if category(task.obj) in HOLDS and any(task.shift):
        # Objects spread over one region (along +x, see `planner._spread`) all lean the same way: toward +x.
        # The first one's foot swings toward the middle, and none swings into the one placed before it.
        return {"side": np.array([1.0, 0.0])}
    if front_opening(task, v.objects, v.sites) is not None:
        return {"handle": True}
    cabinet = drawer_target(task, v.objects, v.sites)
    if cabinet is None:
        return {}
    solids = tuple(drawer_solids(v.objects, v.sites, v.joints, cabinet))
    box = Box(task.obj, v.objects[task.obj])
    xy, release_z = place_target(task, v.objects, v.sites)
    return {"extra": solids, "place": (xy, release_z + box.top - BOWL_RIM_DEPTH - box.bottom, solids)}


def _moved_parts(ex: LiberoExpert, v: View) -> dict:
    """Obstacles beyond the objects' boxes for the carry: when placing into a drawer, the cabinet's drawers where
    they are (an opened one sticks out in front of the cabinet). Nothing otherwise."""
    cabinet = drawer_target(ex.task, v.objects, v.sites)
    return {} if cabinet is None else {"extra": tuple(drawer_solids(v.objects, v.sites, v.joints, cabinet))}


def _under_moved_part(ex: LiberoExpert, v: View) -> tuple[np.ndarray, float] | None:
    """Where fixture parts that moved (`_moved_parts`) hang over the carried object: (the shortest xy move, along
    a table axis, that takes the object out from under them with ESCAPE_GAP to spare; how far it may rise until
    its top is ESCAPE_GAP under them), metres; None when nothing hangs over it."""
    box = Box(ex.task.obj, v.objects[ex.task.obj])
    over = [sol for sol in _moved_parts(ex, v).get("extra", ()) if sol.wlo[2] > box.top - ESCAPE_GAP
            and np.all(sol.wlo[:2] < box.whi[:2] + ESCAPE_GAP) and np.all(sol.whi[:2] > box.wlo[:2] - ESCAPE_GAP)]
    if not over:
        return None
    lo, hi = np.min([sol.wlo for sol in over], axis=0), np.max([sol.whi for sol in over], axis=0)
    moves = [np.array([lo[0] - ESCAPE_GAP - box.whi[0], 0.0]), np.array([hi[0] + ESCAPE_GAP - box.wlo[0], 0.0]),
             np.array([0.0, lo[1] - ESCAPE_GAP - box.whi[1]]), np.array([0.0, hi[1] + ESCAPE_GAP - box.wlo[1]])]
    return min(moves, key=lambda m: float(np.abs(m).sum())), max(0.0, float(lo[2]) - box.top - ESCAPE_GAP)


def start_carry(ex: LiberoExpert, v: View) -> None:
    """After closing: measure the hand-object offset and fix carry and release heights and the carry yaw."""
    s, task = ex.state, ex.task
    box = Box(task.obj, v.objects[task.obj])
    s.offset = v.objects[task.obj][:3] - v.eef_pos
    s.bottom_below_eef = float(v.eef_pos[2] - box.bottom)
    goal_xy, s.release_z = place_target(task, v.objects, v.sites)
    s.carry_yaw = s.grasp.yaw
    turn = place_yaw(task, v.objects, v.sites)
    if turn is not None:
        yaw, handle = turn
        (_, _), (long_dir, _) = box.horizontal_axes()
        axis = box.rot[:2, 0] if handle else long_dir
        now = float(np.arctan2(axis[1], axis[0]))
        s.carry_yaw += wrap_pi(yaw - now) if handle else wrap_half_pi(yaw - now)
    clear = clearance_bottom(task, v.objects, box.centre[:2], goal_xy, lookahead=0.05, **_moved_parts(ex, v))
    if turn is not None and front_opening(task, v.objects, v.sites) is None:
        # Into a slot from above: up over the fixture's walls before setting off (flying low, a tall object reaches
        # them before it has risen).
        owner = parent_object(task.target, v.objects)
        clear = max(clear, Box(owner, v.objects[owner]).top + CLEARANCE)
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
    front = front_opening(task, v.objects, v.sites)
    if front is not None:
        # Through a front opening: the hand as far in as it stays out of it (its thin side facing it); in front of
        # that by INSERT_DEPTH until lowered to the release height.
        if not v.predicted:
            # Held by its handle, the object hangs a few degrees tilted: its lowest edge, not the foot it had on the
            # table, has to clear the opening's sill.
            s.bottom_below_eef = float(v.eef_pos[2] - Box(task.obj, v.objects[task.obj]).bottom)
        middle, out = front
        back = HAND_BOX[1][0] + FRONT_GAP + (INSERT_DEPTH if s.phase in ("transport", "lower") else 0.0)
        eef = middle + out * back
        return eef + s.offset[:2] + _centre_shift(ex, v), eef
    xy, _ = place_target(task, v.objects, v.sites)
    return xy, xy - s.offset[:2] - _centre_shift(ex, v)


def _centre_shift(ex: LiberoExpert, v: View) -> np.ndarray:
    """Offset between the carried object's body origin and its geometric centre, xy metres."""
    box = Box(ex.task.obj, v.objects[ex.task.obj])
    return box.centre[:2] - box.pos[:2]
