"""`make ablations SUITE=…`: the ActDistill student against its two ablations, as a study.

- `no_graph`: plain output distillation (the student matches the teacher's final actions; no graph
  encapsulation, no per-block semantic or action losses);
- `static_router`: no routing; every input runs the same k blocks, k = the dynamic student's mean executed
  blocks per call in its rollouts (rounded), chosen as the k blocks it executes most often, so the comparison
  isolates per-input routing at equal compute.
Each variant is distilled from the same teacher and demos with the student's own config and schedule (read from
its checkpoint), changing only the ablated part. Stage 1 is shared through the demos' feature cache.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pandas as pd

from core.spec import PolicySpec
from experiments.study import BuildContext, Entry, Study


def static_blocks(calls: pd.DataFrame, depth: int) -> tuple[int, ...]:
    """The k blocks the routed student executed most often over its rollout calls (ties: lower index first),
    k = its mean executed blocks per call, rounded (at least 1)."""
    counts = Counter(b for blocks in calls["blocks"] for b in blocks)
    if not len(calls):
        raise ValueError("the student's episodes hold no policy calls to derive a static block set from")
    k = min(depth, max(1, round(sum(counts.values()) / len(calls))))
    return tuple(sorted(sorted(range(depth), key=lambda b: (-counts[b], b))[:k]))


def ablations(suite: str, demos: Path, episodes: int = 20, tasks: tuple[int, ...] | None = None,
              student: Path | None = None, teacher: Path | None = None, latency_calls: int = 50) -> Study:
    """The study for one suite: teacher, student (shipped ones by default), no_graph, static_router."""
    from policies.actdistill.configuration import ActDistillConfig
    from policies.actdistill.policy import ActDistillPolicy
    from policies.actdistill.train import DistillSchedule, distill
    from policies.vla.checkpoint import CheckpointError, load_checkpoint
    from policies.vla.policy import VLAPolicy
    from policies.vla.train import cached_features, demo_files

    student_dir = Path(student) if student else ActDistillPolicy.shipped_checkpoint(suite)
    ckpt = load_checkpoint(student_dir)
    if "actdistill" not in ckpt.meta:
        raise CheckpointError(f"{student_dir} is not a distilled student (no 'actdistill' in its config meta)")
    teacher_dir = Path(teacher) if teacher else VLAPolicy.shipped_checkpoint(suite)
    if load_checkpoint(teacher_dir).sha256 != ckpt.meta["teacher_sha256"]:
        raise CheckpointError(f"{student_dir} was not distilled from the teacher {teacher_dir}")
    paths = demo_files(demos, suite)
    if not paths:
        raise FileNotFoundError(f"no demo files for {suite} under {demos}; run `make demos SUITE={suite}`")
    acfg = ActDistillConfig.from_dict(ckpt.meta["actdistill"])
    schedule = DistillSchedule(**ckpt.meta["schedule"])
    fixed: dict[str, tuple[int, ...]] = {}

    def variant(change: Callable[[BuildContext], ActDistillConfig]) -> Callable[[BuildContext], Path]:
        def build(ctx: BuildContext) -> Path:
            features = cached_features(paths, ckpt.config, Path(demos) / "cache", log=ctx.log)
            distill(teacher_dir, features, ctx.out, change(ctx), schedule, log=ctx.log,
                    stage1_dir=Path(demos) / "cache")
            return ctx.out
        return build

    def static(ctx: BuildContext) -> ActDistillConfig:
        fixed["blocks"] = static_blocks(ctx.result("actdistill").calls, ckpt.config.depth)
        ctx.log(f"static router: blocks {list(fixed['blocks'])} (the student's most executed)")
        return replace(acfg, static_blocks=fixed["blocks"])

    return Study(
        name="ablations", suites=(suite,), episodes=episodes, tasks=tasks, latency_calls=latency_calls,
        entries=(
            Entry("teacher", PolicySpec("teacher", checkpoint=str(teacher_dir))),
            Entry("actdistill", PolicySpec("actdistill", checkpoint=str(student_dir))),
            Entry("no_graph", PolicySpec("actdistill"), variant(lambda ctx: replace(acfg, graph=False))),
            Entry("static_router", PolicySpec("actdistill"), variant(static)),
        ),
        notes=["variants distilled from the same teacher and demos with the student's config and schedule "
               "(read from its checkpoint), changing only the ablated part",
               "static_router: the k blocks the student executes most often over its rollouts, k = its mean "
               "executed blocks per call"],
    )
