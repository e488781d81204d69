"""`make robustness`: every policy clean and perturbed on the same units, paired with itself clean."""
import pytest

from core.spec import PolicySpec
from experiments.robustness import conditions_of, robustness_of
from experiments.study import Entry, Study
from policies.vla.policy import VLAPolicy


def test_make_robustness_refuses_an_unknown_perturbation_in_one_line(tmp_path, capsys):
    from harness.cli import main

    assert main(["study", "robustness", "--suite", "libero_spatial", "--perturbations", "noise:0.05;nois:0.1",
                 "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown perturbation 'nois' (did you mean 'noise'?)" in err[0], err


def test_methods_none_runs_the_teacher_and_the_student_only():
    from experiments.robustness import METHODS
    from harness.cli import _methods

    assert _methods("none", METHODS) == () and _methods("", METHODS) == METHODS
    assert _methods("first-ft,lang", METHODS) == ("first-ft", "lang")  # validated by the study, not here


@pytest.mark.slow
def test_robustness_pairs_every_policy_with_itself_clean_and_reports_its_blocks(tmp_path):
    """The driver of `make robustness` on two real policies (the teacher and random skip of its blocks, which runs
    many block sets), one unit, clean and darkened."""
    teacher = PolicySpec("teacher", checkpoint=str(VLAPolicy.shipped_checkpoint("libero_spatial")))
    study = Study("robustness", ("libero_spatial",), (Entry("teacher", teacher), Entry(
        "random-skip-0.40", PolicySpec("random-skip", {"p": 0.4}, teacher.checkpoint))), episodes=1, tasks=(0,))
    reports = tmp_path / "reports"
    table = robustness_of(study, "libero_spatial", conditions_of("libero_spatial", ("brightness:-0.3",)), tmp_path,
                          report_dir=reports, log=lambda m: None)
    assert list(table["perturbation"]) == ["clean", "brightness:-0.3"] * 2
    assert list(table["policy"]) == ["teacher", "teacher", "random-skip-0.40", "random-skip-0.40"]
    assert (table["episodes"] == 1).all()
    for policy, rows in table.groupby("policy"):
        clean, perturbed = rows["success_%"]
        assert rows["drop_pp"].iloc[1] == pytest.approx(clean - perturbed) and rows["drop_pp"].iloc[0] == 0
    assert (table.loc[table["policy"] == "teacher", "drop_minus_teacher_pp"] == 0).all()
    teacher_rows = table[table["policy"] == "teacher"]
    assert (teacher_rows[["only_teacher", "only_policy"]] == 0).all().all() and (teacher_rows["vs_teacher_p"] == 1).all()
    for condition, rows in table.groupby("perturbation"):  # one unit: the two policies differ by its outcome only
        teacher_ok, other_ok = (rows.set_index("policy")["success_%"] > 0)[["teacher", "random-skip-0.40"]]
        other = rows[rows["policy"] != "teacher"].iloc[0]
        assert (other["only_teacher"], other["only_policy"]) == (int(teacher_ok and not other_ok),
                                                                 int(other_ok and not teacher_ok))
    assert (teacher_rows["exec_backbone_%"] == 100).all()
    assert table.loc[table["policy"] != "teacher", "exec_backbone_%"].lt(100).all()
    assert table["run"].str.contains("libero_spatial@brightness:-0.3").sum() == 2
    text = (reports / "robustness_libero_spatial.md").read_text()
    assert "## Success (%) per policy and condition" in text and "brightness:-0.3" in text
    figures = reports / "robustness_libero_spatial"
    assert (figures / "robustness_drop.png").stat().st_size > 5000
    assert (figures / "robustness_blocks.png").stat().st_size > 5000  # random skip runs many block sets
    assert (tmp_path / "studies" / "robustness" / "table.csv").exists()
