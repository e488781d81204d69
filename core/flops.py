"""FLOP counting that sees what actually runs, with attention included, by module path.

Counts come from `torch.utils.flop_counter.FlopCounterMode`, which sees the operators that actually run (so
data-dependent block skipping is counted as skipped). In torch 2.13 its table has no entry for the CPU attention
kernel (`aten._scaled_dot_product_flash_attention_for_cpu`), so attention would count as 0 FLOPs on CPU; we
register the standard formula for it: 2·B·H·Lq·Lk·D for Q·Kᵀ plus 2·B·H·Lq·Lk·Dv for the weighted sum of V
(multiply-adds count as 2 FLOPs, softmax and masking are not counted, as for every other op in the table).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    b, h, lq, d = query_shape
    lk, dv = key_shape[-2], value_shape[-1]
    return 2 * b * h * lq * lk * d + 2 * b * h * lq * lk * dv


ATTENTION_OPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops,
}
"""CPU attention kernels missing from torch's FLOP table, with the formula above."""


@contextmanager
def flop_counter() -> Iterator[FlopCounterMode]:
    """A FlopCounterMode that also counts CPU attention; read `.get_total_flops()` / `.get_flop_counts()`."""
    with FlopCounterMode(display=False, custom_mapping=ATTENTION_OPS) as counter:
        yield counter


def flops_by_module(counter: FlopCounterMode, prefixes: dict[str, str]) -> dict[str, int]:
    """Total FLOPs under each module path prefix, e.g. {"backbone": "VLA.blocks"}, with paths as FlopCounterMode
    names them (root class name, then attribute names). A container never called itself (a ModuleList) has no
    entry of its own: its outermost called descendants are summed, each counted once."""
    counts = {path: int(sum(ops.values())) for path, ops in counter.get_flop_counts().items()}
    out = {}
    for name, prefix in prefixes.items():
        under = [p for p in counts if p == prefix or p.startswith(prefix + ".")]
        outermost = [p for p in under if not any(p.startswith(q + ".") for q in under)]
        out[name] = sum(counts[p] for p in outermost)
    return out
