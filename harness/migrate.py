"""Schema v1 runs (`<policy>[-<sha12>]/<suite>/episodes/<key>.parquet`, calls and partial metrics as JSON text) ->
schema v2 (`harness.store`), under the run tag the current code gives the same policy.

What v1 did not record is derived and the manifest's `migrated` entry says how: a call's `env_step` is
`call index x ceil(steps / calls)` (every chunk but the last runs in full; right for the fixed-chunk policies v1
ran), and the compute model is counted on a checkpoint of the same family and architecture when the run's own
weights are not here (FLOPs depend on shapes, not weights). The v1 folder is removed once v2 is written.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from core.io import write_text_atomic
from core.paths import shown
from core.spec import PolicySpec, run_tag, spec_hash
from harness.episode import EpisodeRecord
from harness.store import SCHEMA_VERSION, RunStore, digest
from harness.worker import INFERENCE_THREADS, inference_protocol


def v1_runs(root: Path) -> list[Path]:
    """Run folders of schema v1 under `root` (a manifest without `schema_version` next to `episodes/`)."""
    out = []
    for manifest in sorted(Path(root).rglob("manifest.json")):
        if (manifest.parent / "episodes").is_dir() and "schema_version" not in json.loads(manifest.read_text()):
            out.append(manifest.parent)
    return out


def _records(run_dir: Path, spec_hash: str) -> list[EpisodeRecord]:
    records = []
    for path in sorted((run_dir / "episodes").glob("*.parquet")):
        row = pq.read_table(path).to_pylist()[0]
        calls = json.loads(row.pop("calls"))
        chunk = math.ceil(row["steps"] / len(calls)) if calls else 0
        records.append(EpisodeRecord(
            key=path.stem, policy=row.pop("policy"), spec_hash=spec_hash, checkpoint_sha256=row.pop("checkpoint_sha256"),
            partial=json.loads(row.pop("partial")),
            calls=[{"env_step": i * chunk, "policy_s": c.pop("policy_s"), "blocks": c.pop("blocks", None), "info": c}
                   for i, c in enumerate(calls)],
            **row))
    return records


def _compute(family: str, checkpoint_sha256: str, suite: str) -> tuple[dict, str]:
    """Compute model of the run's policy, counted on its own weights when shipped, else on the shipped checkpoint
    of the same family (every checkpoint of a family here has the same model config)."""
    from harness.compute import measure
    from policies import load_policy
    from tasks import make_suite

    loaded = load_policy(PolicySpec(family), suite)
    if loaded.identity["checkpoint_sha256"] == checkpoint_sha256:
        how = "counted on the run's own checkpoint"
    else:
        how = f"counted on {shown(loaded.checkpoint)} (same family and model config; the run's weights are not shipped)"
    return measure(loaded, make_suite(suite).tasks()[0]).to_dict(), how


def migrate_run(run_dir: Path, root: Path, log=print) -> Path:
    old = json.loads((run_dir / "manifest.json").read_text())
    family, sha, suite = old["policy"], old["checkpoint_sha256"], old["suite"]
    threads = {inv.get("torch_threads_per_worker") for inv in old["invocations"]}
    if threads != {INFERENCE_THREADS}:
        raise ValueError(f"{run_dir}: episodes ran with torch threads {sorted(threads, key=str)}, not "
                         f"{INFERENCE_THREADS}: they are not comparable with v2 runs; evaluate again instead")
    ident = {"family": family, "checkpoint_sha256": sha, "params": {}}
    spec = PolicySpec(family)
    tag, hashed = run_tag(spec, ident), spec_hash(ident)
    store = RunStore(root, tag, suite)
    compute, how = _compute(family, sha, suite)
    records = _records(run_dir, hashed)
    protocol = old["protocol"]
    manifest = {
        "schema_version": SCHEMA_VERSION, "spec": {**spec.to_dict(), "checkpoint": None}, "identity": ident,
        "spec_hash": hashed, "tag": tag, "suite": suite, "protocol": protocol,
        "protocol_hash": digest({"protocol": protocol, "simulator": old["simulator"]}),
        "simulator": old["simulator"], "inference": inference_protocol(), "compute": compute,
        "migrated": {"from": f"{run_dir.relative_to(root)} (schema v1)", "episodes": len(records),
                     "env_step": "call index x ceil(steps / calls)", "compute": how},
        "invocations": old["invocations"],
    }
    write_text_atomic(store.manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
    for r in records:
        store.write_episode(r)
    store.compact()
    migrated = store.load()
    before = pd.DataFrame([{"key": r.key, "success": r.success, "steps": r.steps} for r in records])
    check = before.merge(migrated[["key", "success", "steps"]], on="key", suffixes=("", "_v2"))
    if len(check) != len(records) or not (check["success"] == check["success_v2"]).all() \
            or not (check["steps"] == check["steps_v2"]).all():
        raise RuntimeError(f"{run_dir}: migrated episodes differ from the originals; v1 kept")
    shutil.rmtree(run_dir)
    if not any(run_dir.parent.iterdir()):
        run_dir.parent.rmdir()
    log(f"{run_dir.relative_to(root)} -> {store.dir.relative_to(root)}: {len(records)} episodes ({how})")
    return store.dir


def migrate(root: Path, log=print) -> list[Path]:
    return [migrate_run(run, Path(root), log) for run in v1_runs(root)]
