"""ActDistill pieces: hard gates really skip blocks, loss terms match hand computation, the graph probe runs;
distillation resumes, its defaults are the shipped students' recipe, its command refuses bad input."""
import math

import pytest
import torch
import torch.nn.functional as F

from policies.actdistill.configuration import ActDistillConfig
from policies.actdistill.graph import BlockProbes, knn_graph
from policies.actdistill.losses import block_weights, distillation_loss, pairwise_cosine, semantic_loss
from policies.actdistill.student import StudentVLA
from policies.vla.configuration import VLAConfig
from policies.vla.model import VLA

CFG = VLAConfig(width=32, depth=4, heads=2, chunk=2, vision_grid=2, language_tokens=4, head_hidden=16)
ACFG = ActDistillConfig(router_width=8, graph_width=16, semantic_width=8, graph_knn=3)


def _inputs(b=3):
    torch.manual_seed(1)
    mask = torch.ones(b, 4, dtype=torch.bool)
    mask[0, 3] = False
    return torch.randn(b, 2, 1280, 2, 2), torch.randn(b, 4, 384), mask, torch.randn(b, 8)


def test_student_starts_as_the_teacher():
    teacher = VLA(CFG).eval()
    student = StudentVLA.from_teacher(teacher, ACFG).eval()
    with torch.no_grad():
        student.router.gates.bias.fill_(10.0)  # all gates on
        a, executed = student(*_inputs())
        assert executed.all()
        torch.testing.assert_close(a, teacher(*_inputs()))


def test_hard_gates_skip_blocks_per_sample():
    student = StudentVLA.from_teacher(VLA(CFG), ACFG).eval()
    calls = []
    for i, block in enumerate(student.blocks):
        block.register_forward_hook(lambda mod, args, out, i=i: calls.append((i, args[0].shape[0])))
    with torch.no_grad():
        student.router.gates.weight.zero_()
        # Block 0 on for every sample, block 1 off for all, blocks 2-3 on only for sample 1 (via a per-sample bias).
        student.router.gates.bias.copy_(torch.tensor([5.0, -5.0, -5.0, -5.0]))
        orig = student.gates

        def gates(h0, mask):
            g = orig(h0, mask).clone()
            g[1, 2:] = 0.9
            return g

        student.gates = gates
        _, executed = student(*_inputs())
    assert executed.tolist() == [[True, False, False, False], [True, False, True, True], [True, False, False, False]]
    assert calls == [(0, 3), (2, 1), (3, 1)]  # skipped blocks never ran; partial blocks ran on one row


def test_soft_gate_zero_is_exactly_a_skip():
    student = StudentVLA.from_teacher(VLA(CFG), ACFG).eval()
    vision, lang, mask, proprio = _inputs()
    with torch.no_grad():
        h0, m = student.embed(vision, lang, mask, proprio)
        gates = torch.ones(3, CFG.depth)
        gates[:, 1] = 0.0
        soft = student.backbone_soft(h0, m, gates)[-1]
        hard, _ = student.backbone_hard(h0, m, gates)
    torch.testing.assert_close(soft, hard)


def test_loss_terms_match_hand_computation():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    # cos(s0,t0) = 1/sqrt2, cos(s1,t1) = 1 -> direction = (1 - 1/sqrt2) / 2
    # C(s) = [[1,0],[0,1]], C(t) = [[1, 1/sqrt2],[1/sqrt2, 1]] -> MSE = 2 * (1/sqrt2)^2 / 4 = 0.25
    expected = (1 - 1 / math.sqrt(2)) / 2 + 0.5 * 0.25
    assert abs(semantic_loss(s, t, eta=0.5).item() - expected) < 1e-6
    torch.testing.assert_close(pairwise_cosine(t), torch.tensor([[1.0, 2**-0.5], [2**-0.5, 1.0]]))
    w = block_weights(3, gamma=2.0)  # (0, 1/4, 1) normalised to mean 1 -> (0, 0.6, 2.4)
    torch.testing.assert_close(w, torch.tensor([0.0, 0.6, 2.4]))

    b, depth, k, a = 2, 3, 1, 1
    a_gt = torch.zeros(b, k, a)
    a_student = torch.ones(b, depth, k, a) * torch.tensor([1.0, 2.0, 3.0])[None, :, None, None]
    a_teacher = torch.zeros(b, depth, k, a)
    sv = torch.randn(b, depth, 4)
    gates = torch.tensor([[1.0, 0.0, 0.5], [1.0, 0.0, 0.5]])
    cfg = ActDistillConfig(alpha=0.0, beta=1.0, balance=2.0, budget=0.25, budget_weight=3.0)
    total, parts = distillation_loss(torch.tensor(0.5), sv, sv, a_student, a_teacher, a_gt, gates, cfg)
    # L_act per block: l0 = 1 + 1; l1 = 4 + 4 + (2-1)^2; l2 = 9 + 9 + (3-2)^2 -> weighted 0*2 + 0.6*9 + 2.4*19
    act = 0.6 * 9 + 2.4 * 19
    balance = torch.tensor([1.0, 0.0, 0.5]).var(unbiased=False).item()
    budget = (0.5 - 0.25) ** 2
    assert abs(total.item() - (0.5 + act + 2.0 * balance + 3.0 * budget)) < 1e-5
    assert abs(parts["gate_mean"] - 0.5) < 1e-6
    under = ActDistillConfig(alpha=0.0, beta=1.0, balance=2.0, budget=0.6, budget_weight=3.0)
    total, _ = distillation_loss(torch.tensor(0.5), sv, sv, a_student, a_teacher, a_gt, gates, under)
    assert abs(total.item() - (0.5 + act + 2.0 * balance)) < 1e-5  # within budget: no penalty


def test_straight_through_gates_train_what_inference_runs():
    """Forward: the hard decision (a skipped block is skipped in training too); backward: the soft gate's gradient."""
    student = StudentVLA.from_teacher(VLA(CFG), ACFG)
    soft = torch.tensor([[0.9, 0.2, 0.6, 0.4]], requires_grad=True)
    applied = student.training_gates(soft)
    assert applied.tolist() == [[1.0, 0.0, 1.0, 0.0]]
    (applied * torch.arange(4.0)).sum().backward()
    assert soft.grad.tolist() == [[0.0, 1.0, 2.0, 3.0]]
    vision, lang, mask, proprio = _inputs(1)
    with torch.no_grad():
        h0, m = student.embed(vision, lang, mask, proprio)
        trained = student.backbone_soft(h0, m, applied.detach())[-1]
        run, _ = student.backbone_hard(h0, m, soft.detach())
    torch.testing.assert_close(trained, run)


def test_knn_graph_has_no_self_loops_or_padded_neighbours():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 4)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    idx, log_w = knn_graph(x, x, mask, k=3)
    assert idx.shape == (2, 6, 3)
    assert not (idx == torch.arange(6)[None, :, None]).any()
    assert not ((idx[1] >= 4).any())
    torch.testing.assert_close(log_w.exp().sum(-1), torch.ones(2, 6))


def test_graph_probes_train_end_to_end():
    student = StudentVLA.from_teacher(VLA(CFG), ACFG)
    probes = BlockProbes(CFG, ACFG)
    vision, lang, mask, proprio = _inputs()
    h0, m = student.embed(vision, lang, mask, proprio)
    states = student.backbone_soft(h0, m, student.training_gates(student.gates(h0, m)))
    sem, actions = probes(states, m)
    assert sem.shape == (3, CFG.depth, ACFG.semantic_width) and actions.shape == (3, CFG.depth, CFG.chunk, 7)
    loss = F.mse_loss(actions, torch.zeros_like(actions))
    loss.backward()
    assert probes.blocks[0].phi.weight.grad.abs().sum() > 0  # the learned affinity gets gradients
    assert student.router.gates.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_distillation_end_to_end_exports_a_student_without_graph_modules(tmp_path):
    from policies.actdistill.train import DistillSchedule, distill
    from policies.vla.checkpoint import Normalizer, load_checkpoint, save_checkpoint
    from policies.vla.train import FeatureSet

    torch.manual_seed(0)
    n = 24
    fs = FeatureSet(
        vision=torch.randn(n, 2, 1280, 2, 2).half(), lang=torch.randn(2, 4, 384), lang_mask=torch.ones(2, 4, dtype=torch.bool),
        instruction_id=torch.randint(0, 2, (n,)), proprio=torch.randn(n, 8), actions=torch.rand(n, CFG.chunk, 7) * 2 - 1,
        instructions=["a", "b"],
    )
    normalizer = Normalizer.fit(fs.actions.reshape(-1, 7).numpy(), fs.proprio.numpy())
    save_checkpoint(tmp_path / "teacher", CFG, normalizer, VLA(CFG).state_dict(), {})
    sch = DistillSchedule(stage1_epochs=1, stage2_epochs=2, batch_size=8, warmup_steps=1)
    acfg = ActDistillConfig(**{**ACFG.to_dict(), "budget": 0.5})

    def killed_after_epoch_1(msg):
        if msg.startswith("stage 2 epoch 1/2 done"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(tmp_path / "teacher", fs, tmp_path / "student", acfg, sch, log=killed_after_epoch_1)
    # Resuming the killed run reuses stage 1 and continues after the saved epoch, to the very weights of an
    # uninterrupted run (stage 1 computed in the same process) and of a fresh stage 2 on cached stage-1 targets.
    logs = []
    digest = distill(tmp_path / "teacher", fs, tmp_path / "student", acfg, sch, log=logs.append)
    assert "stage 1: loaded cached teacher targets" in logs and "stage 2: resuming after epoch 1" in logs
    assert sum(m.startswith("stage 2 epoch 2/2 done") for m in logs) == 1
    assert digest == distill(tmp_path / "teacher", fs, tmp_path / "uninterrupted", acfg, sch, log=lambda m: None)
    logs = []  # another run sharing the first run's stage-1 folder (as `make ablations` variants do)
    assert digest == distill(tmp_path / "teacher", fs, tmp_path / "cached", acfg, sch, log=logs.append,
                             stage1_dir=tmp_path / "student")
    assert "stage 1: loaded cached teacher targets" in logs
    ckpt = load_checkpoint(tmp_path / "student")
    assert ckpt.meta["actdistill"]["budget"] == 0.5
    assert any(k.startswith("router.") for k in ckpt.state_dict)
    assert not any("probe" in k or "phi" in k or "psi" in k or "semantic" in k for k in ckpt.state_dict)
    student = StudentVLA(CFG, ActDistillConfig.from_dict(ckpt.meta["actdistill"]))
    student.load_state_dict(ckpt.state_dict, strict=True)
    assert len(ckpt.meta["history"]) == 2
    # Another budget is another run: stage 1 is reused (it does not depend on the budget), stage 2 starts over.
    logs = []
    distill(tmp_path / "teacher", fs, tmp_path / "student", ActDistillConfig(**{**acfg.to_dict(), "budget": 0.3}), sch,
            log=logs.append)
    assert "stage 1: loaded cached teacher targets" in logs and not any("resuming" in m for m in logs)
    assert any("from another run" in m for m in logs)


def test_ablations_distil_without_graph_and_with_static_blocks(tmp_path):
    from policies.actdistill.train import DistillSchedule, distill
    from policies.vla.checkpoint import Normalizer, load_checkpoint, save_checkpoint
    from policies.vla.train import FeatureSet

    torch.manual_seed(0)
    n = 16
    fs = FeatureSet(
        vision=torch.randn(n, 2, 1280, 2, 2).half(), lang=torch.randn(1, 4, 384), lang_mask=torch.ones(1, 4, dtype=torch.bool),
        instruction_id=torch.zeros(n, dtype=torch.long), proprio=torch.randn(n, 8),
        actions=torch.rand(n, CFG.chunk, 7) * 2 - 1, instructions=["a"],
    )
    save_checkpoint(tmp_path / "teacher", CFG, Normalizer.fit(fs.actions.reshape(-1, 7).numpy(), fs.proprio.numpy()),
                    VLA(CFG).state_dict(), {})
    acfg = ActDistillConfig(**{**ACFG.to_dict(), "graph": False, "static_blocks": (0, 2)})
    logs = []
    distill(tmp_path / "teacher", fs, tmp_path / "static", acfg,
            DistillSchedule(stage1_epochs=1, stage2_epochs=1, batch_size=8, warmup_steps=1), log=logs.append)
    assert not any(m.startswith("stage 1 epoch") for m in logs)  # no probes to train without the graph
    ckpt = load_checkpoint(tmp_path / "static")
    student = StudentVLA(CFG, ActDistillConfig.from_dict(ckpt.meta["actdistill"]))
    student.load_state_dict(ckpt.state_dict, strict=True)
    with torch.no_grad():
        _, executed = student(*_inputs())
    assert executed.tolist() == [[True, False, True, False]] * 3


def test_the_defaults_are_the_shipped_students_recipe():
    """`make distill` with no options reproduces the shipped students: config and schedule as stored with them."""
    import json
    from pathlib import Path

    from policies.actdistill.train import DistillSchedule

    root = Path(__file__).resolve().parents[1] / "checkpoints" / "actdistill"
    metas = {c.parent.name: json.loads(c.read_text())["meta"] for c in root.glob("*/config.json")}
    assert {"libero_spatial", "libero_object"} <= set(metas)
    for suite, meta in metas.items():
        assert ActDistillConfig.from_dict(meta["actdistill"]) == ActDistillConfig(), suite
        assert DistillSchedule(**meta["schedule"]) == DistillSchedule(), suite


def test_distill_command_overrides_only_what_is_set_and_refuses_bad_input(tmp_path):
    import argparse

    from harness.runner import UsageError
    from harness.train_cli import COMMANDS, _distill_overrides, add_parsers
    from tests.fixture_data import write_demos

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    base = ["distill", "--teacher", str(tmp_path / "none"), "--suite", "libero_spatial", "--demos", str(tmp_path),
            "--out", str(tmp_path / "out")]
    assert _distill_overrides(parser.parse_args(base), depth=4) == ({}, {})
    args = parser.parse_args(base + ["--budget", "none", "--budget-weight", "2", "--no-graph", "--static-blocks", "0, 2",
                                     "--stage2-epochs", "3"])
    assert _distill_overrides(args, depth=4) == (
        {"budget": None, "budget_weight": 2.0, "graph": False, "static_blocks": (0, 2)}, {"stage2_epochs": 3})
    for bad, message in ((["--budget", "0"], r"--budget must be a fraction in \(0, 1\] or 'none', got '0'"),
                         (["--budget-weight", "-1"], "--budget-weight must be >= 0"),
                         (["--static-blocks", "1,4"], r"--static-blocks must be comma-separated block indices 0\.\.3"),
                         (["--stage1-epochs", "0"], "--stage1-epochs must be >= 1")):
        with pytest.raises(UsageError, match=message):
            _distill_overrides(parser.parse_args(base + bad), depth=4)
    with pytest.raises(UsageError, match="^no demo files for libero_spatial under"):
        COMMANDS["distill"](parser.parse_args(base))
    write_demos(tmp_path, n=1)
    with pytest.raises(UsageError, match="missing model.safetensors"):
        COMMANDS["distill"](parser.parse_args(base))
