"""The policy protocol: what the harness needs from any policy, scripted or learned.

Sized like robomimic's RolloutPolicy: declare observations, reset per episode, act on an observation.
`act` returns an action chunk; the harness executes it open loop and only then asks again, so a policy
with chunk length k is queried (and its cameras rendered) every k steps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tasks.base import ObsSpec, Observation, TaskSpec


class PolicyLoadError(ValueError):
    """A policy cannot be built (missing or incompatible checkpoint); the message is one line for the user."""


class NoShippedCheckpoint(PolicyLoadError):
    """A learned policy ships no checkpoint for the requested suite (and none was given)."""


@dataclass
class PolicyOutput:
    actions: np.ndarray
    """(k, action_dim) float actions, executed in order; k >= 1."""
    info: dict[str, Any] = field(default_factory=dict)
    """Per-call data stored in the episode record (e.g. `blocks`: executed backbone blocks)."""


class Policy(Protocol):
    obs_spec: ObsSpec
    checkpoint_sha256: str
    """sha256 of the weights file, or "" for policies without weights."""

    def reset(self, task: TaskSpec, seed: int) -> None:
        """Start a new episode of `task` (instruction, suite, step limit); `seed` makes sampling repeatable."""

    def act(self, obs: Observation) -> PolicyOutput: ...


class Profilable(Protocol):
    """Optional hooks for `make profile` (`harness.policy_profile`), which profiles any policy without them (FLOPs,
    executed fraction and parameters are counted generically); with them it also splits a call's FLOPs by
    component and reports the instruction encoder's cost. A policy may implement either."""

    def flop_components(self) -> dict[str, str]:
        """Component (vision, backbone, head) -> module path prefix as `FlopCounterMode` names it in one `act`."""

    def instruction_flops(self, instruction: str) -> int:
        """FLOPs of encoding an instruction: paid once per episode when the policy caches it, not per call."""
