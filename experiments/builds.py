"""Build steps of studies: models derived from a teacher and its shipped student on the student's demos.

`Sources.of(suite, demos)` checks that the student was distilled from the teacher and reads the student's config
and schedule from its checkpoint; its methods return resumable `Entry.build` steps (a finished build only returns
its folder) that distil other students, prune, fine-tune or train an early-exit model with that schedule, sharing
the demos' feature cache and the teacher's stage-1 targets in `<demos>/cache`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from experiments.study import BuildContext

Build = Callable[[BuildContext], Path]


@dataclass(frozen=True)
class Sources:
    suite: str
    demos: Path
    teacher: Path
    student: Path
    acfg: object
    """The student's `ActDistillConfig`."""
    schedule: object
    """The student's `DistillSchedule`: the optimiser steps every derived model trains with."""
    paths: tuple[Path, ...]
    """The suite's demo files (needed only by builds: `features`)."""

    @classmethod
    def of(cls, suite: str, demos: Path, student: Path | None = None, teacher: Path | None = None) -> "Sources":
        """The shipped student and teacher of `suite` by default. CheckpointError when the student is not a distilled
        student of the teacher."""
        from policies.actdistill.configuration import ActDistillConfig
        from policies.actdistill.policy import ActDistillPolicy
        from policies.actdistill.train import DistillSchedule
        from policies.vla.checkpoint import CheckpointError, load_checkpoint
        from policies.vla.policy import VLAPolicy
        from policies.vla.train import demo_files

        student_dir = Path(student) if student else ActDistillPolicy.shipped_checkpoint(suite)
        ckpt = load_checkpoint(student_dir)
        if "actdistill" not in ckpt.meta:
            raise CheckpointError(f"{student_dir} is not a distilled student (no 'actdistill' in its config meta)")
        teacher_dir = Path(teacher) if teacher else VLAPolicy.shipped_checkpoint(suite)
        if load_checkpoint(teacher_dir).sha256 != ckpt.meta["teacher_sha256"]:
            raise CheckpointError(f"{student_dir} was not distilled from the teacher {teacher_dir}")
        return cls(suite, Path(demos), teacher_dir, student_dir, ActDistillConfig.from_dict(ckpt.meta["actdistill"]),
                   DistillSchedule(**ckpt.meta["schedule"]), tuple(demo_files(demos, suite)))

    def require_demos(self) -> None:
        """FileNotFoundError (one line) when the suite has no demo files."""
        if not self.paths:
            raise FileNotFoundError(f"no demo files for {self.suite} under {self.demos}; run `make demos "
                                    f"SUITE={self.suite}`")

    @property
    def cache(self) -> Path:
        return self.demos / "cache"

    def features(self, log=print):
        from policies.vla.checkpoint import load_checkpoint
        from policies.vla.train import cached_features

        self.require_demos()
        return cached_features(list(self.paths), load_checkpoint(self.teacher).config, self.cache, log=log)

    def student_variant(self, change: Callable[[BuildContext], object]) -> Build:
        """A student distilled with the config `change(ctx)` returns, the schedule of the shipped one."""
        def build(ctx: BuildContext) -> Path:
            from policies.actdistill.train import distill

            distill(self.teacher, self.features(ctx.log), ctx.out, change(ctx), self.schedule, log=ctx.log,
                    stage1_dir=self.cache)
            return ctx.out
        return build

    def pruned(self, params, fine_tune: bool) -> Build:
        """The teacher pruned by `params` (`PruningParams`), as is or fine-tuned with the student's stage-2 steps,
        in `<out>/../blocks-<kept>[-ft]`: methods that keep the same blocks share one checkpoint (and training)."""
        def build(ctx: BuildContext) -> Path:
            from policies.pruning.train import build_pruned, select_blocks
            from policies.vla.checkpoint import load_checkpoint

            teacher = load_checkpoint(self.teacher)
            features = selection = None
            if params.method == "importance":  # the one method whose blocks depend on the data
                features = self.features(ctx.log)
                selection = select_blocks(teacher, features, params)
            kept = selection[0] if selection else params.kept(teacher.config.depth)
            out = ctx.out.parent / f"blocks-{'_'.join(map(str, kept))}{'-ft' if fine_tune else ''}"
            if not (out / "config.json").exists():  # written last, once the model is complete
                if features is None:
                    features = self.features(ctx.log)
                build_pruned(self.teacher, features, out, params, self.schedule if fine_tune else None,
                             self.acfg.beta, self.cache, log=ctx.log, selection=selection)
            return out
        return build

    def early_exit(self) -> Build:
        """The multi-exit model, trained once per suite (every target threshold shares it) in `<out>/../early-exit`."""
        def build(ctx: BuildContext) -> Path:
            from policies.early_exit.train import build_early_exit

            out = ctx.out.parent / "early-exit"
            if not (out / "config.json").exists():
                build_early_exit(self.teacher, self.features(ctx.log), out, self.schedule, self.acfg.beta, self.cache,
                                 log=ctx.log)
            return out
        return build
