"""Official evaluation protocols: the one place their constants live, each with its source.

Published success rates are comparable only under the same init states, settle steps, step limits, image
orientation and success rule, so every run manifest embeds `protocol_dict(suite)` and a resumed run refuses
to mix episodes evaluated under different constants.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class LiberoProtocol:
    """LIBERO evaluation as in OpenVLA / OpenVLA-OFT `run_libero_eval.py` and LeRobot's LIBERO env.

    Source: LIBERO (Liu et al., NeurIPS 2023 D&B) benchmark init states; OpenVLA `experiments/robot/libero/
    run_libero_eval.py` (max steps per suite, 10 wait steps, 180-degree image rotation, `env.seed(0)`).
    """

    suite: str
    max_steps: int
    """Policy steps after settling; the episode is truncated (failure) when reached."""
    n_init_states: int = 50
    """Fixed init states shipped with the benchmark; episode i uses init state i."""
    settle_steps: int = 10
    """No-op steps after `set_init_state` so objects come to rest (OpenVLA `num_steps_wait`)."""
    settle_action: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    """Zero motion, gripper open (-1 opens in robosuite's Panda gripper convention)."""
    env_seed: int = 0
    """`env.seed(0)` before reset, as OpenVLA; physics is deterministic given the init state."""
    control_hz: int = 20
    action_dim: int = 7
    action_space: str = "delta end-effector (OSC_POSE, xyz m/0.05, axis-angle rad/0.5) + gripper, each in [-1, 1]"
    image_flip: str = "rot180"
    """Rendered frames are rotated 180 degrees (img[::-1, ::-1]) to be upright, as OpenVLA and LeRobot do."""
    cameras: tuple[str, ...] = ("agentview", "wrist")
    default_resolution: tuple[int, int] = (128, 128)
    success_rule: str = "env.check_success() (BDDL goal predicates) at any step; the episode ends at first success"
    source: str = field(default="OpenVLA run_libero_eval.py; LIBERO benchmark init_files", repr=False)


LIBERO_MAX_STEPS = {
    # OpenVLA run_libero_eval.py: chosen as the longest training demo of each suite plus margin.
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}

LIBERO_SUITES = tuple(LIBERO_MAX_STEPS)
LIBERO_STANDARD = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
"""What `SUITE=libero` means: the four suites every VLA paper reports."""


def libero_protocol(suite: str) -> LiberoProtocol:
    return LiberoProtocol(suite=suite, max_steps=LIBERO_MAX_STEPS[suite])


def protocol_dict(protocol: LiberoProtocol) -> dict:
    """JSON-ready form for manifests (tuples become lists)."""
    return asdict(protocol)
