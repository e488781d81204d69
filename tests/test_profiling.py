"""FLOP counts match the analytic count of a transformer, attention included."""
import torch
from torch.utils.flop_counter import FlopCounterMode

from core.flops import flop_counter, flops_by_module
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


def test_interleaved_latency_and_speedup_interval():
    import numpy as np

    from harness.profiling import interleaved_latency, speedup_ci

    order = []
    times = interleaved_latency({"a": lambda i: order.append(("a", i)), "b": lambda i: order.append(("b", i))},
                                calls=3, warmup=1)
    assert order == [("a", 0), ("b", 0), ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert times["a"].shape == (3,) and (times["a"] >= 0).all()
    base = np.full(50, 2.0) + np.linspace(0, 0.1, 50)
    ratio, lo, hi = speedup_ci(base, base / 2)
    assert abs(ratio - 2.0) < 1e-9 and lo <= ratio <= hi and hi - lo < 0.05
    ratio, lo, hi = speedup_ci(base, base)
    assert ratio == 1.0 and lo <= 1.0 <= hi


@torch.inference_mode()
def test_policy_call_flops_group_by_component():
    """Vision encoder, backbone and head each count under one module name, so reports can split a call."""
    from policies.vla.model import Encoders

    cfg = VLAConfig(width=64, depth=2, heads=4, chunk=4, vision_grid=4, language_tokens=4, head_hidden=32)
    encoders, model = Encoders(cfg), VLA(cfg).eval()
    lang, mask = encoders.instruction(["put the bowl on the plate"])
    with flop_counter() as counter:
        model(encoders.vision(torch.zeros(1, 2, 128, 128, 3, dtype=torch.uint8)), lang, mask, torch.zeros(1, 8))
    parts = flops_by_module(counter, {"vision": "VisionEncoder", "backbone": "VLA.blocks", "head": "VLA.head"})
    assert parts["backbone"] == cfg.depth * analytic_block_flops(cfg.n_tokens, cfg.width, cfg.mlp_ratio)
    assert parts["vision"] > 0.9 * (counter.get_total_flops() - parts["backbone"])  # the CNN dominates the rest
    assert parts["head"] == 2 * cfg.chunk * (cfg.width * cfg.head_hidden + cfg.head_hidden * cfg.action_dim)


def test_parameters_of_a_policys_torch_modules_and_of_those_a_call_ran():
    from harness.profiling import ExecutedParameters, parameter_count, torch_modules

    class Gated(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(3))  # 20 parameters each
            self.scale = torch.nn.Parameter(torch.ones(4))  # owned by the container, used in its forward

        def forward(self, x, run):
            for i in run:
                x = self.blocks[i](x)
            return x * self.scale

    class Policy:
        def __init__(self):
            self.model = Gated()
            self.head = self.model.blocks[0]  # held twice: counted once
            self.tied = torch.nn.Linear(4, 4)
            self.tied.weight = self.model.blocks[1].weight  # a shared tensor: counted once
            self.table = {"not": "a module"}

    policy = Policy()
    modules = torch_modules(policy)
    assert [type(m) for m in modules] == [Gated, torch.nn.Linear]
    assert parameter_count(modules) == 3 * 20 + 4 + 4  # the tied layer adds its own bias only
    with torch.inference_mode(), ExecutedParameters(modules) as executed:
        policy.model(torch.zeros(1, 4), run=[0, 2])
    assert executed.count == 2 * 20 + 4  # block 1 and the tied layer did not run
