"""FLOP counts match the analytic count of a transformer, attention included."""
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.profiling import flop_counter, flops_by_module
from policies.vla.configuration import VLAConfig
from policies.vla.model import VLA

CFG = VLAConfig(width=64, depth=3, heads=4, chunk=4, vision_grid=2, language_tokens=4, head_hidden=32)


def analytic_block_flops(t: int, d: int, mlp_ratio: int) -> int:
    linear = 2 * t * d * (3 * d) + 2 * t * d * d + 2 * (2 * t * d * mlp_ratio * d)  # qkv, proj, two MLP layers
    attention = 2 * (2 * t * t * d)  # Q·Kᵀ and the weighted sum of V, over all heads
    return linear + attention


def _inputs():
    return torch.randn(1, 2, 1280, 2, 2), torch.randn(1, 4, 384), torch.ones(1, 4, dtype=torch.bool), torch.randn(1, 8)


@torch.inference_mode()
def test_backbone_flops_match_the_analytic_count():
    model = VLA(CFG).eval()
    with flop_counter() as counter:
        model(*_inputs())
    per_module = flops_by_module(counter, {f"block{i}": f"VLA.blocks.{i}" for i in range(CFG.depth)})
    expected = analytic_block_flops(CFG.n_tokens, CFG.width, CFG.mlp_ratio)
    for name, flops in per_module.items():
        assert abs(flops - expected) <= 0.01 * expected, (name, flops, expected)


@torch.inference_mode()
def test_torch_alone_misses_cpu_attention():
    """Why the custom formula exists: without it, attention counts as zero on CPU."""
    model = VLA(CFG).eval()
    with FlopCounterMode(display=False) as plain:
        model(*_inputs())
    with flop_counter() as ours:
        model(*_inputs())
    t, d = CFG.n_tokens, CFG.width
    assert ours.get_total_flops() - plain.get_total_flops() == CFG.depth * 4 * t * t * d
