"""Scripted LIBERO expert: a waypoint state machine over privileged ground truth (object poses, goal predicates).

Phases: approach (above grasp) -> descend -> grasp (close, wait until the fingers stop) -> lift ->
transport (above target) -> lower -> release (open) -> retreat -> done. Uses only `obs.proprio` and
`obs.privileged`, so it drives any suite that exposes `PrivilegedState`.

Action contract (robosuite OSC_POSE delta, as LIBERO): a[:3] eef translation, 1.0 = 0.05 m; a[3:6] world-frame
axis-angle rotation, 1.0 = 0.5 rad; a[6] gripper, -1 open / +1 close. Every action is finite and in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from policies.base import PolicyOutput
from policies.expert.geometry import Box, gripper_yaw, mat_from_rotvec, quat_xyzw_to_mat, rotvec_from_mat, top_down
from policies.expert.planner import (
    PickPlace,
    Unsupported,
    clearance_bottom,
    hand_clearance_path,
    parse_goal,
    place_target,
    plan_grasp,
)
from tasks.base import ObsSpec, Observation, TaskSpec

POS_SCALE = 0.05
"""Metres of eef translation per unit action."""
ROT_SCALE = 0.5
"""Radians of eef rotation per unit action."""
TRACKING = 0.25
"""Fraction of a commanded delta the OSC controller achieves within one step (measured in LIBERO at these
speeds); used only to predict the hand inside open-loop chunks."""
OPEN, CLOSE = -1.0, 1.0


@dataclass
class ExpertConfig:
    chunk: int = 1
    """Actions returned per call, planned open loop from the current observation."""
    cameras: tuple[str, ...] = ()
    """Cameras declared in obs_spec; the expert never looks at them (for benchmarking lazy rendering)."""
    resolution: tuple[int, int] = (128, 128)
    """(height, width) of declared camera images, pixels."""
    max_speed: float = 1.0
    """Largest translation action norm (the OSC tracks roughly a quarter of a commanded delta per step)."""
    max_accel: float = 0.3
    """Largest change of the translation action between consecutive steps: keeps demonstrations smooth."""
    pos_gain: float = 2.5
    """Translation action per unit of (position error / POS_SCALE)."""
    rot_gain: float = 1.0
    """Rotation action per unit of (rotation error / ROT_SCALE)."""
    approach_height: float = 0.08
    """Height of the pre-grasp waypoint above the grasp point, metres."""
    lift_height: float = 0.05
    """Minimum lift of the grasped object before moving sideways, metres."""
    hover_height: float = 0.03
    """Height above the release point at which the transport phase ends, metres."""
    max_retries: int = 2
    """Re-grasps allowed after a grasp that did not lift the object."""


@dataclass
class _View:
    """What one control step sees: measured, or predicted inside an open-loop chunk."""

    eef_pos: np.ndarray
    eef_rot: np.ndarray
    grip: float
    """Finger opening, metres (sum of the two finger joints)."""
    objects: dict[str, np.ndarray]
    sites: dict[str, np.ndarray]
    predicted: bool = False


@dataclass
class _State:
    phase: str = "approach"
    steps_in_phase: int = 0
    grasp: object = None
    carry_z: float = 0.0
    """Eef height the lift phase rises to, metres."""
    release_z: float = 0.0
    """Height of the carried object's bottom at release, metres."""
    obj_start_z: float = 0.0
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    """Carried object's position minus eef position, metres (measured after the grasp)."""
    bottom_below_eef: float = 0.0
    """Eef height minus carried object's bottom, metres."""
    retries: int = 0
    last_grip: float = 0.0
    best_dist: float = np.inf
    stall: int = 0
    hold_pos: np.ndarray | None = None
    last_pos: np.ndarray = field(default_factory=lambda: np.zeros(3))
    grasp_obj_pos: np.ndarray = field(default_factory=lambda: np.zeros(3))
    avoid: list = field(default_factory=list)
    """Rim directions (rad) whose approach stalled or whose grasp missed: the next plan prefers others."""
    approach_best: float = np.inf
    approach_stall: int = 0


class LiberoExpert:
    """Privileged scripted pick-and-place expert for LIBERO (see module docstring)."""

    checkpoint_sha256 = ""

    def __init__(self, config: ExpertConfig | None = None):
        self.config = config or ExpertConfig()
        self.obs_spec = ObsSpec(cameras=tuple(self.config.cameras), resolution=self.config.resolution, privileged=True)
        self._task: PickPlace | Unsupported | None = None
        self._state = _State()
        self._prev = np.zeros(7)

    def reset(self, task: TaskSpec, seed: int) -> None:
        self._task = None
        self._state = _State()
        self._prev = np.zeros(7)
        self._prev[6] = OPEN

    # -- protocol ------------------------------------------------------------------------------------------
    def act(self, obs: Observation) -> PolicyOutput:
        priv = obs.privileged
        if priv is None:
            raise ValueError("LiberoExpert needs privileged observations (ObsSpec(privileged=True))")
        p = obs.proprio
        view = _View(
            eef_pos=np.asarray(p["eef_pos"], np.float64),
            eef_rot=quat_xyzw_to_mat(p["eef_quat"]),
            grip=float(np.sum(np.abs(p["gripper_qpos"]))),
            objects={k: np.asarray(v, np.float64) for k, v in priv.objects.items()},
            sites={k: np.asarray(v, np.float64) for k, v in priv.sites.items()},
        )
        if self._task is None:
            self._task = parse_goal(priv.goal, view.objects, view.sites)
        actions, info = [], {}
        for i in range(max(1, self.config.chunk)):
            action, step_info = self._step(view)
            actions.append(action)
            if i == 0:
                info = step_info
            view = self._predict(view, action)
        return PolicyOutput(np.stack(actions), info)

    # -- state machine -------------------------------------------------------------------------------------
    def _goto(self, phase: str) -> None:
        s = self._state
        s.phase, s.steps_in_phase, s.best_dist, s.stall = phase, 0, np.inf, 0

    def _step(self, v: _View) -> tuple[np.ndarray, dict]:
        task, s, c = self._task, self._state, self.config
        if isinstance(task, Unsupported):
            return self._finish(np.zeros(3), np.zeros(3), OPEN), {"phase": "idle", "unsupported": task.reason}
        s.steps_in_phase += 1
        obj = task.obj
        yaw_now = gripper_yaw(v.eef_rot)
        gripper = OPEN
        if s.phase == "approach":
            if s.steps_in_phase == 1 or s.grasp is None:
                # Plan once per approach (re-planning every step lets near-tied rim choices flip-flop);
                # afterwards only follow the object's drift.
                s.grasp = plan_grasp(obj, v.objects, yaw_now, tuple(s.avoid))
                s.grasp_obj_pos = v.objects[obj][:3].copy()
                s.approach_best, s.approach_stall = np.inf, 0
            elif not v.predicted:
                drift = v.objects[obj][:3] - s.grasp_obj_pos
                s.grasp = replace(s.grasp, pos=s.grasp.pos + drift)
                s.grasp_obj_pos = v.objects[obj][:3].copy()
            s.obj_start_z = float(v.objects[obj][2])
            pre = s.grasp.pos + np.array([0, 0, c.approach_height])
            target = np.array([pre[0], pre[1], max(pre[2], min(v.eef_pos[2], pre[2] + 0.1))])
            pos_a, rot_a, dist, ang = self._servo(v, target, top_down(s.grasp.yaw))
            gripper = self._shape(v, s.grasp.width if dist < 0.08 else None)
            slow = v.predicted or np.linalg.norm(v.eef_pos - s.last_pos) < 0.004
            if not v.predicted and s.grasp.theta is not None:
                # A rim point the hand cannot reach (arm limit, obstacle) shows as no progress: pick another.
                if dist < s.approach_best - 1e-3:
                    s.approach_best, s.approach_stall = dist, 0
                else:
                    s.approach_stall += 1
            if (dist < 0.012 and ang < 0.08 and slow and self._shaped(v, s.grasp.width)) or s.steps_in_phase > 80:
                self._goto("descend")
            elif s.approach_stall >= 12 and dist > 0.02 and len(s.avoid) < 3:
                s.avoid.append(s.grasp.theta)
                s.grasp = None
                self._goto("approach")
        elif s.phase == "descend":
            pos_a, rot_a, dist, ang = self._servo(v, s.grasp.pos, top_down(s.grasp.yaw))
            gripper = self._shape(v, s.grasp.width)
            if dist < 0.006 or self._stalled(dist) or s.steps_in_phase > 40:
                s.hold_pos = v.eef_pos.copy()
                self._goto("grasp")
        elif s.phase == "grasp":
            gripper = CLOSE
            pos_a, rot_a, _, _ = self._servo(v, s.hold_pos, top_down(s.grasp.yaw))
            settled = v.predicted or abs(v.grip - s.last_grip) < 4e-4
            if (s.steps_in_phase >= 6 and settled) or s.steps_in_phase > 20:
                self._start_carry(v)
                self._goto("lift")
        elif s.phase == "lift":
            gripper = CLOSE
            target = np.array([s.hold_pos[0], s.hold_pos[1], s.carry_z])
            pos_a, rot_a, dist, _ = self._servo(v, target, top_down(s.grasp.yaw))
            dist = max(0.0, s.carry_z - v.eef_pos[2])
            lifted = v.predicted or float(v.objects[obj][2]) > s.obj_start_z + 0.015
            if v.eef_pos[2] > s.hold_pos[2] + 0.03 and not lifted and s.retries < c.max_retries:
                s.retries += 1
                if s.grasp.theta is not None:
                    s.avoid.append(s.grasp.theta)
                self._goto("regrasp")
            elif dist < 0.02 or s.steps_in_phase > 40:
                self._goto("transport")
        elif s.phase == "regrasp":
            # The grasp missed: open and back off upwards, then plan a fresh grasp from the new object pose.
            target = s.hold_pos + np.array([0, 0, c.approach_height])
            pos_a, rot_a, dist, _ = self._servo(v, target, top_down(s.grasp.yaw))
            if dist < 0.015 or s.steps_in_phase > 25:
                self._goto("approach")
        elif s.phase in ("transport", "lower"):
            gripper = CLOSE
            if not v.predicted:
                # Track the object's slip in the hand so it lands where intended; a dropped object is re-grasped.
                offset = v.objects[obj][:3] - v.eef_pos
                if np.linalg.norm(offset - s.offset) > 0.05 and s.retries < c.max_retries:
                    s.retries += 1
                    s.hold_pos = v.eef_pos.copy()
                    self._goto("regrasp")
                    return self._finish(np.zeros(3), np.zeros(3), OPEN), {"phase": s.phase}
                s.offset = offset
            xy, _ = place_target(task, v.objects, v.sites)
            goal_xy = xy - s.offset[:2] - self._centre_shift(v)
            if s.phase == "transport":
                # Fly low: only as high as obstacles just ahead demand, never below the hover point.
                obj_xy = v.eef_pos[:2] + s.offset[:2] + self._centre_shift(v)
                need = max(
                    clearance_bottom(task, v.objects, obj_xy, xy) + s.bottom_below_eef,
                    hand_clearance_path(v.eef_pos[:2], goal_xy, s.grasp.yaw, v.objects, obj),
                )
                hover = s.release_z + s.bottom_below_eef + self.config.hover_height
                target = np.array([goal_xy[0], goal_xy[1], max(need, hover)])
                pos_a, rot_a, dist, _ = self._servo(v, target, top_down(s.grasp.yaw))
                if dist < 0.01 or self._stalled(dist, 0.03) or s.steps_in_phase > 80:
                    self._goto("lower")
            else:
                target = np.array([goal_xy[0], goal_xy[1], s.release_z + s.bottom_below_eef])
                pos_a, rot_a, dist, _ = self._servo(v, target, top_down(s.grasp.yaw))
                if dist < 0.008 or self._stalled(dist) or s.steps_in_phase > 50:
                    s.hold_pos = v.eef_pos.copy()
                    self._goto("release")
        elif s.phase == "release":
            pos_a, rot_a, _, _ = self._servo(v, s.hold_pos, top_down(s.grasp.yaw))
            settled = v.predicted or abs(v.grip - s.last_grip) < 4e-4
            if (s.steps_in_phase >= 5 and settled) or s.steps_in_phase > 15:
                self._goto("retreat")
        elif s.phase == "retreat":
            target = s.hold_pos + np.array([0, 0, 0.1])
            pos_a, rot_a, dist, _ = self._servo(v, target, top_down(s.grasp.yaw))
            if dist < 0.02 or s.steps_in_phase > 30:
                self._goto("done")
        else:  # done: hold still, gripper open
            pos_a, rot_a = np.zeros(3), np.zeros(3)
        s.last_grip = v.grip
        s.last_pos = v.eef_pos.copy()
        return self._finish(pos_a, rot_a, gripper), {"phase": s.phase}

    def _start_carry(self, v: _View) -> None:
        """After closing: measure the hand-object offset and fix carry and release heights."""
        s, task = self._state, self._task
        box = Box(task.obj, v.objects[task.obj])
        s.offset = v.objects[task.obj][:3] - v.eef_pos
        s.bottom_below_eef = float(v.eef_pos[2] - box.bottom)
        goal_xy, s.release_z = place_target(task, v.objects, v.sites)
        clear = clearance_bottom(task, v.objects, box.centre[:2], goal_xy, lookahead=0.05)
        s.carry_z = max(clear + s.bottom_below_eef, v.eef_pos[2] + self.config.lift_height)

    def _centre_shift(self, v: _View) -> np.ndarray:
        """Offset between the carried object's body origin and its geometric centre, xy metres."""
        box = Box(self._task.obj, v.objects[self._task.obj])
        return box.centre[:2] - box.pos[:2]

    def _stalled(self, dist: float, within: float = 0.04) -> bool:
        """True once the distance to the waypoint stopped shrinking for 4 steps while within `within` m."""
        s = self._state
        if dist < s.best_dist - 1e-3:
            s.best_dist, s.stall = dist, 0
        else:
            s.stall += 1
        return s.stall >= 4 and dist < within

    @staticmethod
    def _shape(v: _View, width: float | None) -> float:
        """Gripper command pre-shaping the finger opening to `width` m (None: open). The Panda gripper
        integrates the sign of its command, so 0 holds the current opening."""
        if width is None or v.grip < width - 0.025:
            return OPEN
        return CLOSE if v.grip > width + 0.004 else 0.0

    @staticmethod
    def _shaped(v: _View, width: float | None) -> bool:
        return v.predicted or width is None or width - 0.025 <= v.grip <= width + 0.01

    # -- low level -----------------------------------------------------------------------------------------
    def _servo(self, v: _View, target_pos: np.ndarray, target_rot: np.ndarray):
        """Proportional translation/rotation actions toward a pose; returns (pos_a, rot_a, dist m, angle rad)."""
        c = self.config
        err = np.asarray(target_pos) - v.eef_pos
        pos_a = c.pos_gain * err / POS_SCALE
        rot_err = rotvec_from_mat(target_rot @ v.eef_rot.T)
        rot_a = c.rot_gain * rot_err / ROT_SCALE
        return pos_a, rot_a, float(np.linalg.norm(err)), float(np.linalg.norm(rot_err))

    def _finish(self, pos_a: np.ndarray, rot_a: np.ndarray, gripper: float) -> np.ndarray:
        """Speed- and acceleration-limit, clip to [-1, 1] and remember the action for the next limit."""
        c = self.config
        n = np.linalg.norm(pos_a)
        if n > c.max_speed:
            pos_a = pos_a * (c.max_speed / n)
        delta = pos_a - self._prev[:3]
        dn = np.linalg.norm(delta)
        if dn > c.max_accel:
            pos_a = self._prev[:3] + delta * (c.max_accel / dn)
        rn = np.linalg.norm(rot_a)
        if rn > 1.0:
            rot_a = rot_a / rn
        action = np.concatenate([pos_a, rot_a, [gripper]])
        action = np.clip(np.nan_to_num(action, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)
        self._prev = action
        return action

    def _predict(self, v: _View, action: np.ndarray) -> _View:
        """Predicted next view: the hand moves TRACKING of the commanded delta; a grasped object follows it."""
        dp = action[:3] * POS_SCALE * TRACKING
        rot = mat_from_rotvec(action[3:6] * ROT_SCALE * TRACKING) @ v.eef_rot
        objects = dict(v.objects)
        task = self._task
        if isinstance(task, PickPlace) and self._state.phase in ("lift", "transport", "lower"):
            pose = objects[task.obj].copy()
            pose[:3] += dp
            objects[task.obj] = pose
        grip = float(np.clip(v.grip - 0.01 * action[6], 0.0, 0.08))
        return _View(v.eef_pos + dp, rot, grip, objects, v.sites, predicted=True)
