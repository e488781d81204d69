"""Issue 17's baselines on a tiny teacher: each static method keeps the blocks it claims, Block Influence is
reproduced by hand, fine-tuning resumes to the weights of an uninterrupted run with the student's stage-2 steps,
early-exit thresholds hit their target on the calibration frames and the live model exits where they say."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.spec import PolicySpec
from policies import load_policy
from policies.actdistill.train import DistillSchedule
from policies.early_exit.modeling import MultiExitVLA, calibrate, consistency, executed_blocks
from policies.pruning.configuration import PruningParams
from policies.pruning.train import block_influence, build_pruned, calibration_indices
from policies.vla.checkpoint import Normalizer, load_checkpoint, save_checkpoint
from policies.vla.configuration import VLAConfig
from policies.vla.model import VLA
from policies.vla.train import FeatureSet
from tests.fixture_data import write_demos

CFG = VLAConfig(width=32, depth=6, heads=2, chunk=2, vision_grid=2, language_tokens=4, head_hidden=16)
SCHEDULE = DistillSchedule(stage2_epochs=2, batch_size=8, warmup_steps=1)


def _features(n=40) -> FeatureSet:
    torch.manual_seed(0)
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[1, 3] = False  # a padded word: Block Influence counts real tokens only
    return FeatureSet(vision=torch.randn(n, 2, 1280, 2, 2).half(), lang=torch.randn(2, 4, 384), lang_mask=mask,
                      instruction_id=torch.arange(n) % 2, proprio=torch.randn(n, 8),
                      actions=torch.rand(n, CFG.chunk, 7) * 2 - 1, instructions=["a", "b"], source="fixture")


def _teacher(path, fs):
    torch.manual_seed(1)
    teacher = VLA(CFG)
    with torch.no_grad():  # blocks of very different strength, so that the scores differ clearly
        for i, block in enumerate(teacher.blocks):
            block.mlp[2].weight.mul_(0.2 + 2.0 * ((i * 7) % 6) / 5)
    normalizer = Normalizer.fit(fs.actions.reshape(-1, 7).numpy(), fs.proprio.numpy())
    save_checkpoint(path, CFG, normalizer, teacher.state_dict(), {}, dtype=torch.float16)
    return path


def test_block_influence_is_one_minus_the_mean_token_cosine(tmp_path):
    fs = _features()
    ckpt = load_checkpoint(_teacher(tmp_path / "teacher", fs))
    model = VLA(CFG)
    model.load_state_dict(ckpt.state_dict)
    _, proprio = fs.normalized(ckpt.normalizer)
    idx = calibration_indices(len(fs.actions), 10)
    assert idx.tolist() == [0, 4, 9, 13, 17, 22, 26, 30, 35, 39]
    scores = block_influence(model, fs, proprio, idx, batch=3)
    # By hand, one sample at a time, every real token of every calibration frame weighted alike.
    cosines = [[] for _ in range(CFG.depth)]
    with torch.no_grad():
        for i in idx.tolist():
            vision, lang, mask, prop = fs.inputs(proprio, torch.tensor([i]))
            h, key_mask = model.embed(vision, lang, mask, prop)
            for l, block in enumerate(model.blocks):
                out = block(h, key_mask)
                cosines[l] += F.cosine_similarity(h[0], out[0], dim=-1)[key_mask[0]].tolist()
                h = out
    np.testing.assert_allclose(scores, [1 - np.mean(c) for c in cosines], rtol=1e-5)
    assert len(set(np.round(scores, 4))) == CFG.depth


def test_each_static_method_keeps_exactly_the_blocks_it_claims(tmp_path):
    fs = _features()
    teacher = _teacher(tmp_path / "teacher", fs)
    assert PruningParams("first", 3).kept(6) == (0, 1, 2)
    assert PruningParams("uniform", 3).kept(6) == (0, 2, 5)
    assert PruningParams("importance", 3).kept(6, [0.1, 0.5, 0.2, 0.5, 0.05, 0.3]) == (1, 3, 5)
    with pytest.raises(ValueError, match="needs the Block Influence"):
        PruningParams("importance", 3).kept(6)
    build_pruned(teacher, fs, tmp_path / "importance", PruningParams("importance", 3), log=lambda m: None)
    meta = load_checkpoint(tmp_path / "importance").meta["pruning"]
    scores = meta["block_influence"]
    assert meta["kept"] == sorted(np.argsort(-np.asarray(scores), kind="stable")[:3].tolist())
    assert meta["fine_tuning"] is None and meta["calibration"]["frames"] == len(fs.actions)
    # As is, the importance checkpoint is the teacher with those blocks: the same actions and blocks.
    built = load_policy(PolicySpec("pruned-importance", {"keep": 3}, str(tmp_path / "importance")))
    same = load_policy(PolicySpec("pruned", {"method": "blocks", "blocks": ",".join(map(str, meta["kept"]))},
                                  str(teacher)))
    inputs = fs.inputs(fs.normalized(load_checkpoint(teacher).normalizer)[1], torch.arange(4))
    with torch.no_grad():
        a, blocks_a = built.policy.predict(*[x[:1] for x in inputs])
        b, blocks_b = same.policy.predict(*[x[:1] for x in inputs])
    torch.testing.assert_close(a, b)
    assert blocks_a == blocks_b == meta["kept"]
    assert built.policy.reference == PolicySpec("teacher", checkpoint=str(teacher))  # found by its sha256
    with pytest.raises(Exception, match=r"checkpoint keeps blocks \[.*\], params importance keep=2 select"):
        load_policy(PolicySpec("pruned-importance", {"keep": 2}, str(tmp_path / "importance")))
    # Another method that selects the same blocks is served by the same checkpoint.
    same_blocks = load_policy(PolicySpec("pruned", {"method": "blocks", "blocks": ",".join(map(str, meta["kept"]))},
                                         str(tmp_path / "importance")))
    assert same_blocks.policy.kept == tuple(meta["kept"])


@pytest.mark.slow
def test_fine_tuning_resumes_to_an_uninterrupted_run_with_the_students_stage2_steps(tmp_path):
    fs = _features()
    teacher = _teacher(tmp_path / "teacher", fs)
    params = PruningParams("first", 2)

    def killed_after_epoch_1(msg):
        if msg.startswith("fine-tune first-2 epoch 1/2 done"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_pruned(teacher, fs, tmp_path / "ft", params, SCHEDULE, log=killed_after_epoch_1)
    logs = []
    digest = build_pruned(teacher, fs, tmp_path / "ft", params, SCHEDULE, log=logs.append)
    assert "fine-tune first-2: resuming after epoch 1" in logs
    assert digest == build_pruned(teacher, fs, tmp_path / "fresh", params, SCHEDULE, log=lambda m: None)
    ckpt = load_checkpoint(tmp_path / "ft")
    tuning = ckpt.meta["pruning"]["fine_tuning"]
    assert tuning["optimizer_steps"] == 2 * 5 and len(tuning["history"]) == 2  # 40 samples, batch 8, 2 epochs
    assert ckpt.config.depth == 2 and ckpt.meta["pruning"]["kept"] == [0, 1]
    as_is = load_checkpoint(teacher).state_dict
    assert not torch.equal(ckpt.state_dict["blocks.1.qkv.weight"], as_is["blocks.1.qkv.weight"])  # it trained


def test_early_exit_rule_and_calibration():
    # 3 samples, L = 4: distances of exits 1..3 to their predecessors.
    d = np.array([[0.1, 0.5, 0.2], [0.9, 0.3, 0.8], [0.9, 0.9, 0.9]])
    assert executed_blocks(d, 0.15).tolist() == [2, 4, 4]
    assert executed_blocks(d, 0.4).tolist() == [2, 3, 4]
    assert executed_blocks(d, 1.0).tolist() == [2, 2, 2]
    threshold, fraction = calibrate(d, 0.75)
    assert fraction == pytest.approx(np.mean([2, 3, 4]) / 4) and 0.3 < threshold < 0.5
    assert calibrate(d, 1.0)[1] == 1.0 and calibrate(d, 0.0)[1] == 0.5


@pytest.mark.slow
def test_early_exit_hits_its_target_on_the_calibration_frames_and_exits_there_live(tmp_path):
    from policies.early_exit.train import build_early_exit

    fs = _features(64)
    teacher = _teacher(tmp_path / "teacher", fs)
    build_early_exit(teacher, fs, tmp_path / "ee", SCHEDULE, log=lambda m: None)
    ckpt = load_checkpoint(tmp_path / "ee")
    distances = np.asarray(ckpt.meta["early_exit"]["calibration"]["distances"])
    assert distances.shape == (64, CFG.depth - 1)
    for target in (0.5, 0.6, 0.75):
        loaded = load_policy(PolicySpec("early-exit", {"target": target}, str(tmp_path / "ee")))
        policy = loaded.policy
        assert abs(policy.calibrated_fraction - target) <= 0.05 * target
        # The live model, one frame at a time, executes what the calibration said for every frame.
        _, proprio = fs.normalized(ckpt.normalizer)
        with torch.no_grad():
            live = [len(policy.predict(*fs.inputs(proprio, torch.tensor([i])))[1]) for i in range(64)]
        assert live == executed_blocks(distances, policy.threshold).tolist()
        assert np.mean(live) / CFG.depth == pytest.approx(policy.calibrated_fraction)
    # With every exit, the final one is the teacher's head on the full backbone.
    model = MultiExitVLA(CFG)
    model.load_state_dict(ckpt.state_dict)
    with torch.no_grad():
        exits = model.all_exits(*fs.inputs(proprio, torch.arange(3)))
        full, executed = model(*fs.inputs(proprio, torch.arange(1)))
    torch.testing.assert_close(full[0], exits[0, -1])
    assert executed == CFG.depth and consistency(exits).shape == (3, CFG.depth - 1)


def test_routing_diversity_measures_how_much_routes_depend_on_the_task():
    from harness.paper_tables import routing_diversity

    # Task 0 always runs {0, 1}; task 1 runs {0, 2} and {0, 1, 2} equally: 3 sets, the routes depend on the task.
    sets = [[0, 1]] * 4 + [[0, 2], [0, 1, 2]] * 2
    d = routing_diversity(sets, [0] * 4 + [1] * 4)
    p = np.array([4, 2, 2]) / 8
    assert d["sets"] == 3 and d["top_share"] == 0.5
    assert d["entropy_bits"] == pytest.approx(-(p * np.log2(p)).sum())
    assert d["task_bits"] == pytest.approx(d["entropy_bits"] - 0.5 * 1.0)  # H(set) - H(set | task)
    alike = routing_diversity(sets, [0, 1, 0, 1, 0, 0, 1, 1])  # both tasks draw the same mix of the 3 sets
    assert alike["sets"] == 3 and alike["task_bits"] == pytest.approx(0.0, abs=1e-12)
    assert routing_diversity([[0, 1]] * 8, [0] * 4 + [1] * 4)["task_bits"] == 0.0


@pytest.mark.parametrize("args, fragment", [
    (["--methods", "first,bogus"], "unknown baseline method(s) ['bogus']; valid: first, importance, uniform"),
    (["--budgets", "matched,x"], "budget 'x' is not 'matched' or a fraction in (0, 1]"),
    (["--budgets", "1.5"], "budget 1.5 is not 'matched' or an executed fraction in (0, 1]"),
    ([], "no demo files for libero_spatial under"),
])
def test_make_baselines_refuses_bad_input_in_one_line(tmp_path, capsys, args, fragment):
    from harness.cli import main

    demos = tmp_path / "demos"
    if args and args[0] == "--budgets" and args[1] == "1.5":
        write_demos(demos)  # past the demo check, to the budget's
    assert main(["study", "baselines", "--suite", "libero_spatial", "--demos", str(demos), "--results",
                 str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err


def test_early_exit_needs_a_built_checkpoint():
    from policies.base import PolicyLoadError

    with pytest.raises(PolicyLoadError, match="no early-exit checkpoint is shipped; build one with `make baselines"):
        load_policy("early-exit", "libero_spatial")


def test_committed_builds_need_no_demos_until_a_build_is_missing(tmp_path):
    """With the suite's builds on disk (the committed ones) the study is set up without demos; with none on disk it
    refuses before evaluating anything."""
    from core.paths import DEFAULT_RESULTS
    from experiments.baselines import baselines

    study = baselines("libero_spatial", tmp_path / "no-demos", DEFAULT_RESULTS, budgets=(0.4,),
                      methods=("first-ft", "early-exit"))
    assert [e.label for e in study.entries] == ["teacher", "actdistill", "pruned-first-5-ft", "early-exit-0.40"]
    study = baselines("libero_spatial", tmp_path / "no-demos", DEFAULT_RESULTS, budgets=(0.25, 0.5),
                      methods=("student", "first"))  # a student per budget, on the shipped student's line
    assert [(e.label, e.group) for e in study.entries][2:] == [
        ("pruned-first-3", "pruned-first"), ("actdistill-b0.25", "actdistill"),
        ("pruned-first-6", "pruned-first"), ("actdistill-b0.5", "actdistill")]
    with pytest.raises(FileNotFoundError, match="^no demo files for libero_spatial under"):
        baselines("libero_spatial", tmp_path / "no-demos", tmp_path, budgets=(0.4,), methods=("first-ft",))
