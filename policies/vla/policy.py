"""The teacher VLA behind the policy protocol: camera images + instruction + proprio -> a chunk of K actions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.geometry import quat_xyzw_to_axis_angle
from core.flops import flop_counter
from core.paths import CHECKPOINTS
from core.spec import PolicySpec
from policies.base import NoShippedCheckpoint, PolicyOutput
from policies.vla.checkpoint import Checkpoint, load_checkpoint, load_state_strict
from policies.vla.configuration import RolloutParams
from policies.vla.model import VLA, Encoders
from tasks import SUITE_GROUPS
from tasks.base import ObsSpec, Observation, TaskSpec
from tasks.protocol import parent_suite


def proprio_vector(obs: Observation) -> np.ndarray:
    """(8,) eef position, eef axis-angle, gripper finger positions: the layout demos store."""
    p = obs.proprio
    return np.concatenate([p["eef_pos"], quat_xyzw_to_axis_angle(p["eef_quat"]), p["gripper_qpos"]]).astype(np.float32)


def teacher_spec(sha256: str, near: Path) -> PolicySpec | None:
    """The teacher whose weights have `sha256`, as a spec: a shipped teacher, or a sibling `teacher` folder of the
    checkpoint folder `near`; None when it is nowhere here."""
    for candidate in [*sorted((CHECKPOINTS / "teacher").glob("*")), near.parent / "teacher"]:
        digest = candidate / "model.safetensors.sha256"
        if digest.exists() and digest.read_text().split()[0] == sha256:
            return PolicySpec("teacher", checkpoint=str(candidate))
    return None


class VLAPolicy:
    """Runs at batch 1 under `torch.inference_mode`; executes the first `params.horizon` actions of each predicted
    chunk open loop (all of them by default), then observes again.

    The gripper dimension is regressed continuously and snapped to the nearest command level of the training
    data (`Normalizer.gripper_levels`: -1/+1, plus 0 = hold for our expert's demonstrations).
    `info["blocks"]` lists the backbone blocks executed (all of them for the teacher).
    """

    shipped = CHECKPOINTS / "teacher"
    """Shipped checkpoints, one folder per suite (as OpenVLA ships one fine-tuned checkpoint per LIBERO suite)."""
    train_command = "make train-teacher"

    @classmethod
    def shipped_checkpoint(cls, suite: str | None) -> Path:
        """The shipped checkpoint for `suite`, or for the standard suite it is a variant of (`parent_suite`: a
        LIBERO-PRO variant is evaluated with its parent's checkpoint), or for a suite group holding that suite
        (`tasks.SUITE_GROUPS`); NoShippedCheckpoint naming the shipped suites when there is none."""
        shipped = sorted(d.name for d in cls.shipped.glob("*") if (d / "config.json").exists())
        parent = parent_suite(suite) if suite else None
        # A checkpoint named after a group (`simpler`: one model for the four Bridge tasks) serves its members.
        for name in (parent, *(g for g, members in SUITE_GROUPS.items() if parent in members)):
            if name in shipped:
                return cls.shipped / name
        wanted = f"suite {suite!r}" if suite else "no suite given"
        if parent != suite:
            wanted += f" (a variant of {parent!r})"
        raise NoShippedCheckpoint(
            f"no shipped {cls.shipped.name} checkpoint for {wanted}; shipped for: {', '.join(shipped) or 'none'} "
            f"(train one with `{cls.train_command} SUITE=...` and pass CHECKPOINT=<folder>)"
        )

    Params = RolloutParams

    def __init__(self, checkpoint: Path | str, params: RolloutParams = RolloutParams()):
        path = Path(checkpoint)
        ckpt = load_checkpoint(path)
        self.params = params  # before build_model, which a family's params may steer
        self.checkpoint = path
        self.cfg = ckpt.config
        if params.horizon is not None and params.horizon > self.cfg.chunk:
            raise ValueError(f"horizon={params.horizon} exceeds the checkpoint's chunk of {self.cfg.chunk} actions")
        self.normalizer = ckpt.normalizer
        self.model = self.build_model(ckpt).eval()
        self.load_weights(ckpt)
        self.encoders = Encoders(self.cfg)
        self.checkpoint_sha256 = ckpt.sha256
        self.obs_spec = ObsSpec(cameras=self.cfg.cameras, resolution=(self.cfg.image_size,) * 2)
        self._lang: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._task: TaskSpec | None = None

    reference = None
    """Spec of the model whose block indices `info["blocks"]` uses (None: this policy's own backbone)."""

    def build_model(self, ckpt: Checkpoint) -> VLA:
        return VLA(ckpt.config)

    def load_weights(self, ckpt: Checkpoint) -> None:
        load_state_strict(self.model, ckpt.state_dict, str(self.checkpoint))

    @property
    def block_prefix(self) -> str:
        """Module path of the backbone blocks as `FlopCounterMode` names it (`<prefix>.<i>` is block i)."""
        return f"{type(self.model).__name__}.blocks"

    def predict(self, vision, lang, mask, proprio) -> tuple[torch.Tensor, list[int]]:
        """-> normalised action chunk (K, action_dim) and the backbone blocks executed."""
        return self.model(vision, lang, mask, proprio)[0], list(range(self.cfg.depth))

    def reset(self, task: TaskSpec, seed: int) -> None:
        self._task = task
        if task.instruction not in self._lang:
            self._lang[task.instruction] = self.encoders.instruction([task.instruction])

    @torch.inference_mode()
    def act(self, obs: Observation) -> PolicyOutput:
        images = torch.from_numpy(np.stack([obs.images[c] for c in self.cfg.cameras]))[None]
        lang, mask = self._lang[self._task.instruction]
        features = self.cfg.proprio_features(proprio_vector(obs))
        proprio = torch.from_numpy(self.normalizer.normalize_proprio(features)[None].astype(np.float32))
        pred, blocks = self.predict(self.encoders.vision(images), lang, mask, proprio)
        actions = self.normalizer.denormalize_actions(pred.numpy())
        actions[:, -1] = self.normalizer.snap_gripper(actions[:, -1])
        return PolicyOutput(np.clip(actions[:self.params.horizon], -1.0, 1.0), {"blocks": blocks})

    # Profiling hooks (the optional `policies.base.Profilable` protocol), used by `harness.policy_profile`.

    def flop_components(self) -> dict[str, str]:
        """Component of one `act` call -> module path prefix as `FlopCounterMode` names it."""
        model = type(self.model).__name__
        return {"vision": "VisionEncoder", "backbone": f"{model}.blocks", "head": f"{model}.head"}

    def instruction_flops(self, instruction: str) -> int:
        """FLOPs of encoding an instruction: paid once per episode (the embedding is cached), not per call."""
        with flop_counter() as counter:
            self.encoders.instruction([instruction])
        return counter.get_total_flops()
