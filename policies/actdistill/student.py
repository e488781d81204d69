"""The ActDistill student: the teacher's own blocks (self-derived) plus a router that gates each block per input.

The router runs once per forward pass, on the input embeddings: vision and language tokens are each projected
(LayerNorm), pooled as mean‖max, concatenated, passed through dropout, and one linear unit per block gives a
sigmoid gate.

Training uses soft gates on each block's residual update, h <- h + g·(block(h) - h). (The reference code scales
the whole block output, residual included, by the gate; that does not match skipping at inference, where a
skipped block leaves h unchanged, so we gate the update: g = 0 is exactly a skip.) Inference uses hard gates,
g >= threshold, and a block runs only on the rows of the batch whose gate is on. By default (ours, see
`ActDistillConfig.straight_through`) training already applies the hard decision in the forward pass, with the soft
gate's gradient, so the network trained is the network run.
"""
from __future__ import annotations

import torch
from torch import nn

from policies.actdistill.configuration import ActDistillConfig
from policies.vla.configuration import VLAConfig
from policies.vla.model import VLA


class Router(nn.Module):
    def __init__(self, cfg: VLAConfig, acfg: ActDistillConfig):
        super().__init__()
        r = acfg.router_width
        self.vision = nn.Sequential(nn.Linear(cfg.width, r), nn.LayerNorm(r))
        self.language = nn.Sequential(nn.Linear(cfg.width, r), nn.LayerNorm(r))
        self.dropout = nn.Dropout(acfg.router_dropout)
        self.gates = nn.Linear(4 * r, cfg.depth)
        nn.init.constant_(self.gates.bias, 2.0)  # start with every block on (gate ~0.88): the student = teacher

    @staticmethod
    def _pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masked mean‖max over tokens: (B, T, r), (B, T) -> (B, 2r)."""
        m = mask[..., None].to(x.dtype)
        mean = (x * m).sum(1) / m.sum(1).clamp(min=1)
        peak = x.masked_fill(~mask[..., None], float("-inf")).amax(1)
        return torch.cat([mean, peak], dim=-1)

    def forward(self, h0: torch.Tensor, mask: torch.Tensor, n_lang: int, n_vision: int) -> torch.Tensor:
        """h0: (B, T, d) input embeddings ordered [language | vision | ...] -> gates (B, L) in (0, 1)."""
        lang = self._pool(self.language(h0[:, :n_lang]), mask[:, :n_lang])
        vis_tokens = h0[:, n_lang:n_lang + n_vision]
        vis = self._pool(self.vision(vis_tokens), torch.ones(vis_tokens.shape[:2], dtype=torch.bool, device=h0.device))
        return torch.sigmoid(self.gates(self.dropout(torch.cat([vis, lang], dim=-1))))


class StudentVLA(VLA):
    """A VLA whose backbone blocks are gated by a router (see module docstring)."""

    def __init__(self, cfg: VLAConfig, acfg: ActDistillConfig):
        super().__init__(cfg)
        self.acfg = acfg
        self.router = Router(cfg, acfg)

    @property
    def n_vision(self) -> int:
        return len(self.cfg.cameras) * self.cfg.vision_grid**2

    def gates(self, h0: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L) gates in [0, 1]: the router's, or fixed 0/1 for a static-blocks student (the ablation)."""
        if self.acfg.static_blocks is not None:
            fixed = torch.zeros(self.cfg.depth, dtype=h0.dtype, device=h0.device)
            fixed[list(self.acfg.static_blocks)] = 1.0
            return fixed.expand(h0.shape[0], -1)
        return self.router(h0, mask, self.cfg.language_tokens, self.n_vision)

    def training_gates(self, gates: torch.Tensor) -> torch.Tensor:
        """Gates as training applies them: soft, or with `straight_through` the inference decision
        (gate >= threshold) in the forward pass and the soft gate's gradient in the backward pass."""
        if not self.acfg.straight_through:
            return gates
        return (gates >= self.acfg.gate_threshold).to(gates.dtype) + gates - gates.detach()

    def backbone_soft(self, h: torch.Tensor, mask: torch.Tensor, gates: torch.Tensor) -> list[torch.Tensor]:
        """Training: every block runs, its update scaled by its gate (`training_gates`). Returns the hidden state
        after each block."""
        states = []
        for i, block in enumerate(self.blocks):
            h = h + gates[:, i, None, None] * block.update(h, mask)
            states.append(h)
        return states

    def backbone_hard(self, h: torch.Tensor, mask: torch.Tensor, gates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference: block i runs only on rows with gate >= threshold. Returns (h, executed (B, L) bool)."""
        on = gates >= self.acfg.gate_threshold
        for i, block in enumerate(self.blocks):
            rows = on[:, i]
            if rows.all():
                h = block(h, mask)
            elif rows.any():
                h = h.clone()
                h[rows] = block(h[rows], mask[rows])
        return h, on

    def forward(self, vision, lang, lang_mask, proprio) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference path (hard gates) -> (normalised actions (B, K, action_dim), executed blocks (B, L) bool).
        Unlike the teacher's, it also returns which blocks ran; it is `forward` so that profilers attribute the
        blocks' FLOPs to `StudentVLA.blocks`."""
        h0, mask = self.embed(vision, lang, lang_mask, proprio)
        h, executed = self.backbone_hard(h0, mask, self.gates(h0, mask))
        return self.action_head(h), executed

    @classmethod
    def from_teacher(cls, teacher: VLA, acfg: ActDistillConfig) -> "StudentVLA":
        """Self-derived initialisation: every teacher weight copied; only the router is new."""
        student = cls(teacher.cfg, acfg)
        missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("router.") for k in missing), (missing, unexpected)
        return student
