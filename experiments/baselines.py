"""`make baselines SUITE=…`: every baseline of issue 17 next to the teacher and the ActDistill student, on the
same units, at matched compute and over budgets.

Budgets are executed fractions of the teacher's backbone: `matched` is the shipped student's own, measured over
its rollout calls on these units (it is evaluated first), plus 0.25, 0.5 and 0.75 by default. At a fraction f a
static method keeps k = round(f L) of the L blocks; early exit calibrates its threshold to f on its calibration
frames; random skip runs each block with probability f; the student is distilled with budget f (at `matched` it is
the shipped student itself), so that it has a frontier of its own. One student with the reference code's balance
weight (1.0) at the shipped budget tests whether stronger balancing makes routes differ per input.

Entries (labels as in the tables):
- `pruned-{first,uniform,importance}-k`: the teacher with k blocks kept, as is;
- `pruned-{first,uniform,importance}-k-ft`: the same blocks fine-tuned with the student's stage-2 steps;
- `early-exit-f`: the multi-exit model (trained once per suite) at threshold for f;
- `random-skip-f`; `actdistill-b<f>`; `actdistill-balance1`.
The first entry is the teacher (speed-ups are against it); success is paired with the student (McNemar).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.spec import PolicySpec
from experiments.builds import Sources
from experiments.study import Entry, Study

BUDGETS = ("matched", 0.25, 0.5, 0.75)
STATIC = ("first", "importance", "uniform")
METHODS = (*STATIC, *(f"{m}-ft" for m in STATIC), "early-exit", "random-skip", "student", "student-balance")
"""What `methods` may select; all by default. `student`: a student distilled at each budget but `matched`;
`student-balance`: one at the shipped budget with REFERENCE_BALANCE."""
WITHOUT_DEMOS = ("first", "uniform", "random-skip")
"""Methods derived from the teacher without training or calibration data."""
REFERENCE_BALANCE = 1.0
"""The reference code's balance-loss weight (ours: `ActDistillConfig.balance`)."""


def matched_fraction(results_root: Path, sources: Sources, episodes: int, tasks, workers: int) -> float:
    """The student's mean executed share of the teacher's backbone over its rollout calls on the study's units
    (evaluated here if missing: the study reuses the run)."""
    from harness.rollouts import run_summary
    from harness.runner import EvalRequest, evaluate

    result = evaluate(EvalRequest(policy=PolicySpec("actdistill", checkpoint=str(sources.student)), suite=sources.suite,
                                  episodes=episodes, tasks=tasks, workers=workers, results_root=results_root),
                      progress=False)
    return run_summary(result.episodes, result.calls)["exec_backbone_%"] / 100


def baselines(suite: str, demos: Path, results_root: Path, episodes: int = 20, tasks: tuple[int, ...] | None = None,
              budgets: tuple = BUDGETS, methods: tuple[str, ...] = METHODS, workers: int = 1,
              latency_calls: int = 50, student: Path | None = None, teacher: Path | None = None) -> Study:
    """The comparison for one suite (see the module docstring). ValueError names an unknown method or budget."""
    from policies.pruning.configuration import PruningParams
    from policies.vla.checkpoint import load_checkpoint

    if unknown := sorted(set(methods) - set(METHODS)):
        raise ValueError(f"unknown baseline method(s) {unknown}; valid: {', '.join(METHODS)}")
    src = Sources.of(suite, demos, student, teacher)
    if set(methods) - set(WITHOUT_DEMOS) and not (Path(results_root) / "studies" / "baselines" / suite).is_dir():
        # Fail before any evaluation. Where builds are on disk (committed), only a missing build needs the demos,
        # and raises the same error when reached (`Sources.features`).
        src.require_demos()
    depth = load_checkpoint(src.teacher).config.depth
    fractions = []
    for b in budgets:
        if b == "matched":
            fractions.append(matched_fraction(results_root, src, episodes, tasks, workers))
        elif isinstance(b, (int, float)) and 0 < b <= 1:
            fractions.append(float(b))
        else:
            raise ValueError(f"budget {b!r} is not 'matched' or an executed fraction in (0, 1]")
    teacher_spec = PolicySpec("teacher", checkpoint=str(src.teacher))
    entries = [Entry("teacher", teacher_spec),
               Entry("actdistill", PolicySpec("actdistill", checkpoint=str(src.student)), group="actdistill")]
    seen = set()
    for budget, f in zip(budgets, fractions):
        k = max(1, round(f * depth))
        for method in STATIC:
            params = PruningParams(method, k)
            spec = PolicySpec(f"pruned-{method}", {"keep": k}, str(src.teacher))
            if method in methods and f"pruned-{method}-{k}" not in seen:
                build = src.pruned(params, fine_tune=False) if method == "importance" else None
                entries.append(Entry(f"pruned-{method}-{k}", spec, build, group=f"pruned-{method}"))
            if f"{method}-ft" in methods and f"pruned-{method}-{k}-ft" not in seen:
                entries.append(Entry(f"pruned-{method}-{k}-ft", spec, src.pruned(params, fine_tune=True),
                                     group=f"pruned-{method}-ft"))
            seen |= {f"pruned-{method}-{k}", f"pruned-{method}-{k}-ft"}
        if "early-exit" in methods:
            entries.append(Entry(f"early-exit-{f:.2f}", PolicySpec("early-exit", {"target": round(f, 3)}),
                                 src.early_exit(), group="early-exit"))
        if "random-skip" in methods:
            entries.append(Entry(f"random-skip-{f:.2f}", PolicySpec("random-skip", {"p": round(f, 3)}, str(src.teacher)),
                                 group="random-skip"))
        if "student" in methods and budget != "matched":
            entries.append(Entry(f"actdistill-b{f:g}", PolicySpec("actdistill"),
                                 src.student_variant(lambda ctx, b=f: replace(src.acfg, budget=b)), group="actdistill"))
    if "student-balance" in methods:
        entries.append(Entry(f"actdistill-balance{REFERENCE_BALANCE:g}", PolicySpec("actdistill"),
                             src.student_variant(lambda ctx: replace(src.acfg, balance=REFERENCE_BALANCE)),
                             group="actdistill-balance"))
    return Study(
        name="baselines", suites=(suite,), entries=tuple(entries), episodes=episodes, tasks=tasks,
        latency_calls=latency_calls, paired_with="actdistill",
        notes=[f"budgets of the last invocation (executed fractions of the teacher's backbone; the table keeps the "
               f"rows of earlier ones): {', '.join(f'{f:.3f}' for f in fractions)} ({', '.join(map(str, budgets))}"
               + ("; matched = the student's own over these units" if "matched" in budgets else "")
               + f"); static methods keep round(f x {depth}) blocks",
               "derived from the shipped teacher on the student's demos; every trained variant uses the student's "
               f"stage-2 optimiser steps ({src.schedule.stage2_epochs} epochs, batch {src.schedule.batch_size}, "
               f"LR {src.schedule.lr}): equal training compute",
               "importance: Block Influence (ShortGPT) on 512 evenly spaced demo frames; early exit: one multi-exit "
               "model per suite, thresholds calibrated on the same frames"],
    )
