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

import pandas as pd

from core.spec import PolicySpec
from experiments.builds import Sources
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
    from policies.vla.checkpoint import load_checkpoint

    src = Sources.of(suite, demos, student, teacher)
    src.require_demos()  # every variant is distilled
    depth = load_checkpoint(src.student).config.depth
    fixed: dict[str, tuple[int, ...]] = {}

    def static(ctx: BuildContext):
        fixed["blocks"] = static_blocks(ctx.result("actdistill").calls, depth)
        ctx.log(f"static router: blocks {list(fixed['blocks'])} (the student's most executed)")
        return replace(src.acfg, static_blocks=fixed["blocks"])

    return Study(
        name="ablations", suites=(suite,), episodes=episodes, tasks=tasks, latency_calls=latency_calls,
        entries=(
            Entry("teacher", PolicySpec("teacher", checkpoint=str(src.teacher))),
            Entry("actdistill", PolicySpec("actdistill", checkpoint=str(src.student))),
            Entry("no_graph", PolicySpec("actdistill"), src.student_variant(lambda ctx: replace(src.acfg, graph=False))),
            Entry("static_router", PolicySpec("actdistill"), src.student_variant(static)),
        ),
        notes=["variants distilled from the same teacher and demos with the student's config and schedule "
               "(read from its checkpoint), changing only the ablated part",
               "static_router: the k blocks the student executes most often over its rollouts, k = its mean "
               "executed blocks per call"],
    )
