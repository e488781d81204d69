"""ActDistill training: stage 1 (teacher probing) and stage 2 (distillation into the routed student), then export.

Stage 1: the teacher is frozen; one graph-encapsulation probe per block learns to predict the ground-truth action
chunk from that block's tokens. The teacher's per-block semantic vectors and actions are then cached.
Stage 2: the student (the teacher's weights + a router) and the probes (initialised from stage 1) train on the
task loss plus the distillation loss (`losses.distillation_loss`). Export keeps blocks, router and action head
only: the graph modules exist for training alone.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from policies.actdistill.configuration import ActDistillConfig
from policies.actdistill.graph import BlockProbes
from policies.actdistill.losses import distillation_loss
from policies.actdistill.student import StudentVLA
from policies.vla.checkpoint import Normalizer, load_checkpoint, load_state_strict, save_checkpoint
from policies.vla.model import VLA
from policies.vla.train import FeatureSet, cosine_lr


@dataclass(frozen=True)
class DistillSchedule:
    stage1_epochs: int = 2
    stage2_epochs: int = 4
    batch_size: int = 64
    lr: float = 1e-4
    probe_lr: float = 3e-4
    warmup_steps: int = 100
    seed: int = 0


def teacher_block_states(model: VLA, h: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    states = []
    for block in model.blocks:
        h = block(h, mask)
        states.append(h)
    return states


def _batches(n: int, size: int, seed: int):
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [perm[i:i + size] for i in range(0, n, size)]


def _inputs(fs: FeatureSet, norm_proprio: torch.Tensor, idx: torch.Tensor):
    inst = fs.instruction_id[idx]
    return fs.vision[idx].float(), fs.lang[inst], fs.lang_mask[inst], norm_proprio[idx]


def stage1(teacher: VLA, fs: FeatureSet, norm_actions, norm_proprio, acfg: ActDistillConfig, sch: DistillSchedule,
           log=print) -> tuple[BlockProbes, torch.Tensor, torch.Tensor]:
    """Train the probes on the frozen teacher; return them and the cached teacher semantics/actions per sample."""
    teacher.eval().requires_grad_(False)
    probes = BlockProbes(teacher.cfg, acfg)
    opt = torch.optim.AdamW(probes.parameters(), lr=sch.probe_lr)
    n = len(norm_actions)
    total = sch.stage1_epochs * math.ceil(n / sch.batch_size)
    step = 0
    for epoch in range(sch.stage1_epochs):
        losses = []
        for idx in _batches(n, sch.batch_size, sch.seed + epoch):
            with torch.no_grad():
                h0, mask = teacher.embed(*_inputs(fs, norm_proprio, idx))
                states = teacher_block_states(teacher, h0, mask)
            _, actions = probes(states, mask)
            loss = F.mse_loss(actions, norm_actions[idx][:, None].expand_as(actions))
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total, sch.probe_lr, sch.warmup_steps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
        log(f"stage 1 epoch {epoch + 1}/{sch.stage1_epochs}: probe MSE {np.mean(losses):.4f}")
    probes.eval()
    sem, act = [], []
    with torch.no_grad():
        for i in range(0, n, sch.batch_size):
            idx = torch.arange(i, min(n, i + sch.batch_size))
            h0, mask = teacher.embed(*_inputs(fs, norm_proprio, idx))
            s, a = probes(teacher_block_states(teacher, h0, mask), mask)
            sem.append(s)
            act.append(a)
    return probes, torch.cat(sem), torch.cat(act)


def stage2(teacher: VLA, probes: BlockProbes, t_sem: torch.Tensor, t_act: torch.Tensor, fs: FeatureSet,
           norm_actions, norm_proprio, acfg: ActDistillConfig, sch: DistillSchedule, log=print) -> StudentVLA:
    student = StudentVLA.from_teacher(teacher, acfg).train()
    probes.train()
    opt = torch.optim.AdamW([
        {"params": student.parameters(), "base": sch.lr},
        {"params": probes.parameters(), "base": sch.probe_lr},
    ], lr=sch.lr, weight_decay=0.01)
    n = len(norm_actions)
    total = sch.stage2_epochs * math.ceil(n / sch.batch_size)
    step = 0
    for epoch in range(sch.stage2_epochs):
        t0, parts_log = time.time(), []
        for idx in _batches(n, sch.batch_size, sch.seed + 100 + epoch):
            h0, mask = student.embed(*_inputs(fs, norm_proprio, idx))
            gates = student.gates(h0, mask)
            states = student.backbone_soft(h0, mask, gates)
            a_gt = norm_actions[idx]
            task = F.l1_loss(student.action_head(states[-1]), a_gt)
            sem, act = probes(states, mask)
            loss, parts = distillation_loss(task, sem, t_sem[idx], act, t_act[idx], a_gt, gates, acfg)
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total, group["base"], sch.warmup_steps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(student.parameters()) + list(probes.parameters()), 1.0)
            opt.step()
            parts_log.append(parts)
            step += 1
        mean = {k: float(np.mean([p[k] for p in parts_log])) for k in parts_log[0]}
        log(f"stage 2 epoch {epoch + 1}/{sch.stage2_epochs} ({time.time() - t0:.0f} s): "
            + " ".join(f"{k} {v:.4f}" for k, v in mean.items()))
    return student.eval()


def export(student: StudentVLA, normalizer: Normalizer, out: Path, meta: dict) -> str:
    """Write the inference checkpoint: blocks, router, embeddings and head; no graph modules."""
    meta = {**meta, "actdistill": student.acfg.to_dict()}
    return save_checkpoint(out, student.cfg, normalizer, student.state_dict(), meta, dtype=torch.float16)


def distill(teacher_dir: Path, fs: FeatureSet, out: Path, acfg: ActDistillConfig = ActDistillConfig(),
            sch: DistillSchedule = DistillSchedule(), log=print) -> str:
    torch.manual_seed(sch.seed)
    ckpt = load_checkpoint(teacher_dir)
    teacher = VLA(ckpt.config)
    load_state_strict(teacher, ckpt.state_dict, str(teacher_dir))
    nz = ckpt.normalizer
    norm_actions = torch.from_numpy(nz.normalize_actions(fs.actions.numpy()).astype(np.float32))
    norm_proprio = torch.from_numpy(nz.normalize_proprio(fs.proprio.numpy()).astype(np.float32))
    probes, t_sem, t_act = stage1(teacher, fs, norm_actions, norm_proprio, acfg, sch, log)
    student = stage2(teacher, probes, t_sem, t_act, fs, norm_actions, norm_proprio, acfg, sch, log)
    meta = {"teacher_sha256": ckpt.sha256, "schedule": asdict(sch), "samples": len(norm_actions)}
    return export(student, nz, out, meta)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from policies.vla.train import cached_features, demo_files

    parser = argparse.ArgumentParser(prog="distill", description="ActDistill: teacher -> routed student")
    parser.add_argument("--teacher", type=Path, required=True, help="teacher checkpoint folder")
    parser.add_argument("--suite", required=True, help="suite(s) whose demos to distill on, comma-separated")
    parser.add_argument("--demos", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=None, help="target fraction of executed blocks")
    args = parser.parse_args(argv)
    paths = demo_files(args.demos, args.suite)
    if not paths:
        print(f"error: no demo files for {args.suite} under {args.demos}; run `make demos SUITE=...` first", file=sys.stderr)
        return 2
    fs = cached_features(paths, load_checkpoint(args.teacher).config, args.demos / "cache")
    digest = distill(args.teacher, fs, args.out, ActDistillConfig(budget=args.budget), log=lambda m: print(m, flush=True))
    print(f"student checkpoint {args.out} sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
