"""Building the early-exit baseline: the multi-exit VLA trained from the teacher, then its calibration frames.

Every exit trains on the action loss plus output distillation from the teacher (`losses.output_distillation`,
averaged over exits, as DeeR-VLA trains all exits jointly), backbone and heads together, with the optimiser steps
of the student's stage 2 (`DistillSchedule`), like the fine-tuned pruned baselines. The checkpoint then stores the
consistency distances of its exits on the calibration frames (`policies.pruning.train.calibration_indices`), from
which any target executed fraction gets its threshold at load (`modeling.calibrate`).
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from policies.actdistill.configuration import ActDistillConfig
from policies.actdistill.losses import output_distillation
from policies.actdistill.train import DistillSchedule, teacher_targets
from policies.early_exit.modeling import MultiExitVLA, consistency
from policies.pruning.train import calibration_indices
from policies.training import fit
from policies.vla.checkpoint import save_checkpoint
from policies.vla.train import FeatureSet


def build_early_exit(teacher_dir: Path, fs: FeatureSet, out: Path, schedule: DistillSchedule = DistillSchedule(),
                     beta: float = ActDistillConfig.beta, cache_dir: Path | None = None, log=print) -> str:
    """Train the multi-exit model into `out` (resumable from `out/train_state.pt`), calibrate, export; -> sha256."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = teacher_targets(teacher_dir, fs, ActDistillConfig(graph=False), schedule, Path(cache_dir or out), log)
    torch.manual_seed(schedule.seed)
    model = MultiExitVLA.from_teacher(t.teacher)
    depth = model.cfg.depth

    def loss(idx):
        exits = model.all_exits(*fs.inputs(t.norm_proprio, idx))
        total, parts = 0.0, []
        for l in range(depth):
            term, part = output_distillation(F.l1_loss(exits[:, l], t.norm_actions[idx]), exits[:, l],
                                             t.targets.final[idx], beta)
            total, parts = total + term / depth, parts + [part]
        return total, {"task": sum(p["task"] for p in parts) / depth, "out": sum(p["out"] for p in parts) / depth,
                       "task_last": parts[-1]["task"]}

    n = len(t.norm_actions)
    run_key = {"teacher_sha256": t.ckpt.sha256, "samples": n, "features": fs.source, "beta": beta,
               "schedule": asdict(schedule)}
    history = fit([(model.parameters(), schedule.lr)], loss, n, batch_size=schedule.batch_size,
                  epochs=schedule.stage2_epochs, warmup_steps=schedule.warmup_steps, weight_decay=0.01, clip_norm=1.0,
                  epoch_seed=lambda e: schedule.seed + 100 + e, modules={"model": model},
                  state_path=out / "train_state.pt", run_key=run_key, label="early exit", log=log)
    model.eval()
    # Calibrate on what inference runs: the exported half-precision weights, loaded back as float32.
    model.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    calibration = calibration_indices(n)
    with torch.no_grad():
        distances = consistency(torch.cat([model.all_exits(*fs.inputs(t.norm_proprio, part))
                                           for part in calibration.split(64)]))
    meta = {"teacher_sha256": t.ckpt.sha256, "early_exit": {
        "criterion": "exit after block l >= 1 when ||a_l - a_(l-1)||_2 <= threshold (normalised chunk)",
        "calibration": {"frames": len(calibration), "features": fs.source, "rule": "calibration_indices",
                        "distances": distances.round(6).tolist()},
        "training": {"schedule": asdict(schedule), "beta": beta, "samples": n, "history": history,
                     "optimizer_steps": schedule.stage2_epochs * -(-n // schedule.batch_size),
                     "rule": "the student's stage-2 steps (DistillSchedule); exits' losses averaged"}}}
    return save_checkpoint(out, model.cfg, t.ckpt.normalizer, model.state_dict(), meta, dtype=torch.float16)
