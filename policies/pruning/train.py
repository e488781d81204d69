"""Building static-pruned checkpoints from a teacher: Block Influence on calibration frames, and fine-tuning.

A pruned checkpoint is an ordinary VLA checkpoint of depth k whose blocks are teacher blocks `kept` (in order), with
`meta["pruning"]`: the teacher's sha256, the params it was built with, the kept teacher indices, every teacher
block's Block Influence on the calibration frames, and for `-ft` the fine-tuning's schedule, steps and history.
It serves every params that select the same blocks (importance and truncation often agree).

Block Influence (ShortGPT, arXiv 2403.03853): BI_l = 1 - mean over calibration frames and real tokens of
cos(h_{l-1}, h_l), the cosine between block l's input and output hidden states; a block that barely turns the
residual stream scores low and is dropped first.

Fine-tuning (`-ft`): the pruned model (projections, kept blocks, head) trains on the action loss plus output
distillation from the teacher (`losses.output_distillation`, weight beta of the student's config), with the
optimiser steps of the student's stage 2 (`DistillSchedule`: same epochs, batch, LR, warm-up, clipping, seeds,
on the same demos), so that both cost the same training compute.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from policies.actdistill.configuration import ActDistillConfig
from policies.actdistill.losses import output_distillation
from policies.actdistill.train import DistillSchedule, teacher_block_states, teacher_targets
from policies.pruning.configuration import PruningParams
from policies.training import fit
from policies.vla.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from policies.vla.model import VLA
from policies.vla.train import FeatureSet

CALIBRATION_FRAMES = 512
"""Demo frames Block Influence (and early-exit thresholds) are measured on."""


def calibration_indices(samples: int, count: int = CALIBRATION_FRAMES) -> torch.Tensor:
    """`count` sample indices evenly spaced over the feature set (demo files are ordered by task, so every task
    contributes); all of them when there are fewer. Deterministic: no random draw."""
    return torch.from_numpy(np.unique(np.linspace(0, samples - 1, min(count, samples)).round().astype(np.int64)))


@torch.no_grad()
def block_influence(model: VLA, fs: FeatureSet, norm_proprio: torch.Tensor, idx: torch.Tensor,
                    batch: int = 64) -> np.ndarray:
    """(L,) Block Influence of each of `model`'s blocks on samples `idx`: 1 - mean cosine between each real
    (unpadded) token's hidden state before and after the block."""
    model.eval()
    total, tokens = torch.zeros(len(model.blocks), dtype=torch.float64), 0
    for part in idx.split(batch):
        h, mask = model.embed(*fs.inputs(norm_proprio, part))
        states = [h, *teacher_block_states(model, h, mask)]
        for i in range(len(model.blocks)):
            cos = F.cosine_similarity(states[i], states[i + 1], dim=-1)  # (B, T)
            total[i] += cos[mask].double().sum()
        tokens += int(mask.sum())
    return (1.0 - total / tokens).numpy()


def pruned_state(state: dict[str, torch.Tensor], kept: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """A VLA state dict with only the `kept` blocks, renumbered 0..k-1 in order."""
    renumber = {f"blocks.{i}.": f"blocks.{j}." for j, i in enumerate(kept)}
    out = {}
    for name, tensor in state.items():
        if not name.startswith("blocks."):
            out[name] = tensor
            continue
        prefix = ".".join(name.split(".")[:2]) + "."
        if prefix in renumber:
            out[renumber[prefix] + name[len(prefix):]] = tensor
    return out


def pruned_model(teacher: Checkpoint, kept: tuple[int, ...]) -> VLA:
    model = VLA(replace(teacher.config, depth=len(kept)))
    model.load_state_dict(pruned_state(teacher.state_dict, kept), strict=True)
    return model


def select_blocks(teacher: Checkpoint, fs: FeatureSet, params: PruningParams) -> tuple[tuple[int, ...], np.ndarray, int]:
    """The teacher blocks `params` keep, every block's Block Influence on the calibration frames of `fs`, and how
    many frames those are."""
    _, norm_proprio = fs.normalized(teacher.normalizer)
    calibration = calibration_indices(len(fs.actions))
    scores = block_influence(pruned_model(teacher, tuple(range(teacher.config.depth))), fs, norm_proprio, calibration)
    return params.kept(teacher.config.depth, scores.tolist()), scores, len(calibration)


def build_pruned(teacher_dir: Path, fs: FeatureSet, out: Path, params: PruningParams,
                 schedule: DistillSchedule | None = None, beta: float = ActDistillConfig.beta,
                 cache_dir: Path | None = None, log=print, selection: tuple | None = None) -> str:
    """Write a pruned checkpoint of the teacher in `out` (as is with `schedule` None, else fine-tuned with it) and
    return its sha256. Block Influence is measured on `calibration_indices` of `fs` for every method and stored.
    Fine-tuning resumes from `out/train_state.pt`; the teacher's targets are cached in `cache_dir` (default `out`),
    shared with the student's no-graph stage 1. `selection`: what `select_blocks` returned for these arguments,
    when the caller already has it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    teacher = load_checkpoint(teacher_dir)
    norm_actions, norm_proprio = fs.normalized(teacher.normalizer)
    kept, scores, frames = selection or select_blocks(teacher, fs, params)
    log(f"Block Influence {np.round(scores, 4).tolist()}; keeping blocks {list(kept)} ({params.method})")
    model = pruned_model(teacher, kept)
    meta = {"teacher_sha256": teacher.sha256, "params": asdict(params), "kept": list(kept),
            "block_influence": scores.tolist(),
            "calibration": {"frames": frames, "features": fs.source, "rule": "calibration_indices"},
            "fine_tuning": None}
    if schedule is not None:
        t = teacher_targets(teacher_dir, fs, ActDistillConfig(graph=False), schedule, Path(cache_dir or out), log)
        torch.manual_seed(schedule.seed)

        def loss(idx):
            pred = model(*fs.inputs(norm_proprio, idx))
            return output_distillation(F.l1_loss(pred, norm_actions[idx]), pred, t.targets.final[idx], beta)

        n = len(norm_actions)
        run_key = {"teacher_sha256": teacher.sha256, "samples": n, "features": fs.source, "kept": list(kept),
                   "beta": beta, "schedule": asdict(schedule)}
        history = fit([(model.parameters(), schedule.lr)], loss, n, batch_size=schedule.batch_size,
                      epochs=schedule.stage2_epochs, warmup_steps=schedule.warmup_steps, weight_decay=0.01,
                      clip_norm=1.0, epoch_seed=lambda e: schedule.seed + 100 + e, modules={"model": model},
                      state_path=out / "train_state.pt", run_key=run_key, label=f"fine-tune {params.method}-{len(kept)}",
                      log=log)
        steps = schedule.stage2_epochs * -(-n // schedule.batch_size)
        meta["fine_tuning"] = {"schedule": asdict(schedule), "beta": beta, "samples": n, "optimizer_steps": steps,
                               "history": history, "rule": "the student's stage-2 steps (DistillSchedule)"}
    return save_checkpoint(out, model.cfg, teacher.normalizer, model.state_dict(),
                           {"teacher_sha256": teacher.sha256, "pruning": meta}, dtype=torch.float16)
