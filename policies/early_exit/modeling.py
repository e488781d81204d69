"""A multi-exit VLA: the teacher's backbone with an action head after every block (DeeR-VLA's multi-exit
architecture, arXiv 2411.02359).

Exit l reads the K action-query tokens after block l through its own LayerNorm + MLP head (the last exit is the
teacher's own head). At inference the blocks run in order and the model exits after block l >= 1 as soon as two
consecutive exits agree: ||a_l - a_{l-1}||_2 <= threshold over the whole normalised chunk (DeeR's action
consistency criterion); otherwise it runs every block. It executes blocks 0..l.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from policies.vla.configuration import VLAConfig
from policies.vla.model import VLA


class MultiExitVLA(VLA):
    def __init__(self, cfg: VLAConfig):
        super().__init__(cfg)
        self.exit_norms = nn.ModuleList(nn.LayerNorm(cfg.width) for _ in range(cfg.depth - 1))
        self.exit_heads = nn.ModuleList(copy.deepcopy(self.head) for _ in range(cfg.depth - 1))

    def exit_action(self, h: torch.Tensor, l: int) -> torch.Tensor:
        """(B, T, d) state after block l -> (B, K, A) normalised actions of exit l."""
        if l == self.cfg.depth - 1:
            return self.action_head(h)
        return self.exit_heads[l](self.exit_norms[l](h[:, -self.cfg.chunk:]))

    def all_exits(self, vision, lang, lang_mask, proprio) -> torch.Tensor:
        """Training and calibration: every block and every exit -> (B, L, K, A)."""
        h, mask = self.embed(vision, lang, lang_mask, proprio)
        actions = []
        for l, block in enumerate(self.blocks):
            h = block(h, mask)
            actions.append(self.exit_action(h, l))
        return torch.stack(actions, dim=1)

    def forward(self, vision, lang, lang_mask, proprio, threshold: float = -1.0) -> tuple[torch.Tensor, int]:
        """Inference at batch 1 -> (normalised actions (1, K, A), blocks executed). threshold < 0: no early exit."""
        h, mask = self.embed(vision, lang, lang_mask, proprio)
        previous = None
        for l, block in enumerate(self.blocks):
            h = block(h, mask)
            if l == self.cfg.depth - 1:
                break
            action = self.exit_action(h, l)
            if previous is not None and float(torch.linalg.vector_norm(action - previous)) <= threshold:
                return action, l + 1
            previous = action
        return self.action_head(h), self.cfg.depth

    @classmethod
    def from_teacher(cls, teacher: VLA) -> "MultiExitVLA":
        """Every teacher weight copied; each new exit starts as a copy of the teacher's final norm and head."""
        model = cls(teacher.cfg)
        missing, unexpected = model.load_state_dict(teacher.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("exit_") for k in missing), (missing, unexpected)
        with torch.no_grad():
            for norm, head in zip(model.exit_norms, model.exit_heads):
                norm.load_state_dict(teacher.norm.state_dict())
                head.load_state_dict(teacher.head.state_dict())
        return model


def consistency(exits: torch.Tensor) -> np.ndarray:
    """(N, L, K, A) actions of every exit -> (N, L - 1) distance ||a_l - a_{l-1}||_2 for l = 1..L-1."""
    return torch.linalg.vector_norm((exits[:, 1:] - exits[:, :-1]).flatten(2), dim=-1).numpy()


def executed_blocks(distances: np.ndarray, threshold: float) -> np.ndarray:
    """(N, L - 1) consistency distances -> (N,) blocks each sample executes at `threshold` (the forward rule)."""
    agree = distances <= threshold
    agree[:, -1] = True  # the last block always ends the pass
    return 2 + agree.argmax(axis=1)


def calibrate(distances: np.ndarray, target: float) -> tuple[float, float]:
    """The threshold whose mean executed fraction on the calibration `distances` is nearest `target` (the lowest
    such threshold on ties), and that fraction. Fractions fall as the threshold grows, from 1 (threshold below
    every distance) to 2/L (above every distance). Candidates lie midway between distinct distances, so that a
    distance recomputed at another batch size or precision falls on the same side."""
    depth = distances.shape[1] + 1
    values = np.unique(distances)
    candidates = np.concatenate([[values[0] - 1.0], (values[1:] + values[:-1]) / 2, [values[-1] + 1.0]])
    fractions = np.array([executed_blocks(distances, t).mean() / depth for t in candidates])
    best = int(np.argmin(np.abs(fractions - target)))
    return float(candidates[best]), float(fractions[best])
