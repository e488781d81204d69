"""Typed configuration of the compact VLA (the teacher). Larger sizes are the same code with other numbers."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


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
    proprio_dim: int = 8
    """eef position (3) + eef axis-angle (3) + gripper finger positions (2), as LIBERO's demo files store them."""
    cameras: tuple[str, ...] = ("agentview", "wrist")
    image_size: int = 128
    """Square camera resolution, pixels."""
    vision_grid: int = 4
    """Vision tokens per camera = vision_grid**2 (pooled EfficientNet-Lite0 feature map)."""
    language_tokens: int = 16
    """Instruction word pieces kept (padded and masked)."""
    head_hidden: int = 512
    dropout: float = 0.0

    @property
    def n_tokens(self) -> int:
        return self.language_tokens + len(self.cameras) * self.vision_grid**2 + 1 + self.chunk

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VLAConfig":
        return config_from_dict(cls, data)


SIZES = {
    "cpu": VLAConfig(),
    "base": VLAConfig(width=768, depth=24, heads=12, image_size=224, vision_grid=7),
}
"""Named sizes: `cpu` is the shipped default (trains here in <= 2 h); `base` for users with a GPU."""
