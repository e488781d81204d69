"""Checkpoint I/O: a folder with `model.safetensors`, `config.json` and `model.safetensors.sha256`.

`config.json` holds the model config, the normalisation statistics (actions and proprio, from the training
data) and free-form training metadata. Load errors name what is wrong: a missing file, a hash mismatch,
unknown config fields, or tensors with missing/unexpected names or wrong shapes.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from policies.base import PolicyLoadError
from policies.vla.configuration import VLAConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
HASH = "model.safetensors.sha256"


class CheckpointError(PolicyLoadError):
    """A checkpoint that cannot be used; the message says which file or tensor and why."""


@dataclass
class Normalizer:
    """Maps actions to [-1, 1] with the 1st/99th percentiles (as OpenVLA's q99 bounds) and proprio to z-scores."""

    action_low: np.ndarray
    action_high: np.ndarray
    proprio_mean: np.ndarray
    proprio_std: np.ndarray
    gripper_levels: np.ndarray = field(default_factory=lambda: np.array([-1.0, 1.0], np.float32))
    """The discrete gripper commands of the training data; a predicted gripper value snaps to the nearest.
    Official LIBERO data is binary (-1 open, +1 close); our expert also commands 0 (hold the current opening)
    while pre-shaping the fingers, and snapping that to +1 closes the gripper before the grasp."""

    @classmethod
    def fit(cls, actions: np.ndarray, proprio: np.ndarray) -> "Normalizer":
        low, high = np.percentile(actions, 1, axis=0), np.percentile(actions, 99, axis=0)
        # The gripper is discrete in [-1, 1]: keep its natural range instead of percentiles that may coincide.
        low[-1], high[-1] = -1.0, 1.0
        levels = np.unique(actions[:, -1])
        levels = levels if len(levels) <= 3 else np.array([-1.0, 1.0])
        return cls(low, np.maximum(high, low + 1e-6), proprio.mean(0), proprio.std(0) + 1e-6, levels)

    def snap_gripper(self, g: np.ndarray) -> np.ndarray:
        """Continuous gripper predictions -> the nearest level in `gripper_levels`."""
        levels = np.asarray(self.gripper_levels, np.float64)
        return levels[np.abs(np.asarray(g, np.float64)[..., None] - levels).argmin(-1)]

    def normalize_actions(self, a):
        return np.clip(2 * (a - self.action_low) / (self.action_high - self.action_low) - 1, -1, 1)

    def denormalize_actions(self, a):
        return (np.asarray(a) + 1) / 2 * (self.action_high - self.action_low) + self.action_low

    def normalize_proprio(self, p):
        return (p - self.proprio_mean) / self.proprio_std

    def to_dict(self) -> dict:
        return {k: np.asarray(v, np.float64).tolist() for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        return cls(**{k: np.asarray(v, np.float32) for k, v in d.items()})


@dataclass
class Checkpoint:
    config: VLAConfig
    normalizer: Normalizer
    state_dict: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)
    sha256: str = ""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(folder: Path, config: VLAConfig, normalizer: Normalizer, state_dict: dict, meta: dict,
                    dtype: torch.dtype = torch.float32) -> str:
    """Write atomically (temp names, then rename); returns the weights' sha256."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in state_dict.items()}
    tmp = folder / f".{WEIGHTS}.tmp"
    save_file(tensors, str(tmp))
    digest = sha256_file(tmp)
    cfg_tmp = folder / f".{CONFIG}.tmp"
    cfg_tmp.write_text(json.dumps(
        {"model": config.to_dict(), "normalizer": normalizer.to_dict(), "meta": meta}, indent=1, sort_keys=True
    ))
    os.replace(tmp, folder / WEIGHTS)
    os.replace(cfg_tmp, folder / CONFIG)
    (folder / HASH).write_text(digest + "\n")
    return digest


def load_checkpoint(folder: Path) -> Checkpoint:
    folder = Path(folder)
    for name in (WEIGHTS, CONFIG, HASH):
        if not (folder / name).is_file():
            raise CheckpointError(f"checkpoint {folder}: missing {name}")
    digest = sha256_file(folder / WEIGHTS)
    expected = (folder / HASH).read_text().split()[0]
    if digest != expected:
        raise CheckpointError(f"checkpoint {folder}: {WEIGHTS} sha256 {digest[:12]} != recorded {expected[:12]}")
    try:
        raw = json.loads((folder / CONFIG).read_text())
        config = VLAConfig.from_dict(raw["model"])
        normalizer = Normalizer.from_dict(raw["normalizer"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {folder}: bad {CONFIG}: {err}") from None
    state = {k: v.float() for k, v in load_file(str(folder / WEIGHTS)).items()}
    return Checkpoint(config, normalizer, state, raw.get("meta", {}), digest)


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict that reports every missing, unexpected or mis-shaped tensor in one message."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in own if k in state
              and state[k].shape != own[k].shape]
    problems = [f"missing {missing[:5]}" if missing else "", f"unexpected {unexpected[:5]}" if unexpected else "",
                f"wrong shapes {shapes[:5]}" if shapes else ""]
    problems = [p for p in problems if p]
    if problems:
        raise CheckpointError(f"checkpoint {source} does not fit the model: {'; '.join(problems)}")
    module.load_state_dict(state, strict=True)
