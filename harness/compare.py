"""Regression comparison of two policies' committed runs: NEW against BASE, per suite and per task, and the gate.

A reference (`resolve`) is a run folder (relative to the results root or absolute; a run tag folder means all its
suites), a checkpoint folder (its family from its config or given), a weights sha256 or spec hash prefix, or a
policy spec (registry name, alias, `module:Class`, JSON file, with params); a spec or checkpoint is built with
`policies.load_policy` and names the runs of its identity hash. `<results>/baselines.json` (`baseline_run`)
names the reference run per family and suite.

Per suite and metric (`compare_suite`): each policy's successes / n, NEW - BASE with its 95% interval, McNemar's
exact test on the shared units (paired: same task, init state and seed) or Fisher's when they share none, the
one-sided p-value of "NEW worse by more than the margin", and GFLOPs per call (calls table) NEW / BASE; latency
only from a study table that timed both in one process. The gate: NEW is worse where the Holm-adjusted one-sided
p <= alpha, the family being the suite and its tasks (`SUITE_WEIGHT`), so each suite's gate raises a false alarm
with probability <= alpha per metric.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.paths import REPO_ROOT, shown
from harness.index import ResultsIndex
from harness.regression import Difference, difference, holm
from harness.runner import UsageError

BASELINES = "baselines.json"
"""The baseline registry, under the results root."""

SUITE_WEIGHT = 0.5
"""Holm weight of the suite-level hypothesis; its tasks share the rest equally. Testing the suite at alpha and the
tasks (Holm) at alpha again raises false alarms more often than alpha: in the null model of
`tests/test_regression.py` (two runs of one policy, 10 tasks x 50 units; 20,000 trials) 5.6% at alpha 0.05
against 3.0% with halves. Once the suite is flagged its tasks are tested at the full alpha (Holm passes the weight
on)."""

_HEX = re.compile(r"[0-9a-f]{6,64}")


def checkpoint_family(folder: Path) -> str:
    """The family a checkpoint folder belongs to: a student's config holds its ActDistill config under
    `meta.actdistill` (`policies.actdistill.policy` requires it), a teacher's does not."""
    try:
        meta = json.loads((Path(folder) / "config.json").read_text()).get("meta", {})
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"checkpoint {folder}: cannot read config.json ({err})") from None
    return "actdistill" if "actdistill" in meta else "teacher"


def _runs(ix: ResultsIndex) -> pd.DataFrame:
    return ix.sql("SELECT run, tag, family, checkpoint_sha256, spec_hash, params, suite FROM runs")


def identity_family(name: str) -> str:
    """Identity family of a registry name or alias (`pruned-first-6` -> `pruned`)."""
    from core.registry import UnknownName
    from policies import POLICIES

    try:
        return POLICIES.resolve(name)[0]
    except UnknownName as err:
        raise UsageError(str(err)) from None


def _by_spec(spec, runs: pd.DataFrame, suites) -> pd.DataFrame:
    """Runs of `spec`'s identity: built for each suite (a learned policy without a checkpoint takes the one shipped
    for the suite, and suites without one are skipped)."""
    from core.registry import UnknownName
    from policies import load_policy
    from policies.base import NoShippedCheckpoint, PolicyLoadError

    hashes = {}
    for suite in suites:
        try:
            hashes[suite] = load_policy(spec, suite).spec_hash
        except NoShippedCheckpoint:
            continue
        except (UnknownName, PolicyLoadError) as err:
            raise UsageError(str(err)) from None
        if spec.checkpoint:  # one checkpoint is one identity whatever the suite
            return runs[runs["spec_hash"] == hashes[suite]]
    return runs[[hashes.get(s) == h for s, h in zip(runs["suite"], runs["spec_hash"])]]


def resolve(ref: str, ix: ResultsIndex, params: str = "", family: str | None = None,
            suites: tuple[str, ...] | None = None) -> dict[str, str]:
    """suite -> run (folder relative to `ix.root`) that `ref` names, one per suite, restricted to `suites` when
    given. `family` sets the family of a checkpoint folder and filters a hash prefix. UsageError (one line) when
    nothing or more than one run per suite matches."""
    from harness.cli import policy_spec

    runs = _runs(ix)
    path = Path(ref)
    folder = next((p for p in ([path] if path.is_absolute() else [ix.root / path, path]) if p.is_dir()), None)
    if folder is not None:
        if (folder / "config.json").exists():
            spec = policy_spec(family or checkpoint_family(folder), params, str(folder))
            found = _by_spec(spec, runs, suites or tuple(runs["suite"].unique()))
        else:
            try:
                rel = folder.resolve().relative_to(ix.root.resolve()).as_posix()
            except ValueError:
                raise UsageError(f"{ref} is not under the results root {ix.root} (pass --results)") from None
            found = runs[(runs["run"] == rel) | runs["run"].str.startswith(rel.rstrip("/") + "/")]
            if found.empty:
                raise UsageError(f"{ref} is neither a run folder under {ix.root} nor a checkpoint folder (config.json)")
    elif _HEX.fullmatch(ref) and not params:
        found = runs[runs["checkpoint_sha256"].str.startswith(ref) | runs["spec_hash"].str.startswith(ref)]
        if family:
            found = found[found["family"] == identity_family(family)]
        else:  # variants that reuse the weights (pruned) share their sha256: the run without params owns them
            plain = found[found["params"] == "{}"]
            found = pd.concat([plain, found[~found["suite"].isin(plain["suite"])]])
    else:
        found = _by_spec(policy_spec(ref, params), runs, suites or tuple(runs["suite"].unique()))
    if suites:
        found = found[found["suite"].isin(suites)]
    if found.empty:
        where = f" on {', '.join(suites)}" if suites else ""
        raise UsageError(f"no run under {ix.root} matches {ref!r}{where} (`make query` lists them)")
    many = found.groupby("suite")["run"].apply(list)
    many = many[many.map(len) > 1]
    if len(many):
        raise UsageError(f"{ref!r} matches {', '.join(many.iloc[0])} on {many.index[0]}: pass a run folder"
                         f"{'' if family else ' or --family'}")
    return dict(zip(found["suite"], found["run"]))


def baseline_run(ix: ResultsIndex, family: str, suite: str) -> str:
    """The registered reference run of `family` on `suite` from `<results>/baselines.json`
    ({"baselines": {family: {suite: {"run": folder, "checkpoint_sha256": sha}}}}, either key; both must agree)."""
    path = ix.root / BASELINES
    try:
        entry = json.loads(path.read_text())["baselines"][family][suite]
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"cannot read the baseline registry {path} ({err}); pass --base") from None
    except KeyError:
        raise UsageError(f"{path} registers no {family} baseline for {suite}; pass --base") from None
    runs = _runs(ix)
    if "run" in entry:
        found = runs[runs["run"] == entry["run"]]
    else:
        found = runs[(runs["family"] == family) & (runs["suite"] == suite)
                     & runs["checkpoint_sha256"].str.startswith(entry.get("checkpoint_sha256", "?"))]
    sha = entry.get("checkpoint_sha256", "")
    if len(found) != 1 or not found["checkpoint_sha256"].iloc[0].startswith(sha):
        raise UsageError(f"{path}: the {family} baseline for {suite} ({entry}) matches {len(found)} run(s) under "
                         f"{ix.root}{' with that sha256' if len(found) else ''}")
    return found["run"].iloc[0]


def describe_units(eps: pd.DataFrame) -> str:
    """'10 tasks x init states 0-19, seed 0' for a set of episodes."""
    def span(values) -> str:
        v = sorted(int(x) for x in set(values))
        return f"{v[0]}-{v[-1]}" if len(v) > 1 and v == list(range(v[0], v[-1] + 1)) else ",".join(map(str, v))
    tasks = eps["task_index"].nunique()
    return (f"{tasks} task{'s' if tasks > 1 else ''} x init states {span(eps['init_index'])}, "
            f"seed {span(eps['seed'])}")


def _latency(root: Path, suite: str, base_dir: Path, new_dir: Path) -> str:
    """Median latency per call of both runs from the newest study table under `<root>/studies/` that timed both
    in one process (interleaved: the same `timed` value); else says they were not timed together."""
    def same(text: str, run_dir: Path) -> bool:
        path = Path(text)
        return (path if path.is_absolute() else REPO_ROOT / path).resolve() == run_dir.resolve()

    tables = sorted((root / "studies").glob("*/table.csv"), key=lambda p: p.stat().st_mtime, reverse=True)
    for table_path in tables:
        table = pd.read_csv(table_path)
        if "ms_p50" not in table:
            continue
        table = table[(table["suite"] == suite) & table["ms_p50"].notna()]
        base = table[[same(r, base_dir) for r in table["run"]]]
        new = table[[same(r, new_dir) for r in table["run"]]]
        if len(base) and len(new):
            b, n = base.iloc[0], new.iloc[0]
            if str(b.get("timed", "")) != str(n.get("timed", "")):  # merged rows of invocations timed apart
                continue
            speedup = n.get(f"speedup_vs_{b['entry']}")
            ci = f"; speed-up over BASE {speedup}" if isinstance(speedup, str) else ""
            return (f"latency p50 {n['ms_p50']:.1f} ms NEW vs {b['ms_p50']:.1f} ms BASE, ratio "
                    f"{n['ms_p50'] / b['ms_p50']:.2f}{ci} (study {table_path.parent.name}, timed in one process)")
    return f"latency: not timed together (no study table under {shown(root / 'studies')} holds both runs)"


@dataclass
class Row:
    scope: str
    """"suite" or "task <i>"."""
    diff: Difference
    gflops_ratio: float
    """Mean GFLOPs per call NEW / BASE over the row's units (NaN where a run counted none)."""
    p_adj: float = np.nan
    """Holm-adjusted one-sided p (the gate's); NaN for a row outside the tested family."""
    worse: bool = False


@dataclass
class SuiteComparison:
    suite: str
    base_run: str
    new_run: str
    base_label: str
    new_label: str
    units: str
    """Which units were compared, paired or not."""
    gflops: tuple[float, float]
    """Mean GFLOPs per call over the compared units: (BASE, NEW)."""
    latency: str
    metrics: dict[str, list[Row]] = field(default_factory=dict)
    """Per metric: the suite row, then one row per task."""
    notes: list[str] = field(default_factory=list)

    def flagged(self) -> list[str]:
        return [f"{self.suite} {metric} {row.scope} (p adj {row.p_adj:.3g})"
                for metric, rows in self.metrics.items() for row in rows if row.worse]


def metric_column(metric: str) -> str:
    """Episode column of a metric name: `success`, or a suite's partial metric with or without `partial_`."""
    return metric if metric == "success" or metric.startswith("partial_") else f"partial_{metric}"


def _label(runs: pd.DataFrame, run: str) -> str:
    r = runs[runs["run"] == run].iloc[0]
    params = json.loads(r["params"])
    given = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{r['family']} {r['checkpoint_sha256'][:12]}{' ' + given if given else ''}"


def _gflops(calls: pd.DataFrame, keys) -> float:
    g = calls.loc[calls["key"].isin(keys), "gflops"]
    return float(g.mean()) if g.notna().any() else np.nan


def gate_p(p_suite: float, p_tasks: list[float]) -> np.ndarray:
    """Holm-adjusted one-sided p-values of a suite and its tasks (`SUITE_WEIGHT` for the suite, the rest shared
    by the tasks): [suite, task...]; NEW is worse where <= alpha."""
    if not p_tasks:
        return np.array([p_suite])
    return holm([p_suite, *p_tasks], [SUITE_WEIGHT] + [(1 - SUITE_WEIGHT) / len(p_tasks)] * len(p_tasks))


def compare_suite(ix: ResultsIndex, suite: str, base_run: str, new_run: str, metrics: tuple[str, ...] = ("success",),
                  alpha: float = 0.05, margin: float = 0.0, units: set[str] | None = None) -> SuiteComparison:
    """NEW (`new_run`) against BASE (`base_run`) on `suite`: paired on the units both ran (restricted to `units`
    when given), unpaired (all units of each) when they share none. Errors count as failures. A metric some
    compared episode did not record is skipped with a note."""
    eps = ix.sql("SELECT * FROM episodes WHERE run IN (?, ?)", base_run, new_run)
    calls = ix.sql("SELECT run, key, gflops FROM calls WHERE run IN (?, ?)", base_run, new_run)
    if units is not None:
        eps = eps[eps["key"].isin(units)]
    base, new = (eps[eps["run"] == r].set_index("key").sort_index() for r in (base_run, new_run))
    if base.empty or new.empty:
        raise UsageError(f"{suite}: no episodes to compare ({len(base)} BASE, {len(new)} NEW)")
    shared = base.index.intersection(new.index)
    paired = len(shared) > 0
    notes = ["BASE and NEW are the same run"] if base_run == new_run else []
    if paired:
        left = (len(base) - len(shared), len(new) - len(shared))
        if any(left):
            notes.append(f"{left[0]} BASE-only and {left[1]} NEW-only units left out")
        base, new = base.loc[shared], new.loc[shared]
        units_text = f"paired on {len(shared)} shared units ({describe_units(base)})"
    else:
        units_text = (f"unpaired: no shared units (BASE {len(base)}: {describe_units(base)}; NEW {len(new)}: "
                      f"{describe_units(new)})")
    errors = [int((df["error"].fillna("") != "").sum()) for df in (base, new)]
    if any(errors):
        notes.append(f"errors count as failures: {errors[0]} BASE, {errors[1]} NEW")
    base_calls, new_calls = (calls[calls["run"] == r] for r in (base_run, new_run))
    runs = _runs(ix)
    out = SuiteComparison(suite, base_run, new_run, _label(runs, base_run), _label(runs, new_run), units_text,
                          (_gflops(base_calls, base.index), _gflops(new_calls, new.index)),
                          _latency(ix.root, suite, ix.root / base_run, ix.root / new_run), notes=notes)
    tasks = sorted(set(base["task_index"]) & set(new["task_index"]))
    for metric in metrics:
        column = metric_column(metric)
        if column not in eps or base[column].isna().any() or new[column].isna().any():
            notes.append(f"{metric}: not recorded for every compared episode, skipped")
            continue
        scopes = [("suite", base, new)] + [
            (f"task {t}", base[base["task_index"] == t], new[new["task_index"] == t]) for t in tasks]
        rows = []
        for scope, b, n in scopes:
            ratio = _gflops(new_calls, n.index) / _gflops(base_calls, b.index)
            rows.append(Row(scope, difference(b[column].to_numpy(bool), n[column].to_numpy(bool), paired, margin),
                            ratio))
        # One task is the suite itself: the family is then the suite alone.
        family = rows if len(tasks) > 1 else rows[:1]
        for row, p_adj in zip(family, gate_p(family[0].diff.p_worse, [r.diff.p_worse for r in family[1:]])):
            row.p_adj, row.worse = float(p_adj), bool(p_adj <= alpha)
        out.metrics[metric] = rows
    return out


def compare(ix: ResultsIndex, base: dict[str, str], new: dict[str, str], metrics: tuple[str, ...] = ("success",),
            alpha: float = 0.05, margin: float = 0.0) -> list[SuiteComparison]:
    """`compare_suite` on every suite both sides have a run of (suite -> run, as `resolve` gives)."""
    suites = [s for s in new if s in base]
    if not suites:
        raise UsageError(f"BASE ({', '.join(base)}) and NEW ({', '.join(new)}) have no suite in common")
    return [compare_suite(ix, s, base[s], new[s], metrics, alpha, margin) for s in suites]


def exit_code(comparisons: list[SuiteComparison]) -> int:
    """1 when NEW is worse on any suite or task of any metric, else 0."""
    return int(any(c.flagged() for c in comparisons))


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f}% ({k}/{n})"


def table(rows: list[Row]) -> pd.DataFrame:
    """The display table of one metric: one line per row, rates and differences in percent / points."""
    paired = rows[0].diff.paired
    return pd.DataFrame([{
        "scope": r.scope, "BASE": _pct(r.diff.base_k, r.diff.base_n), "NEW": _pct(r.diff.new_k, r.diff.new_n),
        "NEW-BASE pts [95% CI]": f"{100 * r.diff.diff:+.1f} [{100 * r.diff.lo:+.1f}, {100 * r.diff.hi:+.1f}]",
        **({"only BASE/NEW": f"{r.diff.only_base}/{r.diff.only_new}"} if paired else {}),
        "p": f"{r.diff.p:.3g}", "p worse": f"{r.diff.p_worse:.3g}",
        "p worse Holm": "" if np.isnan(r.p_adj) else f"{r.p_adj:.3g}",
        "GFLOPs NEW/BASE": "n/a" if np.isnan(r.gflops_ratio) else f"{r.gflops_ratio:.2f}",
        "verdict": "WORSE" if r.worse else "",
    } for r in rows])


def _gflops_text(c: SuiteComparison) -> str:
    base, new = c.gflops
    if np.isnan(base) or np.isnan(new):
        return "GFLOPs per call: not counted for both runs"
    return f"GFLOPs per call {new:.3g} NEW vs {base:.3g} BASE, ratio {new / base:.2f}"


def gate_text(comparisons: list[SuiteComparison], alpha: float, margin: float) -> str:
    flagged = [f for c in comparisons for f in c.flagged()]
    rule = (f"alpha {alpha:g}, margin {100 * margin:g} pts, one-sided, Holm over each suite (weight "
            f"{SUITE_WEIGHT:g}) and its tasks per metric")
    if flagged:
        return f"gate: FAIL ({rule}): NEW is significantly worse on {'; '.join(flagged)} (exit 1)"
    return f"gate: PASS ({rule}): NEW is not significantly worse on any suite or task (exit 0)"


def _test_name(c: SuiteComparison) -> str:
    rows = next(iter(c.metrics.values()), [])
    return rows[0].diff.test if rows else ""


def format_text(comparisons: list[SuiteComparison], alpha: float, margin: float, gate: bool = True) -> str:
    """The terminal report: per suite a scope block and one table per metric; the gate line last."""
    parts = []
    for c in comparisons:
        head = [f"== {c.suite}: NEW {c.new_label} ({c.new_run}) vs BASE {c.base_label} ({c.base_run})",
                f"{c.units}; p: two-sided {_test_name(c)}; p worse: one-sided, H0 NEW >= BASE - {100 * margin:g} pts;"
                f" 95% Newcombe interval", f"{_gflops_text(c)}; {c.latency}", *c.notes]
        for metric, rows in c.metrics.items():
            head += [f"{metric}:", table(rows).to_string(index=False)]
        parts.append("\n".join(head))
    if gate:
        parts.append(gate_text(comparisons, alpha, margin))
    return "\n\n".join(parts)


def format_markdown(comparisons: list[SuiteComparison], alpha: float, margin: float,
                    decision: tuple[int, str] | None = None) -> str:
    """A summary for a CI comment: the verdict, one line per suite and metric, the task tables folded.
    `decision` (exit code, line) replaces the gate's (`track`'s sequential verdict)."""
    code, last = decision or (exit_code(comparisons), gate_text(comparisons, alpha, margin))
    verdict = "FAIL" if code else "PASS"
    first = comparisons[0]
    lines = [f"### Regression check: **{verdict}**", "",
             f"NEW `{first.new_label}` vs BASE `{first.base_label}`", "",
             "| suite | metric | units | BASE | NEW | NEW−BASE pts [95% CI] | p worse (Holm) | GFLOPs NEW/BASE | "
             "latency | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        for metric, rows in c.metrics.items():
            t = table(rows[:1]).iloc[0]
            lines.append(f"| {c.suite} | {metric} | {c.units} | {t['BASE']} | {t['NEW']} | "
                         f"{t['NEW-BASE pts [95% CI]']} | {t['p worse Holm']} | {t['GFLOPs NEW/BASE']} | "
                         f"{c.latency.removeprefix('latency: ')} | {t['verdict'] or 'ok'} |")
    for c in comparisons:
        for metric, rows in c.metrics.items():
            lines += ["", f"<details><summary>{c.suite} {metric} per task</summary>", "",
                      table(rows).to_markdown(index=False, disable_numparse=True), "", "</details>"]
        lines += [f"- {note}" for note in c.notes]
    lines += ["", last, ""]
    return "\n".join(lines)
