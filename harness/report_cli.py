"""`make report`: paper-style tables, figures and one HTML page of evaluated runs, in `reports/<name>/`.

`python -m harness.cli report [--runs RUN,… | --study NAME] [--results results] [--out DIR] [--force]
[--calls 50] [--observations 40]`. The runs are the shipped policies' on every suite that has them (name
`shipped`; a run is shipped when its checkpoint sha256 is `checkpoints/<family>/<suite>/model.safetensors.sha256`
and it was run under the family's plain name), the listed ones, or a study's (`<results>/studies/<name>/table.csv`,
labelled by its entries). The command rebuilds each run's policy from its manifest's spec to count its parameters
and, with `--calls` > 0, times every policy in one interleaved loop in this process at batch 1 with
`harness.worker.INFERENCE_THREADS` torch threads on observations recorded from expert episodes of each suite.
Writes `tables.md`, `tables.tex`, `figures/<figure>.{png,pdf}` and `index.html`. Bad input raises
`harness.runner.UsageError` (one line).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from core.io import write_text_atomic
from core.paths import CHECKPOINTS, DEFAULT_RESULTS, REPO_ROOT, REPORTS, shown
from harness.runner import UsageError

FIRST_FAMILIES = ("teacher",)
"""Families listed first in the shipped report: the baseline row leads the tables."""


def add_parsers(sub) -> None:
    """Add the `report` sub-parser to `sub` (from `ArgumentParser.add_subparsers`)."""
    rep = sub.add_parser("report", help="paper-style tables (Markdown, LaTeX), figures and an HTML page of runs")
    rep.add_argument("--runs", default="", help="comma-separated runs under --results: <tag>/<suite>, or <tag> for "
                                                "all its suites (default: the shipped policies' runs)")
    rep.add_argument("--study", default="", help="a study's name or JSON file: the runs of "
                                                 "<results>/studies/<name>/table.csv")
    rep.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results root")
    rep.add_argument("--out", type=Path, default=None,
                     help="report folder (default: reports/<name>: shipped, the study's name, or runs-<hash>)")
    rep.add_argument("--force", action="store_true",
                     help="tabulate runs of one suite with different protocols / simulators together (marked)")
    rep.add_argument("--calls", type=int, default=50, help="interleaved timed calls per policy (0: not timed)")
    rep.add_argument("--observations", type=int, default=40, help="observations recorded per suite for timing")


@dataclass
class Selection:
    name: str
    runs: list[str]
    """Index `run` keys in table order."""
    labels: dict[str, str]
    """Run -> label given by the selection (a study's entries); others get theirs from `load_runs`."""
    notes: list[str]
    groups: dict[str, str] = field(default_factory=dict)
    """Run -> the method it is a setting of (a study entry's `group`), for the frontier's lines."""
    same_units: bool = False
    """Report only the units every run of a suite finished (a study compares its entries on the same units, while
    a reused run, e.g. the committed teacher, may hold more)."""


def shipped_checkpoints() -> list[tuple[str, str, str]]:
    """(family, suite, sha256) of every shipped checkpoint (`checkpoints/<family>/<suite or group>/
    model.safetensors.sha256`; a group's checkpoint once per member suite), the teacher's first, suites in table
    order."""
    from harness.paper_tables import SUITE_ORDER
    from tasks import expand_suites

    order = {s: i for i, s in enumerate(SUITE_ORDER)}
    shipped = [(f.parent.parent.name, suite, f.read_text().split()[0])
               for f in CHECKPOINTS.glob("*/*/model.safetensors.sha256") for suite in expand_suites(f.parent.name)]
    return sorted(shipped, key=lambda x: (x[0] not in FIRST_FAMILIES, x[0], order.get(x[1], len(order)), x[1]))


def shipped_runs(ix) -> Selection:
    """The runs of every shipped checkpoint (`shipped_checkpoints`) evaluated under the family's plain name."""
    runs, notes = [], []
    for family, suite, sha256 in shipped_checkpoints():
        found = ix.sql("SELECT run FROM runs WHERE family = ? AND name = ? AND suite = ? AND checkpoint_sha256 = ? "
                       "ORDER BY run", family, family, suite, sha256)["run"].tolist()
        runs += found
        if not found:
            notes.append(f"shipped {family} for {suite} has no run under {shown(ix.root)} "
                         f"(make eval POLICY={family} SUITE={suite})")
    return Selection("shipped", runs, {}, notes)


def listed_runs(ix, text: str) -> Selection:
    """The runs named in `text` (comma-separated `<tag>/<suite>` or `<tag>`), in that order."""
    from harness.store import digest

    known = ix.sql("SELECT run, tag FROM runs ORDER BY run")
    runs = []
    for item in (x.strip().strip("/") for x in text.split(",") if x.strip()):
        matched = known.loc[(known["run"] == item) | (known["tag"] == item), "run"].tolist()
        if not matched:
            raise UsageError(f"no run {item!r} under {shown(ix.root)} (a run is <tag>/<suite> or <tag>, e.g. "
                             f"{known['run'].iloc[0] if len(known) else 'teacher-<hash>/libero_spatial'}; "
                             f"`make query` lists them)")
        runs += [r for r in matched if r not in runs]
    return Selection(f"runs-{digest(runs)[:8]}", runs, {}, [])


def study_runs(ix, name: str) -> Selection:
    """The runs of study `name`'s table, labelled by its entries; `name` may also be the study's JSON file (as
    `make study STUDY=file.json` takes it), whose `name` (default: the file's stem) names the study."""
    if name.endswith(".json") and Path(name).is_file():
        try:
            name = json.loads(Path(name).read_text()).get("name") or Path(name).stem
        except (OSError, json.JSONDecodeError) as err:
            raise UsageError(f"study file {name}: {err}") from None
    path = ix.root / "studies" / name / "table.csv"
    if not path.exists():
        present = sorted(p.parent.name for p in (ix.root / "studies").glob("*/table.csv"))
        raise UsageError(f"no study {name!r}: {shown(path)} does not exist (studies under {shown(ix.root)}: "
                         f"{', '.join(present) or 'none'}; `make study` writes one)")
    table = pd.read_csv(path)
    groups_of = table["group"].fillna("") if "group" in table else [""] * len(table)
    runs, labels, groups = [], {}, {}
    for entry, run, group in zip(table["entry"], table["run"], groups_of):
        folder = Path(run) if Path(run).is_absolute() else REPO_ROOT / run
        try:
            key = str(folder.resolve().relative_to(ix.root.resolve()))
        except ValueError:
            raise UsageError(f"study {name!r} entry {entry!r}: run {run} is not under {shown(ix.root)}; pass the "
                             f"study's --results") from None
        runs.append(key)
        labels[key] = str(entry)
        groups[key] = str(group)
    return Selection(name, runs, labels, [], groups, same_units=True)


def measure(runs, calls: int, observations: int, results_root: Path,
            log: Callable[[str], None] = print):
    """Rebuild every run's policy from its manifest spec to count its parameters; with `calls` > 0 time all of them
    in one interleaved loop (`harness.profiling.time_on_recorded`) in this process at batch 1 under
    `torch.inference_mode` with `INFERENCE_THREADS` torch threads, each on `observations` frames recorded from
    expert episodes of its suite. A run whose policy does not rebuild with the run's identity (checkpoint moved,
    retrained) is neither counted nor timed; privileged-state policies and ones observing other cameras or
    resolutions than their suite's first timed policy are not timed. -> `paper_tables.Measured`."""
    from core.registry import UnknownName
    from core.spec import PolicySpec
    from harness.observations import record_observations, shared_spec
    from harness.paper_tables import Measured
    from harness.profiling import parameter_count, time_on_recorded, torch_modules
    from harness.store import cpu_model
    from harness.worker import INFERENCE_THREADS
    from policies import load_policy
    from policies.base import PolicyLoadError

    measured, loaded = Measured(), {}
    for r in runs:
        try:
            lp = load_policy(PolicySpec.from_dict(r.manifest["spec"]), r.suite)
        except (UnknownName, PolicyLoadError, OSError, ValueError) as err:
            measured.notes.append(f"{r.label} ({r.suite}): policy not rebuilt ({str(err).splitlines()[0]}): no "
                                  f"parameters, not timed")
            continue
        if json.loads(json.dumps(lp.identity, default=str)) != r.manifest["identity"]:
            measured.notes.append(f"{r.label} ({r.suite}): its spec now loads checkpoint "
                                  f"{lp.identity['checkpoint_sha256'][:12]}, not the run's {r.sha[:12]}: no "
                                  f"parameters, not timed")
            continue
        modules = torch_modules(lp.policy)
        if modules:
            measured.params[r.run] = parameter_count(modules)
        loaded[r.run] = lp
    if calls == 0:
        measured.scope = "Latency: not timed (--calls 0)"
        return measured
    entries = {}
    for suite in dict.fromkeys(r.suite for r in runs):
        built = [r for r in runs if r.suite == suite and r.run in loaded]
        mine = [r for r in built if not loaded[r.run].policy.obs_spec.privileged]
        measured.notes += [f"{r.label} ({suite}): acts on privileged simulator state, not timed on recorded frames"
                           for r in built if r not in mine]
        if not mine:
            continue
        first = loaded[mine[0].run].policy.obs_spec
        same = [r for r in mine if loaded[r.run].policy.obs_spec == first]
        measured.notes += [f"{r.label} ({suite}): observes other cameras or resolution than {mine[0].label}, not "
                           f"timed" for r in mine if r not in same]
        log(f"recording {observations} observations from expert episodes of {suite} (cached under "
            f"{shown(Path(results_root) / 'observations')}) …")
        frames = record_observations(suite, shared_spec([first]), observations, Path(results_root))
        entries.update((r.run, (loaded[r.run].policy, frames)) for r in same)
    if not entries:
        measured.scope = "Latency: not timed (no policy could be timed on recorded observations)"
        return measured
    log(f"timing {len(entries)} policies interleaved, {calls} calls each, {INFERENCE_THREADS} torch thread(s) …")
    # The load is printed with the numbers: other work on the machine inflates every latency (interleaving keeps
    # the ratios fair, not the milliseconds).
    load = os.getloadavg()[0]
    measured.times = time_on_recorded(entries, calls, INFERENCE_THREADS, warmup=10)
    measured.scope = (f"Latency: median of {calls} calls per policy after 10 warm-up calls, all policies interleaved "
                      f"in one process (call i of each before call i + 1 of any) on {cpu_model()} "
                      f"({os.cpu_count()} cores), batch 1, {INFERENCE_THREADS} torch thread(s), torch.inference_mode, "
                      f"cycling through "
                      f"{observations} observations recorded from expert episodes of each suite; 1-min load "
                      f"average {load:.1f} when timing began")
    return measured


def build_report(selection: Selection, results_root: Path, out: Path, force: bool = False, calls: int = 50,
                 observations: int = 40, log: Callable[[str], None] = print) -> dict:
    """Tables, figures and the HTML page of `selection` into `out`; -> {"tables", "figures", "written"}.
    UsageError when runs of one suite are not comparable (unless `force`) or there are none."""
    from harness.html_report import write_html
    from harness.index import ResultsIndex
    from harness.paper_tables import all_tables, check_comparable, load_runs, suites_of
    from harness.plots import all_figures

    if not selection.runs:
        raise UsageError(f"no runs to report under {shown(results_root)}"
                         + (f" ({'; '.join(selection.notes)})" if selection.notes else ""))
    runs = load_runs(ResultsIndex(results_root), selection.runs, selection.labels)
    for r in runs:
        r.group = selection.groups.get(r.run, "")
    if selection.same_units:
        for suite in suites_of(runs):
            mine = [r for r in runs if r.suite == suite]
            shared = set.intersection(*(set(r.episodes["key"]) for r in mine))
            for r in mine:
                r.episodes = r.episodes[r.episodes["key"].isin(shared)].reset_index(drop=True)
                r.calls = r.calls[r.calls["key"].isin(shared)].reset_index(drop=True)
    marks = check_comparable(runs, force)
    measured = measure(runs, calls, observations, results_root, log)
    measured.notes = selection.notes + measured.notes
    tables = all_tables(runs, measured, marks)
    log(f"drawing figures into {shown(out / 'figures')} …")
    figures = all_figures(runs, out / "figures")
    out.mkdir(parents=True, exist_ok=True)
    policies = ", ".join(dict.fromkeys(r.label for r in runs))
    title = f"Report {selection.name}: {policies} on {', '.join(suites_of(runs))}"
    intro = [f"Runs ({shown(results_root)}): " + "; ".join(f"{r.label} = {r.run} (checkpoint {r.sha[:12]})"
                                                           for r in runs),
             "Written by `python -m harness.cli report` from the runs' manifests, episodes and calls tables."]
    md = "\n".join([f"# {title}", "", *(f"{line}  " for line in intro), "", *(t.markdown() for t in tables),
                    "## Figures", "", *(f"- `figures/{f.key}.png` / `.pdf` — {f.title}: {f.caption}"
                                        + (f" ({f.note})" if f.note else "") if f.files else
                                        f"- {f.title}: not drawn — {f.note}" for f in figures)]) + "\n"
    tex = ("% " + title + "\n% Generated by `python -m harness.cli report`; needs \\usepackage{booktabs,graphicx}.\n\n"
           + "\n".join(t.latex() for t in tables))
    write_text_atomic(out / "tables.md", md)
    write_text_atomic(out / "tables.tex", tex)
    write_html(out / "index.html", title, intro, tables, figures)
    written = [out / "tables.md", out / "tables.tex", *(p for f in figures for p in f.files), out / "index.html"]
    return {"tables": tables, "figures": figures, "written": written}


def cmd_report(args) -> int:
    from harness.index import ResultsIndex

    if args.runs and args.study:
        raise UsageError("give --runs or --study, not both")
    if args.calls < 0 or args.observations < 1:
        raise UsageError(f"--calls must be >= 0 and --observations >= 1, got {args.calls}, {args.observations}")
    if not Path(args.results).is_dir():
        raise UsageError(f"results root {args.results} does not exist")
    ix = ResultsIndex(args.results)
    selection = (listed_runs(ix, args.runs) if args.runs else study_runs(ix, args.study) if args.study
                 else shipped_runs(ix))
    out = args.out or REPORTS / selection.name
    report = build_report(selection, Path(args.results), Path(out), args.force, args.calls, args.observations,
                          log=lambda m: print(m, flush=True))
    main = report["tables"][0]
    print(pd.DataFrame(main.rows, columns=main.columns).to_string(index=False))
    for f in report["figures"]:
        if f.note:
            print(f"note: {f.title}: {f.note}")
    print(f"written: {shown(out)}/ ({len(report['written'])} files: tables.md, tables.tex, figures/, index.html)")
    return 0


COMMANDS = {"report": cmd_report}
"""Sub-command name -> function(args) -> exit status, for `harness.cli`'s dispatch."""
