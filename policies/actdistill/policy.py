"""The ActDistill student behind the policy protocol: like the teacher, but blocks run only where the router says.

`info["blocks"]` lists the backbone blocks executed at each call (batch 1) as indices of the teacher's blocks
(the student's block i is a fine-tuned copy of teacher block i); `reference` is that teacher.
"""
from __future__ import annotations

from pathlib import Path

import torch

from core.paths import CHECKPOINTS
from policies.actdistill.configuration import ActDistillConfig
from policies.actdistill.student import StudentVLA
from policies.vla.checkpoint import Checkpoint, CheckpointError
from policies.vla.configuration import RolloutParams
from policies.vla.policy import VLAPolicy, teacher_spec


class ActDistillPolicy(VLAPolicy):
    shipped = CHECKPOINTS / "actdistill"
    train_command = "make distill"

    def __init__(self, checkpoint: Path | str, params: RolloutParams = RolloutParams()):
        super().__init__(checkpoint, params)
        self.reference = teacher_spec(self.teacher_sha256, Path(checkpoint))

    def build_model(self, ckpt: Checkpoint) -> StudentVLA:
        if "actdistill" not in ckpt.meta:
            raise CheckpointError("checkpoint has no 'actdistill' config in config.json meta: not a distilled student")
        self.teacher_sha256 = ckpt.meta.get("teacher_sha256", "")
        return StudentVLA(ckpt.config, ActDistillConfig.from_dict(ckpt.meta["actdistill"]))

    def predict(self, vision, lang, mask, proprio) -> tuple[torch.Tensor, list[int]]:
        actions, executed = self.model(vision, lang, mask, proprio)
        return actions[0], torch.nonzero(executed[0]).flatten().tolist()
