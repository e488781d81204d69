"""The compact VLA: checkpoint save/load and its errors; the shared training loop (lowers the loss, resumes to the
weights of an uninterrupted run, is the only loop) and the teacher's recipe."""
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from policies.training import fit
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
    first = batch_loss(model, fs, fs.actions, fs.proprio, torch.arange(n)).item()

    def loss(idx):
        l1 = batch_loss(model, fs, fs.actions, fs.proprio, idx)
        return l1, {"l1": l1.item()}

    history = fit([(model.parameters(), TrainConfig().lr)], loss, n, batch_size=n, epochs=60, warmup_steps=1,
                  weight_decay=0.0, clip_norm=None, epoch_seed=lambda e: e, modules={"model": model}, log=lambda m: None)
    assert [h["epoch"] for h in history] == list(range(1, 61)) and history[-1]["l1"] < 0.7 * first


class _Interrupted(Exception):
    pass


def _fit_toy(state_path, log):
    """Two epochs of a small dropout model with two parameter groups; returns its weights."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 2))
    head = torch.nn.Linear(2, 1)
    x, y = torch.randn(10, 4), torch.randn(10, 1)

    def loss(idx):
        mse = F.mse_loss(head(model(x[idx])), y[idx])
        return mse, {"mse": mse.item()}

    fit([(model.parameters(), 1e-2), (head.parameters(), 3e-2)], loss, len(x), batch_size=4, epochs=2, warmup_steps=2,
        weight_decay=0.01, clip_norm=0.5, epoch_seed=lambda e: 7 + e, modules={"model": model, "head": head},
        state_path=state_path, run_key={"toy": 1}, label="toy", log=log)
    return {**model.state_dict(), **{f"head.{k}": v for k, v in head.state_dict().items()}}


def test_the_shared_loop_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    """Killed after epoch 1 and resumed: the modules, optimizer and dropout RNG continue as if never stopped."""
    def killed_after_epoch_1(msg):
        if msg.startswith("toy epoch 1/2 done"):
            raise _Interrupted

    with pytest.raises(_Interrupted):
        _fit_toy(tmp_path / "state.pt", killed_after_epoch_1)
    logs = []
    resumed = _fit_toy(tmp_path / "state.pt", logs.append)
    assert "toy: resuming after epoch 1" in logs and not any(m.startswith("toy epoch 1/2") for m in logs)
    uninterrupted = _fit_toy(None, lambda m: None)
    assert resumed.keys() == uninterrupted.keys()
    for k in resumed:
        assert torch.equal(resumed[k], uninterrupted[k]), k


def test_every_optimiser_step_is_in_the_shared_loop():
    """Recipes (teacher, distillation stages, fine-tuned baselines) call `policies.training.fit` and hold no loop."""
    root = Path(__file__).resolve().parents[1]
    loops = [str(p.relative_to(root)) for folder in ("policies", "harness", "core", "tasks")
             for p in (root / folder).rglob("*.py")
             if p != root / "policies" / "training.py"
             and any(s in p.read_text() for s in (".backward(", "torch.optim.", "clip_grad_norm_"))]
    assert loops == []


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
    assert any("from another run" in m for m in logs) and not any("resuming" in m for m in logs)


def test_the_teacher_recipe_is_the_shipped_teachers():
    root = Path(__file__).resolve().parents[1] / "checkpoints" / "teacher"
    shipped = {c.parent.name: json.loads(c.read_text())["meta"]["train"] for c in root.glob("*/config.json")}
    assert {"libero_spatial", "libero_object"} <= set(shipped)
    for suite, train in shipped.items():
        assert asdict(TrainConfig.for_suite(suite)) == train, suite


def test_train_teacher_command_refuses_bad_input_in_one_line(tmp_path):
    import argparse

    from harness.runner import UsageError
    from harness.train_cli import COMMANDS, add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    base = ["train-teacher", "--suite", "libero_spatial", "--demos", str(tmp_path), "--out", str(tmp_path / "out")]
    with pytest.raises(UsageError, match=r"^no demo files for libero_spatial under .*make demos"):
        COMMANDS["train-teacher"](parser.parse_args(base))
    with pytest.raises(UsageError, match=r"^--epochs must be >= 1, got 0$"):
        COMMANDS["train-teacher"](parser.parse_args(base + ["--epochs", "0"]))
    with pytest.raises(UsageError, match=r"^unknown suite 'nosuch'; valid: .*libero_spatial"):
        COMMANDS["train-teacher"](parser.parse_args(base[:2] + ["nosuch"] + base[3:]))
    with pytest.raises(UsageError, match=r"^--rotation 'euler'; valid: axis_angle, rot6d$"):
        COMMANDS["train-teacher"](parser.parse_args(base + ["--rotation", "euler"]))


def test_a_checkpoint_named_after_a_suite_group_serves_its_members_and_a_suites_own_comes_first(tmp_path):
    from policies.base import NoShippedCheckpoint
    from policies.vla.policy import VLAPolicy

    for name in ("simpler", "simpler_stack", "libero_spatial"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")

    class Shipped(VLAPolicy):
        shipped = tmp_path

    assert Shipped.shipped_checkpoint("simpler_carrot") == Shipped.shipped_checkpoint("simpler_carrot_train") == (
        tmp_path / "simpler")
    assert Shipped.shipped_checkpoint("simpler_stack") == tmp_path / "simpler_stack"
    assert Shipped.shipped_checkpoint("libero_spatial_lan") == tmp_path / "libero_spatial"
    with pytest.raises(NoShippedCheckpoint, match="for suite 'libero_goal'; shipped for: libero_spatial, simpler, "):
        Shipped.shipped_checkpoint("libero_goal")


def test_a_teacher_sees_the_cameras_and_frame_size_its_demo_files_share(tmp_path):
    from core.demofile import Demo, demo_cameras, demo_path, demo_resolution, write_task_demos

    t, frame = 4, np.zeros((2, 8, 8, 3), np.uint8)

    def write(name: str, cameras: tuple[str, ...]) -> Path:
        path = demo_path(tmp_path, "suite", name)
        demo = Demo("x", np.zeros((t, 7)), np.zeros((t, 4)), np.zeros((t, 3)), np.zeros((t, 3)), np.zeros((t, 2)),
                    images={c: frame for c in cameras}, frame_index=np.array([0, 2]))
        write_task_demos(path, [demo], {"suite": "suite"})
        return path

    libero, simpler = write("a", ("wrist", "agentview")), write("b", ("agentview",))
    assert demo_cameras([libero]) == ("agentview", "wrist")  # the model's camera order, whatever the file's
    assert demo_cameras([simpler]) == demo_cameras([libero, simpler]) == ("agentview",)
    assert demo_resolution([libero, simpler], ("agentview",)) == 8
    frame = np.zeros((2, 8, 6, 3), np.uint8)
    with pytest.raises(ValueError, match=r"demo frames must share one square size; found \[\(8, 6\)\]"):
        demo_resolution([write("c", ("agentview",))], ("agentview",))


def test_rot6d_proprio_is_the_rotation_matrix_and_continuous_where_axis_angle_jumps():
    import mujoco

    from core.geometry import quat_xyzw_to_axis_angle

    rng = np.random.default_rng(0)
    quats = rng.normal(size=(50, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    cfg = VLAConfig(rotation="rot6d")
    assert cfg.proprio_dim == 11 and VLAConfig().proprio_dim == 8
    for q in quats:
        raw = np.concatenate([[0.1, 0.2, 0.3], quat_xyzw_to_axis_angle(q), [0.04, -0.04]])
        matrix = np.zeros(9)
        mujoco.mju_quat2Mat(matrix, q[[3, 0, 1, 2]])  # MuJoCo's quaternions are wxyz
        feat = cfg.proprio_features(raw)
        np.testing.assert_allclose(feat[3:9], matrix.reshape(3, 3)[:, :2].T.reshape(6), atol=1e-5)
        np.testing.assert_array_equal(feat[[0, 1, 2, 9, 10]], raw[[0, 1, 2, 6, 7]].astype(np.float32))
    # Turned about z just either side of pi: axis-angle jumps by ~2 pi, rot6d barely moves.
    near_pi = [np.array([0.0, 0.0, np.pi - 1e-3]), np.array([0.0, 0.0, -(np.pi - 1e-3)])]
    a, b = (cfg.proprio_features(np.concatenate([np.zeros(3), v, np.zeros(2)])) for v in near_pi)
    assert np.abs(near_pi[0] - near_pi[1]).max() > 6 and np.abs(a - b).max() < 3e-3
    with pytest.raises(ValueError, match="proprio_dim=8 does not fit rotation='rot6d' \\(11\\)"):
        VLAConfig(rotation="rot6d", proprio_dim=8)
    with pytest.raises(ValueError, match="rotation='euler'; valid: axis_angle, rot6d"):
        VLAConfig(rotation="euler")
