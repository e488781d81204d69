"""`make profile POLICY=… BASELINE=teacher`: what one policy call costs, next to a baseline, and what the
policies' evaluated rollouts executed.

1. Observations: camera frames and proprio recorded from real episodes of the suite (the scripted expert drives;
   a frame every `stride` steps, as a chunked policy would see them), cached under `<results>/observations/`.
2. Per policy, on those observations at batch 1 under `torch.inference_mode`: FLOPs per call by component
   (counted live), the per-checkpoint block table and its check against the live counts, executed backbone
   fraction, parameters, peak tensor memory of a call.
3. Latency of every policy measured interleaved in this process (A B A B …) with a fixed thread count, after a
   warm-up; speed-up over the baseline as a ratio of medians with a paired bootstrap 95% interval.
4. Rollout metrics from the policies' `make eval` results of the suite, if present: success, executed fraction
   and FLOPs per episode, task and suite from the recorded block lists, steps to success, wall time split, action
   jerk, and the harness's recording overhead.
Every table is printed with a one-line scope and written to `<run dir>/profile.{json,md}` (per-episode rows of
the profiled policy in `profile_episodes.csv`), and to `reports/` when the shipped checkpoints were profiled.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.flops import BlockCosts, flop_counter, flops_by_module
from core.paths import DEFAULT_RESULTS
from harness.profiling import PeakTensorMemory, interleaved_latency, speedup_ci
from harness.store import RunStore, cpu_model
from tasks.base import ObsSpec, Observation, TaskSpec


@dataclass
class ProfileRequest:
    policy: str
    baseline: str | None = "teacher"
    suite: str = "libero_spatial"
    checkpoint: str | None = None
    baseline_checkpoint: str | None = None
    calls: int = 100
    """Timed calls per policy (after `warmup`)."""
    warmup: int = 10
    observations: int = 40
    """Recorded observations, spread over the suite's tasks; timed calls cycle through them."""
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    results_root: Path = DEFAULT_RESULTS
    report_dir: Path | None = None
    """Where the report also goes as `profile_<suite>_<policy>[_vs_<baseline>].md`; `make profile` on the shipped
    checkpoints passes `reports/`, so the committed report is the last measured one, never a hand copy."""


@dataclass(frozen=True)
class Recorded:
    """One observation recorded from a real episode, replayable into any policy with the same cameras."""

    task: TaskSpec
    proprio: dict[str, np.ndarray]
    images: dict[str, np.ndarray]

    def observation(self) -> Observation:
        return Observation(self.proprio, None, lambda: self.images, 0, lambda: 0)


def record_observations(suite_name: str, spec: ObsSpec, count: int, root: Path, stride: int = 8) -> list[Recorded]:
    """`count` observations from expert episodes (init state 0) of the suite's tasks, a frame every >= `stride`
    steps; loaded from the cache when recorded before with the same cameras and resolution."""
    from policies import make_policy
    from tasks import make_suite

    suite = make_suite(suite_name)
    tasks = suite.tasks()
    cache = root / "observations" / f"{suite_name}_{'-'.join(spec.cameras)}_{spec.resolution[0]}x{spec.resolution[1]}_{count}.npz"
    if cache.exists():
        data = np.load(cache)
        keys = [k[len("proprio/"):] for k in data.files if k.startswith("proprio/")]
        return [Recorded(tasks[int(t)], {k: data[f"proprio/{k}"][i] for k in keys},
                         {c: data[f"images/{c}"][i] for c in spec.cameras}) for i, t in enumerate(data["task"])]
    expert = make_policy("expert")
    full = ObsSpec(cameras=spec.cameras, resolution=spec.resolution, proprio=True, privileged=True)
    per_task = [count // len(tasks) + (i < count % len(tasks)) for i in range(len(tasks))]
    out: list[Recorded] = []
    for task, n in zip(tasks, per_task):
        if n == 0:
            continue
        env = suite.make_env(task.index, full)
        try:
            obs, _ = env.reset(seed=0, options={"init_index": 0})
            expert.reset(task, 0)
            since, done, kept = stride, False, 0
            while kept < n and not done:
                if since >= stride:
                    out.append(Recorded(task, {k: np.array(v) for k, v in obs.proprio.items()}, dict(obs.images)))
                    kept, since = kept + 1, 0
                for action in np.atleast_2d(expert.act(obs).actions):
                    obs, _, terminated, truncated, _ = env.step(action)
                    since += 1
                    done = terminated or truncated
                    if done:
                        break
        finally:
            env.close()
    cache.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"task": np.array([r.task.index for r in out])}
    arrays.update({f"proprio/{k}": np.stack([r.proprio[k] for r in out]) for k in out[0].proprio})
    arrays.update({f"images/{c}": np.stack([r.images[c] for r in out]) for c in spec.cameras})
    tmp = cache.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, cache)
    return out


def _prepare(policy, rec: Recorded) -> Observation:
    """Reset `policy` to the observation's task (instruction embeddings are cached: a lookup after the first
    time) and return the observation."""
    policy.reset(rec.task, 0)
    return rec.observation()


def block_costs(policy, rec: Recorded) -> BlockCosts:
    """The policy's FLOP block table (`Profilable.flop_costs`), counted on one recorded observation."""
    return policy.flop_costs(_prepare(policy, rec))


def call_costs(policy, recorded: list[Recorded], costs: BlockCosts) -> dict:
    """FLOPs by component (mean per call, counted live), the largest relative error of the block table `costs`
    against the live totals, executed backbone fraction, parameters and peak tensor memory, over `recorded`."""
    components = policy.flop_components()
    params = policy.parameter_costs()
    per_call, table_error, fractions, executed_blocks, executed_params = [], 0.0, [], [], []
    for rec in recorded:
        obs = _prepare(policy, rec)
        with flop_counter() as counter:
            out = policy.act(obs)
        total = counter.get_total_flops()
        parts = flops_by_module(counter, components)
        parts["other"] = total - sum(parts.values())
        parts["total"] = total
        per_call.append(parts)
        blocks = out.info["blocks"]
        executed_blocks.append(len(blocks))
        executed_params.append(params.executed(blocks))
        table_error = max(table_error, abs(costs.executed(blocks) - total) / total)
        fractions.append(costs.backbone_fraction(blocks))
    chunk = len(np.atleast_2d(out.actions))
    memory = 0
    for rec in recorded[:5]:
        obs = _prepare(policy, rec)
        with torch.inference_mode(), PeakTensorMemory() as peak:
            policy.act(obs)
        memory = max(memory, peak.peak)
    mean_blocks = float(np.mean(executed_blocks))
    flops = pd.DataFrame(per_call).mean().to_dict()
    return {
        "gflops_per_call": {k: v / 1e9 for k, v in flops.items()},
        "gflops_per_action": flops["total"] / chunk / 1e9,
        "actions_per_call": chunk,
        "language_gflops_per_episode": policy.instruction_flops(recorded[0].task.instruction) / 1e9,
        "block_gflops": [b / 1e9 for b in costs.blocks],
        "fixed_gflops": costs.fixed / 1e9,
        "table_max_rel_error": table_error,
        "executed_backbone_fraction": float(np.mean(fractions)),
        "executed_blocks_mean": mean_blocks,
        "depth": len(costs.blocks),
        "params_total_m": (params.fixed + sum(params.blocks)) / 1e6,
        "params_executed_m": float(np.mean(executed_params)) / 1e6,
        "peak_activation_mb": memory / 2**20,
    }


def episode_metrics(episodes: pd.DataFrame, costs: BlockCosts) -> pd.DataFrame:
    """One row per episode: outcome, executed backbone fraction and GFLOPs per call (from each call's recorded
    blocks and the block table), steps, time split, jerk and recording overhead."""
    rows = []
    for ep in episodes.itertuples():
        calls = json.loads(ep.calls)
        blocks = [c["blocks"] for c in calls if "blocks" in c]
        rows.append({
            "task": ep.task_index, "init": ep.init_index, "success": bool(ep.success), "steps": ep.steps,
            "calls": len(calls), "error": bool(ep.error),
            "exec_frac": float(np.mean([costs.backbone_fraction(b) for b in blocks])) if blocks else np.nan,
            "exec_blocks": float(sum(map(len, blocks))), "block_slots": float(len(blocks) * len(costs.blocks)),
            "gflops": sum(costs.executed(b) for b in blocks) / 1e9,
            "wall_s": ep.wall_s, "policy_s": ep.policy_s, "physics_s": ep.physics_s, "render_s": ep.render_s,
            "jerk": getattr(ep, "jerk", np.nan), "record_s": getattr(ep, "record_s", np.nan),
        })
    return pd.DataFrame(rows)


def rollout_metrics(per_episode: pd.DataFrame) -> pd.DataFrame:
    """Per task and ALL, from `episode_metrics`: success, executed fraction and GFLOPs per call over every
    recorded call, steps to success, shares of wall time, mean jerk, recording overhead."""

    def row(df: pd.DataFrame, task) -> dict:
        wall = df["wall_s"].sum()
        calls = df["calls"].sum()
        return {
            "task": task, "episodes": len(df), "success_%": 100 * df["success"].mean(), "calls": int(calls),
            "exec_frac_%": 100 * df["exec_blocks"].sum() / df["block_slots"].sum() if calls else np.nan,
            "gflops_per_call": df["gflops"].sum() / calls if calls else np.nan,
            "steps_to_success": df.loc[df["success"], "steps"].mean(),
            "policy_%": 100 * df["policy_s"].sum() / wall, "physics_%": 100 * df["physics_s"].sum() / wall,
            "render_%": 100 * df["render_s"].sum() / wall, "jerk": df["jerk"].mean(),
            "overhead_%": 100 * df["record_s"].sum() / wall,
        }

    rows = [row(df, int(task)) for task, df in per_episode.groupby("task")]
    return pd.DataFrame(rows + [row(per_episode, "ALL")])


def profile(req: ProfileRequest, log=print) -> dict:
    from policies import make_policy

    torch.set_num_threads(req.threads)
    names = {req.policy: req.checkpoint}
    if req.baseline and req.baseline != req.policy:
        names[req.baseline] = req.baseline_checkpoint
    policies = {name: make_policy(name, ckpt, req.suite) for name, ckpt in names.items()}
    for name, pol in policies.items():
        if not hasattr(pol, "flop_costs"):
            raise ValueError(f"policy {name!r} has no profiling hooks (flop_costs); profile a learned policy")
    specs = {p.obs_spec for p in policies.values()}
    if len(specs) != 1:
        raise ValueError(f"policies observe differently ({specs}); profile policies with the same cameras")
    spec = specs.pop()
    log(f"recording {req.observations} observations from expert episodes of {req.suite} …")
    recorded = record_observations(req.suite, spec, req.observations, Path(req.results_root))
    device = f"{cpu_model()}, {req.threads} thread(s)"
    report = {"suite": req.suite, "device": device, "threads": req.threads, "observations": len(recorded),
              "calls_timed": req.calls, "warmup": req.warmup, "policies": {}}
    costs_by_policy = {}
    for name, pol in policies.items():
        log(f"counting FLOPs and memory of {name} …")
        costs_by_policy[name] = block_costs(pol, recorded[0])
        report["policies"][name] = {"checkpoint_sha256": pol.checkpoint_sha256,
                                    **call_costs(pol, recorded, costs_by_policy[name])}
    log(f"timing {' vs '.join(policies)} interleaved, {req.calls} calls each …")
    with torch.inference_mode():
        times = interleaved_latency(
            {name: (lambda i, p=pol: p.act(_prepare(p, recorded[i % len(recorded)]))) for name, pol in policies.items()},
            calls=req.calls, warmup=req.warmup)
    for name, t in times.items():
        report["policies"][name].update(latency_ms_median=1e3 * float(np.median(t)),
                                        latency_ms_p90=1e3 * float(np.percentile(t, 90)))
        if req.baseline in times and name != req.baseline:
            ratio, lo, hi = speedup_ci(times[req.baseline], t)
            report["policies"][name]["speedup_vs_baseline"] = {"ratio": ratio, "ci95": [lo, hi]}
    per_episode = {}
    for name, pol in policies.items():
        store = RunStore(Path(req.results_root), name, pol.checkpoint_sha256, req.suite)
        episodes = store.load()
        report["policies"][name]["results_dir"] = str(store.dir)
        report["policies"][name]["rollouts"] = None
        if len(episodes):
            per_episode[name] = episode_metrics(episodes, costs_by_policy[name])
            report["policies"][name]["rollouts"] = rollout_metrics(per_episode[name]).to_dict(orient="records")
    text = format_report(report, req)
    run_dir = Path(report["policies"][req.policy]["results_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "profile.json").write_text(json.dumps(report, indent=2, default=float))
    (run_dir / "profile.md").write_text(text + "\n")
    report["written"] = [str(run_dir / "profile.json"), str(run_dir / "profile.md")]
    if req.report_dir is not None:
        versus = f"_vs_{req.baseline}" if req.baseline in policies and req.baseline != req.policy else ""
        shared = Path(req.report_dir) / f"profile_{req.suite}_{req.policy}{versus}.md"
        shared.parent.mkdir(parents=True, exist_ok=True)
        shared.write_text(text + "\n")
        report["written"].append(str(shared))
    if req.policy in per_episode:
        per_episode[req.policy].to_csv(run_dir / "profile_episodes.csv", index=False)
        report["written"].append(str(run_dir / "profile_episodes.csv"))
    report["text"] = text
    return report


def format_report(report: dict, req: ProfileRequest) -> str:
    pols = report["policies"]
    scope = (f"scope: one policy call at batch 1 (torch.inference_mode) on {report['observations']} observations "
             f"recorded from {report['suite']} expert episodes; device {report['device']}; latency over "
             f"{report['calls_timed']} interleaved calls per policy after {report['warmup']} warm-up calls; "
             f"FLOPs counted by torch FlopCounterMode (+ CPU attention), multiply-add = 2")
    compute, speed = [], []
    for name, p in pols.items():
        g = p["gflops_per_call"]
        s = p.get("speedup_vs_baseline")
        compute.append({
            "policy": name, "ckpt": p["checkpoint_sha256"][:12], "GF vision": g.get("vision"),
            "GF backbone": g.get("backbone"), "GF head": g.get("head"), "GF other": g.get("other"),
            "GF/call": g["total"], "GF/action": p["gflops_per_action"],
            "exec blocks": f"{p['executed_blocks_mean']:.1f}/{p['depth']}", "exec %": 100 * p["executed_backbone_fraction"],
            "table err %": 100 * p["table_max_rel_error"],
        })
        speed.append({
            "policy": name, "ms p50": p["latency_ms_median"], "ms p90": p["latency_ms_p90"],
            f"speedup vs {req.baseline}": f"{s['ratio']:.2f}x [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]" if s else "",
            "params M": p["params_total_m"], "exec params M": p["params_executed_m"],
            "peak act MB": p["peak_activation_mb"],
        })
    fmt = lambda x: f"{x:.3g}"  # noqa: E731
    parts = [scope, pd.DataFrame(compute).to_string(index=False, float_format=fmt),
             pd.DataFrame(speed).to_string(index=False, float_format=fmt)]
    parts.append("language encoder: " + ", ".join(
        f"{n} {p['language_gflops_per_episode']:.3f} GF once per episode (cached instruction)" for n, p in pols.items()))
    for name, p in pols.items():
        if p["rollouts"] is None:
            parts.append(f"{name}: no `make eval` results for {report['suite']} in {p['results_dir']}; "
                         f"run `make eval POLICY={name} SUITE={report['suite']}` for rollout metrics")
            continue
        table = pd.DataFrame(p["rollouts"])
        parts.append(f"{name} rollouts ({report['suite']}, {int(table.iloc[-1]['episodes'])} episodes, "
                     f"{int(table.iloc[-1]['calls'])} recorded calls; exec/GF from each call's executed blocks; "
                     f"time shares of episode wall time; jerk in (action units/step^3)^2):")
        parts.append(table.to_string(index=False, float_format=fmt))
    return "\n".join(parts)
