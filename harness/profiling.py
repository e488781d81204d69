"""Measurement primitives of `make profile` (`harness.policy_profile`): the torch modules a policy holds and
the parameters a call ran, peak tensor memory of a call, interleaved latency and the bootstrap interval of a
speed-up. FLOP counting lives in `core.flops` and `harness.compute`.
"""
from __future__ import annotations

import time
import weakref
from typing import Callable, Iterable

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def torch_modules(policy) -> list[torch.nn.Module]:
    """The `torch.nn.Module`s a policy holds as attributes (a policy without any is not a torch model); a module
    held twice, or inside another one listed, is listed once."""
    found = [v for v in vars(policy).values() if isinstance(v, torch.nn.Module)]
    inner = {id(m) for top in found for m in top.modules() if m is not top}
    return list({id(m): m for m in found if id(m) not in inner}.values())


def parameter_count(modules: Iterable[torch.nn.Module]) -> int:
    """Parameters of `modules`, each tensor counted once (shared weights are one tensor)."""
    return sum(p.numel() for p in {id(p): p for m in modules for p in m.parameters()}.values())


class ExecutedParameters:
    """Parameters of the modules that ran inside the context (forward hooks on every submodule of `modules`): a
    module counts when its forward, or that of one of its descendants, was called; a block skipped at run time
    does not. Read `.count` after the context. Hooks do not fire inside TorchScript: run the call under a dispatch
    mode (a FLOP counter) so that traced parts take the eager path."""

    def __init__(self, modules: Iterable[torch.nn.Module]):
        self.modules = list(modules)
        self.count = 0

    def __enter__(self) -> "ExecutedParameters":
        self._ran: set[int] = set()
        self._handles = [m.register_forward_pre_hook(lambda mod, _: self._ran.add(id(mod)))
                         for top in self.modules for m in top.modules()]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        params: dict[int, torch.nn.Parameter] = {}
        for top in self.modules:
            for m in top.modules():
                if any(id(d) in self._ran for d in m.modules()):
                    params.update((id(p), p) for p in m.parameters(recurse=False))
        self.count = sum(p.numel() for p in params.values())


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


def time_on_recorded(entries: dict[str, tuple[object, list]], calls: int, threads: int,
                     warmup: int = 10) -> dict[str, np.ndarray]:
    """`interleaved_latency` of policies on recorded observations (`harness.observations.Recorded`): entry name ->
    (policy, its recordings); call i resets the policy to recording i's task (instruction embeddings are cached: a
    lookup after the first call) and acts on it, under `torch.inference_mode` with `threads` torch threads
    (restored after)."""

    def call(policy, recorded) -> Callable[[int], object]:
        def fn(i: int):
            rec = recorded[i % len(recorded)]
            policy.reset(rec.task, 0)
            return policy.act(rec.observation())
        return fn

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            return interleaved_latency({name: call(*entry) for name, entry in entries.items()}, calls, warmup)
    finally:
        torch.set_num_threads(before)


def speedup_ci(base: np.ndarray, other: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """median(base) / median(other) and its 95% percentile-bootstrap interval; interleaved pairs are resampled
    together."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(base), size=(n_boot, len(base)))
    boot = np.median(base[idx], axis=1) / np.median(other[idx], axis=1)
    return float(np.median(base) / np.median(other)), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))
