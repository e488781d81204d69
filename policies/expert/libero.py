"""Scripted LIBERO expert: a waypoint state machine over privileged ground truth (object poses, goal predicates).

This module is the driver: it plans the goal into steps (`planner.plan_goal`: pick-and-place, laying an object
down on its side, opening or closing a drawer, swinging a door shut, turning a knob, pushing), turns an observation
into a `View`, runs one phase step per action (the phase tables of the skills, `pick_place.PHASES`,
`laying.PHASES` and `articulated.PHASES`; see `control.py` for the phase contract), moves on to the next step
when a step's skill is done, servos, limits the actions and predicts the hand inside open-loop chunks. Uses only
`obs.proprio` and `obs.privileged`, so it drives any suite that exposes `PrivilegedState`.

Action contract (robosuite OSC_POSE delta, as LIBERO): a[:3] eef translation, 1.0 = 0.05 m; a[3:6] world-frame
axis-angle rotation, 1.0 = 0.5 rad; a[6] gripper, -1 open / +1 close. Every action is finite and in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from policies.base import PolicyOutput
from policies.expert import articulated, laying, pick_place
from policies.expert.control import OPEN, PROGRESS, View
from policies.expert.geometry import mat_from_rotvec, quat_xyzw_to_mat, rotvec_from_mat
from policies.expert.planner import Articulate, Grasp, PickPlace, Push, Step, TurnOn, Unsupported, plan_goal
from tasks.base import ObsSpec, Observation, TaskSpec

POS_SCALE = 0.05
"""Metres of eef translation per unit action."""
ROT_SCALE = 0.5
"""Radians of eef rotation per unit action."""
TRACKING = 0.25
"""Fraction of a commanded delta the OSC controller achieves within one step (measured in LIBERO at these
speeds); used only to predict the hand inside open-loop chunks."""
FINGER_RATE = 0.01
"""Finger-opening change per step per unit gripper command, metres (open-loop prediction only)."""
FINGER_MAX = 0.08
"""Widest finger opening, metres (open-loop prediction only)."""
STALL_STEPS = 4
"""Steps without progress toward a waypoint after which a phase counts as stalled."""
STALL_RANGE = 0.04
"""Default distance to the waypoint within which a stall ends the phase, metres."""


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
class State:
    """The state machine's memory within one episode (metres, world frame)."""

    phase: str = pick_place.FIRST
    steps_in_phase: int = 0
    """Steps of the current phase including this one."""
    best_dist: float = np.inf
    """Closest distance to the phase's waypoint so far (`stalled`), metres."""
    stall: int = 0
    """Steps since `best_dist` last improved."""
    last_grip: float = 0.0
    """Finger opening at the previous step, metres."""
    last_pos: np.ndarray = field(default_factory=lambda: np.zeros(3))
    """Eef position at the previous step, metres."""
    grasp: Grasp | None = None
    grasp_obj_pos: np.ndarray = field(default_factory=lambda: np.zeros(3))
    """Object position the grasp was planned (or last shifted) for, metres."""
    avoid: list = field(default_factory=list)
    """Rim directions (rad) whose approach stalled or whose grasp missed: the next plan prefers others."""
    approach_best: float = np.inf
    """Closest distance to the approach waypoint so far (rim grasps), metres."""
    approach_stall: int = 0
    """Approach steps since `approach_best` last improved."""
    obj_start_z: float = 0.0
    """Object height before the grasp, metres."""
    hold_pos: np.ndarray | None = None
    """Eef position held while closing or opening (also the base of the regrasp and retreat waypoints)."""
    carry_z: float = 0.0
    """Eef height the lift phase rises to, metres."""
    carry_yaw: float = 0.0
    """Hand yaw from transport to retreat, rad (`pick_place.start_carry`)."""
    release_z: float = 0.0
    """Height of the carried object's bottom at release, metres."""
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    """Carried object's position minus eef position, metres (measured after the grasp)."""
    bottom_below_eef: float = 0.0
    """Eef height minus carried object's bottom, metres."""
    retries: int = 0
    """Regrasps so far."""
    memo: dict = field(default_factory=dict)
    """What an articulated skill remembers within its step (hand roll or yaw, knob angle at the grip, ...)."""


PHASES = {**pick_place.PHASES, **articulated.PHASES, **laying.PHASES}
"""Phase name -> `control.Phase` of every skill the driver runs (a new skill merges its table in here)."""


def first_phase(step: Step) -> str:
    """The phase a plan step starts in."""
    if isinstance(step, PickPlace):
        return laying.FIRST if step.lay else pick_place.FIRST
    if isinstance(step, Articulate):
        return articulated.FIRST["swing" if step.target == step.owner else step.action]
    if isinstance(step, TurnOn):
        return articulated.FIRST["turnon"]
    if isinstance(step, Push):
        return articulated.FIRST["push"]
    raise TypeError(f"no skill runs {step!r}")


class LiberoExpert:
    """Privileged scripted expert for LIBERO (see module docstring).

    Phase steps (`control.Phase.step`) read `config`, `task` and `state` and call `goto`, `timed_out`,
    `stalled` and `servo`."""

    checkpoint_sha256 = ""

    def __init__(self, config: ExpertConfig | None = None):
        self.config = config or ExpertConfig()
        self.obs_spec = ObsSpec(cameras=tuple(self.config.cameras), resolution=self.config.resolution, privileged=True)
        self.plan: tuple[Step, ...] | Unsupported | None = None
        self.task: Step | Unsupported | None = None
        """The plan step being run."""
        self.step_index = 0
        self.state = State()
        self._prev = np.zeros(7)

    def reset(self, task: TaskSpec, seed: int) -> None:
        self.plan = None
        self.task = None
        self.step_index = 0
        self.state = State()
        self._prev = np.zeros(7)
        self._prev[6] = OPEN

    # -- protocol ------------------------------------------------------------------------------------------
    def act(self, obs: Observation) -> PolicyOutput:
        priv = obs.privileged
        if priv is None:
            raise ValueError("LiberoExpert needs privileged observations (ObsSpec(privileged=True))")
        p = obs.proprio
        view = View(
            eef_pos=np.asarray(p["eef_pos"], np.float64),
            eef_rot=quat_xyzw_to_mat(p["eef_quat"]),
            grip=float(np.sum(np.abs(p["gripper_qpos"]))),
            objects={k: np.asarray(v, np.float64) for k, v in priv.objects.items()},
            sites={k: np.asarray(v, np.float64) for k, v in priv.sites.items()},
            joints={k: np.asarray(v, np.float64) for key in ("fixture_joints", "site_joints")
                    for k, v in priv.extra.get(key, {}).items()},
        )
        if self.plan is None:
            self.plan = plan_goal(priv.goal, view.objects, view.sites, view.joints)
            self.task = self.plan if isinstance(self.plan, Unsupported) else self.plan[0]
            if not isinstance(self.task, Unsupported):
                self.state.phase = first_phase(self.task)
        actions, info = [], {}
        for i in range(max(1, self.config.chunk)):
            action, step_info = self._step(view)
            actions.append(action)
            if i == 0:
                info = step_info
            view = self._predict(view, action)
        return PolicyOutput(np.stack(actions), info)

    # -- state machine -------------------------------------------------------------------------------------
    def _step(self, v: View) -> tuple[np.ndarray, dict]:
        """One action from the current phase's step; info names the phase the machine is in afterwards."""
        task, s = self.task, self.state
        if isinstance(task, Unsupported):
            return self._finish(np.zeros(3), np.zeros(3), OPEN), {"phase": "idle", "unsupported": task.reason}
        if s.phase == "done" and self.step_index + 1 < len(self.plan):
            # The step's skill is done: the next step starts from fresh memory (its skill's first phase).
            self.step_index += 1
            self.task = self.plan[self.step_index]
            s = self.state = State(phase=first_phase(self.task), last_grip=s.last_grip, last_pos=s.last_pos)
        s.steps_in_phase += 1
        pos_a, rot_a, gripper = PHASES[s.phase].step(self, v)
        # What the next step's at-rest and fingers-still checks compare against.
        s.last_grip = v.grip
        s.last_pos = v.eef_pos.copy()
        info = {"phase": s.phase}
        if len(self.plan) > 1:
            info["step"] = self.step_index
        return self._finish(pos_a, rot_a, gripper), info

    def goto(self, phase: str) -> None:
        """Enter `phase` at its first step (with fresh stall tracking)."""
        s = self.state
        s.phase, s.steps_in_phase, s.best_dist, s.stall = phase, 0, np.inf, 0

    def timed_out(self) -> bool:
        """The current phase has run past its `max_steps`."""
        limit = PHASES[self.state.phase].max_steps
        return limit is not None and self.state.steps_in_phase > limit

    def stalled(self, dist: float, within: float = STALL_RANGE) -> bool:
        """True once the distance to the waypoint stopped shrinking for STALL_STEPS steps while within
        `within` m."""
        s = self.state
        if dist < s.best_dist - PROGRESS:
            s.best_dist, s.stall = dist, 0
        else:
            s.stall += 1
        return s.stall >= STALL_STEPS and dist < within

    # -- low level -----------------------------------------------------------------------------------------
    def servo(
        self, v: View, target_pos: np.ndarray, target_rot: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float, float]:
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

    def _predict(self, v: View, action: np.ndarray) -> View:
        """Predicted next view: the hand moves TRACKING of the commanded delta; a carried object follows it."""
        dp = action[:3] * POS_SCALE * TRACKING
        rot = mat_from_rotvec(action[3:6] * ROT_SCALE * TRACKING) @ v.eef_rot
        objects = dict(v.objects)
        task = self.task
        if isinstance(task, PickPlace) and PHASES[self.state.phase].carries:
            pose = objects[task.obj].copy()
            pose[:3] += dp
            objects[task.obj] = pose
        grip = float(np.clip(v.grip - FINGER_RATE * action[6], 0.0, FINGER_MAX))
        return View(v.eef_pos + dp, rot, grip, objects, v.sites, predicted=True, joints=v.joints)
