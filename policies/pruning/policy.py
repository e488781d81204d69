"""Static-pruned teacher: the teacher's checkpoint with only some backbone blocks kept, the same for every input.

The kept blocks run in order on the residual stream; the others are removed from the model (not skipped at run
time). `info["blocks"]` reports the kept blocks as teacher indices, so the harness accounts its compute against
the teacher (`reference` is the teacher checkpoint it was cut from).
"""
from __future__ import annotations

from pathlib import Path

import torch

from core.spec import PolicySpec
from policies.base import PolicyLoadError
from policies.pruning.configuration import PruningParams
from policies.vla.checkpoint import Checkpoint
from policies.vla.model import VLA
from policies.vla.policy import VLAPolicy


class PrunedPolicy(VLAPolicy):
    Params = PruningParams

    def __init__(self, checkpoint: Path | str, params: PruningParams):
        self.params = params
        super().__init__(checkpoint)
        self.reference = PolicySpec("teacher", checkpoint=str(checkpoint))

    def build_model(self, ckpt: Checkpoint) -> VLA:
        model = VLA(ckpt.config)
        try:
            self.kept = self.params.kept(ckpt.config.depth)
        except ValueError as err:
            raise PolicyLoadError(f"policy 'pruned': {err}") from None
        return model

    def load_weights(self, ckpt: Checkpoint) -> None:
        super().load_weights(ckpt)
        self.model.blocks = torch.nn.ModuleList(self.model.blocks[i] for i in self.kept)

    def predict(self, vision, lang, mask, proprio) -> tuple[torch.Tensor, list[int]]:
        return self.model(vision, lang, mask, proprio)[0], list(self.kept)
