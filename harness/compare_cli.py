"""The `compare`, `track` and `history` commands of `harness.cli`.

`compare` and `track` exit 1 when NEW is significantly worse than BASE (the gate), 0 otherwise; bad input raises
`harness.runner.UsageError` with one line naming what is wrong and what is valid (exit 2 in `harness.cli`).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from core.paths import DEFAULT_RESULTS


def add_parsers(sub) -> None:
    """Add the `compare`, `track` and `history` sub-parsers to `sub` (from `ArgumentParser.add_subparsers`)."""
    ref = ("a run folder (relative to --results or absolute), a checkpoint folder, a weights sha256 / spec hash "
           "prefix, or a policy spec (registry name, alias, module:Class, JSON file)")
    cmp = sub.add_parser("compare", help="NEW vs BASE on committed runs: per suite and task, paired tests, the gate")
    cmp.add_argument("--new", required=True, help=ref)
    cmp.add_argument("--base", default=None, help=f"{ref}; default: NEW's family's run in <results>/baselines.json")
    cmp.add_argument("--new-params", default="", help="params of a NEW policy spec, comma-separated key=value")
    cmp.add_argument("--base-params", default="", help="params of a BASE policy spec")
    cmp.add_argument("--family", default=None, help="family of a checkpoint folder (default: from its config); "
                                                    "filters a hash prefix")
    cmp.add_argument("--suite", default=None, help="a suite or group (default: every suite both have runs of)")
    _gate_options(cmp)
    cmp.add_argument("--metrics", default="success",
                     help="comma-separated binary metrics tested: success, or a suite's partial metric (grasped, ...)")
    cmp.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results root")
    cmp.add_argument("--markdown", type=Path, default=None, help="also write a Markdown summary (a CI comment) here")

    tr = sub.add_parser("track", help="a new checkpoint vs its family's baseline, in rounds, stopping at a verdict")
    tr.add_argument("--checkpoint", type=Path, required=True, help="checkpoint folder of the new policy")
    tr.add_argument("--family", default=None, help="registry name or alias (default: from the checkpoint's config)")
    tr.add_argument("--params", default="", help="the family's params, comma-separated key=value")
    tr.add_argument("--suite", default=None,
                    help="default: the checkpoint folder's name (checkpoints/<family>/<suite>)")
    _gate_options(tr)
    tr.add_argument("--beta", type=float, default=0.2,
                    help="most probability of passing a drop of --delta as not worse (1 - power)")
    tr.add_argument("--delta", type=float, default=0.1, help="drop in success rate that must be caught, a fraction")
    tr.add_argument("--round-episodes", type=int, default=1, help="init states added per task each round")
    tr.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    tr.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results root (baseline and new runs)")
    tr.add_argument("--markdown", type=Path, default=None, help="also write a Markdown summary here")
    tr.add_argument("--no-progress", action="store_true")

    hist = sub.add_parser("history", help="PNG of success and GFLOPs per call over a family's checkpoints")
    hist.add_argument("--policy", required=True, help="family (registry name or alias)")
    hist.add_argument("--suite", default=None, help="default: every suite the family has runs of")
    hist.add_argument("--out", type=Path, default=None, help="PNG path (default <results>/history/<policy>.png)")
    hist.add_argument("--results", type=Path, default=DEFAULT_RESULTS)


def _gate_options(parser) -> None:
    parser.add_argument("--alpha", type=float, default=0.05, help="false-alarm rate of the gate per suite and metric")
    parser.add_argument("--margin", type=float, default=0.0,
                        help="drop in success rate tolerated before NEW counts as worse, a fraction (0.05 = 5 pts)")


def _check_gate(args) -> None:
    from harness.runner import UsageError

    if not 0 < args.alpha < 1 or not 0 <= args.margin < 1:
        raise UsageError(f"--alpha must be in (0, 1) and --margin in [0, 1) (a fraction), got {args.alpha}, "
                         f"{args.margin}")


def _write_markdown(path: Path | None, text: str) -> None:
    from core.io import write_text_atomic

    if path is not None:
        write_text_atomic(path, text)
        print(f"written: {path}")


def cmd_compare(args: argparse.Namespace) -> int:
    from core.registry import UnknownName
    from harness.compare import (
        baseline_run, compare, exit_code, format_markdown, format_text, metric_column, resolve,
    )
    from harness.index import ResultsIndex
    from harness.runner import UsageError
    from tasks import expand_suites

    _check_gate(args)
    ix = ResultsIndex(args.results)
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    columns = set(ix.sql("SELECT * FROM episodes LIMIT 0").columns)
    valid = ["success"] + sorted(c.removeprefix("partial_") for c in columns if c.startswith("partial_"))
    unknown = [m for m in metrics if metric_column(m) not in columns]
    if unknown or not metrics:
        raise UsageError(f"unknown metric {unknown[0] if unknown else '(none)'!r}; valid: {', '.join(valid)}")
    try:
        suites = expand_suites(args.suite) if args.suite else None
    except UnknownName as err:
        raise UsageError(str(err)) from None
    new = resolve(args.new, ix, args.new_params, args.family, suites)
    if args.base is not None:
        base = resolve(args.base, ix, args.base_params, args.family, suites)
    else:
        families = ix.sql("SELECT run, family FROM runs").set_index("run")["family"]
        base = {s: baseline_run(ix, families[run], s) for s, run in new.items()}
    comparisons = compare(ix, base, new, metrics, args.alpha, args.margin)
    print(format_text(comparisons, args.alpha, args.margin))
    _write_markdown(args.markdown, format_markdown(comparisons, args.alpha, args.margin))
    return exit_code(comparisons)


def cmd_track(args: argparse.Namespace) -> int:
    from harness.compare import format_markdown, format_text
    from harness.regression import SequentialTest
    from harness.runner import UsageError
    from harness.track import track

    _check_gate(args)
    try:
        test = SequentialTest(args.alpha, args.beta, args.delta, args.margin)
    except ValueError as err:
        raise UsageError(str(err)) from None
    result = track(args.checkpoint, args.family, args.params, args.suite, test, args.round_episodes, args.workers,
                   args.results, progress=not args.no_progress, log=lambda m: print(m, flush=True))
    saved = result.total - result.evaluated
    print(f"\nsequential verdict: {result.verdict or 'undecided when the units ran out: the fixed-n gate decides'}"
          f" after {result.evaluated} of {result.total} paired episodes: saved {saved} "
          f"({100 * saved / result.total:.0f}%) against the fixed-n evaluation\n")
    comparisons = [result.comparison]
    print(format_text(comparisons, args.alpha, args.margin, gate=result.verdict is None))
    decision = None
    if result.verdict is not None:
        # The episodes were collected until the sequential test decided: its verdict is the exit code, and the
        # fixed-n p-values are descriptive.
        decision = (result.exit_code, f"verdict (sequential test): NEW is {result.verdict} ({test.describe()}; the "
                                      f"fixed-n p-values are descriptive after early stopping) "
                                      f"(exit {result.exit_code})")
        print(f"\n{decision[1]}")
    _write_markdown(args.markdown, format_markdown(comparisons, args.alpha, args.margin, decision))
    return result.exit_code


def cmd_history(args: argparse.Namespace) -> int:
    import pandas as pd

    from harness.index import ResultsIndex
    from harness.track import history, plot_history

    points = history(ResultsIndex(args.results), args.policy, args.suite)
    out = plot_history(points, args.policy, args.out or args.results / "history" / f"{args.policy}.png")
    shown = points.assign(success_pct=100 * points["k"] / points["n"], ci95_lo=100 * points["lo"],
                          ci95_hi=100 * points["hi"], sha256=points["checkpoint_sha256"].str[:12])
    with pd.option_context("display.width", 200):
        print(shown[["suite", "started", "sha256", "params", "n", "success_pct", "ci95_lo", "ci95_hi", "gflops",
                     "baseline", "run"]].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print(f"written: {out}")
    return 0


COMMANDS = {"compare": cmd_compare, "track": cmd_track, "history": cmd_history}
