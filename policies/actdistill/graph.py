"""Graph-structured encapsulation of one block's tokens (training only; removed from the exported student).

Nodes are the block's token states. Each node links to its k nearest neighbours under a learned affinity
exp(φ(h_i)·ψ(h_j)) (no self-loops, padded tokens excluded), with the affinities normalised over those k edges.
Two graph-attention layers (multi-head, GAT-style) propagate along the edges; their attention logits are added
to the log edge weights, so the affinity projections φ, ψ receive gradients (the top-k choice itself does not).
Attention pooling over nodes and an MLP give the block's semantic vector; a per-block head maps it to an action
chunk.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from policies.actdistill.configuration import ActDistillConfig
from policies.vla.configuration import VLAConfig


def knn_graph(phi: torch.Tensor, psi: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """phi, psi: (B, T, a); mask: (B, T) bool. Returns neighbour indices (B, T, k) and log edge weights (B, T, k)
    where weights = exp(affinity) normalised over each node's k neighbours."""
    scores = phi @ psi.transpose(1, 2) / math.sqrt(phi.shape[-1])  # scaled for numerical range
    t = scores.shape[1]
    invalid = torch.eye(t, dtype=torch.bool, device=scores.device)[None] | ~mask[:, None, :]
    scores = scores.masked_fill(invalid, float("-inf"))
    k = min(k, t - 1)
    top, idx = scores.topk(k, dim=-1)
    return idx, torch.log_softmax(top, dim=-1)


def dense_edges(idx: torch.Tensor, log_w: torch.Tensor, t: int) -> torch.Tensor:
    """Neighbour lists (B, T, k) and their log weights -> (B, T, T) log edge weights, -inf where no edge."""
    full = torch.full((*idx.shape[:2], t), float("-inf"), dtype=log_w.dtype, device=log_w.device)
    return full.scatter(-1, idx, log_w)


class GraphAttention(nn.Module):
    """GAT layer over a sparse graph, computed densely: with T ~ 60 tokens a (B, H, T, T) masked attention is far
    cheaper on a CPU than gathering k neighbour vectors per node, and it is the same function."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.proj = nn.Linear(width, width, bias=False)
        self.att_src = nn.Parameter(torch.randn(heads, self.head_dim) * 0.1)
        self.att_dst = nn.Parameter(torch.randn(heads, self.head_dim) * 0.1)

    def forward(self, x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        """x: (B, T, width); edges: (B, T, T) log edge weights from node i to neighbour j, -inf for none."""
        b, t, _ = x.shape
        z = self.proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        dst = (z * self.att_dst[:, None]).sum(-1)
        src = (z * self.att_src[:, None]).sum(-1)
        logits = F.leaky_relu(dst[..., :, None] + src[..., None, :], 0.2) + edges[:, None]
        out = (torch.softmax(logits, dim=-1) @ z).transpose(1, 2).reshape(b, t, -1)
        return F.elu(out) + x


class GraphEncapsulation(nn.Module):
    """One block's extractor: token states (B, T, d) -> semantic vector (B, s) and action chunk (B, K, 7)."""

    def __init__(self, cfg: VLAConfig, acfg: ActDistillConfig):
        super().__init__()
        g = acfg.graph_width
        self.k = acfg.graph_knn
        self.inp = nn.Sequential(nn.LayerNorm(cfg.width), nn.Linear(cfg.width, g))
        self.phi = nn.Linear(g, g, bias=False)
        self.psi = nn.Linear(g, g, bias=False)
        self.layers = nn.ModuleList(GraphAttention(g, acfg.graph_heads) for _ in range(acfg.graph_layers))
        self.pool = nn.Linear(g, 1)
        self.semantic = nn.Sequential(nn.Linear(g, g), nn.GELU(), nn.Linear(g, acfg.semantic_width))
        self.action = nn.Linear(acfg.semantic_width, cfg.chunk * cfg.action_dim)
        self.chunk, self.action_dim = cfg.chunk, cfg.action_dim

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.inp(h)
        edges = dense_edges(*knn_graph(self.phi(x), self.psi(x), mask, self.k), x.shape[1])
        for layer in self.layers:
            x = layer(x, edges)
        weights = torch.softmax(self.pool(x).squeeze(-1).masked_fill(~mask, float("-inf")), dim=-1)
        s = self.semantic((weights[..., None] * x).sum(1))
        return s, self.action(s).view(-1, self.chunk, self.action_dim)


class BlockProbes(nn.Module):
    """One GraphEncapsulation per backbone block."""

    def __init__(self, cfg: VLAConfig, acfg: ActDistillConfig):
        super().__init__()
        self.blocks = nn.ModuleList(GraphEncapsulation(cfg, acfg) for _ in range(cfg.depth))

    def forward(self, states: list[torch.Tensor], mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-block hidden states -> semantic vectors (B, L, s) and actions (B, L, K, 7)."""
        outs = [probe(h, mask) for probe, h in zip(self.blocks, states)]
        return torch.stack([o[0] for o in outs], 1), torch.stack([o[1] for o in outs], 1)
