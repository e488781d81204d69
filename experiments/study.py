"""The study driver: a list of policy entries x suites, built where missing, evaluated on identical units, timed
interleaved in one process, compared with paired tests against the first entry.

An `Entry` is a label, a policy spec and optionally a `build` step that produces its checkpoint (distillation,
pruning, fine-tuning): `build(ctx)` returns the checkpoint folder and must be resumable (a finished build only
returns its folder). Builds run in entry order and may read earlier entries' results (`ctx.result(label)`), e.g.
a static router sized from the student's rollouts. Every entry of a suite runs the same units (tasks x init
states x seed), so outcomes pair up; the table gives success with its Wilson interval and n, the executed share
of the reference backbone and GFLOPs per call (from the calls table), McNemar's exact test against the first
entry, and latency (median over interleaved calls at batch 1, `INFERENCE_THREADS` torch threads) with the
speed-up over the first entry and its bootstrap interval.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from core.io import write_text_atomic
from core.paths import DEFAULT_RESULTS, shown
from core.spec import PolicySpec
from harness.runner import EvalRequest, EvalResult, UsageError, evaluate
from harness.rollouts import run_summary
from harness.stats import mcnemar_exact
from tasks import expand_suites


@dataclass
class BuildContext:
    suite: str
    out: Path
    """Folder the entry's build writes into (under `<results>/studies/<study>/<suite>/<label>/`)."""
    results: dict[str, EvalResult]
    """Earlier entries' evaluations of this suite, by label."""
    log: Callable[[str], None] = print

    def result(self, label: str) -> EvalResult:
        if label not in self.results:
            raise KeyError(f"entry {label!r} must come before the one that reads its results")
        return self.results[label]


@dataclass(frozen=True)
class Entry:
    label: str
    spec: PolicySpec
    build: Callable[[BuildContext], Path] | None = None
    group: str = ""
    """The method this entry is one setting of (e.g. `pruned-first-ft` for each of its budgets): reports join a
    group's entries across compute; "": the entry's family."""


@dataclass
class Study:
    name: str
    suites: tuple[str, ...]
    entries: tuple[Entry, ...]
    episodes: int = 20
    """Init states per task (the first `episodes` of every task)."""
    tasks: tuple[int, ...] | None = None
    seed: int = 0
    latency_calls: int = 50
    """Interleaved timed calls per entry (0: no timing)."""
    observations: int = 40
    notes: list[str] = field(default_factory=list)
    """Lines the report adds under the scope (what the study holds fixed, how variants were derived)."""
    paired_with: str | None = None
    """Label of the entry success is paired with (McNemar); None: the first entry, which speed-ups are against."""

    @classmethod
    def from_file(cls, path: Path, **defaults) -> "Study":
        """A study file: JSON `{"name", "suites", "episodes", "tasks", "paired_with", "entries": [{"label", "group",
        "family", "params", "checkpoint"}]}`; keys it lacks come from `defaults` (`suites`, `episodes`, `tasks`,
        ...), the name from the file's stem. UsageError names the file and what is wrong."""
        from core.spec import ParamError

        try:
            data = json.loads(Path(path).read_text())
            entries = tuple(Entry(e.get("label") or e["family"], PolicySpec.from_dict(
                {k: v for k, v in e.items() if k not in ("label", "group")}), group=e.get("group", ""))
                for e in data["entries"])
        except (OSError, json.JSONDecodeError, KeyError, ParamError) as err:
            raise UsageError(f"study file {path}: {err}") from None
        given = {k: tuple(data[k]) if k in ("suites", "tasks") else data[k]
                 for k in ("suites", "episodes", "tasks", "paired_with") if data.get(k)}
        return cls(data.get("name", Path(path).stem), entries=entries, **{**defaults, **given})

    def __post_init__(self):
        labels = [e.label for e in self.entries]
        if len(set(labels)) != len(labels) or not labels:
            raise UsageError(f"study {self.name!r} needs distinct entry labels, got {labels}")
        if self.paired_with is not None and self.paired_with not in labels:
            raise UsageError(f"study {self.name!r}: paired_with={self.paired_with!r} is none of its entries {labels}")


def _latency(loaded: dict, suite: str, study: Study, root: Path, log) -> dict[str, np.ndarray]:
    """Seconds per call of every entry's policy, interleaved in this process on observations recorded from expert
    episodes of the suite; entries that observe differently from the first are not timed."""
    from harness.observations import record_observations
    from harness.profiling import time_on_recorded
    from harness.worker import INFERENCE_THREADS

    first = next(iter(loaded.values())).policy.obs_spec
    same = {label: lp for label, lp in loaded.items() if lp.policy.obs_spec == first}
    if len(same) < len(loaded):
        log(f"not timed (other observations than {next(iter(loaded))}): {sorted(set(loaded) - set(same))}")
    recorded = record_observations(suite, first, study.observations, root)
    log(f"timing {len(same)} policies interleaved, {study.latency_calls} calls each, {INFERENCE_THREADS} thread(s)")
    return time_on_recorded({label: (lp.policy, recorded) for label, lp in same.items()}, study.latency_calls,
                            INFERENCE_THREADS)


def routing_summary(result: EvalResult, depth: int) -> dict:
    """Routing diversity of an entry over its rollout calls (`harness.paper_tables.routing_diversity`, with the
    task-route mutual information) and each reference block's share of calls (`block_use_%`, comma-separated);
    empty for a policy without blocks."""
    from harness.paper_tables import routing_diversity

    calls = result.calls[result.calls["key"].isin(result.episodes["key"]) & result.calls["blocks"].notna()]
    if not len(calls):
        return {"route_sets": np.nan, "route_entropy_bits": np.nan, "top_set_%": np.nan, "task_route_bits": np.nan,
                "block_use_%": ""}
    tasks = calls["key"].map(result.episodes.set_index("key")["task_index"])
    d = routing_diversity(calls["blocks"], tasks)
    use = np.zeros(depth)
    for blocks in calls["blocks"]:
        use[list(blocks)] += 1
    return {"route_sets": d["sets"], "route_entropy_bits": d["entropy_bits"], "top_set_%": 100 * d["top_share"],
            "task_route_bits": d["task_bits"], "block_use_%": ",".join(f"{u:.0f}" for u in 100 * use / len(calls))}


def reference_depth(run_dir: Path) -> int:
    """Blocks of the backbone a run's calls index (its compute model's reference; 0 without blocks)."""
    return len(json.loads((run_dir / "manifest.json").read_text()).get("compute", {}).get("block_flops", []))


def built_spec(study_name: str, entry: Entry, suite: str, results_root: Path, results: dict[str, EvalResult],
               log=print) -> PolicySpec:
    """`entry`'s spec, with the checkpoint its build produces (resumable) under
    `<results>/studies/<study_name>/<suite>/<label>/`; `results`: the suite's earlier entries' evaluations."""
    if entry.build is None:
        return entry.spec
    out = Path(results_root) / "studies" / study_name / suite / entry.label
    log(f"[{suite}] building {entry.label} (a finished build is reused)")
    checkpoint = entry.build(BuildContext(suite, out, results, log))
    log(f"[{suite}] {entry.label}: checkpoint {shown(Path(checkpoint))}")
    return entry.spec.with_checkpoint(checkpoint)


def run_study(study: Study, workers: int = 1, results_root: Path = DEFAULT_RESULTS, report_dir: Path | None = None,
              log=print) -> pd.DataFrame:
    """Build, evaluate, time and tabulate every entry on every suite; writes `<results>/studies/<name>/table.csv`
    and, with `report_dir`, `<report_dir>/<name>_<suite>.md`. Returns the table (one row per suite x entry)."""
    from harness.profiling import speedup_ci
    from harness.store import cpu_model
    from policies import load_policy

    results_root = Path(results_root)
    rows = []
    for suite in (s for name in study.suites for s in expand_suites(name)):
        results: dict[str, EvalResult] = {}
        loaded = {}
        for entry in study.entries:
            spec = built_spec(study.name, entry, suite, results_root, results, log)
            log(f"[{suite}] evaluating {entry.label} ({study.episodes} init states per task)")
            results[entry.label] = evaluate(EvalRequest(
                policy=spec, suite=suite, episodes=study.episodes, tasks=study.tasks, workers=workers,
                seed=study.seed, results_root=results_root), progress=False)
            loaded[entry.label] = load_policy(spec, suite)
        keys = {label: set(r.episodes["key"]) for label, r in results.items()}
        if len({frozenset(k) for k in keys.values()}) != 1:
            raise RuntimeError(f"[{suite}] entries ran different units: {({k: len(v) for k, v in keys.items()})}")
        times = _latency(loaded, suite, study, results_root, log) if study.latency_calls else {}
        timing = f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} on {cpu_model()}"  # rows sharing it were timed together
        base_label = study.entries[0].label
        pair_label = study.paired_with or base_label
        base = results[pair_label].episodes.set_index("key")["success"]
        for entry in study.entries:
            r = results[entry.label]
            mine = r.episodes.set_index("key")["success"].reindex(base.index)
            only_base, only_mine, p = mcnemar_exact(base.tolist(), mine.tolist())
            row = {"suite": suite, "entry": entry.label, "group": entry.group, "run": shown(r.run_dirs[0]),
                   "sha256": loaded[entry.label].identity["checkpoint_sha256"][:12], **run_summary(r.episodes, r.calls),
                   f"only_{pair_label}": only_base, "only_this": only_mine, "mcnemar_p": p,
                   **routing_summary(r, reference_depth(r.run_dirs[0]))}
            if entry.label in times:
                row["ms_p50"] = 1e3 * float(np.median(times[entry.label]))
                ratio, lo, hi = speedup_ci(times[base_label], times[entry.label])
                row[f"speedup_vs_{base_label}"] = f"{ratio:.2f}x [{lo:.2f}, {hi:.2f}]"
                row["timed"] = timing
            rows.append(row)
    path = results_root / "studies" / study.name / "table.csv"
    table = merged_table(pd.read_csv(path) if path.exists() else None, pd.DataFrame(rows).assign(units=units(study)))
    write_text_atomic(path, table.to_csv(index=False))
    if report_dir is not None:
        # Only the suites run here: the study's notes and units describe this invocation, not another suite's rows.
        for suite, part in table[table["suite"].isin({r["suite"] for r in rows})].groupby("suite", sort=False):
            write_text_atomic(Path(report_dir) / f"{study.name}_{suite}.md", format_table(study, suite, part))
    return table


def units(study: Study) -> str:
    """The units every entry of `study` runs, as the table's `units` column (rows pair only within one value)."""
    tasks = "all tasks" if study.tasks is None else f"tasks {','.join(map(str, study.tasks))}"
    return f"{tasks} x init 0-{study.episodes - 1}, seed {study.seed}"


def merged_table(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """`new`'s rows replacing `old`'s of the same (suite, entry), so that invocations running a subset of a study's
    entries add to its table instead of erasing it. Old rows of another `units` than the new rows' of their suite
    are dropped (they do not pair with them); old rows keep their order, new entries come after them."""
    if old is None or old.empty or "units" not in old:
        return new.reset_index(drop=True)
    scope = new.groupby("suite")["units"].first()
    old = old[old["suite"].map(scope).isna() | (old["units"] == old["suite"].map(scope))]
    key = list(zip(new["suite"], new["entry"]))
    replaced = {k: row for k, row in zip(key, new.to_dict("records"))}
    rows = [replaced.pop((r["suite"], r["entry"]), r) for r in old.to_dict("records")]
    return pd.DataFrame(rows + list(replaced.values()), columns=list(dict.fromkeys([*old.columns, *new.columns])))


def format_table(study: Study, suite: str, table: pd.DataFrame) -> str:
    from harness.worker import INFERENCE_THREADS

    scope = (f"scope: {suite}, {units(study)}: the same units for every entry; success with its Wilson 95% interval, McNemar's exact test on the paired units against "
             f"`{study.paired_with or study.entries[0].label}`; exec % = executed share of the reference (teacher) backbone's FLOPs and "
             f"GFLOPs per call over each entry's own rollout calls (batch 1; FlopCounterMode + CPU attention, "
             f"multiply-add = 2); latency: median of {study.latency_calls} interleaved calls per entry on "
             f"{study.observations} observations recorded from expert episodes, {INFERENCE_THREADS} torch "
             f"thread(s), each entry timed with the first in the last invocation that ran it (a run of some entries "
             f"updates theirs and keeps the others' rows); `timed`: when and on which CPU, the same for rows timed "
             f"together (compare latencies only within one value)")
    body = (table.drop(columns=["suite", "units"], errors="ignore").fillna({"group": ""})
            .to_markdown(index=False, floatfmt=".3g"))
    notes = "".join(f"- {n}\n" for n in study.notes)
    return f"# {study.name} on {suite}\n\n{scope}\n\n{notes}\n{body}\n"
