"""The ActDistill student behind the policy protocol: like the teacher, but blocks run only where the router says.

`info["blocks"]` lists the backbone blocks executed at each call (batch 1), for profiling and reports.
"""
from __future__ import annotations

import torch

from policies.actdistill.configuration import ActDistillConfig
from policies.actdistill.student import StudentVLA
from policies.vla.checkpoint import Checkpoint, CheckpointError
from core.paths import CHECKPOINTS
from policies.vla.policy import VLAPolicy


class ActDistillPolicy(VLAPolicy):
    shipped = CHECKPOINTS / "actdistill"
    train_command = "make distill"

    def build_model(self, ckpt: Checkpoint) -> StudentVLA:
        if "actdistill" not in ckpt.meta:
            raise CheckpointError("checkpoint has no 'actdistill' config in config.json meta: not a distilled student")
        return StudentVLA(ckpt.config, ActDistillConfig.from_dict(ckpt.meta["actdistill"]))

    def predict(self, vision, lang, mask, proprio) -> tuple[torch.Tensor, list[int]]:
        actions, executed = self.model(vision, lang, mask, proprio)
        return actions[0], torch.nonzero(executed[0]).flatten().tolist()
