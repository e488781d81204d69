"""`make ablations SUITE=…`: the ActDistill student against its two ablations, through the same harness.

- `no_graph`: plain output distillation (the student matches the teacher's final actions; no graph
  encapsulation, no per-block semantic or action losses);
- `static_router`: no routing; every input runs the same k blocks, k = the dynamic student's mean executed
  blocks per call in its rollouts (rounded), chosen as the k blocks it executes most often, so the comparison
  isolates per-input routing at equal compute.

Each variant is distilled from the same teacher and demos with the student's own config and schedule (read from
its checkpoint), changing only the ablated part; then the teacher, the student and the variants are evaluated on
the same tasks and init states, and compared on success and on executed compute over their own rollouts
(backbone fraction and GFLOPs per call from each call's recorded blocks; block costs counted on one observation
recorded from an expert episode). Variants live under `<results>/ablations/<suite>/<variant>/` (resumable);
the table goes to `reports/ablations_<suite>.md`.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from harness.store import DEFAULT_RESULTS

REPO = Path(__file__).resolve().parents[2]


@dataclass
class AblationRequest:
    suite: str
    demos: Path
    """Folder with <suite>/*_demo.hdf5 (`make demos`), the data the student was distilled on."""
    episodes: int = 20
    """Init states per task, the same for every policy."""
    tasks: tuple[int, ...] | None = None
    """Task indices; None = all of the suite's."""
    workers: int = 1
    student: Path | None = None
    """Student checkpoint folder; None = the one shipped for the suite."""
    teacher: Path | None = None
    """The student's teacher; None = the one shipped for the suite."""
    results_root: Path = DEFAULT_RESULTS
    report_dir: Path = REPO / "reports"


def static_blocks(episodes: pd.DataFrame, depth: int) -> tuple[int, ...]:
    """The k blocks the routed student executed most often over its rollout calls (ties: lower index first),
    k = its mean executed blocks per call, rounded (at least 1)."""
    counts, calls, executed = Counter(), 0, 0
    for calls_json in episodes["calls"]:
        for call in json.loads(calls_json):
            counts.update(call["blocks"])
            calls += 1
            executed += len(call["blocks"])
    if not calls:
        raise ValueError("the student's episodes hold no policy calls to derive a static block set from")
    k = min(depth, max(1, round(executed / calls)))
    return tuple(sorted(sorted(range(depth), key=lambda b: (-counts[b], b))[:k]))


def _shown(path: Path) -> str:
    """`path` relative to the repository when inside it, so reports do not carry one machine's layout."""
    full = path.resolve()
    return str(full.relative_to(REPO)) if full.is_relative_to(REPO) else str(path)


def _summary(name: str, checkpoint: Path, episodes: pd.DataFrame, policy, recorded) -> dict:
    from harness.policy_profile import block_costs, episode_metrics, rollout_metrics
    from harness.stats import wilson_interval

    total = rollout_metrics(episode_metrics(episodes, block_costs(policy, recorded[0]))).iloc[-1]
    k = int(episodes["success"].sum())
    lo, hi = wilson_interval(k, len(episodes))
    return {
        "variant": name, "checkpoint": _shown(checkpoint), "sha256": policy.checkpoint_sha256[:12],
        "episodes": len(episodes), "success_%": 100 * k / len(episodes), "ci95_%": f"{100 * lo:.0f}-{100 * hi:.0f}",
        "exec_backbone_%": total["exec_frac_%"], "gflops_per_call": total["gflops_per_call"],
        "calls": int(total["calls"]),
    }


def run_ablations(req: AblationRequest, log=print) -> pd.DataFrame:
    """Distil the missing variants, evaluate all policies (episodes already on disk are reused), tabulate."""
    from harness.policy_profile import record_observations
    from harness.runner import EvalRequest, evaluate
    from policies import make_policy
    from policies.actdistill.configuration import ActDistillConfig
    from policies.actdistill.policy import ActDistillPolicy
    from policies.actdistill.train import DistillSchedule, distill
    from policies.vla.checkpoint import CheckpointError, load_checkpoint
    from policies.vla.policy import VLAPolicy
    from policies.vla.train import cached_features, demo_files

    student_dir = Path(req.student) if req.student else ActDistillPolicy.shipped_checkpoint(req.suite)
    student = load_checkpoint(student_dir)
    if "actdistill" not in student.meta:
        raise CheckpointError(f"{student_dir} is not a distilled student (no 'actdistill' in its config meta)")
    teacher_dir = Path(req.teacher) if req.teacher else VLAPolicy.shipped_checkpoint(req.suite)
    if load_checkpoint(teacher_dir).sha256 != student.meta["teacher_sha256"]:
        raise CheckpointError(f"{student_dir} was not distilled from the teacher {teacher_dir}")
    paths = demo_files(req.demos, req.suite)
    if not paths:
        raise FileNotFoundError(f"no demo files for {req.suite} under {req.demos}; run `make demos SUITE={req.suite}`")

    def episodes(policy: str, checkpoint: Path) -> pd.DataFrame:
        log(f"evaluating {policy} {checkpoint} on {req.suite} ({req.episodes} init states per task)")
        return evaluate(EvalRequest(policy=policy, suite=req.suite, checkpoint=str(checkpoint), episodes=req.episodes,
                                    tasks=req.tasks, workers=req.workers, results_root=req.results_root)).episodes

    runs = {"teacher": ("teacher", teacher_dir), "actdistill": ("actdistill", student_dir)}
    evaluated = {name: episodes(*run) for name, run in runs.items()}
    acfg = ActDistillConfig.from_dict(student.meta["actdistill"])
    fixed = static_blocks(evaluated["actdistill"], student.config.depth)
    log(f"static router: blocks {list(fixed)} (the student's {len(fixed)} most executed)")
    variants = {"no_graph": replace(acfg, graph=False), "static_router": replace(acfg, static_blocks=fixed)}
    features = cached_features(paths, student.config, Path(req.demos) / "cache", log=log)
    schedule = DistillSchedule(**student.meta["schedule"])
    for name, cfg in variants.items():
        out = Path(req.results_root) / "ablations" / req.suite / name
        log(f"distilling {name} into {out} (a finished run is only re-exported)")
        distill(teacher_dir, features, out, cfg, schedule, log=log, stage1_dir=Path(req.demos) / "cache")
        runs[name] = ("actdistill", out)
        evaluated[name] = episodes(*runs[name])

    recorded = None
    rows = []
    for name, (policy_name, checkpoint) in runs.items():
        policy = make_policy(policy_name, str(checkpoint), req.suite)
        recorded = recorded or record_observations(req.suite, policy.obs_spec, 1, Path(req.results_root))
        rows.append(_summary(name, checkpoint, evaluated[name], policy, recorded))
    table = pd.DataFrame(rows)
    scope = (f"scope: {req.suite}, {req.episodes} init states x {evaluated['teacher']['task_index'].nunique()} tasks "
             f"per policy (the same episodes for all); executed compute over each policy's own rollout calls at batch 1 "
             f"(FLOPs from recorded block lists, multiply-add = 2); static router blocks {list(fixed)}")
    text = f"# ActDistill ablations on {req.suite}\n\n{scope}\n\n{table.to_markdown(index=False, floatfmt='.3g')}\n"
    req.report_dir.mkdir(parents=True, exist_ok=True)
    (req.report_dir / f"ablations_{req.suite}.md").write_text(text)
    log(text)
    return table


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os
    import sys

    from harness.runner import UsageError
    from policies.base import PolicyLoadError

    parser = argparse.ArgumentParser(prog="ablations", description=__doc__.splitlines()[0])
    parser.add_argument("--suite", required=True)
    parser.add_argument("--demos", type=Path, required=True)
    parser.add_argument("--episodes", type=int, default=AblationRequest.episodes)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--student", type=Path, default=None, help="student checkpoint (default: shipped)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args(argv)
    req = AblationRequest(suite=args.suite, demos=args.demos, episodes=args.episodes, workers=args.workers,
                          student=args.student, results_root=args.results)
    try:
        run_ablations(req, log=lambda m: print(m, flush=True))
    except (PolicyLoadError, FileNotFoundError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
