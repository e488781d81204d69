"""Goal parsing and grasp/place geometry for the scripted expert.

Everything here is a pure function of the privileged ground truth (metres, world frame, quaternions wxyz):
which steps the goal asks for and in which order (`plan_goal`), which object to move where, the top-down grasp
(grip-site position + yaw), the carry height and the release height. No simulator access.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from policies.expert.geometry import (CABINET_CARCASS, CONTAINERS, DEFAULT_EXTENT, DRAWER_BOX, DRAWER_FLOOR,
                                      DRAWER_INNER_FRONT, DRAWER_OUT, DRAWER_PLACE_GAP, EXTENTS, HAND_BOX, HANDLE_BOX,
                                      HOLDS, RIMS, ROUND, Box, category, quat_wxyz_from_mat, quat_wxyz_to_mat,
                                      top_down, wrap_half_pi)

GRIPPER_MAX_WIDTH = 0.075
"""Widest object span the Panda fingers close around with margin, metres."""
HOLD_ABOVE = 0.08
"""Least height of the pre-grasp point above a fixed hold, metres (as the default approach height)."""
HOLD_TOP_CLEAR = 0.025
"""Height of the pre-grasp point above the top of an object held low, metres (the fingertips reach 1 cm below
the grip site)."""
HANDLE_AVOID = 1.0
"""Rim points within this angle of a mug's handle are ruled out, rad."""
BOWL_RIM_DEPTH = 0.022
"""Grip-site depth below a bowl's rim when grasping the wall, metres."""
RIM_GRASP_WIDTH = 0.05
"""Finger opening for rim grasps: a narrow hand fits between a bowl and drawer walls or neighbours, metres."""
GRASP_DEPTH = 0.03
"""Grip-site depth below an ordinary object's top, metres (clamped above its bottom by FINGER_CLEARANCE)."""
GRASP_DEPTH_BY_CATEGORY = {"wine_bottle": 0.022}
"""Deeper grasps where the top is a narrow neck (grip the body instead), metres below the top."""
FINGER_CLEARANCE = 0.012
"""Lowest grip-site height above an object's bottom: the fingertips reach ~1 cm below the grip site."""
CLEARANCE = 0.04
"""Vertical margin kept between a carried object and anything it passes over, metres."""
REACH_X = 0.13
"""World x beyond which a top-down hand at rim height gets close to the arm's reach limit, metres."""
ARM_REACH = 0.77
"""Horizontal distance from the arm's base, which stands ARM_REACH behind REACH_X on the table's centre line (y = 0),
within which a top-down hand reaches down to the table without stretching the arm straight, metres."""


def reach_margin(xy: np.ndarray) -> float:
    """How far inside the arm's reach at table height (ARM_REACH) a top-down hand over `xy` is, metres."""
    return ARM_REACH - float(np.linalg.norm(np.asarray(xy[:2]) - np.array([REACH_X - ARM_REACH, 0.0])))
AVOID_ANGLE = 0.7
"""Rim directions within this angle (rad) of a direction that already failed are penalised."""
RELEASE_GAP = 0.012
"""Height of a carried object's bottom above the receiving surface when the gripper opens, metres."""
RELEASE_GAP_BY_CATEGORY = {"moka_pot": 0.004}
FRONT_RELEASE_GAP = 0.008
"""Height of the lowest edge of an object carried in through a front opening above the floor (and the sill) when it
is let go, metres."""
"""Smaller drops for tall objects on a small foot, which tip over from RELEASE_GAP, metres."""
SURFACES = {"flat_stove": 0.026, "desk_caddy": 0.014, "microwave": 0.024}
"""Height of the surface a fixture's regions receive objects on, above its body origin, where its box's top is
higher (a stove's burner plate lies 2.4 cm below the top of its knob, a caddy's compartments have their floor
15 cm below the top of its walls, a microwave's oven its floor under a 16 cm roof), metres."""
ALIGNED = {"desk_caddy": np.pi / 2}
"""Fixtures whose regions take an object only along one direction: the yaw (fixture frame, rad, modulo pi) the
carried object's long horizontal axis is turned to before it goes in (a book upright in a caddy's compartment,
which is long along the caddy's local y)."""


@dataclass(frozen=True)
class PickPlace:
    """Move `obj` (body) onto/into `target` (body or site), as the goal predicate `relation` asks."""

    relation: str
    obj: str
    target: str
    shift: tuple[float, float] = (0.0, 0.0)
    """Offset of the place point from the target's centre (world xy, metres): objects that share a target
    region are spread over it."""
    lay: bool = False
    """The object goes down lying on its side (`LYING`): held from the side and tipped over first (`laying.py`)."""



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
    above: float | None = None
    """Height of the pre-grasp point above the grasp point where the approach height would not clear the object's
    top (low holds), metres; None = `ExpertConfig.approach_height`."""
    precise: bool = False
    """The fingers must close at the grip site itself, not wherever the descent came within its tolerance of it (a
    handle's bar, a centimetre thick: closed off-centre, the fingers pull the mug over)."""


def parent_object(site: str, objects: dict[str, np.ndarray]) -> str | None:
    """The object a site belongs to: the longest object name that prefixes the site name."""
    owners = [o for o in objects if site.startswith(o + "_")]
    return max(owners, key=len) if owners else None


@dataclass(frozen=True)
class Articulate:
    """Open or close (`action`) a drawer (its region site), or close a hinged door (`target` = `owner`, the
    fixture)."""

    action: str
    target: str
    owner: str
    """The cabinet the drawer belongs to."""
    to: float | None = None
    """Drawer opening: the slide position to open to, metres (None: all the way, DRAWER_FULL)."""


@dataclass(frozen=True)
class TurnOn:
    """Turn a stove's knob until the fixture counts as on."""

    obj: str


@dataclass(frozen=True)
class Push:
    """Slide `obj` along the table until it lies on the region site `target` (objects too wide to grasp)."""

    obj: str
    target: str


Step = PickPlace | Articulate | TurnOn | Push
"""One step of a plan; each is run by its skill's phases (`libero.SKILLS`)."""

DRAWER_FULL = -0.155
"""Slide position a drawer is opened to (see `articulated.PULL_TARGET`), metres."""
DRAWER_PARTIAL = -0.12
"""Slide position a drawer is opened to when an object to go in stands right in front of it, metres: the
drawer's front stays 4 cm further back than open all the way, and the opening (11.5 cm) still takes a bowl."""
DRAWER_AJAR = 0.05
"""Slide travel from which a drawer counts as open enough to be pushed open from inside (`articulated.NUDGE_MIN`)."""
DRAWER_BLOCK_NEAR = 0.07
"""An object whose footprint comes this close to the drawer opened all the way is in the hand's way, metres."""
SHARED_SPACING = 0.10
"""Distance between objects put on one region site, metres (two moka pots on a burner)."""
DRAWERS = {"wooden_cabinet", "white_cabinet"}
"""Fixture categories whose region sites are drawers (`site_joints`: the slide, negative = pulled out)."""
HINGED = {"microwave"}
"""Fixture categories with a hinged door (`fixture_joints`: the hinge, 0 = shut)."""
KNOBS = {"flat_stove"}
"""Fixture categories turned on by a knob (`fixture_joints`)."""
LYING = {"wine_rack": np.array([0.0, 0.014, 0.029])}
"""Fixtures whose regions take an object lying on its side along the fixture's local x (a bottle in a wine rack's
top groove, rolled against the lip below it): where the object's centre comes to rest, relative to the region's
site, fixture frame, metres."""
FRONT_LOADED = {"microwave": (-0.088, (-0.144, 0.063))}
"""Fixtures whose regions are filled through an opening in front, under a roof a top-down hand does not fit under
(a microwave's oven): (the local y of the opening's plane, which faces local -y; the opening's extent along local
x), metres. The object goes in held by its handle (`HANDLE_GRIPS`), the handle facing out, as deep as the hand over
the handle stays out of the opening, the hand (20 cm long along the opening) in front of it rather than of the
panel beside it; the door, swung shut, sweeps it in the rest of the way."""
HANDLE_GRIPS = {"white_yellow_mug": np.array([0.046, 0.0, 0.078])}
"""Grip site on the top bar of an object's handle, which stands out along its local +x, object frame, metres: the
fingers close across the bar (along local y) next to the body (held there a mug hangs within a few degrees of
level), the hand's underside 1 cm over the rim (a descent that overshoots does not knock the mug)."""
SIDE_GRIPS = {"wine_bottle": (0.045, 0.115)}
"""Categories that can be held from the side and tipped over to lie down: heights of the grip along the upright
object's axis above its origin, best first (the middle of a bottle's body, where it is balanced when lying; its
neck, high above whatever stands around), metres."""
PUSHED = {"plate"}
"""Object categories moved over the table by pushing rather than grasping (wider than the open gripper)."""


def plan_goal(goal, objects: dict, sites: dict, joints: dict | None = None) -> tuple[Step, ...] | Unsupported:
    """The steps that reach every goal predicate, in an order that works: opening first (a drawer that an
    object goes into is opened first even when the goal does not say so, and only partly when the object stands
    right in front of it, `_open_for`; a skill whose effect already holds ends at once), then turning on, then
    moving objects in goal order, then closing. `joints`: as `View.joints` (the drawers' slides)."""
    if not goal:
        return Unsupported("empty goal")
    joints = joints or {}
    opens, turns, middle, closes = [], [], [], []
    for pred in goal:
        if len(pred) == 2 and pred[0] in ("open", "close"):
            owner = pred[1] if pred[1] in objects else parent_object(pred[1], objects)
            if owner is None or (pred[1] not in sites and pred[1] not in objects):
                return Unsupported(f"unknown target {pred[1]}")
            cat = category(owner)
            drawer = pred[1] in sites and cat in DRAWERS
            # A hinged door (a microwave's) is only swung shut.
            if not (drawer or (pred[0] == "close" and pred[1] in objects and cat in HINGED)):
                return Unsupported(f"predicate {' '.join(pred)}")
            (opens if pred[0] == "open" else closes).append(Articulate(pred[0], pred[1], owner))
        elif len(pred) == 2 and pred[0] == "turnon":
            if pred[1] not in objects or category(pred[1]) not in KNOBS:
                return Unsupported(f"predicate {' '.join(pred)}")
            turns.append(TurnOn(pred[1]))
        elif len(pred) == 3 and pred[0] in ("on", "in") and pred[1] in objects:
            step = _move(pred, objects, sites)
            if isinstance(step, Unsupported):
                return step
            owner = drawer_target(step, objects, sites) if isinstance(step, PickPlace) else None
            if owner is not None:
                opener = Articulate("open", step.target, owner, _open_for(step, owner, objects, sites, joints))
                if all(o.target != opener.target for o in opens):
                    opens.append(opener)
            middle.append(step)
        else:
            return Unsupported(f"predicate {' '.join(pred)}")
    return tuple(dict.fromkeys(opens + turns + _spread(middle, objects) + closes))


def _open_for(move: PickPlace, cabinet: str, objects: dict, sites: dict, joints: dict) -> float | None:
    """How far to open the drawer `move` puts its object into: all the way (None), unless the object stands so
    close in front of the drawer that the drawer, opened all the way, would be in the hand's way when it comes
    down on the object (the hand is 21 cm long): then DRAWER_PARTIAL, which leaves it room and still takes the
    object."""
    box = Box(move.obj, objects[move.obj])
    rot = quat_wxyz_to_mat(objects[cabinet][3:7])
    site = np.asarray(sites[move.target][:3])  # slides with the drawer: where it is at slide position q
    q = float(joints[move.target][0]) if move.target in joints else 0.0
    if q < -DRAWER_AJAR:
        return None  # already open that far: pushed the rest of the way from inside, without coming near
    opened = site + rot @ DRAWER_OUT * (q - DRAWER_FULL)
    front = [Solid(move.target, *_world_bounds(opened, rot, *DRAWER_BOX)),
             Solid(move.target, *_world_bounds(opened, rot, *HANDLE_BOX))]
    if min(_rect_distance(box.centre, d) for d in front) - footprint_half(box) > DRAWER_BLOCK_NEAR:
        return None
    return DRAWER_PARTIAL


def _spread(steps: list[Step], objects: dict) -> list[Step]:
    """Objects put `on` one region site side by side along world x (SHARED_SPACING apart, centred on the site),
    so the second does not land on the first; containers (`in`) and objects as targets hold several anyway."""
    out = []
    for step in steps:
        if isinstance(step, PickPlace) and step.relation == "on" and step.target not in objects:
            peers = [p for p in steps if isinstance(p, PickPlace) and p.relation == "on" and p.target == step.target]
            if len(peers) > 1:
                k = peers.index(step)
                step = replace(step, shift=((k - (len(peers) - 1) / 2) * SHARED_SPACING, 0.0))
        out.append(step)
    return out


def _move(pred, objects: dict, sites: dict) -> Step | Unsupported:
    """One `on`/`in` predicate as a step: a push for objects too wide to grasp onto a table region, else a
    pick-and-place."""
    move = PickPlace(pred[0], pred[1], pred[2])
    if move.target not in objects and move.target not in sites:
        return Unsupported(f"unknown target {move.target}")
    owner = parent_object(move.target, objects) if move.target in sites else None
    if category(move.obj) in PUSHED:
        if move.target in sites and owner is None:
            return Push(move.obj, move.target)
        return Unsupported(f"carrying {move.obj}")
    if owner is not None and category(owner) in FRONT_LOADED and category(move.obj) not in HANDLE_GRIPS:
        return Unsupported(f"loading {move.obj} through a front opening")
    if owner is not None and category(owner) in LYING:
        if category(move.obj) not in SIDE_GRIPS:
            return Unsupported(f"laying {move.obj} down")
        return replace(move, lay=True)
    return move


@dataclass(frozen=True)
class Solid:
    """A world axis-aligned box an obstacle occupies (as `Box` offers to the clearance helpers)."""

    name: str
    wlo: np.ndarray
    whi: np.ndarray

    @property
    def top(self) -> float:
        return float(self.whi[2])


def _world_bounds(pos: np.ndarray, rot: np.ndarray, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    world = corners @ rot.T + pos
    return world.min(0), world.max(0)


def drawer_solids(objects: dict, sites: dict, joints: dict, cabinet: str) -> list[Solid]:
    """A cabinet as its carcass plus each drawer's body and handle where the drawer's region site (which slides
    with it) is: unlike the cabinet's `Box`, this sees drawers that stick out."""
    pose = objects[cabinet]
    pos, rot = np.asarray(pose[:3]), quat_wxyz_to_mat(pose[3:7])
    solids = [Solid(cabinet, *_world_bounds(pos, rot, *CABINET_CARCASS))]
    for site, sp in sites.items():
        if site.startswith(cabinet + "_") and site in joints:
            solids.append(Solid(site, *_world_bounds(np.asarray(sp[:3]), rot, *DRAWER_BOX)))
            solids.append(Solid(site, *_world_bounds(np.asarray(sp[:3]), rot, *HANDLE_BOX)))
    return solids


def drawer_target(move: PickPlace, objects: dict, sites: dict) -> str | None:
    """The cabinet whose drawer (region site) `move` places into, else None."""
    if move.target not in sites:
        return None
    owner = parent_object(move.target, objects)
    if owner is None or category(owner) not in DRAWERS or move.target == f"{owner}_top_side":
        return None
    return owner


def footprint_half(box: Box) -> float:
    """Half the side of an object's footprint (its radius for a round one), metres."""
    return box.footprint_radius() / np.sqrt(2.0)


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


def plan_grasp(obj: str, objects: dict, current_yaw: float, avoid: tuple[float, ...] = (),
               extra: tuple[Solid, ...] = (), place: tuple[np.ndarray, float, tuple[Solid, ...]] | None = None,
               side: np.ndarray | None = None, handle: bool = False) -> Grasp:
    """Top-down grasp of `obj`: position of the grip site between the fingertips, and the yaw.

    `handle`: by its handle (`HANDLE_GRIPS`), the fingers across the handle's bar.

    `avoid`: rim directions (rad) of earlier rim grasps that stalled or missed; others are preferred. For rim
    grasps, `extra`: more obstacles for the hand (parts of fixtures that moved), and `place`: (centre xy the
    object is put down at, grip-site height there, obstacles there): rim directions whose hand would not clear
    them at the release are penalised like those blocked at the grasp (the yaw is held from grasp to release).
    For fixed holds, `side`: world xy direction the hold should lie on from the object's axis (an object held off
    its axis hangs tilted, its foot swinging toward the hold's side)."""
    box = Box(obj, objects[obj])
    others = [Box(n, p) for n, p in objects.items() if n != obj]
    if handle:
        closing = box.rot[:, 1]
        yaw = wrap_half_pi(float(np.arctan2(closing[0], -closing[1])), current_yaw)
        return Grasp(box.pos + box.rot @ HANDLE_GRIPS[box.cat], yaw, precise=True)
    if box.cat in RIMS:
        # Straddle the wall: fingers close radially. Pick the rim point with the most free space around it
        # (neighbours, fixtures), mildly preferring little wrist rotation.
        offset, rim_radius, handle = RIMS[box.cat]
        rim_centre = box.pos[:2] + box.rot[:2, :2] @ np.asarray(offset)
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
            point = rim_centre + rim_radius * radial
            yaw = wrap_half_pi(float(np.arctan2(radial[0], -radial[1])), 0.0)
            near = [o for o in others + list(extra) if o.top > box.bottom + 0.01]
            clear = min([_rect_distance(np.append(point, 0), o) for o in near] + [0.08])
            # The hand spans ~0.22 m along the finger axis: it must pass above whatever lies under it.
            finger_axis = np.array([np.sin(yaw), -np.cos(yaw)])
            hand_need = _hand_clearance_z(point, finger_axis, others + list(extra))
            blocked = max(0.0, hand_need - (box.top - BOWL_RIM_DEPTH))
            if extra:
                # Parts of fixtures that moved: the hand must not sweep through them on its way down.
                blocked += _sweep_overlap(np.append(point, box.top - BOWL_RIM_DEPTH), yaw, extra)
            if place is not None:
                place_xy, place_z, place_others = place
                there = _hand_clearance_z(place_xy + rim_radius * radial, finger_axis, list(place_others))
                blocked += max(0.0, there - place_z)
            if handle is not None:
                # Keep the fingers off the handle.
                handle_dir = handle + float(np.arctan2(box.rot[1, 0], box.rot[0, 0]))
                if abs((theta - handle_dir + np.pi) % (2 * np.pi) - np.pi) < HANDLE_AVOID:
                    blocked += 1.0
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
    if box.cat in HOLDS:
        # Fixed holds: the one the hand clears best, then the least wrist rotation.
        best = None
        for x, y, z, closing in HOLDS[box.cat]:
            point = box.pos + box.rot @ np.array([x, y, z])
            c = box.rot[:2, :2] @ np.array([np.cos(closing), np.sin(closing)])
            yaw = wrap_half_pi(float(np.arctan2(c[0], -c[1])), 0.0)
            need = _hand_clearance_z(point[:2], np.array([np.sin(yaw), -np.cos(yaw)]), others)
            cost = max(0.0, need - point[2]) * 10 + 0.01 * abs(yaw - wrap_half_pi(current_yaw, 0.0))
            if side is not None:
                cost += 0.1 * float(np.dot(point[:2] - box.pos[:2], side) < 0)
            if best is None or cost < best[0]:
                best = (cost, point, yaw)
        _, point, yaw = best
        return Grasp(point, yaw, above=max(HOLD_ABOVE, box.top - float(point[2]) + HOLD_TOP_CLEAR))
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


_SWEEP = np.array([[a, b, c] for a in (0.0, 0.5, 1.0) for b in np.linspace(0.0, 1.0, 7) for c in (0.0, 1.0)])
SWEEP_RISE = 0.1
"""Height above the grasp point from which `_sweep_overlap` follows the hand down, metres."""


def _sweep_overlap(grip: np.ndarray, yaw: float, solids) -> float:
    """How deep the top-down hand (its collision boxes, `geometry.HAND_BOX`) would reach into any of `solids` on
    its way straight down to the grip point from SWEEP_RISE above, metres (0: clear)."""
    lo, hi = np.asarray(HAND_BOX[0]), np.asarray(HAND_BOX[1])
    local = lo + _SWEEP * (hi - lo)
    rot = top_down(yaw)
    deepest = 0.0
    for rise in np.linspace(0.0, SWEEP_RISE, 6):
        pts = local @ rot.T + grip + np.array([0.0, 0.0, rise])
        for sol in solids:
            inside = np.minimum(pts - sol.wlo, sol.whi - pts).min(axis=1)
            deepest = max(deepest, float(inside.max()))
    return deepest


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
    if move.lay:
        rest = lying_box(move, objects, sites)
        return rest.centre[:2], rest.bottom + RELEASE_GAP
    cabinet = drawer_target(move, objects, sites)
    if cabinet is not None:
        # Into a drawer: onto its floor, just inside its front (as far out of the cabinet as it fits), or in the
        # middle of the opening when that is narrower.
        site = np.asarray(sites[move.target][:3])
        pose = objects[cabinet]
        rot = quat_wxyz_to_mat(pose[3:7])
        carcass_front = CABINET_CARCASS[0][1] - float((rot.T @ (site - np.asarray(pose[:3])))[1])
        along = min(DRAWER_INNER_FRONT + footprint_half(Box(move.obj, objects[move.obj])) + DRAWER_PLACE_GAP,
                    (DRAWER_INNER_FRONT + carcass_front) / 2)
        return (site + rot @ np.array([0.0, along, 0.0]))[:2], float(site[2]) - DRAWER_FLOOR + RELEASE_GAP
    if move.target in objects:
        tbox = Box(move.target, objects[move.target])
        xy = tbox.centre[:2]
        surface = tbox.top
    else:
        site = sites[move.target]
        xy = np.asarray(site[:2], np.float64) + np.asarray(move.shift)
        owner = parent_object(move.target, objects)
        if owner is not None and category(owner) in SURFACES:
            surface = float(objects[owner][2]) + SURFACES[category(owner)]
        else:
            surface = Box(owner, objects[owner]).top if owner else float(site[2])
    if front_opening(move, objects, sites) is not None:
        # Carried in just over the sill and set down without a drop: dropped, an object standing out over the
        # sill rocks and slides out over it.
        return xy, surface + FRONT_RELEASE_GAP
    return xy, surface + RELEASE_GAP_BY_CATEGORY.get(category(move.obj), RELEASE_GAP)


def lying_box(move: PickPlace, objects: dict, sites: dict) -> Box:
    """The carried object at rest in its lying slot (`LYING`): its centre there, its axis (local z) along the
    fixture's local x (either way: the box is the same)."""
    owner = parent_object(move.target, objects)
    rot = quat_wxyz_to_mat(objects[owner][3:7])
    up = np.array([0.0, 0.0, 1.0])
    lying = np.column_stack([up, np.cross(rot[:, 0], up), rot[:, 0]])
    lo, hi = EXTENTS.get(category(move.obj), DEFAULT_EXTENT)
    centre = np.asarray(sites[move.target][:3]) + rot @ LYING[category(owner)]
    origin = centre - lying @ ((np.asarray(lo) + np.asarray(hi)) / 2)
    return Box(move.obj, np.concatenate([origin, quat_wxyz_from_mat(lying)]))


def place_yaw(move: PickPlace, objects: dict, sites: dict) -> tuple[float, bool] | None:
    """How the carried object must be turned when it is put down onto its target: (world yaw, rad; whether that is
    the yaw of its handle, local +x, rather than of its long horizontal axis modulo pi) — the long axis along a slot
    (`ALIGNED`; `LYING`: the fixture's local x), the handle out of a front opening (`FRONT_LOADED`) — or None where
    any yaw will do."""
    owner = parent_object(move.target, objects) if move.target in sites else None
    cat = category(owner) if owner is not None else None
    if cat not in ALIGNED and cat not in LYING and cat not in FRONT_LOADED:
        return None
    rot = quat_wxyz_to_mat(objects[owner][3:7])
    yaw = float(np.arctan2(rot[1, 0], rot[0, 0]))
    if cat in FRONT_LOADED:
        return yaw - np.pi / 2, True
    return yaw + ALIGNED.get(cat, 0.0), False


def front_opening(move: PickPlace, objects: dict, sites: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """For a target filled through a front opening (`FRONT_LOADED`): (the point of the opening's plane in line with
    the region, or as near as the hand along the opening stays in front of it, world xy; the unit direction out of
    it), metres; else None."""
    owner = parent_object(move.target, objects) if move.target in sites else None
    if owner is None or category(owner) not in FRONT_LOADED:
        return None
    pos, rot = np.asarray(objects[owner][:3]), quat_wxyz_to_mat(objects[owner][3:7])
    front, (lo, hi) = FRONT_LOADED[category(owner)]
    across = float((rot.T @ (np.asarray(sites[move.target][:3]) - pos))[0])
    half = HAND_BOX[1][1]
    across = float(np.clip(across, lo + half, hi - half)) if hi - lo > 2 * half else (lo + hi) / 2
    return (pos + rot @ np.array([across, front, 0.0]))[:2], -rot[:2, 1]


def clearance_bottom(
    move: PickPlace, objects: dict, here_xy: np.ndarray, goal_xy: np.ndarray, lookahead: float = 0.12,
    extra: tuple[Solid, ...] = (),
) -> float:
    """Lowest safe height of the carried object's bottom at `here_xy`, metres.

    Considers every other object (and each of `extra`) whose xy rectangle, grown by the carried object's
    footprint radius, comes within reach of the next `lookahead` metres of the straight path toward `goal_xy`.
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
    for solid in extra:
        if min(_rect_distance(np.append(p, 0), solid) for p in samples) < margin:
            highest = max(highest, solid.top)
    return highest + CLEARANCE


def hand_clearance_path(
    eef_xy: np.ndarray, goal_xy: np.ndarray, yaw: float, objects: dict, carried: str, lookahead: float = 0.12,
    extra: tuple[Solid, ...] = (),
) -> float:
    """Lowest grip-site height at which the hand clears every object except `carried` (and each of `extra`) over
    the next `lookahead` metres of the straight path from eef_xy toward goal_xy, metres."""
    others = [Box(n, p) for n, p in objects.items() if n != carried] + list(extra)
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
