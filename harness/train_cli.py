"""The `train-teacher` and `distill` commands of `harness.cli`.

Every option defaults to None, meaning the config dataclass's default (`TrainConfig.for_suite`,
`ActDistillConfig`, `DistillSchedule`): only what the user set overrides the shipped recipe. Bad input raises
`harness.runner.UsageError` with one line naming what is wrong and what is valid.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path


def add_parsers(sub) -> None:
    """Add the `train-teacher` and `distill` sub-parsers to `sub` (from `ArgumentParser.add_subparsers`)."""
    teacher = sub.add_parser("train-teacher", help="train the compact VLA teacher on demos (resumable)")
    teacher.add_argument("--suite", required=True, help="suite(s), comma-separated, or a group (libero)")
    teacher.add_argument("--demos", type=Path, required=True, help="folder with <suite>/*_demo.hdf5")
    teacher.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    teacher.add_argument("--epochs", type=int, default=None, help="default: the suite's shipped recipe")
    teacher.add_argument("--rotation", default=None,
                         help="end-effector orientation in the proprio: axis_angle or rot6d (VLAConfig.rotation)")

    distill = sub.add_parser("distill", help="ActDistill: teacher -> routed student (resumable)")
    distill.add_argument("--teacher", type=Path, required=True, help="teacher checkpoint folder")
    distill.add_argument("--suite", required=True, help="suite(s) whose demos to distil on, comma-separated")
    distill.add_argument("--demos", type=Path, required=True, help="folder with <suite>/*_demo.hdf5")
    distill.add_argument("--out", type=Path, required=True, help="student checkpoint folder to write")
    distill.add_argument("--budget", default=None,
                         help="most fraction of blocks to execute, in (0, 1], or 'none' for no budget term")
    distill.add_argument("--budget-weight", type=float, default=None, help="weight of the budget term, >= 0")
    distill.add_argument("--no-graph", dest="graph", action="store_const", const=False, default=None,
                         help="ablation: plain output distillation, no probes")
    distill.add_argument("--static-blocks", default=None,
                         help="ablation: comma-separated blocks always run, no router")
    distill.add_argument("--stage1-epochs", type=int, default=None)
    distill.add_argument("--stage2-epochs", type=int, default=None)


def _demo_paths(args) -> list[Path]:
    from core.registry import UnknownName
    from harness.runner import UsageError
    from policies.vla.train import demo_files

    try:
        paths = demo_files(args.demos, args.suite)
    except UnknownName as err:
        raise UsageError(str(err)) from None
    if not paths:
        raise UsageError(f"no demo files for {args.suite} under {args.demos}; run `make demos SUITE={args.suite}` first")
    return paths


def _log(msg: str) -> None:
    print(msg, flush=True)


def cmd_train_teacher(args: argparse.Namespace) -> int:
    from harness.runner import UsageError
    from core.demofile import CAMERA_KEYS, demo_cameras, demo_resolution
    from policies.vla.configuration import PROPRIO_ROTATIONS, VISION_STRIDE, VLAConfig
    from policies.vla.train import TrainConfig, train

    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    if args.rotation is not None and args.rotation not in PROPRIO_ROTATIONS:
        raise UsageError(f"--rotation {args.rotation!r}; valid: {', '.join(PROPRIO_ROTATIONS)}")
    paths = _demo_paths(args)
    cameras = demo_cameras(paths)
    if not cameras:
        raise UsageError(f"the demo files for {args.suite} under {args.demos} share no camera; valid: "
                         f"{', '.join(CAMERA_KEYS)}")
    tc = TrainConfig.for_suite(args.suite)
    if args.epochs is not None:
        tc = replace(tc, epochs=args.epochs)
    # The cameras its demos hold (SIMPLER's Bridge camera, LIBERO's two), at their resolution, one vision token per
    # native feature-map cell (finer tokens come with more pixels: `make demos RESOLUTION=...`).
    try:
        size = demo_resolution(paths, cameras)
    except ValueError as err:
        raise UsageError(str(err)) from None
    cfg = replace(VLAConfig(), cameras=cameras, image_size=size, vision_grid=max(1, size // VISION_STRIDE))
    if args.rotation is not None:
        cfg = replace(cfg, rotation=args.rotation, proprio_dim=None)
    digest = train(paths, args.out, cfg=cfg, tc=tc, cache_dir=args.demos / "cache",
                   log=_log)
    print(f"teacher checkpoint {args.out} sha256 {digest}")
    return 0


def _distill_overrides(args: argparse.Namespace, depth: int) -> tuple[dict, dict]:
    """(ActDistillConfig fields, DistillSchedule fields) the user set, validated."""
    from harness.runner import UsageError

    acfg: dict = {}
    if args.budget is not None:
        try:
            budget = None if args.budget.strip().lower() == "none" else float(args.budget)
            valid = budget is None or 0 < budget <= 1
        except ValueError:
            valid = False
        if not valid:
            raise UsageError(f"--budget must be a fraction in (0, 1] or 'none', got {args.budget!r}")
        acfg["budget"] = budget
    if args.budget_weight is not None:
        if args.budget_weight < 0:
            raise UsageError(f"--budget-weight must be >= 0, got {args.budget_weight}")
        acfg["budget_weight"] = args.budget_weight
    if args.graph is not None:
        acfg["graph"] = args.graph
    if args.static_blocks is not None:
        items = [b.strip() for b in args.static_blocks.split(",") if b.strip()]
        if not items or not all(b.isdigit() and int(b) < depth for b in items):
            raise UsageError(f"--static-blocks must be comma-separated block indices 0..{depth - 1}, "
                             f"got {args.static_blocks!r}")
        acfg["static_blocks"] = tuple(int(b) for b in items)
    sch = {}
    for name in ("stage1_epochs", "stage2_epochs"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
            sch[name] = value
    return acfg, sch


def cmd_distill(args: argparse.Namespace) -> int:
    from harness.runner import UsageError
    from policies.actdistill.configuration import ActDistillConfig
    from policies.actdistill.train import DistillSchedule, distill
    from policies.vla.checkpoint import CheckpointError, load_checkpoint
    from policies.vla.train import cached_features

    paths = _demo_paths(args)
    try:
        teacher_cfg = load_checkpoint(args.teacher).config
    except CheckpointError as err:
        raise UsageError(str(err)) from None
    acfg, sch = _distill_overrides(args, teacher_cfg.depth)
    fs = cached_features(paths, teacher_cfg, args.demos / "cache", log=_log)
    digest = distill(args.teacher, fs, args.out, ActDistillConfig(**acfg), DistillSchedule(**sch), log=_log,
                     stage1_dir=args.demos / "cache")
    print(f"student checkpoint {args.out} sha256 {digest}")
    return 0


COMMANDS = {"train-teacher": cmd_train_teacher, "distill": cmd_distill}
"""Sub-command name -> function(args) -> exit status, for `harness.cli`'s dispatch."""
