"""Figures of a report (matplotlib, PNG at 200 dpi and vector PDF), drawn from the runs' own tables.

Every figure gives a policy family one colour in every panel (`FAMILY_COLOURS`, the Okabe-Ito colour-blind safe
palette) and a policy within its family one marker / line style. A figure whose data is missing (no FLOPs, no
routed policy) is not drawn: `Figure.note` says why and the report prints it in its place.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from harness.paper_tables import ReportRun, policies_of, routing_diversity, suites_of

FAMILY_COLOURS = {"teacher": "#0072B2", "actdistill": "#D55E00", "pruned": "#009E73", "expert": "#7F7F7F",
                  "expert_dart": "#56B4E9", "noop": "#CC79A7", "random": "#E69F00"}
OTHER_COLOURS = ("#F0E442", "#000000", "#8C564B", "#9467BD")
EXTRA_COLOURS = ("#17BECF", "#BCBD22", "#E377C2", "#1F3A93")
"""Only where a figure styles methods rather than families (the frontier) and the palettes above run out."""
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", "-.", ":")
STYLE = {"font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
         "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
         "grid.alpha": 0.25, "grid.linewidth": 0.6, "savefig.dpi": 200, "savefig.bbox": "tight",
         "pdf.fonttype": 42, "font.family": "DejaVu Sans"}
"""Paper-like defaults: small sans fonts, no top/right spines, light grid; PDF fonts embedded as TrueType."""


@dataclass
class Figure:
    """One figure of the report: `figures/<key>.{png,pdf}` with its title and caption."""

    key: str
    title: str
    caption: str
    files: list[Path] = field(default_factory=list)
    """The PNG, then the PDF; empty when not drawn."""
    note: str = ""
    """Why the figure was not drawn, or what it leaves out."""

    @property
    def png(self) -> Path | None:
        return self.files[0] if self.files else None


@dataclass(frozen=True)
class Styles:
    """Colour per family, marker and line style per policy label (its rank within its family)."""

    colour: dict[str, str]
    marker: dict[str, str]
    line: dict[str, str]

    @classmethod
    def of(cls, runs: Sequence[ReportRun]) -> "Styles":
        family = {r.label: r.family for r in runs}
        others = itertools.cycle(OTHER_COLOURS)
        colours = {f: FAMILY_COLOURS.get(f) or next(others) for f in dict.fromkeys(family.values())}
        rank = {}
        for label in policies_of(runs):
            rank[label] = sum(1 for other in rank if family[other] == family[label])
        return cls({k: colours[family[k]] for k in family}, {k: MARKERS[rank[k] % len(MARKERS)] for k in family},
                   {k: LINESTYLES[rank[k] % len(LINESTYLES)] for k in family})


def _save(fig, out_dir: Path, key: str) -> list[Path]:
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / f"{key}.png", out_dir / f"{key}.pdf"]
    for path in files:
        fig.savefig(path)
    plt.close(fig)
    return files


MAX_COLUMNS = 3
"""Panels per row; more suites wrap onto further rows, so a figure stays about a page wide."""


def _panels(n: int, width: float, height: float, ncols: int | None = None, **kw):
    """A grid of `n` panels of `width` x `height` inches, `ncols` (default up to `MAX_COLUMNS`) per row; -> the
    figure and its visible axes in reading order."""
    import matplotlib.pyplot as plt

    ncols = ncols or min(n, MAX_COLUMNS)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _ylabel(axes, text: str) -> None:
    """Label the y axis of the first panel of each row (the panels of a row share it)."""
    for i, ax in enumerate(axes):
        if i % MAX_COLUMNS == 0:
            ax.set_ylabel(text)


def _legend(axes, handles, labels) -> None:
    """One legend for the figure, right of the first row's last panel, where it covers no data. Call it after
    `tight_layout`, which would shrink the panels to make room for it (savefig's tight bounding box keeps it)."""
    axes[min(len(axes), MAX_COLUMNS) - 1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                                                 frameon=False)


def method_styles(runs: Sequence[ReportRun], styles: Styles) -> tuple[dict[str, str], Styles]:
    """Run label -> its method (the run's `group`, else its label), and a colour and marker per method: a
    family's first method keeps the family's colour, further ones take the next free colour, so that the methods
    of one family (pruning's, say) stay apart where the frontier joins a method's settings."""
    method = {r.label: r.group or r.label for r in runs}
    family = {method[r.label]: r.family for r in runs}
    free = itertools.cycle([c for c in (*OTHER_COLOURS, *EXTRA_COLOURS, *FAMILY_COLOURS.values())
                            if c not in {styles.colour[r.label] for r in runs}])
    colour, marker, coloured = {}, {}, set()
    for i, m in enumerate(dict.fromkeys(method[label] for label in policies_of(runs))):
        first = family[m] not in coloured
        colour[m] = styles.colour[next(r.label for r in runs if method[r.label] == m)] if first else next(free)
        coloured.add(family[m])
        marker[m] = MARKERS[i % len(MARKERS)]
    return method, Styles(colour, marker, {m: "-" for m in colour})


def frontier(runs: Sequence[ReportRun], out_dir: Path, styles: Styles) -> Figure:
    """Success (%) against GFLOPs per call, one panel per suite: a point per policy with its Wilson 95% interval,
    coloured and marked by its method (`method_styles`), with a line through each method's policies in order of
    compute (its budgets / settings)."""
    fig_ = Figure("frontier", "Accuracy–compute frontier",
                  "Success rate against GFLOPs per policy call (harness compute model, batch 1), one panel per suite; "
                  "bars: Wilson 95% intervals over episodes; lines join the settings of one method in order of "
                  "compute.")
    counted = [r for r in runs if not math.isnan(r.summary["gflops_per_call"])]
    left_out = sorted({r.label for r in runs} - {r.label for r in counted})
    if left_out:
        fig_.note = f"not plotted (no FLOPs counted): {', '.join(left_out)}"
    if not counted:
        fig_.note = "no policy has counted FLOPs: no frontier"
        return fig_
    suites = suites_of(counted)
    method, by_method = method_styles(counted, styles)
    fig, axes = _panels(len(suites), 3.3, 2.9, sharey=True)
    handles = {}
    top = max(r.summary["gflops_per_call"] for r in counted)
    for ax, suite in zip(axes, suites):
        mine = [r for r in counted if r.suite == suite]
        for m in dict.fromkeys(method[r.label] for r in mine):
            line = sorted((r for r in mine if method[r.label] == m), key=lambda r: r.summary["gflops_per_call"])
            if len(line) > 1:
                ax.plot([r.summary["gflops_per_call"] for r in line], [r.summary["success_%"] for r in line],
                        color=by_method.colour[m], lw=1.2, alpha=0.6, zorder=1)
        for r in mine:
            s, m = r.summary, method[r.label]
            handles[m] = ax.errorbar(
                s["gflops_per_call"], s["success_%"], yerr=[[s["success_%"] - s["ci95_lo_%"]],
                                                            [s["ci95_hi_%"] - s["success_%"]]],
                fmt=by_method.marker[m], color=by_method.colour[m], ms=6, capsize=3, elinewidth=1.1, label=m,
                zorder=2)
        ax.set_title(suite)
        ax.set_xlim(0, top * 1.15)
        ax.set_xlabel("GFLOPs per policy call")
    lo = min(r.summary["ci95_lo_%"] for r in counted)
    hi = max(r.summary["ci95_hi_%"] for r in counted)
    axes[0].set_ylim(max(0, 10 * math.floor(lo / 10) - 5), min(102, 10 * math.ceil(hi / 10) + 5))
    _ylabel(axes, "success rate (%)")
    fig.tight_layout()
    _legend(axes, handles.values(), handles.keys())
    fig_.files = _save(fig, out_dir, fig_.key)
    return fig_


def _annotated(ax, matrix: np.ndarray, cmap: str, fmt: Callable[[float], str], fontsize: float):
    """Heatmap on 0-100 with each cell's value written in a colour that stays readable on it."""
    image = ax.imshow(matrix, cmap=cmap, vmin=0, vmax=100, aspect="auto")
    norm = image.norm
    for (i, j), v in np.ndenumerate(matrix):
        if not np.isnan(v):
            dark = np.mean(image.cmap(norm(v))[:3]) < 0.5
            ax.text(j, i, fmt(v), ha="center", va="center", fontsize=fontsize, color="white" if dark else "black")
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return image


def task_heatmap(runs: Sequence[ReportRun], out_dir: Path) -> Figure:
    """Success (%) per task (columns) and policy (rows), one panel per suite."""
    import matplotlib.pyplot as plt

    fig_ = Figure("task_success", "Per-task success",
                  "Success rate (%) per task and policy, one panel per suite; n = episodes per cell.")
    suites = suites_of(runs)
    heights = [len([r for r in runs if r.suite == s]) * 0.42 + 1.0 for s in suites]
    fig, axes = plt.subplots(len(suites), 1, figsize=(7.0, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, suite in zip(axes[:, 0], suites):
        mine = [r for r in runs if r.suite == suite]
        tasks = sorted(set().union(*(set(r.episodes["task_index"]) for r in mine)))
        matrix = np.array([[100 * r.episodes.loc[r.episodes["task_index"] == t, "success"].mean() for t in tasks]
                           for r in mine])
        n = {len(r.episodes[r.episodes["task_index"] == t]) for r in mine for t in tasks}
        image = _annotated(ax, matrix, "viridis", lambda v: f"{v:.0f}", 8)
        ax.set_xticks(range(len(tasks)), [str(t) for t in tasks])
        ax.set_yticks(range(len(mine)), [r.label for r in mine])
        ax.set_xlabel("task index")
        ax.set_title(f"{suite} (n = {min(n)}{'' if len(n) == 1 else f'–{max(n)}'} episodes per cell)")
        fig.colorbar(image, ax=ax, label="success rate (%)", fraction=0.04, pad=0.02)
    fig.tight_layout()
    fig_.files = _save(fig, out_dir, fig_.key)
    return fig_


def block_usage(run: ReportRun) -> pd.DataFrame:
    """Share of calls (%) in which each reference block ran: one row per task, then `all`; columns 0..depth-1.
    Calls without block info are left out."""
    calls = run.calls[run.calls["blocks"].notna()]
    depth = run.depth or 1 + max(max(b) for b in calls["blocks"])
    hits = np.zeros((len(calls), depth))
    for i, blocks in enumerate(calls["blocks"]):
        hits[i, list(blocks)] = 100.0
    table = pd.DataFrame(hits, columns=range(depth))
    table.insert(0, "task", calls["task_index"].to_numpy())
    per_task = table.groupby("task").mean()
    per_task.loc["all"] = table.drop(columns="task").mean()
    return per_task


def block_heatmap(runs: Sequence[ReportRun], out_dir: Path) -> Figure:
    """Per routed run (calls ran more than one distinct block set): share of calls that executed each reference
    block, per task and over all calls, with its routing diversity in the panel title."""
    fig_ = Figure("block_usage", "Router block usage",
                  "Share of policy calls (%) in which each block of the teacher backbone ran, per task and over all "
                  "calls (last row), for every routed policy; title: distinct block sets, entropy of the block-set "
                  "distribution (bits), share of the most common set.")
    routed = sorted((r for r in runs if r.block_sets and len(set(r.block_sets)) > 1),
                    key=lambda r: suites_of(runs).index(r.suite))
    static = sorted({r.label for r in runs if r.block_sets} - {r.label for r in routed})
    if not routed:
        fig_.note = "no routed policy (every policy ran one block set, or reported none): no block-usage heatmap"
        return fig_
    if static:
        fig_.note = f"not shown (the same blocks in every call): {', '.join(static)}"
    fig, axes = _panels(len(routed), 4.2, 0.26 * max(len(block_usage(r)) for r in routed) + 1.3,
                        ncols=min(2, len(routed)))
    for ax, r in zip(axes, routed):
        usage = block_usage(r)
        image = _annotated(ax, usage.to_numpy(), "Blues", lambda v: f"{v:.0f}", 6.5)
        ax.axhline(len(usage) - 1.5, color="black", lw=0.8)
        ax.set_xticks(range(usage.shape[1]), [str(c) for c in usage.columns])
        ax.set_yticks(range(len(usage)), [str(t) for t in usage.index])
        ax.set_xlabel("teacher block index")
        ax.set_ylabel("task")
        d = routing_diversity(r.block_sets)
        ax.set_title(f"{r.label} · {r.suite}\n{d['sets']} sets, {d['entropy_bits']:.2f} bits, "
                     f"top set {100 * d['top_share']:.0f}% of calls", fontsize=8.5)
        fig.colorbar(image, ax=ax, label="calls running the block (%)", fraction=0.05, pad=0.02)
    fig.tight_layout()
    fig_.files = _save(fig, out_dir, fig_.key)
    return fig_


def latency(runs: Sequence[ReportRun], out_dir: Path, styles: Styles) -> Figure:
    """Distribution of per-call latency (ms) recorded during evaluation, a violin per policy, one panel per suite;
    the median is marked and written above each violin."""
    workers = sorted({i.get("workers") for r in runs for i in r.manifest.get("invocations", []) if i.get("workers")})
    fig_ = Figure("latency", "Per-call latency during evaluation",
                  "Latency of each policy call as recorded during evaluation (calls table; batch 1, "
                  f"{'/'.join(map(str, workers)) or '?'} evaluation worker(s) side by side), one violin per policy "
                  "(log scale; the central 99% of calls; white dot and number: the median, ms); the interleaved timing "
                  "of the tables is the controlled comparison.")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    timed = [r for r in runs if len(r.calls)]
    if not timed:
        fig_.note = "no recorded calls: no latency distributions"
        return fig_
    suites = suites_of(timed)
    fig, axes = _panels(len(suites), max(2.0, 1.0 + 0.9 * max(len([r for r in timed if r.suite == s]) for s in suites)),
                        2.9, sharey=True)
    for ax, suite in zip(axes, suites):
        mine = [r for r in timed if r.suite == suite]
        data = []
        for r in mine:
            ms = 1e3 * r.calls["policy_s"].to_numpy()
            lo, hi = np.percentile(ms, [0.5, 99.5])
            data.append(ms[(ms >= lo) & (ms <= hi)])
        parts = ax.violinplot(data, showextrema=False, widths=0.8)
        for body, r in zip(parts["bodies"], mine):
            body.set_facecolor(styles.colour[r.label])
            body.set_edgecolor(styles.colour[r.label])
            body.set_alpha(0.55)
        medians = [float(np.median(1e3 * r.calls["policy_s"])) for r in mine]
        ax.scatter(range(1, len(mine) + 1), medians, color="white", edgecolor="black", s=18, zorder=3)
        for x, (m, d) in enumerate(zip(medians, data), start=1):
            ax.annotate(f"{m:.1f}", (x, d.max()), xytext=(0, 3), textcoords="offset points", ha="center",
                        fontsize=7.5)
        ax.set_yscale("log")
        # Plain numbers on the log axis (20, 50, 100 ms), not powers of ten.
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(range(1, len(mine) + 1), [r.label for r in mine], rotation=20 if len(mine) > 3 else 0)
        ax.set_xlim(0.4, len(mine) + 0.6)
        ax.set_title(suite)
    _ylabel(axes, "latency per call (ms, log scale)")
    fig.tight_layout()
    fig_.files = _save(fig, out_dir, fig_.key)
    return fig_


def cumulative_success(runs: Sequence[ReportRun], out_dir: Path, styles: Styles) -> Figure:
    """Fraction of episodes (%) that had succeeded by env step t, a line per policy, one panel per suite; the
    suite's step limit is marked."""
    fig_ = Figure("cumulative_success", "Success by episode step",
                  "Share of episodes (%) that had succeeded by each environment step, per policy and suite (the "
                  "value at the step limit, dashed, is the success rate).")
    suites = suites_of(runs)
    final = [s for s in suites if "FINAL" in next(r for r in runs if r.suite == s).manifest["protocol"].get(
        "success_rule", "")]
    if final:
        fig_.note = (f"{', '.join(final)} judge success at the final step only (the episode never ends early): "
                     f"their curves rise at the limit")
    fig, axes = _panels(len(suites), 3.3, 2.7, sharey=True)
    for ax, suite in zip(axes, suites):
        mine = [r for r in runs if r.suite == suite]
        protocol = mine[0].manifest["protocol"]
        limit = int(protocol.get("max_steps") or max(r.episodes["steps"].max() for r in mine))
        t = np.arange(limit + 1)
        for r in mine:
            won = np.sort(r.episodes.loc[r.episodes["success"].astype(bool), "steps"].to_numpy())
            share = 100 * np.searchsorted(won, t, side="right") / max(len(r.episodes), 1)
            ax.step(t, share, where="post", color=styles.colour[r.label], ls=styles.line[r.label], lw=1.4,
                    label=r.label)
        ax.axvline(limit, color="0.4", ls="--", lw=0.8)
        ax.annotate("step limit", (limit, 97), xytext=(-3, 0), textcoords="offset points", ha="right", va="top",
                    fontsize=7.5, color="0.35")
        ax.set_xlim(0, limit * 1.03)
        ax.set_title(suite)
        ax.set_xlabel(f"episode step (env steps, {protocol.get('control_hz', '?')} Hz)")
    axes[0].set_ylim(0, 100)
    _ylabel(axes, "episodes succeeded (%)")
    fig.tight_layout()
    _legend(axes, *axes[0].get_legend_handles_labels())
    fig_.files = _save(fig, out_dir, fig_.key)
    return fig_


def _fresh(out_dir: Path):
    """matplotlib's headless backend, with the figures of an earlier report in `out_dir` removed (so a figure no
    longer drawn does not linger); -> `matplotlib.pyplot`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for old in list(out_dir.glob("*.png")) + list(out_dir.glob("*.pdf")) if out_dir.is_dir() else []:
        old.unlink()
    return plt


def all_figures(runs: Sequence[ReportRun], out_dir: Path) -> list[Figure]:
    """Every figure of the report into `out_dir` (`<key>.png` and `<key>.pdf`); previous ones there are removed
    first, so a figure no longer drawn does not linger."""
    plt = _fresh(out_dir)
    styles = Styles.of(runs)
    with plt.rc_context(STYLE):
        return [frontier(runs, out_dir, styles), task_heatmap(runs, out_dir), block_heatmap(runs, out_dir),
                latency(runs, out_dir, styles), cumulative_success(runs, out_dir, styles)]


def robustness_blocks(table: pd.DataFrame, out_dir: Path) -> Figure:
    """Per policy that routes (more than one block set in some condition) of a robustness table
    (`experiments.robustness`): share of calls running each teacher block, one row per condition (clean first)."""
    fig_ = Figure("robustness_blocks", "Block usage, clean vs perturbed",
                  "Share of policy calls (%) in which each block of the teacher backbone ran, per condition (rows), "
                  "for every policy whose blocks vary between calls; the row label gives the distinct block sets.")
    routed = [p for p, rows in table.groupby("policy", sort=False) if rows["route_sets"].max() > 1]
    if not routed:
        fig_.note = "no policy ran more than one block set: no block-usage heatmap"
        return fig_
    rows_per = max(len(table[table["policy"] == p]) for p in routed)
    fig, axes = _panels(len(routed), 4.2, 0.28 * rows_per + 1.3, ncols=min(2, len(routed)))
    for ax, policy in zip(axes, routed):
        mine = table[table["policy"] == policy]
        usage = np.array([[float(v) for v in s.split(",")] for s in mine["block_use_%"]])
        image = _annotated(ax, usage, "Blues", lambda v: f"{v:.0f}", 6.5)
        ax.set_xticks(range(usage.shape[1]), [str(i) for i in range(usage.shape[1])])
        ax.set_yticks(range(len(mine)), [f"{c} ({s:.0f})" for c, s in zip(mine["perturbation"], mine["route_sets"])])
        ax.set_xlabel("teacher block index")
        ax.set_title(f"{policy} · {mine['suite'].iloc[0]}", fontsize=8.5)
        fig.colorbar(image, ax=ax, label="calls running the block (%)", fraction=0.05, pad=0.02)
    fig.tight_layout()
    fig_.files = _save(fig, out_dir, fig_.key)
    return fig_


def robustness_drop(table: pd.DataFrame, out_dir: Path) -> Figure:
    """Success drop (pp, clean minus perturbed) against the policy's clean GFLOPs per call, one colour per
    perturbation and one marker per policy, from a robustness table (`experiments.robustness`)."""
    fig_ = Figure("robustness_drop", "Success drop vs compute",
                  "Success drop under each perturbation (clean minus perturbed success of the same policy, "
                  "percentage points, on the same units) against the policy's GFLOPs per call on clean inputs.")
    clean = table[table["perturbation"] == "clean"].set_index("policy")["gflops_per_call"]
    shown_ = table[(table["perturbation"] != "clean") & table["policy"].map(clean).notna()]
    if shown_.empty:
        fig_.note = "no perturbed condition of a policy with counted FLOPs: no drop-vs-compute plot"
        return fig_
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    colours = dict(zip(dict.fromkeys(shown_["perturbation"]), itertools.cycle((*FAMILY_COLOURS.values(),
                                                                                 *OTHER_COLOURS))))
    markers = dict(zip(dict.fromkeys(shown_["policy"]), itertools.cycle(MARKERS)))
    for _, r in shown_.iterrows():
        ax.scatter(clean[r["policy"]], r["drop_pp"], color=colours[r["perturbation"]],
                   marker=markers[r["policy"]], s=28, zorder=3)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("GFLOPs per call (clean)")
    ax.set_ylabel("success drop (pp)")
    handles = [plt.Line2D([], [], ls="", marker="o", color=c, label=p) for p, c in colours.items()]
    handles += [plt.Line2D([], [], ls="", marker=m, color="grey", label=p) for p, m in markers.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    fig_.files = _save(fig, out_dir, fig_.key)
    return fig_


def robustness_figures(table: pd.DataFrame, out_dir: Path) -> list[Figure]:
    """The robustness report's figures into `out_dir` (earlier ones there removed first)."""
    plt = _fresh(out_dir)
    with plt.rc_context(STYLE):
        return [robustness_blocks(table, out_dir), robustness_drop(table, out_dir)]
