"""Teacher training on demonstrations: cache frozen-encoder features once, then train projections, backbone
and head with an L1 loss on normalised action chunks. Deterministic (seeded), resumable from the last epoch.

Samples: every demo step that has camera frames (see `core.demofile`); the target is the next K actions
(padded with the episode's last action, as OpenVLA-OFT does at episode ends).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from core.demofile import Demo, read_demos
from policies.training import fit, save_atomic
from policies.vla.checkpoint import Normalizer, save_checkpoint
from policies.vla.configuration import VLAConfig
from policies.vla.model import VLA, Encoders


@dataclass(frozen=True)
class TrainConfig:
    """The teacher's training recipe; `for_suite` gives the shipped teacher's."""

    epochs: int = 6
    batch_size: int = 64
    """Samples per step."""
    lr: float = 3e-4
    """Peak AdamW learning rate (after warm-up, before cosine decay)."""
    weight_decay: float = 0.05
    warmup_steps: int = 200
    """Optimizer steps of linear LR warm-up."""
    seed: int = 0
    """Seeds the model's initialisation and each epoch's sample order (`seed * 1000 + epoch`)."""
    save_dtype: str = "float16"
    """Shipped weights are stored in half precision (loaded back as float32) to keep checkpoints small."""

    SUITE_EPOCHS: ClassVar[dict[str, int]] = {"libero_spatial": 10}
    """The shipped teachers' epochs where they differ from `epochs`, by the suite string given to training."""

    @classmethod
    def for_suite(cls, suite: str) -> "TrainConfig":
        """The recipe of the teacher shipped for `suite` (a suite, or comma-separated suites, as training gets)."""
        return cls(epochs=cls.SUITE_EPOCHS.get(suite, cls.epochs))


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
    """(N, proprio_dim) proprio features (`VLAConfig.proprio_features`), not normalised."""
    actions: torch.Tensor
    """(N, K, 7) raw action chunks."""
    instructions: list[str]
    source: str = ""
    """Content key of the demo files and config the features came from (`cached_features`); "" if built directly."""

    def normalized(self, normalizer: Normalizer) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, K, A) action chunks and (N, proprio_dim) proprio, normalised by `normalizer`, float32."""
        actions = normalizer.normalize_actions(self.actions.numpy()).astype(np.float32)
        return torch.from_numpy(actions), torch.from_numpy(normalizer.normalize_proprio(self.proprio.numpy()).astype(np.float32))

    def inputs(self, norm_proprio: torch.Tensor, idx: torch.Tensor):
        """Model inputs (vision, lang, lang mask, proprio) of samples `idx`, as `VLA.embed` takes them."""
        inst = self.instruction_id[idx]
        return self.vision[idx].float(), self.lang[inst], self.lang_mask[inst], norm_proprio[idx]


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
        prop = cfg.proprio_features(d.proprio)
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
    save_atomic(vars(features), cache)
    features.source = key
    return features


def batch_loss(model: VLA, fs: FeatureSet, norm_actions: torch.Tensor, norm_proprio: torch.Tensor,
               idx: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(model(*fs.inputs(norm_proprio, idx)), norm_actions[idx])


def train(demo_paths: list[Path], out: Path, cfg: VLAConfig = VLAConfig(), tc: TrainConfig = TrainConfig(),
          cache_dir: Path | None = None, log=print) -> str:
    """Train a teacher (AdamW, gradient norm clipped to 1, `policies.training.fit`); resumes from
    `out/train_state.pt` when it is a run of the same data, config and schedule. Returns the checkpoint's sha256."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fs = cached_features(demo_paths, cfg, cache_dir or out / "cache", log=log)
    normalizer = Normalizer.fit(fs.actions.reshape(-1, cfg.action_dim).numpy(), fs.proprio.numpy())
    norm_actions, norm_proprio = fs.normalized(normalizer)
    torch.manual_seed(tc.seed)  # here, not earlier: building the encoders (first run only) draws random numbers
    model = VLA(cfg)
    n = len(norm_actions)

    def loss(idx):
        l1 = batch_loss(model, fs, norm_actions, norm_proprio, idx)
        return l1, {"l1": l1.item()}

    log(f"training on {n} samples ({len(fs.instructions)} instructions), {tc.epochs} epochs of batch {tc.batch_size}")
    key = {"config": cfg.to_dict(), "train": asdict(tc), "samples": n, "instructions": fs.instructions}
    history = fit([(model.parameters(), tc.lr)], loss, n, batch_size=tc.batch_size, epochs=tc.epochs,
                  warmup_steps=tc.warmup_steps, weight_decay=tc.weight_decay, clip_norm=1.0,
                  epoch_seed=lambda epoch: tc.seed * 1000 + epoch, modules={"model": model},
                  state_path=out / "train_state.pt", run_key=key, label="teacher", log=log)
    meta = {"train": asdict(tc), "history": history, "samples": n, "instructions": fs.instructions,
            "demo_files": [str(p) for p in demo_paths]}
    return save_checkpoint(out, cfg, normalizer, model.state_dict(), meta, dtype=getattr(torch, tc.save_dtype))
