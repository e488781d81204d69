"""What the LIBERO expert's driver (`libero.py`) and its phase modules (`pick_place.py`) share: the gripper
commands, what one control step sees (`View`), what a phase returns (`Command`) and a phase-table row (`Phase`).

A phase module holds one skill as named phases: each is a function `step(expert, view) -> Command` that reads
and updates `expert.state` and moves the machine on with `expert.goto(name)`; the module's `PHASES` table maps
phase names to `Phase` rows. Adding a skill is a new module with its phases and a table merged into the driver's.
"""
from __future__ import annotations

from dataclasses import dataclass
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
