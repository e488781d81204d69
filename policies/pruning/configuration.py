"""Typed params of the static-pruned family: which of the teacher's backbone blocks a pruned model keeps."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from policies.vla.configuration import RolloutParams


@dataclass(frozen=True)
class PruningParams(RolloutParams):
    method: Literal["first", "uniform", "importance", "blocks"] = "first"
    """first: the first `keep` blocks (truncation, as SmolVLA keeps the first half of its VLM's layers);
    uniform: `keep` blocks evenly spaced over the depth, first and last included; importance: the `keep` blocks of
    highest Block Influence (ShortGPT, arXiv 2403.03853), scores measured on calibration frames and stored in a
    pruned checkpoint (`policies.pruning.train`); blocks: exactly `blocks`."""
    keep: int | None = None
    """Blocks kept, for first / uniform / importance."""
    blocks: tuple[int, ...] | None = None
    """Teacher block indices kept, for method=blocks."""

    def __post_init__(self):
        super().__post_init__()
        if self.method == "blocks":
            if not self.blocks or self.keep is not None:
                raise ValueError("method=blocks needs blocks=<i,j,...> and no keep")
            if sorted(set(self.blocks)) != list(self.blocks) or min(self.blocks) < 0:
                raise ValueError(f"blocks must be distinct ascending indices >= 0, got {self.blocks}")
        else:
            if self.keep is None or self.keep < 1 or self.blocks is not None:
                raise ValueError(f"method={self.method} needs keep=<k >= 1> and no blocks")

    def kept(self, depth: int, scores: Sequence[float] | None = None) -> tuple[int, ...]:
        """Teacher block indices kept out of `depth` (ascending); `scores`: each block's Block Influence, needed by
        method=importance (ties keep the lower index). ValueError when they do not fit."""
        if self.method == "blocks":
            kept = self.blocks
        elif self.keep > depth:
            raise ValueError(f"keep={self.keep} exceeds the teacher's {depth} blocks")
        elif self.method == "first":
            kept = tuple(range(self.keep))
        elif self.method == "uniform":
            kept = tuple(int(round(x)) for x in np.linspace(0, depth - 1, self.keep))
        elif scores is None or len(scores) != depth:
            raise ValueError(f"method=importance needs the Block Influence of each of the {depth} blocks, computed "
                             f"on calibration frames: build a pruned checkpoint with `make baselines`")
        else:
            kept = tuple(sorted(sorted(range(depth), key=lambda b: (-scores[b], b))[:self.keep]))
        if max(kept) >= depth:
            raise ValueError(f"blocks {kept} out of range for a teacher of {depth} blocks (0..{depth - 1})")
        return kept


@dataclass(frozen=True)
class RandomSkipParams(RolloutParams):
    p: float = 0.388
    """Probability that each teacher block runs at a call (default: the shipped libero_spatial student's executed
    share of the backbone, so the control spends the student's compute without its learned routing)."""
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {self.p}")
