"""The compact VLA: frozen pretrained encoders, a transformer backbone of L blocks, an L1-regression action head.

Token sequence per sample: [language word pieces | vision tokens of each camera | proprio | K action queries],
each projected to width d, plus a learned position embedding. The backbone is a plain stack of pre-norm
blocks, exposed block by block (`Block.update`) so a router can gate or skip any block per sample. The head
reads the K action-query tokens and regresses K normalised actions.

Why L1 regression rather than a diffusion head: OpenVLA-OFT reports L1 regression of action chunks matching
diffusion on LIBERO while needing one forward pass; with a single pass the backbone carries nearly all the
compute, which is what layer skipping can save (a diffusion head's repeated denoising would dilute it).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from policies.vla.configuration import VLAConfig
from policies.vla.efficientnet_lite import EfficientNetLite0
from policies.vla.language import MiniLM


class Block(nn.Module):
    """Pre-norm transformer block. `update(h, mask)` is its residual update: block(h) = h + update(h, mask)."""

    def __init__(self, cfg: VLAConfig):
        super().__init__()
        d = cfg.width
        self.heads = cfg.heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(), nn.Linear(cfg.mlp_ratio * d, d))
        self.dropout = cfg.dropout

    def _attention(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask[:, None, None, :], dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(out.transpose(1, 2).reshape(b, t, d))

    def update(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h: (B, T, d); mask: (B, T) bool, True = real token (keys only; padded queries are ignored downstream)."""
        a = self._attention(self.norm1(h), mask)
        return a + self.mlp(self.norm2(h + a))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return h + self.update(h, mask)


class VLA(nn.Module):
    """Trainable part: projections, backbone and head. Inputs are encoder outputs (see `Encoders`)."""

    def __init__(self, cfg: VLAConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.width
        self.vision_proj = nn.Linear(EfficientNetLite0.feature_channels, d)
        self.camera_embed = nn.Parameter(torch.zeros(len(cfg.cameras), 1, d))
        self.lang_proj = nn.Linear(MiniLM.width, d)
        self.proprio_proj = nn.Linear(cfg.proprio_dim, d)
        self.action_queries = nn.Parameter(torch.randn(cfg.chunk, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(cfg.n_tokens, d) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Sequential(nn.Linear(d, cfg.head_hidden), nn.GELU(), nn.Linear(cfg.head_hidden, cfg.action_dim))

    def embed(self, vision: torch.Tensor, lang: torch.Tensor, lang_mask: torch.Tensor, proprio: torch.Tensor):
        """vision: (B, C, 1280, g, g) feature maps; lang: (B, Lt, 384); lang_mask: (B, Lt); proprio: (B, proprio_dim)
        normalised. Returns tokens h0 (B, T, d) and key mask (B, T)."""
        b = vision.shape[0]
        vis = self.vision_proj(vision.flatten(3).transpose(2, 3)) + self.camera_embed  # (B, C, g*g, d)
        tokens = torch.cat(
            [self.lang_proj(lang), vis.flatten(1, 2), self.proprio_proj(proprio)[:, None],
             self.action_queries.expand(b, -1, -1)], dim=1,
        )
        ones = torch.ones(b, tokens.shape[1] - lang.shape[1], dtype=torch.bool, device=tokens.device)
        return tokens + self.pos, torch.cat([lang_mask, ones], dim=1)

    def backbone(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h, mask)
        return h

    def action_head(self, h: torch.Tensor) -> torch.Tensor:
        """(B, T, d) backbone output -> (B, K, action_dim) normalised actions."""
        return self.head(self.norm(h[:, -self.cfg.chunk:]))

    def forward(self, vision, lang, lang_mask, proprio) -> torch.Tensor:
        h, mask = self.embed(vision, lang, lang_mask, proprio)
        return self.action_head(self.backbone(h, mask))


class VisionEncoder(nn.Module):
    """Frozen EfficientNet-Lite0 trunk: (B, C, H, W, 3) uint8 upright images -> (B, C, 1280, g, g) pooled maps.

    Without autograd or a dispatch mode (inference, feature caching), the trunk runs as a TorchScript trace
    made once per input shape and device and sharing the trunk's parameters: the same kernels on the same
    data, so outputs are bit-identical to eager mode, minus Python's per-layer dispatch (~15% of the trunk's
    time at 2 x 128x128 on a 2-core CPU). TorchScript is deprecated upstream, but its successors do not do this
    here: a `torch.export` graph ran slower than eager (7.4 vs 6.8 ms), and `torch.compile` needs a C++ compiler
    and compiles in every worker process; torch is pinned. A module with a `forward` (not a helper method) so
    that profilers attribute its FLOPs to one name."""

    def __init__(self, cnn: EfficientNetLite0, grid: int):
        super().__init__()
        self.cnn, self.grid = cnn, grid
        self._traced: dict[tuple, torch.jit.ScriptModule] = {}

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or is_in_torch_dispatch_mode():
            return self.cnn.features(x)  # autograd, or a FLOP/memory counter that must see every op
        key = (tuple(x.shape), x.device)
        if key not in self._traced:
            with warnings.catch_warnings():  # SAME padding reads the input size: fixed per trace, as keyed
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", DeprecationWarning)  # see the class docstring
                self._traced[key] = torch.jit.trace_module(self.cnn, {"features": x}, check_trace=False)
        return self._traced[key].features(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, c = images.shape[:2]
        x = images.flatten(0, 1).permute(0, 3, 1, 2).float() / 255.0
        feats = F.adaptive_avg_pool2d(self._features(x), self.grid)
        return feats.view(b, c, *feats.shape[1:])


class Encoders(nn.Module):
    """The frozen pretrained encoders: camera images -> feature maps, instructions -> token states."""

    def __init__(self, cfg: VLAConfig):
        super().__init__()
        from policies.vla.efficientnet_lite import load_pretrained
        from policies.vla.language import shared_minilm

        self.cfg = cfg
        self.vision_encoder = VisionEncoder(load_pretrained().requires_grad_(False), cfg.vision_grid)
        self.language = shared_minilm()

    @torch.inference_mode()
    def vision(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, C, H, W, 3) uint8 upright -> (B, C, 1280, g, g) pooled feature maps."""
        return self.vision_encoder(images)

    @torch.inference_mode()
    def instruction(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> token states (B, language_tokens, 384), mask (B, language_tokens), zero-padded."""
        tokens, mask, _ = self.language.encode(texts)
        n = self.cfg.language_tokens
        tokens, mask = tokens[:, :n], mask[:, :n]
        pad = n - tokens.shape[1]
        if pad > 0:
            tokens = F.pad(tokens, (0, 0, 0, pad))
            mask = F.pad(mask, (0, pad), value=False)
        return tokens, mask
