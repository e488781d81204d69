"""The early-exit baseline behind the policy protocol: the multi-exit VLA with its threshold calibrated to
`params.target` on the checkpoint's calibration frames. `info["blocks"]` are blocks 0..l, teacher indices (the
backbone is a fine-tuned copy of the teacher's); `reference` is that teacher."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from policies.early_exit.configuration import EarlyExitParams
from policies.early_exit.modeling import MultiExitVLA, calibrate
from policies.vla.checkpoint import Checkpoint, CheckpointError
from policies.vla.policy import VLAPolicy, teacher_spec


class EarlyExitPolicy(VLAPolicy):
    Params = EarlyExitParams
    train_command = "make baselines"

    def __init__(self, checkpoint: Path | str, params: EarlyExitParams):
        super().__init__(checkpoint, params)
        self.reference = teacher_spec(self.teacher_sha256, Path(checkpoint))

    @classmethod
    def shipped_checkpoint(cls, suite: str | None) -> Path:
        from policies.base import NoShippedCheckpoint
        from tasks.protocol import parent_suite

        # A variant suite is evaluated with a model built on its parent's demonstrations.
        raise NoShippedCheckpoint(f"no early-exit checkpoint is shipped; build one with `{cls.train_command} "
                                  f"SUITE={parent_suite(suite) if suite else '...'}` and pass CHECKPOINT=<folder>")

    def build_model(self, ckpt: Checkpoint) -> MultiExitVLA:
        meta = ckpt.meta.get("early_exit")
        if meta is None:
            raise CheckpointError("checkpoint has no 'early_exit' entry in its config.json meta: not a multi-exit model")
        self.teacher_sha256 = ckpt.meta.get("teacher_sha256", "")
        self.threshold, self.calibrated_fraction = calibrate(np.asarray(meta["calibration"]["distances"]),
                                                             self.params.target)
        return MultiExitVLA(ckpt.config)

    def predict(self, vision, lang, mask, proprio) -> tuple[torch.Tensor, list[int]]:
        actions, executed = self.model(vision, lang, mask, proprio, self.threshold)
        return actions[0], list(range(executed))
