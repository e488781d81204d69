"""Typed configuration of the compact VLA (the teacher). Larger sizes are the same code with other numbers."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from core.geometry import axis_angle_to_rot6d

VISION_STRIDE = 32
"""Pixels per vision token side at EfficientNet-Lite0's native feature map (128 px -> 4x4 tokens, 224 -> 7x7)."""

PROPRIO_ROTATIONS = {"axis_angle": 3, "rot6d": 6}
"""End-effector orientation features of the proprio -> their width."""


def config_from_dict(cls, data: dict):
    """Build a config dataclass from JSON data; unknown keys are refused with a message naming them."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid: {sorted(fields)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class VLAConfig:
    width: int = 384
    """Backbone token width d."""
    depth: int = 12
    """Backbone blocks L: the compute ActDistill's router skips."""
    heads: int = 6
    mlp_ratio: int = 4
    chunk: int = 8
    """Actions predicted per call (K); the policy executes them open loop."""
    action_dim: int = 7
    rotation: str = "axis_angle"
    """End-effector orientation in the proprio: `axis_angle` as LIBERO's demo files store it (it jumps from pi to
    -pi about the same axis, which a downward-pointing gripper crosses often), or `rot6d`, the rotation matrix's
    first two columns (continuous)."""
    proprio_dim: int | None = None
    """eef position (3) + orientation (`rotation`) + gripper finger positions (2); derived when None."""
    cameras: tuple[str, ...] = ("agentview", "wrist")
    image_size: int = 128
    """Square camera resolution, pixels."""
    vision_grid: int = 4
    """Vision tokens per camera = vision_grid**2 (pooled EfficientNet-Lite0 feature map)."""
    language_tokens: int = 16
    """Instruction word pieces kept (padded and masked)."""
    head_hidden: int = 512
    dropout: float = 0.0

    def __post_init__(self):
        if self.rotation not in PROPRIO_ROTATIONS:
            raise ValueError(f"rotation={self.rotation!r}; valid: {', '.join(PROPRIO_ROTATIONS)}")
        width = 3 + PROPRIO_ROTATIONS[self.rotation] + 2
        if self.proprio_dim is None:
            object.__setattr__(self, "proprio_dim", width)
        elif self.proprio_dim != width:
            raise ValueError(f"proprio_dim={self.proprio_dim} does not fit rotation={self.rotation!r} ({width})")

    def proprio_features(self, raw: np.ndarray) -> np.ndarray:
        """(..., 8) proprio as demos store it (eef position, axis-angle, gripper) -> (..., proprio_dim) float32."""
        raw = np.asarray(raw)
        rotation = raw[..., 3:6] if self.rotation == "axis_angle" else axis_angle_to_rot6d(raw[..., 3:6])
        return np.concatenate([raw[..., :3], rotation, raw[..., 6:]], axis=-1).astype(np.float32)

    @property
    def n_tokens(self) -> int:
        return self.language_tokens + len(self.cameras) * self.vision_grid**2 + 1 + self.chunk

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VLAConfig":
        return config_from_dict(cls, data)


@dataclass(frozen=True)
class RolloutParams:
    """Params every family built on the VLA takes (their own params extend this): how a predicted chunk is run."""

    horizon: int | None = field(default=None, kw_only=True, metadata={"omit_at_default": True})
    """Actions of each predicted chunk executed before the policy observes again (LeRobot's `n_action_steps`),
    1..chunk; None: the whole chunk (as every run recorded before this param existed). Keyword-only, so that the
    families' own params keep their positional order."""

    def __post_init__(self):
        if self.horizon is not None and self.horizon < 1:
            raise ValueError(f"horizon must be >= 1 action, got {self.horizon}")


SIZES = {
    "cpu": VLAConfig(),
    "base": VLAConfig(width=768, depth=24, heads=12, image_size=224, vision_grid=7),
}
"""Named sizes: `cpu` is the shipped default (trains here in <= 2 h); `base` for users with a GPU."""
