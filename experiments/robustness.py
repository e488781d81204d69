"""`make robustness SUITE=…`: does skipping blocks cost more success when the scene or the words change?

The teacher, the shipped student and the baselines at the matched budget (`experiments.baselines`, sharing its
builds) run on the suite clean and under each observation perturbation (`tasks.perturb`), on the same units
(tasks x init states x seed). Per policy and perturbation: success with its Wilson interval and n, the drop
against the same policy's clean success with McNemar's exact test on the paired units, the drop relative to the
teacher's and the paired test against the teacher under the same perturbation, executed compute and which
blocks ran (routing diversity, per-block share of calls). Writes
`<results>/studies/robustness/table.csv` (entries labelled `<policy> @ <perturbation>`, so `make report
STUDY=robustness` tabulates its runs) and, with `report_dir`, `robustness_<suite>.md` and its figures.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.io import write_text_atomic
from core.paths import shown
from harness.rollouts import run_summary
from harness.stats import mcnemar_exact

PERTURBATIONS = ("noise:0.05", "brightness:0.2", "contrast:0.6", "occlude:0.2", "camera:0.03", "lang")
"""Default perturbations, one kind each (see `tasks.perturb.KINDS`)."""
METHODS = ("first-ft", "uniform-ft", "early-exit")
"""Baselines (`experiments.baselines.METHODS`) run next to the teacher and the student, at the matched budget.
Not `random-skip`: it solves nothing clean (README, baselines), so it has no drop to measure, and its routes do
not depend on the input by construction."""
CLEAN = "clean"
PAIR = ["task_index", "init_index", "seed"]
"""What identifies a unit across perturbed suites (their unit keys carry the suite name)."""


def robustness(suite: str, demos: Path, results_root: Path, episodes: int = 5, tasks: tuple[int, ...] | None = None,
               perturbations: tuple[str, ...] = PERTURBATIONS, methods: tuple[str, ...] = METHODS, workers: int = 1,
               report_dir: Path | None = None, log=print) -> pd.DataFrame:
    """The study of the module docstring for `suite` (evaluations resume); UsageError for an unknown method or
    perturbation."""
    from experiments.baselines import baselines

    conditions = conditions_of(suite, perturbations)
    study = baselines(suite, demos, results_root, episodes, tasks, budgets=("matched",), methods=methods,
                      workers=workers, latency_calls=0)
    return robustness_of(study, suite, conditions, results_root, workers, report_dir, log)


def conditions_of(suite: str, perturbations: tuple[str, ...]) -> dict[str, str]:
    """Condition -> the suite it runs on: `clean` -> `suite`, each perturbation -> its canonical perturbed suite."""
    from harness.runner import UsageError
    from tasks import expand_suites
    from tasks.protocol import PERTURBATION_SEPARATOR

    try:
        return {CLEAN: suite, **{p: expand_suites(f"{suite}{PERTURBATION_SEPARATOR}{p}")[0] for p in perturbations}}
    except ValueError as err:
        raise UsageError(str(err)) from None


def robustness_of(study, suite: str, conditions: dict[str, str], results_root: Path, workers: int = 1,
                  report_dir: Path | None = None, log=print) -> pd.DataFrame:
    """Every entry of `study` (an `experiments.study.Study`, built where needed under its name) on `suite` under
    every condition (`conditions_of`), on the study's units; -> one row per entry x condition, clean first. The drop
    relative to the teacher's needs an entry labelled `teacher`."""
    from experiments.study import built_spec, merged_table, reference_depth, routing_summary, units
    from harness.runner import EvalRequest, evaluate

    rows, built, outcomes = [], {}, {}
    for entry in study.entries:
        spec = built_spec(study.name, entry, suite, results_root, built, log)
        clean = None
        for condition, name in conditions.items():
            log(f"[{suite}] {entry.label} @ {condition}")
            r = evaluate(EvalRequest(policy=spec, suite=name, episodes=study.episodes, tasks=study.tasks,
                                     workers=workers, seed=study.seed, results_root=results_root), progress=False)
            if condition == CLEAN:
                built[entry.label], clean = r, r
            ok = r.episodes.set_index(PAIR)["success"]
            outcomes[entry.label, condition] = ok
            base = clean.episodes.set_index(PAIR)["success"].reindex(ok.index)
            only_clean, only_this, p = paired_test(base, ok)
            rows.append({"suite": suite, "entry": f"{entry.label} @ {condition}", "policy": entry.label,
                         "perturbation": condition, "group": entry.group or entry.label, "run": shown(r.run_dirs[0]),
                         # From counts, not means: equal drops then subtract to exactly 0.
                         **run_summary(r.episodes, r.calls), "drop_pp": 100 * (base.sum() - ok.sum()) / len(ok),
                         "only_clean": only_clean, "only_perturbed": only_this, "mcnemar_p": p,
                         **routing_summary(r, reference_depth(r.run_dirs[0]))})
    table = pd.DataFrame(rows)
    teacher_drop = table[table["policy"] == "teacher"].set_index("perturbation")["drop_pp"]
    table["drop_minus_teacher_pp"] = table["drop_pp"] - table["perturbation"].map(teacher_drop)
    versus = [paired_test(outcomes["teacher", row.perturbation], outcomes[row.policy, row.perturbation])
              for row in table.itertuples()]
    table["only_teacher"], table["only_policy"], table["vs_teacher_p"] = zip(*versus)
    path = Path(results_root) / "studies" / "robustness" / "table.csv"
    merged = merged_table(pd.read_csv(path) if path.exists() else None, table.assign(units=units(study)))
    write_text_atomic(path, merged.to_csv(index=False))
    if report_dir is not None:
        write_report(merged[merged["suite"] == suite], suite, study.episodes, study.tasks, study.seed, Path(report_dir))
    return table


def paired_test(reference: pd.Series, policy: pd.Series) -> tuple[int, int, float]:
    """McNemar's exact test of `policy`'s outcomes against `reference`'s on `policy`'s units (both indexed by
    `PAIR`): -> (units only the reference solved, units only the policy solved, p)."""
    return mcnemar_exact(reference.reindex(policy.index).tolist(), policy.tolist())


def write_report(table: pd.DataFrame, suite: str, episodes: int, tasks, seed: int, report_dir: Path) -> Path:
    """`<report_dir>/robustness_<suite>.md`: scope, the success table (policies x conditions), the detailed table,
    and the figures (`harness.plots.robustness_figures`) in `<report_dir>/robustness_<suite>/`."""
    from harness.plots import robustness_figures
    from tasks.perturb import KINDS

    figures = robustness_figures(table, report_dir / f"robustness_{suite}")
    which = "all tasks" if tasks is None else f"tasks {', '.join(map(str, tasks))}"
    n = int(table["episodes"].iloc[0])
    wide = table.assign(cell=[f"{s:.0f} [{lo:.0f}, {hi:.0f}]" for s, lo, hi in
                              zip(table["success_%"], table["ci95_lo_%"], table["ci95_hi_%"])])
    wide = wide.pivot(index="policy", columns="perturbation", values="cell")
    wide = wide.reindex(index=list(dict.fromkeys(table["policy"])), columns=list(dict.fromkeys(table["perturbation"])))
    kinds = sorted({p.partition(":")[0] for p in table["perturbation"] if p != CLEAN})
    lines = [
        f"# Robustness on {suite}", "",
        f"scope: {suite}, {which} x init states 0-{episodes - 1}, seed {seed}: n = {n} paired units per cell, the "
        f"same for every policy and condition; success % with its Wilson 95% interval; drop = clean minus perturbed "
        f"success of the same policy (pp), McNemar's exact test on the paired units (against the same policy clean: "
        f"only_clean, only_perturbed, mcnemar_p; against the teacher under the same condition: only_teacher, "
        f"only_policy, vs_teacher_p); exec % = executed share of the "
        f"teacher backbone's FLOPs over the condition's rollout calls (batch 1, 1 torch thread).", "",
        *(f"- `{k}`: {KINDS[k].doc}" for k in kinds), "",
        "## Success (%) per policy and condition", "", wide.to_markdown(), "",
        "## Detail", "",
        table[["policy", "perturbation", "episodes", "success_%", "drop_pp", "drop_minus_teacher_pp", "only_clean",
               "only_perturbed", "mcnemar_p", "only_teacher", "only_policy", "vs_teacher_p", "exec_backbone_%",
               "gflops_per_call", "route_sets", "route_entropy_bits", "block_use_%"]].to_markdown(index=False, floatfmt=".3g"), "",
    ]
    for fig in figures:
        lines += [f"## {fig.title}", "", fig.caption, ""]
        lines += [f"![{fig.title}]({fig.png.relative_to(report_dir)})", ""] if fig.files else [f"({fig.note})", ""]
    out = report_dir / f"robustness_{suite}.md"
    write_text_atomic(out, "\n".join(lines))
    return out
