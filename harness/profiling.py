"""Profiling a reviewer can trust: FLOPs per module with attention included, executed FLOPs from block masks,
peak tensor memory, and interleaved latency ratios. `harness.policy_profile` composes these into `make profile`.

Counts come from `torch.utils.flop_counter.FlopCounterMode`, which sees the operators that actually run (so
data-dependent block skipping is counted as skipped). In torch 2.13 its table has no entry for the CPU attention
kernel (`aten._scaled_dot_product_flash_attention_for_cpu`), so attention would count as 0 FLOPs on CPU; we
register the standard formula for it: 2·B·H·Lq·Lk·D for Q·Kᵀ plus 2·B·H·Lq·Lk·Dv for the weighted sum of V
(multiply-adds count as 2 FLOPs, softmax and masking are not counted, as for every other op in the table).
"""
from __future__ import annotations

import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
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


@dataclass(frozen=True)
class BlockCosts:
    """A cost (FLOPs of one call at batch 1, or parameters) split into `fixed`, everything outside the backbone
    (encoders, projections, router, head), and `blocks[i]`, backbone block i. Measured once per checkpoint, it
    gives what a call executed from the blocks it ran (`info["blocks"]`), with no counting during evaluation."""

    fixed: int
    blocks: tuple[int, ...]

    def executed(self, blocks: Sequence[int]) -> int:
        return self.fixed + sum(self.blocks[b] for b in blocks)

    def backbone_fraction(self, blocks: Sequence[int]) -> float:
        """Share of the full backbone's cost that `blocks` make up."""
        return sum(self.blocks[b] for b in blocks) / sum(self.blocks)


class PeakTensorMemory(TorchDispatchMode):
    """Peak bytes of tensors created inside the context and alive at the same time (activations and outputs;
    weights and inputs that existed before are not counted). Tracked per storage at the operator level, so
    scratch buffers internal to one kernel are not seen. Read `.peak` after the context."""

    def __init__(self):
        super().__init__()
        self.current = self.peak = 0
        self._live: dict[int, weakref.ref] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._track(t.untyped_storage())
        return out

    def _track(self, storage) -> None:
        key = storage._cdata
        if key in self._live:  # a view of a tensor already counted
            return
        nbytes = storage.nbytes()
        self._live[key] = weakref.ref(storage, lambda _, k=key, n=nbytes: self._free(k, n))
        self.current += nbytes
        self.peak = max(self.peak, self.current)

    def _free(self, key: int, nbytes: int) -> None:
        self._live.pop(key, None)
        self.current -= nbytes


def interleaved_latency(fns: dict[str, Callable[[int], object]], calls: int, warmup: int = 10) -> dict[str, np.ndarray]:
    """Seconds per call of each fn, measured in this process with the calls interleaved (A B A B ...): call i of
    every fn runs before call i + 1 of any, so drifts of a shared machine hit all of them alike."""
    for i in range(warmup):
        for fn in fns.values():
            fn(i)
    times = {name: np.empty(calls) for name in fns}
    for i in range(calls):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(i)
            times[name][i] = time.perf_counter() - t0
    return times


def speedup_ci(base: np.ndarray, other: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """median(base) / median(other) and its 95% percentile-bootstrap interval; interleaved pairs are resampled
    together."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(base), size=(n_boot, len(base)))
    boot = np.median(base[idx], axis=1) / np.median(other[idx], axis=1)
    return float(np.median(base) / np.median(other)), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))
