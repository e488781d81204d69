"""Typed params of the early-exit family (DeeR-VLA, arXiv 2411.02359, at our scale)."""
from __future__ import annotations

from dataclasses import dataclass

from policies.vla.configuration import RolloutParams


@dataclass(frozen=True)
class EarlyExitParams(RolloutParams):
    target: float = 0.388
    """Mean executed fraction of the backbone to calibrate the exit threshold to, on the checkpoint's calibration
    frames (default: the shipped libero_spatial student's executed share, as for random skip)."""

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 < self.target <= 1.0:
            raise ValueError(f"target must be an executed fraction in (0, 1], got {self.target}")
