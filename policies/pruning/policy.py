"""Teachers with blocks removed or skipped, the baselines a routed student is measured against.

- `PrunedPolicy` (static): only some backbone blocks kept, the same for every input; the others are removed
  from the model (not skipped at run time). As is from a teacher, or from a pruned checkpoint (importance
  scores, fine-tuning: `policies.pruning.train`).
- `RandomSkipPolicy` (dynamic control): every block runs with probability p at each call, independently of the
  input: the compute of a router without its learning.
Kept blocks run in order on the residual stream. `info["blocks"]` reports them as teacher indices, so the harness
accounts compute against the teacher (`reference` is the teacher checkpoint they come from).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from core.spec import PolicySpec
from policies.base import PolicyLoadError
from policies.pruning.configuration import PruningParams, RandomSkipParams
from policies.vla.checkpoint import Checkpoint
from policies.vla.model import VLA
from policies.vla.policy import VLAPolicy, teacher_spec
from tasks.base import Observation, TaskSpec


class PrunedPolicy(VLAPolicy):
    """From a teacher checkpoint: the blocks `params` select (first / uniform / blocks), pruned at load. From a
    pruned checkpoint (`policies.pruning.train`: importance, `-ft`): its own blocks, which must be those `params`
    select (importance by the scores stored with it); `reference` is then the teacher it came from, found by
    sha256."""

    Params = PruningParams

    def __init__(self, checkpoint: Path | str, params: PruningParams):
        super().__init__(checkpoint, params)
        self.reference = (PolicySpec("teacher", checkpoint=str(checkpoint)) if self.pruning is None
                          else teacher_spec(self.pruning["teacher_sha256"], Path(checkpoint)))

    def build_model(self, ckpt: Checkpoint) -> VLA:
        self.pruning = ckpt.meta.get("pruning")
        if self.pruning is None:
            try:
                self.kept = self.params.kept(ckpt.config.depth)
            except ValueError as err:
                raise PolicyLoadError(f"policy 'pruned': {err}") from None
            return VLA(ckpt.config)
        self.kept = tuple(self.pruning["kept"])
        scores = self.pruning["block_influence"]
        try:
            selected = self.params.kept(len(scores), scores)
        except ValueError as err:
            raise PolicyLoadError(f"policy 'pruned': {err}") from None
        if selected != self.kept:
            raise PolicyLoadError(f"policy 'pruned': checkpoint keeps blocks {list(self.kept)}, params "
                                  f"{self.params.method} keep={self.params.keep} select {list(selected)}")
        return VLA(ckpt.config)

    def load_weights(self, ckpt: Checkpoint) -> None:
        super().load_weights(ckpt)
        if self.pruning is None:
            self.model.blocks = torch.nn.ModuleList(self.model.blocks[i] for i in self.kept)

    def predict(self, vision, lang, mask, proprio) -> tuple[torch.Tensor, list[int]]:
        return self.model(vision, lang, mask, proprio)[0], list(self.kept)


class RandomSkipPolicy(VLAPolicy):
    """Each call runs each teacher block with probability `p`. The draws are seeded per episode from the params'
    seed, the episode seed, the task and the episode's first observation (init states differ there), so an
    episode is a function of its unit."""

    Params = RandomSkipParams

    def __init__(self, checkpoint: Path | str, params: RandomSkipParams):
        super().__init__(checkpoint, params)
        self.reference = PolicySpec("teacher", checkpoint=str(checkpoint))
        self._rng: np.random.Generator | None = None
        self._episode_seed: list[int] = []

    def reset(self, task: TaskSpec, seed: int) -> None:
        super().reset(task, seed)
        self._episode_seed, self._rng = [self.params.seed, seed, task.index], None

    def act(self, obs: Observation):
        if self._rng is None:
            first = hashlib.sha256(b"".join(np.asarray(v).tobytes() for _, v in sorted(obs.proprio.items())))
            self._rng = np.random.default_rng([*self._episode_seed, int.from_bytes(first.digest()[:8], "little")])
        return super().act(obs)

    def predict(self, vision, lang, mask, proprio) -> tuple[torch.Tensor, list[int]]:
        kept = [i for i in range(len(self.model.blocks)) if self._rng.random() < self.params.p]
        h, key_mask = self.model.embed(vision, lang, mask, proprio)
        for i in kept:
            h = self.model.blocks[i](h, key_mask)
        return self.model.action_head(h)[0], kept
