"""Paper-style tables of evaluated runs (Markdown and LaTeX booktabs), their scope lines and the protocol check.

The unit is a `ReportRun`: one run folder under a results root (`<tag>/<suite>`, the index's `run`), with its
manifest, episodes and calls read through `harness.index.ResultsIndex`, and the label it carries in tables and
figures. Numbers come from the runs' own tables (`harness.rollouts.run_summary`: success with its Wilson 95%
interval, executed backbone share and GFLOPs per call over every recorded call) and, for parameters and latency,
from what the report command measured in its process (`Measured`). Every table carries a scope line (evaluation
device, inference settings, what was counted) and one protocol line per suite, from the manifests; runs of one
suite evaluated under another protocol, simulator or inference setting are refused (`check_comparable`).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from harness.index import ResultsIndex
from harness.profiling import speedup_ci
from harness.rollouts import run_summary
from harness.runner import UsageError
from harness.stats import wilson_interval
from tasks.protocol import LIBERO_SUITES, SIMPLER_SUITES

SUITE_ORDER = (*LIBERO_SUITES, *SIMPLER_SUITES)
MISSING = "–"
"""Cell text of a figure that does not exist for a row (no FLOPs for a scripted policy, a policy not timed)."""


@dataclass
class ReportRun:
    """One evaluated run as a report shows it."""

    run: str
    """Folder relative to the results root, `<tag>/<suite>` (the index's `run`)."""
    label: str
    """The policy's name in tables and figures; one label is one row across suites."""
    manifest: dict
    episodes: pd.DataFrame
    calls: pd.DataFrame
    group: str = ""
    """The method the run is one setting of (a study entry's `group`), which figures join across budgets; "" : its
    family."""

    @property
    def suite(self) -> str:
        return self.manifest["suite"]

    @property
    def family(self) -> str:
        return self.manifest["identity"]["family"]

    @property
    def sha(self) -> str:
        return self.manifest["identity"]["checkpoint_sha256"]

    @property
    def depth(self) -> int | None:
        """Blocks of the reference (teacher) backbone, from the run's compute model; None when not counted."""
        return len(self.manifest.get("compute", {}).get("block_flops", [])) or None

    @cached_property
    def summary(self) -> dict:
        """`run_summary` of all the run's episodes (success %, Wilson interval, exec %, GFLOPs per call, calls)."""
        return run_summary(self.episodes, self.calls)

    @cached_property
    def chunk(self) -> float:
        """Env steps per policy call (the action chunk executed): the median gap between consecutive calls of an
        episode; steps per call where no episode made two calls; NaN without calls."""
        gaps = self.calls.sort_values(["key", "call"]).groupby("key")["env_step"].diff().dropna()
        if len(gaps):
            return float(gaps.median())
        calls = self.episodes["policy_calls"].sum()
        return float(self.episodes["steps"].sum() / calls) if calls else math.nan

    @cached_property
    def block_sets(self) -> list[tuple[int, ...]]:
        """The executed reference blocks of every call that reported them, each as a sorted tuple."""
        return [tuple(sorted(int(b) for b in blocks)) for blocks in self.calls["blocks"][self.calls["blocks"].notna()]]


@dataclass
class Measured:
    """What the report command measured in its own process."""

    times: dict[str, np.ndarray] = field(default_factory=dict)
    """Run -> seconds per call, interleaved with every other timed run (call i of each before call i + 1 of any)."""
    params: dict[str, int] = field(default_factory=dict)
    """Run -> parameters of the policy's torch modules (absent: no torch modules, or not rebuilt)."""
    scope: str = "latency: not timed"
    """How the latency was measured (calls, observations, device, threads), or why it was not."""
    notes: list[str] = field(default_factory=list)
    """Runs that could not be rebuilt or timed, and why."""


@dataclass
class Table:
    """A table as strings, rendered alike to Markdown, LaTeX and HTML (`harness.html_report`)."""

    key: str
    """File and anchor id (`tab:<key>` in LaTeX)."""
    title: str
    columns: list[str]
    rows: list[list[str]]
    scope: list[str]
    """Lines that say what the table holds: scope, protocols, marks of forced comparisons."""
    notes: list[str] = field(default_factory=list)
    """Definitions printed under the table."""
    rules: set[int] = field(default_factory=set)
    """Row indices preceded by a rule (summary rows, a new suite)."""
    bold: set[tuple[int, int]] = field(default_factory=set)
    """(row, column) cells set in bold: the best success of a column."""
    text_columns: int = 1
    """Leading columns that hold text (left-aligned); the rest are numbers (right-aligned)."""
    latex_columns: str | None = None
    """LaTeX column spec overriding the default (e.g. a paragraph column for long instructions)."""

    def markdown(self) -> str:
        def cell(i: int, j: int, text: str) -> str:
            text = text.replace("|", "\\|")
            return f"**{text}**" if (i, j) in self.bold and text != MISSING else text

        align = [":---" if j < self.text_columns else "---:" for j in range(len(self.columns))]
        lines = [f"### {self.title}", "", *(f"{s}  " for s in self.scope), "",
                 "| " + " | ".join(self.columns) + " |", "|" + "|".join(align) + "|"]
        lines += ["| " + " | ".join(cell(i, j, c) for j, c in enumerate(row)) + " |" for i, row in enumerate(self.rows)]
        lines += ["", *(f"- {n}" for n in self.notes)] if self.notes else []
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        """A `table` float with booktabs rules, scaled to the line width (needs booktabs and graphicx)."""
        spec = self.latex_columns or "l" * self.text_columns + "r" * (len(self.columns) - self.text_columns)
        body = []
        for i, row in enumerate(self.rows):
            if i in self.rules:
                body.append(r"\midrule")
            cells = [latex_escape(c) for c in row]
            cells[0] = "{}" + cells[0] if cells[0].startswith("[") else cells[0]  # else `\\ [` reads an argument
            body.append(" & ".join(rf"\textbf{{{c}}}" if (i, j) in self.bold and row[j] != MISSING else c
                                   for j, c in enumerate(cells)) + r" \\")
        caption = latex_escape(". ".join([self.title, *self.scope]))
        notes = r"\par\smallskip{\footnotesize " + latex_escape(" ".join(self.notes)) + "}\n" if self.notes else ""
        return (f"% {self.title}\n\\begin{{table}}[t]\n\\centering\n\\caption{{{caption}}}\n\\label{{tab:{self.key}}}\n"
                f"\\resizebox{{\\linewidth}}{{!}}{{%\n\\begin{{tabular}}{{{spec}}}\n\\toprule\n"
                + " & ".join(latex_escape(c) for c in self.columns) + " \\\\\n\\midrule\n" + "\n".join(body)
                + f"\n\\bottomrule\n\\end{{tabular}}}}\n{notes}\\end{{table}}\n")


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "×": r"$\times$", "–": "--",
          "…": r"\ldots{}", "·": r"$\cdot$", "≥": r"$\geq$", "÷": r"$\div$"}


def latex_escape(text: str) -> str:
    """`text` with LaTeX's special characters and the few non-ASCII symbols the tables use made safe."""
    return "".join(_LATEX.get(ch, ch) for ch in text)


# --- selection ---------------------------------------------------------------------------------------------


def _base_label(manifest: dict) -> str:
    spec = manifest["spec"]
    params = ",".join(f"{k}={v}" for k, v in sorted(spec.get("params", {}).items()))
    return f"{spec['name']}[{params}]" if params else spec["name"]


def load_runs(ix: ResultsIndex, runs: Sequence[str], labels: dict[str, str] | None = None) -> list[ReportRun]:
    """The runs `runs` (index `run` keys, in this order) with their episodes and calls. `labels`: run -> label
    (a study's entry names); otherwise the spec's name and params, plus the checkpoint's sha256 prefix where two
    runs of one suite would share a label. UsageError for a run not under the index's root or without episodes."""
    known = {str(s.dir.relative_to(ix.root)): s for s in ix.stores}
    unknown = [r for r in runs if r not in known]
    if unknown:
        raise UsageError(f"no run {unknown[0]!r} under {ix.root} (a run is <tag>/<suite>, e.g. "
                         f"{next(iter(known), 'teacher-<hash>/libero_spatial')}; `make query` lists them)")
    episodes = ix.sql("SELECT * FROM episodes WHERE list_contains(?, run)", list(runs))
    calls = ix.sql("SELECT * FROM calls WHERE list_contains(?, run)", list(runs))
    out = [ReportRun(r, "", known[r].manifest(), episodes[episodes["run"] == r].reset_index(drop=True),
                     calls[calls["run"] == r].reset_index(drop=True)) for r in runs]
    empty = [r.run for r in out if not len(r.episodes)]
    if empty:
        raise UsageError(f"run {empty[0]} has no finished episodes to report")
    names = Counter((_base_label(r.manifest), r.suite) for r in out)
    for r in out:
        base = _base_label(r.manifest)
        r.label = (labels or {}).get(r.run) or (base if names[base, r.suite] == 1 else f"{base} {r.sha[:6]}")
    return out


def suites_of(runs: Iterable[ReportRun]) -> list[str]:
    """The runs' suites in the benchmark's order (LIBERO, then SIMPLER; others after, as met)."""
    found = list(dict.fromkeys(r.suite for r in runs))
    return sorted(found, key=lambda s: SUITE_ORDER.index(s) if s in SUITE_ORDER else len(SUITE_ORDER))


def policies_of(runs: Iterable[ReportRun]) -> list[str]:
    """Labels in the order first met (the baseline first when the selection puts it first)."""
    return list(dict.fromkeys(r.label for r in runs))


# --- the protocol check ------------------------------------------------------------------------------------

COMPARED = {"protocol": "protocol", "simulator": "simulator versions", "inference": "inference settings"}
"""Manifest fields that must agree between runs of one suite for their numbers to share a table."""


def _difference(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    shown = [f"{k} {json.dumps(a.get(k), default=str)} vs {json.dumps(b.get(k), default=str)}" for k in keys[:3]]
    return "; ".join(shown) + (f"; {len(keys) - 3} more" if len(keys) > 3 else "")


def check_comparable(runs: Sequence[ReportRun], force: bool = False) -> dict[str, list[str]]:
    """Per suite, every run must share the first run's protocol (hash and constants), simulator versions and
    inference settings. UsageError naming the first difference (one line) unless `force`; with `force`, suite ->
    lines that mark its tables as mixing them."""
    marks: dict[str, list[str]] = {}
    for suite in suites_of(runs):
        group = [r for r in runs if r.suite == suite]
        for key, what in COMPARED.items():
            first = group[0]
            for other in group[1:]:
                same = (first.manifest.get(key) == other.manifest.get(key)
                        and (key != "protocol" or first.manifest["protocol_hash"] == other.manifest["protocol_hash"]))
                if same:
                    continue
                line = (f"{suite}: {first.run} and {other.run} ran under different {what} "
                        f"({_difference(first.manifest.get(key) or {}, other.manifest.get(key) or {})})")
                if not force:
                    raise UsageError(f"{line}; their numbers do not share a table (--force tabulates them, marked)")
                marks.setdefault(suite, []).append(f"MIXED (--force): {line}")
    return marks


# --- scope lines -------------------------------------------------------------------------------------------


def _span(values: Iterable) -> str:
    values = sorted(set(values))
    return f"{values[0]}–{values[-1]}" if len(values) > 1 else str(values[0])


def scope_line(runs: Sequence[ReportRun]) -> str:
    """Where and how the runs were evaluated (CPU model and cores of their invocations, worker processes, torch
    threads and batch of a call) and what the table counts (runs, episodes, calls)."""
    invocations = [i for r in runs for i in r.manifest.get("invocations", [])]
    machines = sorted({f"{i['machine'].get('cpu', '?')}, {i['machine'].get('cores', '?')} cores"
                       for i in invocations if "machine" in i}) or ["unknown"]
    workers = [i["workers"] for i in invocations if "workers" in i]
    threads = _span(r.manifest["inference"]["torch_threads"] for r in runs)
    batch = _span(r.manifest["inference"]["batch"] for r in runs)
    episodes = sum(len(r.episodes) for r in runs)
    calls = sum(len(r.calls) for r in runs)
    where = f"{' / '.join(machines)}" + (f" with {_span(workers)} worker process(es)" if workers else "")
    return (f"Scope: evaluated on {where}; policy calls at batch {batch}, {threads} torch thread(s); counted: "
            f"{episodes} episodes and {calls} policy calls of {len(runs)} run(s); success over episodes (errors count "
            f"as failures) with its Wilson 95% interval")


def protocol_line(runs: Sequence[ReportRun]) -> str:
    """The protocol of one suite's runs: tasks and init states evaluated, step limit and control rate, seed,
    source and simulator versions (from the first run's manifest; `check_comparable` made them agree)."""
    m = runs[0].manifest
    p, sim = m["protocol"], m["simulator"]
    episodes = pd.concat([r.episodes for r in runs])
    units = {r.label: len(r.episodes) for r in runs}
    versions = ", ".join(f"{k} {v}" for k, v in sorted(sim.items()) if k != "simpler_assets")
    line = (f"Protocol {m['suite']} ({m['protocol_hash']}): {episodes['task_index'].nunique()} tasks × init states "
            f"{_span(episodes['init_index'])} of {p.get('n_init_states', '?')}, seed {_span(episodes['seed'])}, "
            f"step limit {p.get('max_steps', '?')} at {p.get('control_hz', '?')} Hz; source: {p.get('source', '?')}; "
            f"simulator {versions}")
    if "simpler_assets" in sim and sim["simpler_assets"] != "official":
        line += "; SIMPLER asset stand-ins (not comparable to published numbers)"
    if len(set(units.values())) > 1:
        line += "; episodes differ between policies: " + ", ".join(f"{k} {v}" for k, v in units.items())
    return line


def _scope(runs: Sequence[ReportRun], marks: dict[str, list[str]]) -> list[str]:
    suites = suites_of(runs)
    return [scope_line(runs), *(protocol_line([r for r in runs if r.suite == s]) for s in suites),
            *(m for s in suites for m in marks.get(s, []))]


# --- figures of a row --------------------------------------------------------------------------------------


def routing_diversity(block_sets: Iterable[Sequence[int]], tasks: Iterable | None = None) -> dict:
    """How varied the executed block sets of a policy's calls are: `calls`, `sets` (distinct sets), `entropy_bits`
    (Shannon entropy of the empirical distribution of sets, in bits: 0 for a static policy, log2(sets) when all are
    equally common), `top_set` (the most common set, sorted) and `top_share` (its fraction of calls, 0-1). With
    each call's task in `tasks`, also `task_bits`: the mutual information between task and set, H(set) -
    H(set | task), in bits (plug-in estimate: 0 when every task draws sets alike; biased upwards when sets are
    many and calls per task few). A set is unordered (block order within a call does not matter). ValueError for
    no calls."""
    sets = [tuple(sorted(set(int(b) for b in s))) for s in block_sets]
    counts = Counter(sets)
    n = sum(counts.values())
    if not n:
        raise ValueError("no calls with executed blocks")

    def entropy(c: Counter) -> float:
        p = np.array(list(c.values())) / sum(c.values())
        return float(-(p * np.log2(p)).sum() + 0.0)

    top, k = counts.most_common(1)[0]
    out = {"calls": n, "sets": len(counts), "entropy_bits": entropy(counts), "top_set": top, "top_share": k / n}
    if tasks is not None:
        by_task: dict = {}
        for task, s in zip(tasks, sets):
            by_task.setdefault(task, Counter())[s] += 1
        conditional = sum(sum(c.values()) / n * entropy(c) for c in by_task.values())
        out["task_bits"] = max(0.0, out["entropy_bits"] - conditional)
    return out


def block_ranges(blocks: Sequence[int]) -> str:
    """(0, 1, 2, 4) -> '0-2,4'."""
    parts, start = [], None
    for i, b in enumerate(blocks):
        if start is None:
            start = b
        if i + 1 == len(blocks) or blocks[i + 1] != b + 1:
            parts.append(str(start) if start == b else f"{start}-{b}")
            start = None
    return ",".join(parts)


def _num(x: float | None, fmt: str = ".2f") -> str:
    return MISSING if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _success(k: int, n: int, fmt: str = ".1f") -> str:
    lo, hi = wilson_interval(k, n)
    return f"{100 * k / n:{fmt}} [{100 * lo:{fmt}}, {100 * hi:{fmt}}]" if n else MISSING


def baselines(runs: Sequence[ReportRun]) -> dict[str, ReportRun]:
    """Suite -> the run speed-ups are measured against: the teacher run the suite's other runs count their compute
    against (their manifests' `compute.reference`), else its first teacher run; suites without one have none."""
    out = {}
    for suite in suites_of(runs):
        group = [r for r in runs if r.suite == suite]
        refs = Counter((r.manifest.get("compute", {}).get("reference") or {}).get("checkpoint_sha256") for r in group)
        teachers = [r for r in group if r.family == "teacher"]
        if teachers:
            out[suite] = max(teachers, key=lambda r: refs[r.sha])  # max keeps the first among equals
    return out


def speedup(runs: Sequence[ReportRun], measured: Measured,
            base: dict[str, ReportRun]) -> tuple[float, float, float] | None:
    """Speed-up of `runs` (one policy, one run per suite) over the baselines: ratio of medians with its paired
    bootstrap 95% interval over the interleaved calls of every suite where both were timed, pooled in suite order
    (call i of a run pairs with call i of its suite's baseline). None where no such pair exists."""
    pairs = [(measured.times[base[r.suite].run], measured.times[r.run]) for r in runs
             if r.suite in base and r.run in measured.times and base[r.suite].run in measured.times]
    if not pairs:
        return None
    return speedup_ci(np.concatenate([b for b, _ in pairs]), np.concatenate([o for _, o in pairs]))


def _speedup_text(s: tuple[float, float, float] | None, is_base: bool) -> str:
    if s is None:
        return MISSING
    return "1.00× (base)" if is_base else f"{s[0]:.2f}× [{s[1]:.2f}, {s[2]:.2f}]"


def _params_text(runs: Sequence[ReportRun], measured: Measured) -> str:
    counts = sorted({measured.params[r.run] / 1e6 for r in runs if r.run in measured.params})
    if not counts:
        return MISSING
    return f"{counts[0]:.1f}" if len(counts) == 1 else f"{counts[0]:.1f}–{counts[-1]:.1f}"


# --- the tables --------------------------------------------------------------------------------------------


def _latency_note(measured: Measured, base: dict[str, ReportRun]) -> str:
    bases = ", ".join(f"{s}: {r.label}" for s, r in base.items()) or "none (no teacher run)"
    return (f"{measured.scope}. Speed-up = median latency of the baseline (the teacher; {bases}) over the policy's, "
            f"with a paired bootstrap 95% interval over the interleaved calls")


def main_table(runs: Sequence[ReportRun], measured: Measured, marks: dict[str, list[str]]) -> Table:
    """The paper's main table: one row per policy; per suite success % [Wilson 95%], the unweighted average over
    suites, then averages over suites of GFLOPs per call and per executed action, executed share of the teacher's
    backbone (%), latency (ms, median of the interleaved calls pooled over suites) and speed-up over the teacher."""
    suites, base = suites_of(runs), baselines(runs)
    by = {(r.label, r.suite): r for r in runs}
    sizes = {s: {len(r.episodes) for r in runs if r.suite == s} for s in suites}
    # Episodes per policy go into the column header when every policy of the suite ran as many.
    header_n = {s: next(iter(n)) if len(n) == 1 else None for s, n in sizes.items()}
    columns = ["Policy", "Params (M)", *(f"{s} SR %" + (f" (n={header_n[s]})" if header_n[s] else "") for s in suites),
               "Avg. SR %", "GFLOPs/call", "GFLOPs/action", "Exec. backbone %", "Latency ms", "Speed-up"]
    rows, scores = [], []
    for label in policies_of(runs):
        mine = [by[label, s] for s in suites if (label, s) in by]
        cells = []
        for s in suites:
            r = by.get((label, s))
            if r is None:
                cells.append(MISSING)
                continue
            k, n = int(r.episodes["success"].sum()), len(r.episodes)
            cells.append(_success(k, n) + ("" if header_n[s] else f" (n={n})"))
        rates = [r.summary["success_%"] for r in mine]
        avg = float(np.mean(rates)) if len(mine) == len(suites) else math.nan
        scores.append([*(by[label, s].summary["success_%"] if (label, s) in by else -1 for s in suites),
                       -1 if math.isnan(avg) else avg])
        times = np.concatenate([measured.times[r.run] for r in mine if r.run in measured.times] or [np.array([])])
        is_base = all(base.get(r.suite) is r for r in mine)
        rows.append([label, _params_text(mine, measured), *cells, _num(avg, ".1f"),
                     _num(float(np.mean([r.summary["gflops_per_call"] for r in mine]))),
                     _num(float(np.mean([r.summary["gflops_per_call"] / r.chunk for r in mine])), ".3f"),
                     _num(float(np.mean([r.summary["exec_backbone_%"] for r in mine])), ".1f"),
                     _num(1e3 * float(np.median(times)) if len(times) else None, ".1f"),
                     _speedup_text(speedup(mine, measured, base), is_base)])
    bold = set()
    for j, col in enumerate(np.array(scores).T if scores else []):
        best = col.max()
        bold |= {(i, 2 + j) for i, v in enumerate(col) if v == best and v >= 0}
    sizes_of = {_num(r.chunk, "g") for r in runs}
    chunks = (f"{sizes_of.pop()} for every policy" if len(sizes_of) == 1
              else ", ".join(f"{r.label} ({r.suite}) {_num(r.chunk, 'g')}" for r in runs))
    notes = [
        "SR = success rate, mean [Wilson 95% interval] over episodes; Avg. = unweighted mean over the suites (only "
        "for policies evaluated on all of them); the best of each success column is in bold.",
        "GFLOPs per call from the harness's compute model (torch FlopCounterMode + CPU attention, multiply-add = 2) "
        "over every recorded call; per action = per call ÷ the policy's chunk length (env steps per call, from the "
        f"calls table: {chunks}); Exec. backbone = executed share of the teacher backbone's FLOPs; compute columns "
        "are means over the suites.",
        _latency_note(measured, base) + "; latency pooled over suites.",
        "Params = parameters of the policy's torch modules (M), counted on the rebuilt policy (range over suites).",
        *measured.notes,
    ]
    return Table("main", "Success, compute and speed of each policy", columns, rows, _scope(runs, marks),
                 notes, bold=bold)


def efficiency_table(runs: Sequence[ReportRun], measured: Measured, marks: dict[str, list[str]]) -> Table:
    """Per suite and policy: episodes and calls counted, chunk length, GFLOPs per call and per action, executed
    backbone share and blocks, latency recorded during evaluation (median per call) and measured here (median,
    p90 of the interleaved calls), speed-up over the suite's teacher, parameters."""
    base = baselines(runs)
    columns = ["Suite", "Policy", "Episodes", "Calls", "Chunk", "GFLOPs/call", "GFLOPs/action", "Exec. %",
               "Blocks/call", "Eval ms p50", "Timed ms p50", "Timed ms p90", "Speed-up", "Params (M)"]
    rows, rules = [], set()
    for s in suites_of(runs):
        rules.add(len(rows))
        for r in (r for r in runs if r.suite == s):
            t = measured.times.get(r.run)
            blocks = r.calls["n_blocks"].dropna()
            rows.append([s, r.label, str(len(r.episodes)), str(len(r.calls)), _num(r.chunk, "g"),
                         _num(r.summary["gflops_per_call"]), _num(r.summary["gflops_per_call"] / r.chunk, ".3f"),
                         _num(r.summary["exec_backbone_%"], ".1f"),
                         f"{blocks.mean():.2f}/{r.depth}" if len(blocks) and r.depth else MISSING,
                         _num(1e3 * r.calls["policy_s"].median() if len(r.calls) else None, ".1f"),
                         _num(None if t is None else 1e3 * float(np.median(t)), ".1f"),
                         _num(None if t is None else 1e3 * float(np.percentile(t, 90)), ".1f"),
                         _speedup_text(speedup([r], measured, base), base.get(s) is r), _params_text([r], measured)])
    notes = ["Eval ms = per-call latency recorded during the evaluation (its workers ran side by side, see the "
             "scope); Timed ms = measured by this report, interleaved in one process.",
             _latency_note(measured, base) + ".", "Blocks/call = mean executed reference blocks / the teacher's depth."]
    return Table("efficiency", "Compute and latency per suite", columns, rows, _scope(runs, marks), notes,
                 rules=rules - {0}, text_columns=2)


def routing_table(runs: Sequence[ReportRun], marks: dict[str, list[str]]) -> Table | None:
    """Routing diversity of every run whose calls report executed blocks (`routing_diversity`); None if none do."""
    with_blocks = [r for r in runs if r.block_sets]
    if not with_blocks:
        return None
    columns = ["Suite", "Policy", "Calls", "Blocks/call", "Distinct sets", "Entropy (bits)", "Top set",
               "Top share %"]
    rows, rules = [], set()
    for s in suites_of(with_blocks):
        rules.add(len(rows))
        for r in (r for r in with_blocks if r.suite == s):
            d = routing_diversity(r.block_sets)
            rows.append([s, r.label, str(d["calls"]), f"{np.mean([len(b) for b in r.block_sets]):.2f}", str(d["sets"]),
                         f"{d['entropy_bits']:.2f}", block_ranges(d["top_set"]), f"{100 * d['top_share']:.1f}"])
    notes = ["A block set is the set of reference (teacher) blocks one call executed; entropy is the Shannon "
             "entropy of the distribution of sets over all calls (0 bits: the same set every call).",
             "Top set = the most common set (block indices), top share = its share of calls."]
    return Table("routing", "Routing diversity", columns, rows, _scope(with_blocks, marks), notes,
                 rules=rules - {0}, text_columns=2)


def task_table(runs: Sequence[ReportRun], suite: str, marks: dict[str, list[str]]) -> Table:
    """Success % [Wilson 95%] per task of `suite` for each policy, and over all tasks."""
    mine = [r for r in runs if r.suite == suite]
    episodes = pd.concat([r.episodes for r in mine])
    names = episodes.groupby("task_index")["instruction"].first()
    columns = ["Task", "Instruction", *(r.label for r in mine)]
    rows, scores = [], []
    for task, text in names.items():
        cells, row_scores = [], []
        for r in mine:
            eps = r.episodes[r.episodes["task_index"] == task]
            cells.append(_success(int(eps["success"].sum()), len(eps), ".0f") + f" ({len(eps)})")
            row_scores.append(eps["success"].mean() if len(eps) else -1)
        rows.append([str(int(task)), text, *cells])
        scores.append(row_scores)
    rows.append(["All", f"{len(names)} tasks", *(_success(int(r.episodes['success'].sum()), len(r.episodes))
                                                  + f" ({len(r.episodes)})" for r in mine)])
    scores.append([r.episodes["success"].mean() for r in mine])
    bold = {(i, 2 + j) for i, row in enumerate(scores) for j, v in enumerate(row) if v == max(row) and len(mine) > 1}
    return Table(f"tasks_{suite}", f"Success per task on {suite}", columns, rows, _scope(mine, marks),
                 ["Cells: success % [Wilson 95% interval] (episodes); the best of each row in bold."],
                 rules={len(rows) - 1}, bold=bold, text_columns=2, latex_columns="rp{7cm}" + "r" * len(mine))


def all_tables(runs: Sequence[ReportRun], measured: Measured, marks: dict[str, list[str]]) -> list[Table]:
    """The main table, efficiency per suite, routing diversity (when any run reports blocks), one task table per
    suite."""
    tables = [main_table(runs, measured, marks), efficiency_table(runs, measured, marks), routing_table(runs, marks)]
    return [t for t in tables if t is not None] + [task_table(runs, s, marks) for s in suites_of(runs)]
