"""The compact VLA: checkpoint save/load and its errors, and that training lowers the loss."""
import json

import numpy as np
import pytest
import torch

from policies.vla.checkpoint import CheckpointError, Normalizer, load_checkpoint, load_state_strict, save_checkpoint
from policies.vla.configuration import VLAConfig
from policies.vla.model import VLA
from policies.vla.train import FeatureSet, TrainConfig, batch_loss

TINY = VLAConfig(width=32, depth=2, heads=2, chunk=4, vision_grid=2, language_tokens=4, head_hidden=32)


def _normalizer(rng):
    return Normalizer.fit(rng.uniform(-1, 1, (100, 7)), rng.normal(size=(100, 8)))


def test_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    model = VLA(TINY)
    digest = save_checkpoint(tmp_path, TINY, _normalizer(rng), model.state_dict(), {"note": "x"})
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.sha256 == digest and ckpt.config == TINY and ckpt.meta == {"note": "x"}
    other = VLA(TINY)
    load_state_strict(other, ckpt.state_dict, "tmp")
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), k


def test_checkpoint_errors_name_the_problem(tmp_path):
    rng = np.random.default_rng(0)
    save_checkpoint(tmp_path, TINY, _normalizer(rng), VLA(TINY).state_dict(), {})
    wider = VLA(VLAConfig(**{**TINY.to_dict(), "width": 48}))
    with pytest.raises(CheckpointError, match="wrong shapes"):
        load_state_strict(wider, load_checkpoint(tmp_path).state_dict, "tmp")
    deeper = VLA(VLAConfig(**{**TINY.to_dict(), "depth": 3}))
    with pytest.raises(CheckpointError, match=r"missing \['blocks.2"):
        load_state_strict(deeper, load_checkpoint(tmp_path).state_dict, "tmp")

    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model"]["widht"] = 3
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unknown VLAConfig field.*widht"):
        load_checkpoint(tmp_path)

    with open(tmp_path / "model.safetensors", "ab") as f:
        f.write(b"corrupt")
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        load_checkpoint(tmp_path)


def test_training_steps_lower_the_loss():
    torch.manual_seed(0)
    n = 32
    fs = FeatureSet(
        vision=torch.randn(n, 2, 1280, 2, 2).half(), lang=torch.randn(2, 4, 384), lang_mask=torch.ones(2, 4, dtype=torch.bool),
        instruction_id=torch.randint(0, 2, (n,)), proprio=torch.randn(n, 8), actions=torch.rand(n, 4, 7) * 2 - 1,
        instructions=["a", "b"],
    )
    model = VLA(TINY)
    opt = torch.optim.AdamW(model.parameters(), lr=TrainConfig().lr)
    idx = torch.arange(n)
    first = batch_loss(model, fs, fs.actions, fs.proprio, idx).item()
    for _ in range(30):
        loss = batch_loss(model, fs, fs.actions, fs.proprio, idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def test_gripper_snaps_to_the_training_datas_command_levels(tmp_path):
    """Our expert also commands 0 (hold the finger opening); snapping that to +1 closed the gripper before the grasp
    and cost the first trained teacher most of its successes."""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (300, 7))
    actions[:, -1] = rng.choice([-1.0, 0.0, 1.0], 300)
    ternary = Normalizer.fit(actions, rng.normal(size=(300, 8)))
    assert ternary.snap_gripper(np.array([-0.8, -0.3, 0.3, 0.6])).tolist() == [-1.0, 0.0, 0.0, 1.0]
    actions[:, -1] = rng.choice([-1.0, 1.0], 300)
    binary = Normalizer.fit(actions, rng.normal(size=(300, 8)))
    assert binary.snap_gripper(np.array([-0.1, 0.1])).tolist() == [-1.0, 1.0]
    save_checkpoint(tmp_path, TINY, ternary, VLA(TINY).state_dict(), {})
    assert load_checkpoint(tmp_path).normalizer.gripper_levels.tolist() == [-1.0, 0.0, 1.0]


def test_training_from_files_is_deterministic_and_resumes_only_the_same_run(tmp_path):
    """The first run encodes and caches the demo frames (building the encoders draws random numbers), the second
    reads the cache: both must train the same weights. A finished state with another schedule is not resumed."""
    from policies.vla.train import train
    from tests.fixture_data import write_demos

    paths = [write_demos(tmp_path / "demos", n=2)]
    tc = TrainConfig(epochs=1, batch_size=4, warmup_steps=1)
    digests = [train(paths, tmp_path / f"run{i}", TINY, tc, tmp_path / "cache", log=lambda m: None) for i in range(2)]
    assert digests[0] == digests[1]
    logs = []
    train(paths, tmp_path / "run0", TINY, TrainConfig(epochs=2, batch_size=4, warmup_steps=1), tmp_path / "cache",
          log=logs.append)
    assert any("from another run" in m for m in logs) and not any(m.startswith("resuming") for m in logs)
