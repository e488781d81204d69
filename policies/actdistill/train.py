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
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from policies.actdistill.configuration import ActDistillConfig
from policies.actdistill.graph import BlockProbes
from policies.actdistill.losses import distillation_loss, output_distillation_loss
from policies.actdistill.student import StudentVLA
from policies.training import fit, load_resumable, save_atomic
from policies.vla.checkpoint import Checkpoint, Normalizer, load_checkpoint, load_state_strict, save_checkpoint
from policies.vla.model import VLA
from policies.vla.train import FeatureSet


@dataclass(frozen=True)
class DistillSchedule:
    """Both stages' optimisation: AdamW with linear warm-up then cosine decay per stage; the shipped students'
    recipe by default."""

    stage1_epochs: int = 1
    stage2_epochs: int = 4
    batch_size: int = 64
    """Samples per step."""
    lr: float = 1e-4
    """Peak LR of the student in stage 2."""
    probe_lr: float = 3e-4
    """Peak LR of the probes, in stage 1 and stage 2."""
    warmup_steps: int = 100
    """Optimizer steps of warm-up, in each stage."""
    seed: int = 0
    """Seeds each stage's initialisation and sample order (stage 1: `seed + epoch`, stage 2: `seed + 100 + epoch`)."""


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


def stage1(teacher: VLA, fs: FeatureSet, norm_actions, norm_proprio, acfg: ActDistillConfig, sch: DistillSchedule,
           log=print) -> TeacherTargets:
    """Train the probes on the frozen teacher (with the graph; MSE to the ground-truth chunk, AdamW, no
    clipping), then cache the teacher's targets per sample."""
    teacher.eval().requires_grad_(False)
    n = len(norm_actions)
    torch.manual_seed(sch.seed)
    probes = BlockProbes(teacher.cfg, acfg) if acfg.graph else None
    if probes is not None:
        def loss(idx):
            with torch.no_grad():
                h0, mask = teacher.embed(*fs.inputs(norm_proprio, idx))
                states = teacher_block_states(teacher, h0, mask)
            _, actions = probes(states, mask)
            mse = F.mse_loss(actions, norm_actions[idx][:, None].expand_as(actions))
            return mse, {"probe_mse": mse.item()}

        fit([(probes.parameters(), sch.probe_lr)], loss, n, batch_size=sch.batch_size, epochs=sch.stage1_epochs,
            warmup_steps=sch.warmup_steps, weight_decay=0.01, clip_norm=None, epoch_seed=lambda e: sch.seed + e,
            modules={"probes": probes}, label="stage 1", log=log)
        probes.eval()
    final, sem, act = [], [], []
    with torch.no_grad():
        for i in range(0, n, sch.batch_size):
            idx = torch.arange(i, min(n, i + sch.batch_size))
            h0, mask = teacher.embed(*fs.inputs(norm_proprio, idx))
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
    """Distil into the routed student (with the probes, if the graph is on): AdamW with weight decay 0.01, the
    gradient norm over both clipped to 1. Resumes from `state_path` (saved after every epoch) when it holds a run of
    the same `run_key` (teacher, data), config and schedule, else starts over. Returns the student (eval mode) and
    the per-epoch history of the loss parts."""
    torch.manual_seed(sch.seed)  # each stage seeds itself: stage 1 may have run in this process or been cached
    student = StudentVLA.from_teacher(teacher, acfg).train()
    groups, modules = [(student.parameters(), sch.lr)], {"student": student}
    probes = None
    if acfg.graph:
        probes = BlockProbes(teacher.cfg, acfg)
        probes.load_state_dict(targets.probes)
        groups.append((probes.parameters(), sch.probe_lr))
        modules["probes"] = probes

    def loss(idx):
        h0, mask = student.embed(*fs.inputs(norm_proprio, idx))
        soft = student.gates(h0, mask)
        gates = student.training_gates(soft)
        states = student.backbone_soft(h0, mask, gates)
        a_gt = norm_actions[idx]
        out = student.action_head(states[-1])
        task = F.l1_loss(out, a_gt)
        if probes is not None:
            sem, act = probes(states, mask)
            total, parts = distillation_loss(task, sem, targets.sem[idx], act, targets.act[idx], a_gt, gates, acfg)
        else:
            total, parts = output_distillation_loss(task, out, targets.final[idx], gates, acfg)
        return total, {**parts, "soft_gate_mean": soft.mean().item()}

    key = {**(run_key or {}), "acfg": acfg.to_dict(), "schedule": asdict(sch)}
    history = fit(groups, loss, len(norm_actions), batch_size=sch.batch_size, epochs=sch.stage2_epochs,
                  warmup_steps=sch.warmup_steps, weight_decay=0.01, clip_norm=1.0,
                  epoch_seed=lambda e: sch.seed + 100 + e, modules=modules, state_path=state_path, run_key=key,
                  label="stage 2", log=log)
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
    t = teacher_targets(teacher_dir, fs, acfg, sch, Path(stage1_dir or out), log)
    run_key = {"teacher_sha256": t.ckpt.sha256, "samples": len(t.norm_actions)}
    student, history = stage2(t.teacher, t.targets, fs, t.norm_actions, t.norm_proprio, acfg, sch,
                              out / "train_state.pt", run_key, log)
    meta = {"teacher_sha256": t.ckpt.sha256, "schedule": asdict(sch), "samples": len(t.norm_actions),
            "history": history}
    return export(student, t.ckpt.normalizer, out, meta)


@dataclass
class Distillation:
    """What every model distilled from a teacher starts from (`teacher_targets`)."""

    ckpt: Checkpoint
    """The teacher's checkpoint (its normaliser is the distilled model's)."""
    teacher: VLA
    """Frozen, eval mode."""
    norm_actions: torch.Tensor
    """(N, K, A) ground-truth chunks, normalised with the teacher's statistics."""
    norm_proprio: torch.Tensor
    targets: TeacherTargets


def teacher_targets(teacher_dir: Path, fs: FeatureSet, acfg: ActDistillConfig, sch: DistillSchedule,
                    cache_dir: Path, log=print) -> Distillation:
    """Load the teacher and its stage-1 targets on `fs`: from `<cache_dir>/stage1-<key>.pt` when a run with the same
    teacher, data, probes and stage-1 schedule left them, else computed (stage 1) and saved there. With
    `acfg.graph` False there are no probes and the targets are the teacher's final actions only."""
    ckpt = load_checkpoint(teacher_dir)
    teacher = VLA(ckpt.config)
    load_state_strict(teacher, ckpt.state_dict, str(teacher_dir))
    norm_actions, norm_proprio = fs.normalized(ckpt.normalizer)
    key = stage1_key(ckpt.sha256, fs, acfg, sch)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    stage1_path = Path(cache_dir) / f"stage1-{digest}.pt"
    cached = load_resumable(stage1_path, key, log)
    if cached is not None:
        targets = TeacherTargets(**cached["targets"])
        log("stage 1: loaded cached teacher targets")
    else:
        targets = stage1(teacher, fs, norm_actions, norm_proprio, acfg, sch, log)
        save_atomic({"key": key, "targets": vars(targets)}, stage1_path)
    return Distillation(ckpt, teacher.eval().requires_grad_(False), norm_actions, norm_proprio, targets)
