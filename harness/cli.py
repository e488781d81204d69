"""Command line the Makefile calls: `python -m harness.cli eval --policy expert --suite libero_spatial`.

Bad input exits with status 2 and one line on stderr naming what is wrong and what is valid.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from core.paths import DEFAULT_RESULTS, REPORTS


def _task_list(text: str) -> tuple[int, ...] | None:
    if not text.strip():
        return None
    try:
        return tuple(int(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(f"TASKS must be comma-separated task indices like 0,3,7, got {text!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other usage error
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ev = sub.add_parser("eval", help="evaluate a policy on a suite (resumes an interrupted run)")
    ev.add_argument("--policy", required=True, help="registry name, alias, module:Class, or a JSON spec file")
    ev.add_argument("--params", default="", help="family params, comma-separated key=value (e.g. keep=6,method=first)")
    ev.add_argument("--suite", required=True, help="a suite name or a group (libero)")
    ev.add_argument("--checkpoint", default=None, help="checkpoint folder of a learned policy (default: shipped)")
    ev.add_argument("--episodes", type=int, default=None, help="init states per task (default: all of the suite's)")
    ev.add_argument("--tasks", type=_task_list, default=None, help="comma-separated task indices (default all)")
    ev.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ev.add_argument("--video", type=int, default=0, help="episodes per suite recorded as MP4")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--trajectories", action="store_true", help="save simulator states + actions per episode")
    ev.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results root directory")
    ev.add_argument("--no-progress", action="store_true")

    demos = sub.add_parser("demos", help="expert rollouts (successes only) -> HDF5 demonstrations, resumable")
    demos.add_argument("--suite", required=True)
    demos.add_argument("--expert", default="expert", help="demonstrator: expert, or expert_dart (noise-injected runs)")
    demos.add_argument("--episodes", type=int, default=None, help="init states per task (default: all)")
    demos.add_argument("--tasks", type=_task_list, default=None)
    demos.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    demos.add_argument("--frame-stride", type=int, default=5, help="render camera frames every n steps")
    demos.add_argument("--resolution", type=int, default=128, help="square image size, pixels")
    demos.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results root of the expert run")
    demos.add_argument("--out", type=Path, default=DEFAULT_RESULTS / "demos")
    demos.add_argument("--no-progress", action="store_true")

    prof = sub.add_parser("profile", help="FLOPs, latency, memory of a policy call vs a baseline; rollout metrics")
    prof.add_argument("--policy", required=True)
    prof.add_argument("--baseline", default="teacher", help="policy timed against (interleaved); '' for none")
    prof.add_argument("--suite", default="libero_spatial", help="suite whose episodes give the observations")
    prof.add_argument("--checkpoint", default=None)
    prof.add_argument("--baseline-checkpoint", default=None)
    prof.add_argument("--calls", type=int, default=100, help="timed calls per policy (>= 100 for the report)")
    prof.add_argument("--observations", type=int, default=40, help="observations recorded from expert episodes")
    prof.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (recorded)")
    prof.add_argument("--results", type=Path, default=DEFAULT_RESULTS)

    bench = sub.add_parser("bench-harness", help="environment throughput: physics, rendering, lazy, workers")
    bench.add_argument("--suite", default="libero_spatial")
    bench.add_argument("--steps", type=int, default=200)
    return parser


def policy_spec(policy: str, params: str = "", checkpoint: str | None = None):
    """The spec a user typed: a registry name, alias or `module:Class` plus PARAMS text, or a JSON spec file (PARAMS
    then override its params). UsageError on bad params text or an unreadable file."""
    from core.spec import ParamError, PolicySpec, load_spec_file, parse_param_text
    from harness.runner import UsageError

    try:
        given = parse_param_text(params)
        if policy.endswith(".json"):
            spec = load_spec_file(Path(policy))
            return PolicySpec(spec.family, {**spec.params, **given}, checkpoint or spec.checkpoint, spec.name)
        return PolicySpec(policy, given, checkpoint)
    except ParamError as err:
        raise UsageError(str(err)) from None


def cmd_eval(args) -> int:
    from harness.report import format_summary
    from harness.runner import EvalRequest, evaluate

    req = EvalRequest(
        policy=policy_spec(args.policy, args.params, args.checkpoint), suite=args.suite, episodes=args.episodes,
        tasks=args.tasks, workers=args.workers, video=args.video, seed=args.seed, results_root=args.results,
        trajectories=args.trajectories,
    )
    result = evaluate(req, progress=not args.no_progress)
    episodes = result.episodes
    scope = (
        f"policy={args.policy}{' ' + args.params if args.params else ''} suite={args.suite} episodes/task={args.episodes or 'all'} seed={args.seed}: success over "
        f"{len(episodes)} episodes (errors count as failures); wall times on this machine with {args.workers} worker(s), "
        f"policy calls at batch 1 with 1 torch thread; exec_% = executed share of the reference backbone's FLOPs"
    )
    print(format_summary(episodes, scope, result.calls))
    stand_ins: dict[str, list[str]] = {}
    for run_dir in result.run_dirs:
        assets = json.loads((run_dir / "manifest.json").read_text())["simulator"].get("simpler_assets", "official")
        if assets != "official":
            stand_ins.setdefault(assets, []).append(run_dir.name)
    for assets, suites in stand_ins.items():
        print(f"note: {', '.join(suites)} ran with {assets}; not comparable to published numbers")
    print(f"results: {', '.join(str(d) for d in result.run_dirs)}")
    return 0


def cmd_demos(args) -> int:
    from harness.demos import build_demos
    from harness.runner import EvalRequest, UsageError, evaluate

    if args.frame_stride < 1 or args.resolution < 16:
        raise UsageError(f"--frame-stride must be >= 1 and --resolution >= 16, got {args.frame_stride}, {args.resolution}")
    # The expert run is an ordinary evaluation (same results folder as `make eval POLICY=expert`) that also
    # saves trajectories, so one rollout serves both the success table and the demonstrations.
    req = EvalRequest(policy=args.expert, suite=args.suite, episodes=args.episodes, tasks=args.tasks, workers=args.workers,
                      results_root=args.results, trajectories=True)
    result = evaluate(req, progress=not args.no_progress)
    eps = result.episodes
    missing = int((eps["success"] & (eps["trajectory"] == "")).sum())
    if missing:
        print(f"warning: {missing} successful episode(s) were run without trajectories and are not in the demos; "
              f"remove them from {', '.join(str(d) for d in result.run_dirs)} to re-run them")
    written = []
    for run_dir in result.run_dirs:
        cameras = tuple(json.loads((run_dir / "manifest.json").read_text())["protocol"]["cameras"])
        suite_eps = eps[eps["suite"] == run_dir.name]
        try:
            written += build_demos(suite_eps, result.calls, args.out, cameras, (args.resolution, args.resolution),
                                   args.frame_stride, args.workers, progress=not args.no_progress)
        except ValueError as err:
            raise UsageError(str(err)) from None
    kept = int(eps["success"].sum())
    print(f"demos: kept {kept} successful of {len(eps)} {args.expert} episodes; {len(written)} task file(s) under {args.out}")
    return 0


def cmd_profile(args) -> int:
    from harness.policy_profile import ProfileRequest, profile
    from core.registry import UnknownName
    from harness.runner import UsageError
    from policies import POLICIES
    from policies.base import PolicyLoadError
    from tasks import SUITES

    if args.calls < 1 or args.observations < 1 or args.threads < 1:
        raise UsageError(f"--calls, --observations and --threads must be >= 1, got {args.calls}, "
                         f"{args.observations}, {args.threads}")
    req = ProfileRequest(policy=args.policy, baseline=args.baseline or None, suite=args.suite,
                         checkpoint=args.checkpoint, baseline_checkpoint=args.baseline_checkpoint, calls=args.calls,
                         observations=args.observations, threads=args.threads, results_root=args.results,
                         # Only the shipped checkpoints' profile is the project's report; others stay in results/.
                         report_dir=None if args.checkpoint or args.baseline_checkpoint else REPORTS)
    try:
        for name in filter(None, (req.policy, req.baseline)):
            POLICIES.check(name)
        SUITES.check(req.suite)
        report = profile(req, log=lambda m: print(m, file=sys.stderr, flush=True))
    except (UnknownName, PolicyLoadError, ValueError) as err:
        raise UsageError(str(err)) from None
    print(report["text"])
    print(f"written: {', '.join(report['written'])}")
    return 0


def cmd_bench(args) -> int:
    from harness.bench import run_bench

    print(run_bench(args.suite, args.steps))
    return 0


def main(argv: list[str] | None = None) -> int:
    from harness.runner import UsageError

    args = build_parser().parse_args(argv)
    try:
        return {"eval": cmd_eval, "demos": cmd_demos, "profile": cmd_profile, "bench-harness": cmd_bench}[args.command](args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished episodes are saved; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
