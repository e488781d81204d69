"""The one training loop of every recipe (teacher, ActDistill stages 1 and 2, fine-tuning), and resumable state.

`fit` runs epochs of AdamW steps over sample indices: each epoch visits all `samples` in the order of a
`torch.randperm` drawn from that epoch's seed, in batches of `batch_size` (the last one may be smaller); every
step sets each group's LR by `cosine_lr` from its base LR, computes the caller's loss, back-propagates, clips the
gradient norm over all trainable parameters (optional) and steps. With a state path, the modules, optimizer,
history and torch RNG state are saved atomically after every epoch, and a later call of the same run resumes after
the last saved epoch to the weights of an uninterrupted run.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from core.io import atomic_path

LOG_EVERY = 50
"""Steps between progress lines within an epoch."""


def cosine_lr(step: int, total: int, base_lr: float, warmup_steps: int) -> float:
    """LR of 0-based `step`: linear warm-up to `base_lr` over `warmup_steps`, then cosine decay to 0 at `total`."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def save_atomic(obj, path: Path) -> None:
    """torch.save through `core.io.atomic_path`: a killed run never leaves a truncated file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_resumable(path: Path, key: dict, log=print) -> dict | None:
    """The state `save_atomic` left at `path`, if its run had the same `key` (data, config, schedule); None when
    there is none or it is from another run, which is then started over (and said so)."""
    if not path.exists():
        return None
    state = torch.load(path, weights_only=False)
    if state.get("key") != key:
        log(f"{path} is from another run (data, config or schedule differ): starting over")
        return None
    return state


_STATE_FIELDS = ("key", "optimizer", "epoch", "history", "rng")


def fit(groups: Sequence[tuple[Iterable[torch.nn.Parameter], float]],
        loss_fn: Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]], samples: int, *,
        batch_size: int, epochs: int, warmup_steps: int, weight_decay: float, clip_norm: float | None,
        epoch_seed: Callable[[int], int], modules: dict[str, torch.nn.Module], state_path: Path | None = None,
        run_key: dict | None = None, label: str = "train", log=print) -> list[dict]:
    """Train and return the per-epoch history: `{"epoch": 1-based, "seconds": wall time, <part>: mean over the
    epoch's steps}` for every part `loss_fn` reports (a resumed run's history includes the epochs before it).

    groups: (parameters, base LR) per AdamW parameter group. loss_fn: (batch of sample indices) -> (scalar loss
    to minimise, {name: float} to log). epoch_seed: 0-based epoch -> seed of its sample permutation. modules:
    everything the loss depends on that trains (set to train mode every epoch) and must be restored on resume,
    by name. state_path: where the state of the run is saved after every epoch; it is resumed when its key
    equals `run_key` (which must determine the data, models and schedule) plus this loop's settings."""
    if samples < 1 or batch_size < 1 or epochs < 0:
        raise ValueError(f"fit needs samples >= 1, batch_size >= 1, epochs >= 0; got {samples}, {batch_size}, {epochs}")
    if clashes := set(modules) & set(_STATE_FIELDS):
        raise ValueError(f"module names {sorted(clashes)} are reserved for the training state {_STATE_FIELDS}")
    groups = [(list(params), base_lr) for params, base_lr in groups]
    opt = torch.optim.AdamW([{"params": params, "lr": base_lr} for params, base_lr in groups],
                            weight_decay=weight_decay)
    trainable = [p for params, _ in groups for p in params]
    steps_per_epoch = math.ceil(samples / batch_size)
    total = epochs * steps_per_epoch
    key = {"run": run_key, "loop": {
        "samples": samples, "batch_size": batch_size, "epochs": epochs, "warmup_steps": warmup_steps,
        "weight_decay": weight_decay, "clip_norm": clip_norm, "base_lrs": [lr for _, lr in groups],
        "seeds": [epoch_seed(e) for e in range(epochs)], "modules": sorted(modules)}}
    start, history = 0, []
    state = load_resumable(state_path, key, log) if state_path is not None else None
    if state is not None:
        for name, module in modules.items():
            module.load_state_dict(state[name], strict=True)
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])  # dropout continues as in an uninterrupted run
        start, history = state["epoch"], state["history"]
        log(f"{label}: resuming after epoch {start}")
    for epoch in range(start, epochs):
        for module in modules.values():
            module.train()
        perm = torch.randperm(samples, generator=torch.Generator().manual_seed(epoch_seed(epoch)))
        t0, parts_log = time.time(), []
        for i, idx in enumerate(perm.split(batch_size)):
            for group, (_, base_lr) in zip(opt.param_groups, groups):
                group["lr"] = cosine_lr(epoch * steps_per_epoch + i, total, base_lr, warmup_steps)
            loss, parts = loss_fn(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(trainable, clip_norm)
            opt.step()
            parts_log.append(parts)
            if (i + 1) % LOG_EVERY == 0:
                recent = {k: np.mean([p[k] for p in parts_log[-LOG_EVERY:]]) for k in parts_log[0]}
                log(f"{label} epoch {epoch + 1}/{epochs} step {i + 1}/{steps_per_epoch} "
                    f"({(i + 1) * batch_size / (time.time() - t0):.0f} samples/s): {_format(recent)}")
        mean = {k: float(np.mean([p[k] for p in parts_log])) for k in parts_log[0]}
        history.append({"epoch": epoch + 1, "seconds": time.time() - t0, **mean})
        if state_path is not None:
            save_atomic({"key": key, **{name: m.state_dict() for name, m in modules.items()},
                         "optimizer": opt.state_dict(), "epoch": epoch + 1, "history": history,
                         "rng": torch.get_rng_state()}, state_path)
        log(f"{label} epoch {epoch + 1}/{epochs} done ({history[-1]['seconds']:.0f} s): {_format(mean)}")
    return history


def _format(parts: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in parts.items())
