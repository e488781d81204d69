"""What the LIBERO expert's driver (`libero.py`) and its phase modules (`pick_place.py`, `articulated.py`) share:
the gripper commands, what one control step sees (`View`), what a phase returns (`Command`) and a phase-table row
(`Phase`).

A phase module holds one skill as named phases: each is a function `step(expert, view) -> Command` that reads
and updates `expert.state` and moves the machine on with `expert.goto(name)`; the module's `PHASES` table maps
phase names to `Phase` rows. Adding a skill is a new module with its phases and a table merged into the driver's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from policies.expert.libero import LiberoExpert

OPEN, CLOSE = -1.0, 1.0
"""Gripper commands (robosuite: the Panda gripper integrates the command's sign; 0 holds the opening)."""
PROGRESS = 1e-3
"""Shrink of the distance to a waypoint that counts as progress, metres."""


@dataclass
class View:
    """What one control step sees: measured, or predicted inside an open-loop chunk."""

    eef_pos: np.ndarray
    """(3,) end-effector position, world metres."""
    eef_rot: np.ndarray
    """(3, 3) end-effector orientation, world."""
    grip: float
    """Finger opening, metres (sum of the two finger joints)."""
    objects: dict[str, np.ndarray]
    """Body name -> (7,) xyz metres + quaternion wxyz (as `PrivilegedState`)."""
    sites: dict[str, np.ndarray]
    """Site name -> (7,) xyz metres + quaternion wxyz."""
    predicted: bool = False
    joints: dict[str, np.ndarray] = field(default_factory=dict)
    """Articulated fixture (by name) or site (a drawer's region, by name) -> its joints' positions (m or rad),
    from `PrivilegedState.extra` `fixture_joints` and `site_joints`."""


Command = tuple[np.ndarray, np.ndarray, float]
"""A phase's raw step output: translation action (3,), rotation action (3,), gripper command; the driver
speed-, acceleration- and range-limits it into the action."""


@dataclass(frozen=True)
class Phase:
    """One row of a phase table."""

    step: Callable[[LiberoExpert, View], Command]
    """This control step's command; calls `expert.goto` when the phase's exit condition holds."""
    max_steps: int | None = None
    """Steps after which the phase gives up on its exit condition (`expert.timed_out()`); None: never."""
    carries: bool = False
    """The grasped object moves with the hand (the open-loop prediction moves it along)."""


# -- helpers every skill uses ------------------------------------------------------------------------------
AT_REST_STEP = 0.004
"""Hand displacement per step below which the hand counts as at rest, metres."""
FINGERS_STILL = 4e-4
"""Finger-opening change per step below which the fingers have stopped, metres."""
SHAPE_UNDER = 0.025
"""Finger opening below a pre-shape width at which the fingers open fully first, metres."""
SHAPE_OVER = 0.004
"""Finger opening above a pre-shape width at which the fingers close further, metres."""
SHAPED_OVER = 0.01
"""Finger opening above a pre-shape width still counted as shaped, metres."""


def hold_open() -> Command:
    """Stand still with the gripper opening."""
    return np.zeros(3), np.zeros(3), OPEN


def at_rest(ex: LiberoExpert, v: View) -> bool:
    """The hand stopped moving (always true inside an open-loop prediction)."""
    return v.predicted or np.linalg.norm(v.eef_pos - ex.state.last_pos) < AT_REST_STEP


def fingers_still(ex: LiberoExpert, v: View) -> bool:
    """The finger opening stopped changing (always true inside an open-loop prediction)."""
    return v.predicted or abs(v.grip - ex.state.last_grip) < FINGERS_STILL


def gripper_settled(ex: LiberoExpert, v: View, min_steps: int) -> bool:
    """A closing or opening phase is over: at least `min_steps` in it and the fingers still, or it timed out."""
    return (ex.state.steps_in_phase >= min_steps and fingers_still(ex, v)) or ex.timed_out()


def shape(v: View, width: float | None) -> float:
    """Gripper command pre-shaping the finger opening to `width` m (None: open); 0 holds the opening."""
    if width is None or v.grip < width - SHAPE_UNDER:
        return OPEN
    return CLOSE if v.grip > width + SHAPE_OVER else 0.0


def shaped(v: View, width: float | None) -> bool:
    """The fingers are pre-shaped to `width` m (None: any opening; always true inside a prediction)."""
    return v.predicted or width is None or width - SHAPE_UNDER <= v.grip <= width + SHAPED_OVER
