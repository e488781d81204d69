"""Typed configuration of the ActDistill student and its losses (arXiv 2511.18082, reference code defaults, plus
our compute budget at the shipped students' setting).

Widths that are 512 in the 7B original are scaled to this backbone (`router_width`, `semantic_width`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from policies.vla.configuration import config_from_dict


@dataclass(frozen=True)
class ActDistillConfig:
    router_width: int = 128
    """Per-modality projection width of the router (512 for a 4096-wide 7B backbone; scaled to d=384)."""
    router_dropout: float = 0.1
    gate_threshold: float = 0.5
    """Inference: a block runs for a sample iff its gate >= this."""
    graph_knn: int = 8
    """Neighbours per token in the graph encapsulation (no self-loops)."""
    graph_heads: int = 4
    graph_layers: int = 2
    graph_width: int = 128
    """Affinity projection and graph-attention width."""
    semantic_width: int = 128
    """Semantic vector width (512 in the original)."""
    alpha: float = 1.0
    """Weight of the semantic (graph) distillation loss."""
    beta: float = 1.0
    """Weight of the per-block action loss."""
    eta: float = 0.5
    """Weight of the batch-structure term inside the semantic loss."""
    gamma: float = 2.0
    """Block weights w_l = (l / (L - 1))**gamma, normalised to mean 1: deeper blocks matter more."""
    balance: float = 0.1
    """Weight of the balance loss (variance of the per-block mean gates)."""
    straight_through: bool = True
    """Ours: train with hard gates in the forward pass and soft-gate gradients (straight-through estimator), so
    that training sees the skips inference makes. False: the reference's soft gates (thresholded only at
    inference, a train/test mismatch whenever a gate is far from 0 or 1)."""
    budget: float | None = 0.33
    """Most fraction of blocks to execute, in (0, 1], or None for the reference method without it. Ours: the
    balance loss evens gates across blocks but does not say how many run. The default is the shipped students'."""
    budget_weight: float = 10.0
    """Weight of the budget term (`losses.budget_loss`: the squared excess of the mean gate over `budget`)."""
    graph: bool = True
    """False: ablation without graph encapsulation, distilling only the teacher's final actions."""
    static_blocks: tuple[int, ...] | None = None
    """Ablation: these blocks always run and the others never (no routing); None: the router decides."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ActDistillConfig":
        return config_from_dict(cls, data)
