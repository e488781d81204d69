"""ActDistill training: stage 1 (teacher probing) and stage 2 (distillation into the routed student), then export.

Stage 1: the teacher is frozen; one graph-encapsulation probe per block learns to predict the ground-truth action
chunk from that block's tokens. The teacher's per-block semantic vectors and actions, and its final actions, are
then cached in `stage1-<key>.pt`, keyed by teacher, data, probe and stage-1 schedule, in `<out>` or a folder shared
by several runs (the CLI and `make ablations` use the demos' feature cache, so variants reuse one stage 1).
Stage 2: the student (the teacher's weights + a router) and the probes (initialised from stage 1) train on the
task loss plus the distillation loss (`losses.distillation_loss`); state is saved after every epoch
(`<out>/train_state.pt`), so an interrupted run resumes. Export keeps blocks, router and action head only: the
graph modules exist for training alone.

Ablations use the same code: `ActDistillConfig(graph=False)` skips the probes and distils the teacher's final
actions only (`losses.output_distillation_loss`); `static_blocks` fixes the executed blocks instead of routing.
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

from policies.actdistill.configuration import ActDistillConfig
from policies.actdistill.graph import BlockProbes
from policies.actdistill.losses import distillation_loss, output_distillation_loss
from policies.actdistill.student import StudentVLA
from policies.vla.checkpoint import CheckpointError, Normalizer, load_checkpoint, load_state_strict, save_checkpoint
from policies.vla.model import VLA
from policies.vla.train import FeatureSet, cosine_lr, load_resumable, save_atomic


@dataclass(frozen=True)
class DistillSchedule:
    stage1_epochs: int = 1
    stage2_epochs: int = 2
    """Sized for this CPU: stage 2 runs ~18 samples/s on 11.5k libero_spatial samples (~11 min per epoch)."""
    batch_size: int = 64
    lr: float = 1e-4
    probe_lr: float = 3e-4
    warmup_steps: int = 100
    seed: int = 0


@dataclass
class TeacherTargets:
    """Stage 1's output: per-sample teacher targets (normalised action space) and the trained probes."""

    final: torch.Tensor
    """(N, K, A) the teacher's own actions."""
    sem: torch.Tensor | None = None
    """(N, L, s) per-block semantic vectors (None without the graph)."""
    act: torch.Tensor | None = None
    """(N, L, K, A) per-block probe actions."""
    probes: dict | None = None
    """BlockProbes state dict."""


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
           log=print) -> TeacherTargets:
    """Train the probes on the frozen teacher (with the graph), then cache the teacher's targets per sample."""
    teacher.eval().requires_grad_(False)
    n = len(norm_actions)
    torch.manual_seed(sch.seed)
    probes = BlockProbes(teacher.cfg, acfg) if acfg.graph else None
    if probes is not None:
        opt = torch.optim.AdamW(probes.parameters(), lr=sch.probe_lr)
        total = sch.stage1_epochs * math.ceil(n / sch.batch_size)
        step = 0
        for epoch in range(sch.stage1_epochs):
            t0, losses = time.time(), []
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
                if step % 50 == 0:
                    log(f"stage 1 epoch {epoch + 1}/{sch.stage1_epochs} step {len(losses)}: probe MSE "
                        f"{np.mean(losses[-50:]):.4f} ({len(losses) * sch.batch_size / (time.time() - t0):.0f} samples/s)")
            log(f"stage 1 epoch {epoch + 1}/{sch.stage1_epochs}: probe MSE {np.mean(losses):.4f}")
        probes.eval()
    final, sem, act = [], [], []
    with torch.no_grad():
        for i in range(0, n, sch.batch_size):
            idx = torch.arange(i, min(n, i + sch.batch_size))
            h0, mask = teacher.embed(*_inputs(fs, norm_proprio, idx))
            states = teacher_block_states(teacher, h0, mask)
            final.append(teacher.action_head(states[-1]))
            if probes is not None:
                s, a = probes(states, mask)
                sem.append(s)
                act.append(a)
    if probes is None:
        return TeacherTargets(torch.cat(final))
    return TeacherTargets(torch.cat(final), torch.cat(sem), torch.cat(act), probes.state_dict())


def stage2(teacher: VLA, targets: TeacherTargets, fs: FeatureSet, norm_actions, norm_proprio, acfg: ActDistillConfig,
           sch: DistillSchedule, state_path: Path | None = None, run_key: dict | None = None,
           log=print) -> tuple[StudentVLA, list[dict]]:
    """Distil into the routed student; resumes from `state_path` (saved after every epoch) when it holds a run of
    the same `run_key` (teacher, data), config and schedule, else starts over. Returns the student and the
    per-epoch loss history."""
    torch.manual_seed(sch.seed)  # each stage seeds itself: stage 1 may have run in this process or been cached
    student = StudentVLA.from_teacher(teacher, acfg).train()
    probes = None
    params = [{"params": student.parameters(), "base": sch.lr}]
    if acfg.graph:
        probes = BlockProbes(teacher.cfg, acfg)
        probes.load_state_dict(targets.probes)
        probes.train()
        params.append({"params": probes.parameters(), "base": sch.probe_lr})
    opt = torch.optim.AdamW(params, lr=sch.lr, weight_decay=0.01)
    trainable = [p for group in params for p in group["params"]]
    start, history = 0, []
    key = {**(run_key or {}), "acfg": acfg.to_dict(), "schedule": asdict(sch)}
    state = load_resumable(state_path, key, log) if state_path is not None else None
    if state is not None:
        load_state_strict(student, state["student"], str(state_path))
        if probes is not None:
            probes.load_state_dict(state["probes"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])  # router dropout continues as in an uninterrupted run
        start, history = state["epoch"], state["history"]
        log(f"stage 2: resuming after epoch {start}")
    n = len(norm_actions)
    steps_per_epoch = math.ceil(n / sch.batch_size)
    total = sch.stage2_epochs * steps_per_epoch
    for epoch in range(start, sch.stage2_epochs):
        t0, parts_log = time.time(), []
        for i, idx in enumerate(_batches(n, sch.batch_size, sch.seed + 100 + epoch)):
            h0, mask = student.embed(*_inputs(fs, norm_proprio, idx))
            soft = student.gates(h0, mask)
            gates = student.training_gates(soft)
            states = student.backbone_soft(h0, mask, gates)
            a_gt = norm_actions[idx]
            out = student.action_head(states[-1])
            task = F.l1_loss(out, a_gt)
            if probes is not None:
                sem, act = probes(states, mask)
                loss, parts = distillation_loss(task, sem, targets.sem[idx], act, targets.act[idx], a_gt, gates, acfg)
            else:
                loss, parts = output_distillation_loss(task, out, targets.final[idx], gates, acfg)
            for group in opt.param_groups:
                group["lr"] = cosine_lr(epoch * steps_per_epoch + i, total, group["base"], sch.warmup_steps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            parts_log.append({**parts, "soft_gate_mean": soft.mean().item()})
            if (i + 1) % 50 == 0:
                recent = {k: np.mean([p[k] for p in parts_log[-50:]]) for k in parts_log[0]}
                log(f"stage 2 epoch {epoch + 1}/{sch.stage2_epochs} step {i + 1}/{steps_per_epoch} "
                    f"({(i + 1) * sch.batch_size / (time.time() - t0):.0f} samples/s): "
                    + " ".join(f"{k} {v:.4f}" for k, v in recent.items()))
        mean = {k: float(np.mean([p[k] for p in parts_log])) for k in parts_log[0]}
        history.append({"epoch": epoch + 1, "seconds": time.time() - t0, **mean})
        if state_path is not None:
            save_atomic({"key": key, "student": student.state_dict(), "probes": probes.state_dict() if probes else None,
                         "optimizer": opt.state_dict(), "epoch": epoch + 1, "history": history,
                         "rng": torch.get_rng_state()}, state_path)
        log(f"stage 2 epoch {epoch + 1}/{sch.stage2_epochs} done ({time.time() - t0:.0f} s): "
            + " ".join(f"{k} {v:.4f}" for k, v in mean.items()))
    return student.eval(), history


def stage1_key(teacher_sha256: str, fs: FeatureSet, acfg: ActDistillConfig, sch: DistillSchedule) -> dict:
    """What stage 1's cached targets depend on: teacher, data, probe architecture and stage-1 schedule."""
    probe = ("graph", "graph_knn", "graph_heads", "graph_layers", "graph_width", "semantic_width")
    return {"teacher_sha256": teacher_sha256, "samples": len(fs.actions), "features": fs.source,
            "probe": {k: getattr(acfg, k) for k in probe},
            "schedule": (sch.stage1_epochs, sch.batch_size, sch.probe_lr, sch.warmup_steps, sch.seed)}


def export(student: StudentVLA, normalizer: Normalizer, out: Path, meta: dict) -> str:
    """Write the inference checkpoint: blocks, router, embeddings and head; no graph modules."""
    meta = {**meta, "actdistill": student.acfg.to_dict()}
    return save_checkpoint(out, student.cfg, normalizer, student.state_dict(), meta, dtype=torch.float16)


def distill(teacher_dir: Path, fs: FeatureSet, out: Path, acfg: ActDistillConfig = ActDistillConfig(),
            sch: DistillSchedule = DistillSchedule(), log=print, stage1_dir: Path | None = None) -> str:
    """Both stages and the export; resumable from the files stage 1 (in `stage1_dir`, default `out`) and stage 2
    (in `out`) leave."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(teacher_dir)
    teacher = VLA(ckpt.config)
    load_state_strict(teacher, ckpt.state_dict, str(teacher_dir))
    nz = ckpt.normalizer
    norm_actions = torch.from_numpy(nz.normalize_actions(fs.actions.numpy()).astype(np.float32))
    norm_proprio = torch.from_numpy(nz.normalize_proprio(fs.proprio.numpy()).astype(np.float32))
    key = stage1_key(ckpt.sha256, fs, acfg, sch)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    stage1_path = Path(stage1_dir or out) / f"stage1-{digest}.pt"
    stage1_path.parent.mkdir(parents=True, exist_ok=True)
    cached = load_resumable(stage1_path, key, log)
    if cached is not None:
        targets = TeacherTargets(**cached["targets"])
        log("stage 1: loaded cached teacher targets")
    else:
        targets = stage1(teacher, fs, norm_actions, norm_proprio, acfg, sch, log)
        save_atomic({"key": key, "targets": vars(targets)}, stage1_path)
    run_key = {"teacher_sha256": ckpt.sha256, "samples": len(norm_actions)}
    student, history = stage2(teacher, targets, fs, norm_actions, norm_proprio, acfg, sch, out / "train_state.pt",
                              run_key, log)
    meta = {"teacher_sha256": ckpt.sha256, "schedule": asdict(sch), "samples": len(norm_actions), "history": history}
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
    parser.add_argument("--budget", type=float, default=None, help="most fraction of blocks to execute, e.g. 0.5")
    parser.add_argument("--budget-weight", type=float, default=ActDistillConfig.budget_weight,
                        help="weight of the budget term")
    parser.add_argument("--no-graph", action="store_true", help="ablation: plain output distillation, no probes")
    parser.add_argument("--static-blocks", default="", help="ablation: comma-separated blocks always run, no router")
    parser.add_argument("--stage1-epochs", type=int, default=DistillSchedule.stage1_epochs)
    parser.add_argument("--stage2-epochs", type=int, default=DistillSchedule.stage2_epochs)
    args = parser.parse_args(argv)
    paths = demo_files(args.demos, args.suite)
    if not paths:
        print(f"error: no demo files for {args.suite} under {args.demos}; run `make demos SUITE=...` first", file=sys.stderr)
        return 2
    if args.budget is not None and not 0 < args.budget <= 1:
        print(f"error: --budget must be in (0, 1], got {args.budget}", file=sys.stderr)
        return 2
    if args.budget_weight < 0:
        print(f"error: --budget-weight must be >= 0, got {args.budget_weight}", file=sys.stderr)
        return 2
    try:
        teacher_cfg = load_checkpoint(args.teacher).config
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        static = tuple(int(b) for b in args.static_blocks.split(",") if b.strip()) or None
    except ValueError:
        static = (-1,)
    if static is not None and not all(0 <= b < teacher_cfg.depth for b in static):
        print(f"error: --static-blocks must be block indices 0..{teacher_cfg.depth - 1}, got {args.static_blocks!r}",
              file=sys.stderr)
        return 2
    fs = cached_features(paths, teacher_cfg, args.demos / "cache")
    acfg = ActDistillConfig(budget=args.budget, budget_weight=args.budget_weight, graph=not args.no_graph,
                            static_blocks=static)
    sch = DistillSchedule(stage1_epochs=args.stage1_epochs, stage2_epochs=args.stage2_epochs)
    digest = distill(args.teacher, fs, args.out, acfg, sch, log=lambda m: print(m, flush=True),
                     stage1_dir=args.demos / "cache")
    print(f"student checkpoint {args.out} sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
