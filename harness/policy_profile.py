"""`make profile POLICY=… BASELINE=teacher`: what one call of any policy costs, next to a baseline, and what the
policies' evaluated rollouts executed.

1. Observations recorded from real expert episodes of the suite (`harness.observations`), the union of the
   policies' cameras at their common resolution.
2. Counting, per policy, on those observations at batch 1: FLOPs per call from the harness's compute model
   (`harness.compute`: executed share of the REFERENCE backbone, e.g. the teacher's for a pruned or routed
   student) checked against a live count of each call; with the optional `policies.base.Profilable` hooks also
   FLOPs by component and the instruction encoder's cost; for policies holding torch modules, parameters (total
   and those of the modules a call ran) and peak tensor memory of a call.
3. Latency of every policy, interleaved in this process (A B A B …) with a fixed thread count after a warm-up;
   speed-up over the baseline as a ratio of medians with a paired bootstrap 95% interval (`harness.profiling`).
4. Rollout metrics of the policies' `make eval` runs of the suite, if present (`harness.rollouts`).
Written to the policy's run folder `<results>/<tag>/<suite>/profile.{json,md}` (+ `profile_episodes.csv`), and to
`report_dir` (`reports/` for the shipped checkpoints) as `profile_<suite>_<policy>[_vs_<baseline>].md`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.flops import flop_counter, flops_by_module
from core.paths import DEFAULT_RESULTS
from core.spec import PolicySpec
from harness.compute import ComputeModel, measure
from harness.observations import Recorded, record_observations, shared_spec
from harness.profiling import (ExecutedParameters, PeakTensorMemory, parameter_count, speedup_ci,
                               time_on_recorded, torch_modules)
from harness.rollouts import episode_metrics, rollout_metrics
from harness.store import RunStore, cpu_model
from tasks.base import Observation

MEMORY_CALLS = 5
"""Observations whose call's peak tensor memory is measured (the maximum is reported)."""


@dataclass
class ProfileRequest:
    policy: PolicySpec | str
    baseline: PolicySpec | str | None = "teacher"
    """Timed against `policy` (interleaved); None, or the same identity as `policy`: no baseline."""
    suite: str = "libero_spatial"
    calls: int = 100
    """Timed calls per policy (after `warmup`)."""
    warmup: int = 10
    observations: int = 40
    """Recorded observations, spread over the suite's tasks; timed calls cycle through them."""
    stride: int = 8
    """Env steps between recorded observations (at least)."""
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    results_root: Path = DEFAULT_RESULTS
    report_dir: Path | None = None
    """Where the report also goes as `profile_<suite>_<policy>[_vs_<baseline>].md`; `make profile` on the shipped
    checkpoints passes `reports/`, so the committed report is the last measured one, never a hand copy."""


def _prepare(policy, rec: Recorded) -> Observation:
    """Reset `policy` to the observation's task (instruction embeddings are cached: a lookup after the first
    time) and return the observation."""
    policy.reset(rec.task, 0)
    return rec.observation()


def _known(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def call_costs(policy, recorded: list[Recorded], compute: ComputeModel) -> dict:
    """What a call of `policy` costs on `recorded` (means per call unless said): GFLOPs from `compute` and the
    blocks each call reported, its largest relative error against the live count, executed share of the reference
    backbone and blocks executed; by component and for the instruction encoder when the policy has the
    `Profilable` hooks; parameters (M) and peak tensor memory (MB, max over `MEMORY_CALLS` calls) when it holds
    torch modules. Unavailable figures are None."""
    components = policy.flop_components() if hasattr(policy, "flop_components") else None
    modules = torch_modules(policy)
    rows = []
    for rec in recorded:
        obs = _prepare(policy, rec)
        with flop_counter() as counter, ExecutedParameters(modules) as executed:
            out = policy.act(obs)
        blocks = out.info.get("blocks")
        live = counter.get_total_flops()
        row = {"total": compute.flops(blocks) / 1e9, "live": live / 1e9, "fraction": compute.fraction(blocks),
               "blocks": math.nan if blocks is None else len(blocks), "params": executed.count}
        if components:
            parts = flops_by_module(counter, components)
            row.update({k: v / 1e9 for k, v in parts.items()}, other=(live - sum(parts.values())) / 1e9)
        rows.append(row)
    table = pd.DataFrame(rows)
    chunk = len(np.atleast_2d(out.actions))
    live = table["live"].to_numpy()
    error = np.abs(table["total"].to_numpy() - live)[live > 0] / live[live > 0]
    memory = 0
    for rec in recorded[:MEMORY_CALLS] if modules else []:
        obs = _prepare(policy, rec)
        with torch.inference_mode(), PeakTensorMemory() as peak:
            policy.act(obs)
        memory = max(memory, peak.peak)
    parts = [*components, "other"] if components else []
    return {
        "gflops_per_call": {k: float(table[k].mean()) for k in ["total", *parts]},
        "gflops_live_per_call": float(live.mean()),
        "compute_max_rel_error": float(error.max()) if len(error) else None,
        "gflops_per_action": float(table["total"].mean()) / chunk,
        "actions_per_call": chunk,
        "executed_backbone_fraction": _known(table["fraction"].mean()),
        "executed_blocks_mean": _known(table["blocks"].mean()),
        "depth": len(compute.block_flops) or None,
        "reference": compute.reference,
        "language_gflops_per_episode": (policy.instruction_flops(recorded[0].task.instruction) / 1e9
                                        if hasattr(policy, "instruction_flops") else None),
        "params_total_m": parameter_count(modules) / 1e6 if modules else None,
        "params_executed_m": float(table["params"].mean()) / 1e6 if modules else None,
        "peak_activation_mb": memory / 2**20 if modules else None,
    }


def _params_text(params: dict) -> str:
    """Params as PARAMS text (`keep=6,method=first`)."""
    return ",".join(f"{k}={v}" for k, v in sorted(params.items()))


def _label(spec: PolicySpec) -> str:
    params = _params_text(spec.params)
    return f"{spec.name}[{params}]" if params else spec.name


def profile(req: ProfileRequest, log=print, recorded: list[Recorded] | None = None) -> dict:
    """Profile `req.policy` (and its baseline) as the module docstring says; -> the report dict (as written to
    `profile.json`) with `text` (the printed report) and `written` (paths). `recorded`: observations to measure on
    instead of recording them. ValueError (and the `policies` load errors) say in one line what cannot be done."""
    from policies import load_policy

    torch.set_num_threads(req.threads)
    loaded = {}
    for role, spec in (("policy", req.policy), ("baseline", req.baseline)):
        if spec is not None:
            lp = load_policy(spec, req.suite)
            if role == "policy" or lp.tag != loaded["policy"].tag:
                loaded[role] = lp
    labels = {role: _label(lp.spec) for role, lp in loaded.items()}
    if len(set(labels.values())) < len(labels):  # same name, other checkpoint
        labels["baseline"] += " (baseline)"
    observed = shared_spec(lp.policy.obs_spec for lp in loaded.values())
    if recorded is None:
        log(f"recording {req.observations} observations from expert episodes of {req.suite} …")
        recorded = record_observations(req.suite, observed, req.observations, Path(req.results_root), req.stride)
        source = f"recorded from {req.suite} expert episodes (init state 0, a frame every {req.stride} steps)"
    else:
        source = "given by the caller"
    report = {"suite": req.suite, "device": cpu_model(), "threads": req.threads, "torch": torch.__version__,
              "observations": len(recorded), "observations_source": source, "calls_timed": req.calls,
              "warmup": req.warmup, "baseline": labels.get("baseline"), "policies": {}}
    per_episode = {}
    for role, lp in loaded.items():
        name = labels[role]
        log(f"counting FLOPs, parameters and memory of {name} …")
        store = RunStore(Path(req.results_root), lp.tag, req.suite)
        entry = {"role": role, "tag": lp.tag, "spec": lp.spec.to_dict(), "identity": lp.identity,
                 "checkpoint_sha256": lp.identity["checkpoint_sha256"], "results_dir": str(store.dir),
                 **call_costs(lp.policy, recorded, measure(lp, recorded[0].task)), "rollouts": None}
        episodes = store.load()
        if len(episodes):
            calls = store.load_calls()
            entry["rollouts"] = rollout_metrics(episodes, calls).to_dict(orient="records")
            per_episode[role] = episode_metrics(episodes, calls)
        report["policies"][name] = entry
    log(f"timing {' vs '.join(labels.values())} interleaved, {req.calls} calls each …")
    times = time_on_recorded({labels[r]: (lp.policy, recorded) for r, lp in loaded.items()}, req.calls,
                             req.threads, req.warmup)
    for name, t in times.items():
        entry = report["policies"][name]
        entry.update(latency_ms_median=1e3 * float(np.median(t)), latency_ms_p90=1e3 * float(np.percentile(t, 90)),
                     speedup_vs_baseline=None)
        if "baseline" in loaded and name != labels["baseline"]:
            ratio, lo, hi = speedup_ci(times[labels["baseline"]], t)
            entry["speedup_vs_baseline"] = {"ratio": ratio, "ci95": [lo, hi]}
    text = format_report(report)
    run_dir = Path(report["policies"][labels["policy"]]["results_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    written = [run_dir / "profile.json", run_dir / "profile.md"]
    written[0].write_text(json.dumps(report, indent=2, default=float))
    written[1].write_text(text + "\n")
    if "policy" in per_episode:
        written.append(run_dir / "profile_episodes.csv")
        per_episode["policy"].to_csv(written[-1], index=False)
    if req.report_dir is not None:
        versus = f"_vs_{loaded['baseline'].spec.name}" if "baseline" in loaded else ""
        written.append(Path(req.report_dir) / f"profile_{req.suite}_{loaded['policy'].spec.name}{versus}.md")
        written[-1].parent.mkdir(parents=True, exist_ok=True)
        written[-1].write_text(text + "\n")
    return {**report, "written": [str(p) for p in written], "text": text}


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _table(rows: list[dict]) -> str:
    return pd.DataFrame([{k: _fmt(v) for k, v in r.items()} for r in rows]).to_string(index=False)


def format_report(report: dict) -> str:
    """The report as text: scope lines, a compute table, a speed and memory table, notes on what could not be
    counted, and per policy its rollout table (or how to get one)."""
    pols, baseline = report["policies"], report["baseline"]
    lines = [
        f"scope: one policy call at batch 1 (torch.inference_mode) on {report['observations']} observations "
        f"{report['observations_source']}; device {report['device']}, {report['threads']} torch thread(s), torch "
        f"{report['torch']}; latency over {report['calls_timed']} interleaved calls per policy after "
        f"{report['warmup']} warm-up calls",
        "counted: FLOPs by torch FlopCounterMode (+ CPU attention), multiply-add = 2, torch operators only; GF/call "
        "from the harness compute model (reference blocks and the policy's other FLOPs counted once on a blank "
        "observation, then per call from the blocks it ran), model err = largest |model - live count| / live over "
        "the observations; exec % = share of the REFERENCE backbone's FLOPs a call ran (ref: whose blocks; self = "
        "its own); GF by component counted live (Profilable hooks); params = unique parameters of the policy's "
        "torch modules, exec params = those of modules that ran in a call; peak act = tensors alive during a call",
    ]
    split = any(len(p["gflops_per_call"]) > 1 for p in pols.values())
    compute, speed, notes = [], [], []
    for name, p in pols.items():
        g, ref, s = p["gflops_per_call"], p["reference"], p["speedup_vs_baseline"]
        row = {"policy": name, "ckpt": p["checkpoint_sha256"][:12] or "-",
               "ref": f"{ref['family']} {ref['checkpoint_sha256'][:12]}" if ref else "self"}
        if split:
            row.update({f"GF {k}": g.get(k) for k in ("vision", "backbone", "head", "other")})
        row.update({
            "GF/call": g["total"], "GF/action": p["gflops_per_action"],
            "exec blocks": f"{p['executed_blocks_mean']:.1f}/{p['depth']}" if p["depth"] else None,
            "exec % of ref": None if p["executed_backbone_fraction"] is None else 100 * p["executed_backbone_fraction"],
            "model err %": None if p["compute_max_rel_error"] is None else 100 * p["compute_max_rel_error"],
        })
        compute.append(row)
        row = {"policy": name, "ms p50": p["latency_ms_median"], "ms p90": p["latency_ms_p90"]}
        if baseline:
            row[f"speedup vs {baseline}"] = f"{s['ratio']:.2f}x [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]" if s else ""
        speed.append({**row, "params M": p["params_total_m"], "exec params M": p["params_executed_m"],
                      "peak act MB": p["peak_activation_mb"]})
        if p["gflops_live_per_call"] == 0:
            notes.append(f"{name}: no torch operator ran in its calls, so it counts 0 FLOPs (only torch operators "
                         f"are counted)")
        if p["params_total_m"] is None:
            notes.append(f"{name}: holds no torch modules: parameters and peak memory n/a")
    lines += [_table(compute), _table(speed)]
    language = [f"{n} {p['language_gflops_per_episode']:.3f} GF" for n, p in pols.items()
                if p["language_gflops_per_episode"] is not None]
    if language:
        lines.append(f"language encoder, once per episode (cached instruction; its parameters are in params M, "
                     f"not in exec params M): {', '.join(language)}")
    lines += notes
    for name, p in pols.items():
        if p["rollouts"] is None:
            params, checkpoint = _params_text(p["spec"]["params"]), p["spec"]["checkpoint"]
            typed = (p["spec"]["name"] + (f' PARAMS="{params}"' if params else "")
                     + (f" CHECKPOINT={checkpoint}" if checkpoint else ""))
            lines.append(f"{name}: no `make eval` results for {report['suite']} in {p['results_dir']}; run "
                         f"`make eval POLICY={typed} SUITE={report['suite']}` for rollout metrics")
            continue
        total = p["rollouts"][-1]
        lines.append(f"{name} rollouts ({report['suite']}, {total['episodes']} episodes, {total['calls']} recorded "
                     f"calls, run {p['tag']}; exec % / GF per call as each call recorded (share of the "
                     f"reference backbone, the run's compute model); ci95 Wilson; time shares of episode wall time; "
                     f"jerk in (action units/step^3)^2):")
        lines.append(_table(p["rollouts"]))
    return "\n".join(lines)
