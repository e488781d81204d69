"""Teacher training on demonstrations: cache frozen-encoder features once, then train projections, backbone
and head with an L1 loss on normalised action chunks. Deterministic (seeded), resumable from the last epoch.

Samples: every demo step that has camera frames (see `core.demofile`); the target is the next K actions
(padded with the episode's last action, as OpenVLA-OFT does at episode ends).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.demofile import Demo, read_demos
from policies.vla.checkpoint import Normalizer, load_state_strict, save_checkpoint
from policies.vla.configuration import VLAConfig
from policies.vla.model import VLA, Encoders


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 6
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_steps: int = 200
    seed: int = 0
    save_dtype: str = "float16"
    """Shipped weights are stored in half precision (loaded back as float32) to keep checkpoints small."""


SHIPPED_EPOCHS = {"libero_spatial": 10}
"""Epochs of the shipped teachers where they differ from `TrainConfig.epochs` (measured on libero_spatial:
6 epochs 47.5%, 10 epochs 55.0% over 200 episodes; libero_object reached 79.0% with 6)."""


@dataclass
class FeatureSet:
    """Everything training needs, with the frozen encoders already applied."""

    vision: torch.Tensor
    """(N, C, 1280, g, g) float16 feature maps of the sampled frames."""
    lang: torch.Tensor
    """(n_instructions, Lt, 384) token states."""
    lang_mask: torch.Tensor
    instruction_id: torch.Tensor
    """(N,) index into lang."""
    proprio: torch.Tensor
    """(N, 8) raw proprio."""
    actions: torch.Tensor
    """(N, K, 7) raw action chunks."""
    instructions: list[str]
    source: str = ""
    """Content key of the demo files and config the features came from (`cached_features`); "" if built directly."""


def build_features(demos: list[Demo], cfg: VLAConfig, encoders: Encoders, batch: int = 64, log=print) -> FeatureSet:
    instructions = sorted({d.instruction for d in demos})
    lang, lang_mask = encoders.instruction(instructions)
    vision, inst, proprio, chunks = [], [], [], []
    pending: list[np.ndarray] = []

    def flush():
        if pending:
            vision.append(encoders.vision(torch.from_numpy(np.stack(pending))).to(torch.float16))
            pending.clear()

    for i, d in enumerate(demos):
        if i % 50 == 0:
            log(f"encoding frames: demo {i}/{len(demos)}")
        prop = d.proprio
        padded = np.concatenate([d.actions, np.repeat(d.actions[-1:], cfg.chunk, axis=0)])
        for f, t in enumerate(d.frame_index):
            pending.append(np.stack([d.images[c][f] for c in cfg.cameras]))
            inst.append(instructions.index(d.instruction))
            proprio.append(prop[t])
            chunks.append(padded[t:t + cfg.chunk])
            if len(pending) == batch:
                flush()
    flush()
    return FeatureSet(
        torch.cat(vision), lang, lang_mask, torch.tensor(inst), torch.from_numpy(np.asarray(proprio, np.float32)),
        torch.from_numpy(np.asarray(chunks, np.float32)), instructions,
    )


def save_atomic(obj, path: Path) -> None:
    """torch.save under a temporary name, then rename: a killed run never leaves a truncated file."""
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def load_resumable(path: Path, key: dict, log=print) -> dict | None:
    """The training state `save_atomic` left at `path`, if its run had the same `key` (data, config, schedule);
    None when there is none or it is from another run, which is then started over (and said so)."""
    if not path.exists():
        return None
    state = torch.load(path, weights_only=False)
    if state.get("key") != key:
        log(f"{path} is from another run (data, config or schedule differ): starting over")
        return None
    return state


def load_demo_files(paths: list[Path], cameras: tuple[str, ...]) -> list[Demo]:
    demos = []
    for path in paths:
        demos += read_demos(path, cameras)
    if not demos:
        raise ValueError(f"no demonstrations in {[str(p) for p in paths]}")
    return demos


def demo_files(demos_dir: Path, suites: str) -> list[Path]:
    """Demo files of comma-separated suites or groups (e.g. "libero_spatial,libero_object")."""
    from tasks import expand_suites

    names = [s for name in suites.split(",") for s in expand_suites(name.strip())]
    return sorted(p for s in names for p in (Path(demos_dir) / s).glob("*_demo.hdf5"))


def cached_features(paths: list[Path], cfg: VLAConfig, cache_dir: Path, log=print) -> FeatureSet:
    """Encoder features for these demo files, computed once and cached by content of the file list + config."""
    key = hashlib.sha256(json.dumps(
        [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(paths)] + [cfg.to_dict()], default=str
    ).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"features-{key}.pt"
    if cache.exists():
        return FeatureSet(**{**torch.load(cache, weights_only=False), "source": key})
    log(f"caching frozen-encoder features of {len(paths)} demo file(s) in {cache}")
    features = build_features(load_demo_files(paths, cfg.cameras), cfg, Encoders(cfg), log=log)
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(vars(features), cache)
    features.source = key
    return features


def cosine_lr(step: int, total: int, base_lr: float, warmup_steps: int) -> float:
    """Linear warm-up, then cosine decay to 0 at `total` steps."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def batch_loss(model: VLA, fs: FeatureSet, norm_actions: torch.Tensor, norm_proprio: torch.Tensor,
               idx: torch.Tensor) -> torch.Tensor:
    inst = fs.instruction_id[idx]
    pred = model(fs.vision[idx].float(), fs.lang[inst], fs.lang_mask[inst], norm_proprio[idx])
    return F.l1_loss(pred, norm_actions[idx])


def train(demo_paths: list[Path], out: Path, cfg: VLAConfig = VLAConfig(), tc: TrainConfig = TrainConfig(),
          cache_dir: Path | None = None, log=print) -> str:
    """Train a teacher; resumes from `out/train_state.pt` when it is a run of the same data, config and schedule.
    Returns the checkpoint's sha256."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fs = cached_features(demo_paths, cfg, cache_dir or out / "cache", log=log)
    normalizer = Normalizer.fit(fs.actions.reshape(-1, cfg.action_dim).numpy(), fs.proprio.numpy())
    norm_actions = torch.from_numpy(normalizer.normalize_actions(fs.actions.numpy()).astype(np.float32))
    norm_proprio = torch.from_numpy(normalizer.normalize_proprio(fs.proprio.numpy()).astype(np.float32))
    torch.manual_seed(tc.seed)  # here, not earlier: building the encoders (first run only) draws random numbers
    model = VLA(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    n = len(norm_actions)
    steps_per_epoch = math.ceil(n / tc.batch_size)
    total = tc.epochs * steps_per_epoch
    state_path = out / "train_state.pt"
    start_epoch, history = 0, []
    key = {"config": cfg.to_dict(), "train": asdict(tc), "samples": n, "instructions": fs.instructions}
    state = load_resumable(state_path, key, log)
    if state is not None:
        load_state_strict(model, state["model"], str(state_path))
        opt.load_state_dict(state["optimizer"])
        start_epoch, history = state["epoch"], state["history"]
        torch.set_rng_state(state["rng"])  # dropout, if configured, continues as in an uninterrupted run
        log(f"resuming from epoch {start_epoch}")
    log(f"training on {n} samples ({len(fs.instructions)} instructions), {tc.epochs} epochs x {steps_per_epoch} steps")
    for epoch in range(start_epoch, tc.epochs):
        model.train()
        gen = torch.Generator().manual_seed(tc.seed * 1000 + epoch)
        perm = torch.randperm(n, generator=gen)
        t0, losses = time.time(), []
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total, tc.lr, tc.warmup_steps)
            loss = batch_loss(model, fs, norm_actions, norm_proprio, perm[i * tc.batch_size:(i + 1) * tc.batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            if i % 50 == 0:
                log(f"epoch {epoch + 1}/{tc.epochs} step {i}/{steps_per_epoch} loss {np.mean(losses[-50:]):.4f} "
                    f"({(i + 1) * tc.batch_size / (time.time() - t0):.0f} samples/s)")
        history.append({"epoch": epoch + 1, "l1": float(np.mean(losses)), "seconds": time.time() - t0})
        save_atomic({"key": key, "model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                     "history": history, "rng": torch.get_rng_state()}, state_path)
        log(f"epoch {epoch + 1} done: mean L1 {history[-1]['l1']:.4f} in {history[-1]['seconds']:.0f} s")
    meta = {"train": asdict(tc), "history": history, "samples": n, "instructions": fs.instructions,
            "demo_files": [str(p) for p in demo_paths]}
    return save_checkpoint(out, cfg, normalizer, model.state_dict(), meta, dtype=getattr(torch, tc.save_dtype))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="train-teacher", description="train the compact VLA teacher on demos")
    parser.add_argument("--suite", required=True, help="suite(s), comma-separated, or a group (libero)")
    parser.add_argument("--demos", type=Path, required=True, help="folder with <suite>/*_demo.hdf5")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"default: the shipped teacher's recipe ({SHIPPED_EPOCHS}, else {TrainConfig.epochs})")
    args = parser.parse_args(argv)
    paths = demo_files(args.demos, args.suite)
    if not paths:
        print(f"error: no demo files for {args.suite} under {args.demos}; run `make demos SUITE=...` first",
              file=sys.stderr)
        return 2
    epochs = args.epochs or SHIPPED_EPOCHS.get(args.suite, TrainConfig.epochs)
    digest = train(paths, args.out, tc=TrainConfig(epochs=epochs), cache_dir=args.demos / "cache",
                   log=lambda msg: print(msg, flush=True))
    print(f"teacher checkpoint {args.out} sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
