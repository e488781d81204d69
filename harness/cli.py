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
    ev.add_argument("--perturb", default="", help="observation perturbation of every suite, e.g. noise:0.05,occlude:0.2 "
                                                  "(tasks/perturb.py: camera, brightness, contrast, noise, occlude, lang)")
    ev.add_argument("--episodes", type=int, default=None, help="init states per task (default: all of the suite's)")
    ev.add_argument("--tasks", type=_task_list, default=None, help="comma-separated task indices (default all)")
    ev.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="worker processes (local) or actors (ray)")
    _executor_arguments(ev)
    ev.add_argument("--ray-cpus", type=float, default=1.0, help="CPUs requested per Ray actor")
    ev.add_argument("--ray-gpus", type=float, default=0.0, help="GPUs requested per Ray actor (for a policy using one)")
    ev.add_argument("--ray-memory-gb", type=float, default=None, help="memory reserved per Ray actor (default: none)")
    ev.add_argument("--video", type=int, default=0, help="episodes per suite recorded as MP4")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--trajectories", action="store_true", help="save simulator states + actions per episode")
    ev.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results root directory")
    ev.add_argument("--no-progress", action="store_true")

    demos = sub.add_parser("demos", help="expert rollouts (successes only) -> HDF5 demonstrations, resumable")
    demos.add_argument("--suite", required=True, help="a suite or group; <suite>_train: training layouts held apart "
                                                      "from the evaluation init states, written as <suite>'s demos")
    demos.add_argument("--expert", default="expert", help="demonstrator: expert, or expert_dart (noise-injected runs)")
    demos.add_argument("--episodes", type=int, default=None, help="init states per task (default: all)")
    demos.add_argument("--tasks", type=_task_list, default=None)
    demos.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    demos.add_argument("--frame-stride", type=int, default=5, help="render camera frames every n steps")
    demos.add_argument("--resolution", type=int, default=128, help="square image size, pixels")
    demos.add_argument("--results", type=Path, default=None,
                       help="results root of the expert run that saves trajectories (default: <out>/runs; the "
                            "committed expert runs have no trajectories)")
    demos.add_argument("--out", type=Path, default=DEFAULT_RESULTS / "demos")
    demos.add_argument("--no-progress", action="store_true")

    prof = sub.add_parser("profile", help="FLOPs, latency, memory of any policy's call vs a baseline; rollout metrics")
    prof.add_argument("--policy", required=True, help="registry name, alias, module:Class, or a JSON spec file")
    prof.add_argument("--params", default="", help="the policy's params, comma-separated key=value")
    prof.add_argument("--baseline", default="teacher", help="policy timed against (interleaved); '' for none")
    prof.add_argument("--baseline-params", default="", help="the baseline's params, comma-separated key=value")
    prof.add_argument("--suite", default="libero_spatial", help="suite whose episodes give the observations")
    prof.add_argument("--checkpoint", default=None, help="checkpoint folder of the policy (default: shipped)")
    prof.add_argument("--baseline-checkpoint", default=None, help="checkpoint folder of the baseline (default: shipped)")
    prof.add_argument("--calls", type=int, default=100, help="timed calls per policy (>= 100 for the report)")
    prof.add_argument("--observations", type=int, default=40, help="observations recorded from expert episodes")
    prof.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (recorded)")
    prof.add_argument("--results", type=Path, default=DEFAULT_RESULTS)

    from harness.compare_cli import add_parsers as add_compare_parsers
    from harness.report_cli import add_parsers as add_report_parsers
    from harness.train_cli import add_parsers as add_train_parsers

    add_train_parsers(sub)
    add_compare_parsers(sub)
    add_report_parsers(sub)

    st = sub.add_parser("study", help="entries x suites on the same units: build, evaluate, time, compare")
    st.add_argument("kind", nargs="?", default="specs", choices=["specs", "ablations", "baselines", "robustness"],
                    help="specs: the policies of --policies or --file; ablations: the ActDistill ablations; "
                         "baselines: pruned, early-exit, random-skip and other students against the student; "
                         "robustness: the teacher, the student and matched baselines clean and under perturbations")
    st.add_argument("--name", default=None, help="study name (results/studies/<name>/); default: the kind")
    st.add_argument("--policies", default="", help="comma-separated policy names or aliases, the first the baseline")
    st.add_argument("--file", type=Path, default=None,
                    help='JSON {"name", "suites", "episodes", "tasks", "entries": [{"label", "family", "params", "checkpoint"}]}')
    st.add_argument("--suite", default="libero_spatial")
    st.add_argument("--episodes", type=int, default=20, help="init states per task, the same for every entry")
    st.add_argument("--tasks", type=_task_list, default=None)
    st.add_argument("--demos", type=Path, default=DEFAULT_RESULTS / "demos", help="ablations: the student's demos")
    st.add_argument("--student", type=Path, default=None,
                    help="ablations, baselines: student checkpoint (default: shipped)")
    st.add_argument("--budgets", default="",
                    help="baselines: executed fractions of the teacher's backbone; matched = the student's own "
                         "(default: experiments.baselines.BUDGETS)")
    st.add_argument("--methods", default="", help="baselines, robustness: comma-separated baseline methods "
                                                  "(default: all; robustness: experiments.robustness.METHODS; none: the "
                                                  "teacher and the student only)")
    st.add_argument("--perturbations", default="", help="robustness: semicolon-separated perturbations (default: "
                                                        "experiments.robustness.PERTURBATIONS)")
    st.add_argument("--latency-calls", type=int, default=50, help="interleaved timed calls per entry (0: none)")
    st.add_argument("--observations", type=int, default=40, help="observations recorded for timing")
    st.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    st.add_argument("--results", type=Path, default=DEFAULT_RESULTS)

    mig = sub.add_parser("migrate-results", help="convert schema-v1 runs under a results root to schema v2")
    mig.add_argument("--results", type=Path, default=DEFAULT_RESULTS)

    query = sub.add_parser("query", help="SQL over every run under a results root (DuckDB views runs, episodes, calls)")
    query.add_argument("sql", help="e.g. \"SELECT name, suite, avg(success::INT) FROM episodes JOIN runs USING (run) GROUP BY ALL\"")
    query.add_argument("--results", type=Path, default=DEFAULT_RESULTS)

    bench = sub.add_parser("bench-harness", help="environment throughput: physics, rendering, lazy, workers")
    bench.add_argument("--suite", default="libero_spatial")
    bench.add_argument("--steps", type=int, default=200)
    _executor_arguments(bench, "runner rows: local, or ray next to local (the same units on both)")
    return parser


def _executor_arguments(parser, executor_help: str = "where episodes run: local (worker processes) or ray") -> None:
    parser.add_argument("--executor", default="local", help=executor_help)
    parser.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS") or None,
                        help="Ray cluster to join (default: $RAY_ADDRESS; none: start a local Ray instance)")


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
    from harness.executors import make_executor
    from harness.report import format_summary
    from harness.runner import EvalRequest, evaluate
    from tasks.protocol import PERTURBATION_SEPARATOR

    req = EvalRequest(
        policy=policy_spec(args.policy, args.params, args.checkpoint),
        suite=f"{args.suite}{PERTURBATION_SEPARATOR}{args.perturb}" if args.perturb else args.suite,
        episodes=args.episodes,
        tasks=args.tasks, workers=args.workers, video=args.video, seed=args.seed, results_root=args.results,
        trajectories=args.trajectories,
    )
    ray_options = {"cpus": args.ray_cpus, "gpus": args.ray_gpus, "memory_gb": args.ray_memory_gb}
    executor = make_executor(args.executor, args.workers, args.ray_address,
                             **(ray_options if args.executor == "ray" else {}))
    try:
        result = evaluate(req, progress=not args.no_progress, executor=executor)
    finally:
        executor.close()
    episodes = result.episodes
    where = "on this machine" if args.executor == "local" else f"on Ray ({', '.join(executor.describe()['nodes'])})"
    scope = (
        f"policy={args.policy}{' ' + args.params if args.params else ''} suite={req.suite} episodes/task={args.episodes or 'all'} seed={args.seed}: success over "
        f"{len(episodes)} episodes (errors count as failures); wall times {where} with {args.workers} worker(s), "
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
    from core.registry import UnknownName
    from harness.demos import build_demos, check_demo_folder
    from harness.runner import EvalRequest, UsageError, evaluate
    from tasks import expand_suites

    if args.frame_stride < 1 or args.resolution < 16:
        raise UsageError(f"--frame-stride must be >= 1 and --resolution >= 16, got {args.frame_stride}, {args.resolution}")
    try:  # before the expert run: a training-layout suite writes into its parent's folder
        for suite in expand_suites(args.suite):
            check_demo_folder(args.out, suite)
    except UnknownName:
        pass  # the evaluation below names the valid suites
    except ValueError as err:
        raise UsageError(str(err)) from None
    # The expert run is an ordinary evaluation that also saves trajectories. It has a results root of its own:
    # the committed expert runs under results/ hold no trajectories, and resuming them would render nothing.
    req = EvalRequest(policy=args.expert, suite=args.suite, episodes=args.episodes, tasks=args.tasks, workers=args.workers,
                      results_root=args.results or args.out / "runs", trajectories=True)
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
    from core.registry import UnknownName
    from harness.policy_profile import ProfileRequest, profile
    from harness.runner import UsageError
    from policies import POLICIES
    from policies.base import PolicyLoadError
    from tasks import SUITES

    if args.calls < 1 or args.observations < 1 or args.threads < 1:
        raise UsageError(f"--calls, --observations and --threads must be >= 1, got {args.calls}, "
                         f"{args.observations}, {args.threads}")
    if args.baseline_params and not args.baseline:
        raise UsageError("--baseline-params needs a --baseline")
    policy = policy_spec(args.policy, args.params, args.checkpoint)
    baseline = policy_spec(args.baseline, args.baseline_params, args.baseline_checkpoint) if args.baseline else None
    # Only the profile of the shipped checkpoints (registered names, no params) next to their committed evaluations
    # is the project's report; any other stays in its run folder.
    shipped = Path(args.results).resolve() == DEFAULT_RESULTS.resolve() and all(
        s is None or (s.family in POLICIES.names() and not s.params and not s.checkpoint) for s in (policy, baseline))
    req = ProfileRequest(policy=policy, baseline=baseline, suite=args.suite, calls=args.calls,
                         observations=args.observations, threads=args.threads, results_root=args.results,
                         report_dir=REPORTS if shipped else None)
    try:
        for spec in filter(None, (policy, baseline)):
            POLICIES.check(spec.family)
        SUITES.check(req.suite)
        report = profile(req, log=lambda m: print(m, file=sys.stderr, flush=True))
    except (UnknownName, PolicyLoadError, ValueError) as err:
        raise UsageError(str(err)) from None
    print(report["text"])
    print(f"written: {', '.join(report['written'])}")
    return 0


def cmd_bench(args) -> int:
    from harness.bench import run_bench
    from harness.executors import make_executor

    make_executor(args.executor, 1, args.ray_address)  # an unknown kind or a missing ray: one line, before any env
    print(run_bench(args.suite, args.steps, executor=args.executor, ray_address=args.ray_address))
    return 0


def _spec_study(args):
    from core.spec import PolicySpec
    from experiments.study import Entry, Study
    from harness.runner import UsageError

    options = {"episodes": args.episodes, "tasks": args.tasks, "latency_calls": args.latency_calls,
               "observations": args.observations}
    if args.file is not None:
        return Study.from_file(args.file, suites=(args.suite,), **options)
    names = [n.strip() for n in args.policies.split(",") if n.strip()]
    if not names:
        raise UsageError("a study needs --policies a,b,... or --file <study.json>")
    return Study(args.name or "specs", (args.suite,), tuple(Entry(n, PolicySpec(n)) for n in names), **options)


def _fraction(text: str) -> float:
    from harness.runner import UsageError

    try:
        return float(text)
    except ValueError:
        raise UsageError(f"budget {text!r} is not 'matched' or a fraction in (0, 1]") from None


def _methods(text: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """`--methods` text -> the methods it names, in order; `default` when it names none; () for `none` (the teacher
    and the student only)."""
    if text.strip() == "none":
        return ()
    return tuple(m for m in text.split(",") if m) or default


def cmd_study(args) -> int:
    from core.registry import UnknownName
    from experiments.study import run_study
    from harness.runner import UsageError
    from policies.base import PolicyLoadError

    try:
        if args.kind == "ablations":
            from experiments.ablations import ablations

            study = ablations(args.suite, args.demos, args.episodes, args.tasks, args.student,
                              latency_calls=args.latency_calls)
            # Only the shipped pair's ablations are the project's report; others stay under results/.
            report_dir = REPORTS if args.student is None else args.results / "studies" / study.name
        elif args.kind == "baselines":
            from experiments.baselines import BUDGETS, METHODS, baselines

            budgets = tuple(b if b == "matched" else _fraction(b) for b in args.budgets.split(",") if b) or BUDGETS
            try:
                study = baselines(args.suite, args.demos, args.results, args.episodes, args.tasks, budgets,
                                  _methods(args.methods, METHODS), args.workers, args.latency_calls, args.student)
            except ValueError as err:
                raise UsageError(str(err)) from None
            report_dir = REPORTS if args.student is None else args.results / "studies" / study.name
        elif args.kind == "robustness":
            from experiments import robustness as rb

            report_dir = REPORTS
            try:
                table = rb.robustness(args.suite, args.demos, args.results, args.episodes, args.tasks,
                                      tuple(p for p in args.perturbations.split(";") if p) or rb.PERTURBATIONS,
                                      _methods(args.methods, rb.METHODS), args.workers,
                                      report_dir, log=lambda m: print(m, flush=True))
            except ValueError as err:
                raise UsageError(str(err)) from None
            study = None
        else:
            study = _spec_study(args)
            report_dir = args.results / "studies" / study.name
        if study is not None:
            table = run_study(study, args.workers, args.results, report_dir, log=lambda m: print(m, flush=True))
    except (UnknownName, PolicyLoadError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None
    print(table.drop(columns=["run"]).to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print(f"written: {report_dir}")
    return 0


def cmd_migrate(args) -> int:
    from harness.migrate import migrate

    moved = migrate(args.results)
    print(f"migrated {len(moved)} run(s) under {args.results} to schema v2")
    return 0


def cmd_query(args) -> int:
    import duckdb
    import pandas as pd

    from harness.index import ResultsIndex
    from harness.runner import UsageError

    try:
        table = ResultsIndex(args.results).sql(args.sql)
    except duckdb.Error as err:
        raise UsageError(f"query failed: {str(err).splitlines()[0]}") from None
    with pd.option_context("display.max_rows", 200, "display.width", 200):
        print(table.to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    from harness import compare_cli, report_cli, train_cli
    from harness.runner import UsageError

    args = build_parser().parse_args(argv)
    commands = {"eval": cmd_eval, "demos": cmd_demos, "profile": cmd_profile, "bench-harness": cmd_bench,
                "study": cmd_study, "migrate-results": cmd_migrate, "query": cmd_query, **train_cli.COMMANDS,
                **compare_cli.COMMANDS, **report_cli.COMMANDS}
    try:
        return commands[args.command](args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work (episodes, epochs) is saved; rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
