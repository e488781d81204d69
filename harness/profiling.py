"""Measurement primitives of `make profile` (`harness.policy_profile`): peak tensor memory of a call, interleaved
latency and the bootstrap interval of a speed-up. FLOP counting lives in `core.flops` (policies use it too).
"""
from __future__ import annotations

import time
import weakref
from typing import Callable

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


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
