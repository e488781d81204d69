"""Run results on disk (schema v2): per run an episodes table and a calls table in Parquet, plus a manifest.

Layout: `<results>/<run tag>/<suite>/` with
- `manifest.json`: schema version, the policy spec and identity (hash = the run tag's suffix), protocol and its
  hash, simulator versions, inference settings, the compute model, and one entry per invocation;
- `episodes.parquet`: one row per episode (`EPISODE_COLUMNS`, plus `partial_<metric>` columns of the suite);
- `calls.parquet`: one row per policy call (`CALL_COLUMNS`);
- `fragments/`: episodes finished since the last compaction, `<key>.calls.parquet` then `<key>.episode.parquet`,
  each written by atomic rename, so a `kill -9` loses only episodes in flight. `compact` folds them into the
  two tables (when a run ends and when one resumes); readers take both, so nothing depends on it having run.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.io import atomic_path, write_text_atomic
from core.paths import REPO_ROOT
from harness.compute import ComputeModel
from harness.episode import EpisodeRecord

SCHEMA_VERSION = 2

EPISODE_COLUMNS = {
    "key": pa.string(), "policy": pa.string(), "spec_hash": pa.string(), "checkpoint_sha256": pa.string(),
    "suite": pa.string(), "task_index": pa.int32(), "task_name": pa.string(), "instruction": pa.string(),
    "init_index": pa.int32(), "seed": pa.int64(), "success": pa.bool_(), "steps": pa.int32(),
    "policy_calls": pa.int32(), "wall_s": pa.float64(), "policy_s": pa.float64(), "physics_s": pa.float64(),
    "render_s": pa.float64(), "renders": pa.int32(), "error": pa.string(), "video": pa.string(),
    "trajectory": pa.string(), "jerk": pa.float64(), "record_s": pa.float64(), "worker_pid": pa.int64(),
    "finished_at": pa.float64(),
}
"""Episode table columns (units: seconds, env steps); suite metrics follow as `partial_<name>`."""

CALL_COLUMNS = {
    "key": pa.string(), "spec_hash": pa.string(), "suite": pa.string(), "task_index": pa.int32(),
    "init_index": pa.int32(), "seed": pa.int64(), "call": pa.int32(), "env_step": pa.int32(),
    "policy_s": pa.float64(), "blocks": pa.list_(pa.int16()), "n_blocks": pa.int16(),
    "exec_fraction": pa.float64(), "gflops": pa.float64(), "info": pa.string(),
}
"""Call table columns: `blocks` are reference-block indices (null: the policy reports none), `exec_fraction`
their share of the reference backbone's FLOPs, `gflops` the call's FLOPs (`harness.compute`), `info` the rest of
the policy's info as JSON."""


class RunMismatch(ValueError):
    """An existing run directory holds episodes evaluated under different conditions."""


def digest(obj) -> str:
    """Stable 12-hex hash of a JSON-able object (protocol hash)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def episode_table(records: list[EpisodeRecord]) -> pa.Table:
    rows = []
    for r in records:
        row = {k: getattr(r, k) for k in EPISODE_COLUMNS}
        row.update({f"partial_{k}": v for k, v in r.partial.items()})
        rows.append(row)
    table = pa.Table.from_pylist(rows)
    return table.cast(pa.schema([pa.field(n, EPISODE_COLUMNS.get(n, table.schema.field(n).type))
                                 for n in table.column_names]))


def call_table(records: list[EpisodeRecord], compute: ComputeModel | None) -> pa.Table:
    nan = float("nan")
    rows = [{
        "key": r.key, "spec_hash": r.spec_hash, "suite": r.suite, "task_index": r.task_index,
        "init_index": r.init_index, "seed": r.seed, "call": i, "env_step": c["env_step"], "policy_s": c["policy_s"],
        "blocks": c["blocks"], "n_blocks": None if c["blocks"] is None else len(c["blocks"]),
        "exec_fraction": compute.fraction(c["blocks"]) if compute else nan,
        "gflops": compute.flops(c["blocks"]) / 1e9 if compute else nan,
        "info": json.dumps(c["info"], sort_keys=True),
    } for r in records for i, c in enumerate(r.calls)]
    return pa.Table.from_pylist(rows, schema=pa.schema(CALL_COLUMNS))


def _read(paths: list[Path]) -> pd.DataFrame | None:
    tables = [pq.read_table(p) for p in paths]
    return pa.concat_tables(tables, promote_options="permissive").to_pandas() if tables else None


class RunStore:
    """Episodes, calls and manifest of one (policy identity, suite)."""

    def __init__(self, results_root: Path, tag: str, suite: str):
        self.dir = Path(results_root) / tag / suite
        self.fragments_dir = self.dir / "fragments"
        self.videos_dir = self.dir / "videos"
        self.trajectories_dir = self.dir / "trajectories"
        self.manifest_path = self.dir / "manifest.json"
        self.episodes_path = self.dir / "episodes.parquet"
        self.calls_path = self.dir / "calls.parquet"

    def manifest(self) -> dict:
        return json.loads(self.manifest_path.read_text()) if self.manifest_path.exists() else {}

    def compute(self) -> ComputeModel | None:
        """The run's compute model from its manifest (None: not counted); read once, then kept until this store
        writes the manifest again (every episode written uses it)."""
        if not hasattr(self, "_compute"):
            data = self.manifest().get("compute")
            self._compute = ComputeModel.from_dict(data) if data and "extra_flops" in data else None
        return self._compute

    def _write_manifest_text(self, manifest: dict) -> None:
        write_text_atomic(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True, default=str))
        self.__dict__.pop("_compute", None)

    def _fragments(self, kind: str) -> list[Path]:
        return sorted(self.fragments_dir.glob(f"*.{kind}.parquet")) if self.fragments_dir.is_dir() else []

    def completed_keys(self) -> set[str]:
        keys = {p.name[:-len(".episode.parquet")] for p in self._fragments("episode")}
        if self.episodes_path.exists():
            keys |= set(pq.read_table(self.episodes_path, columns=["key"]).column("key").to_pylist())
        return keys

    def write_episode(self, record: EpisodeRecord) -> None:
        """Calls first, then the episode: an episode fragment on disk means its calls are there too."""
        with atomic_path(self.fragments_dir / f"{record.key}.calls.parquet") as tmp:
            pq.write_table(call_table([record], self.compute()), tmp)
        with atomic_path(self.fragments_dir / f"{record.key}.episode.parquet") as tmp:
            pq.write_table(episode_table([record]), tmp)

    def files(self, kind: str) -> list[Path]:
        """The Parquet files holding this run's finished `kind` ("episode" or "calls") rows: the compacted table and
        the fragments of finished episodes. Rows may appear in both (see `_load`)."""
        done = {p.name[:-len(".episode.parquet")] for p in self._fragments("episode")}
        compacted = self.episodes_path if kind == "episode" else self.calls_path
        parts = [compacted] if compacted.exists() else []
        # A calls fragment without its episode fragment is from an episode killed mid-write: not finished.
        return parts + [p for p in self._fragments(kind) if p.name[:-len(f".{kind}.parquet")] in done]

    def _load(self, kind: str, columns: dict) -> pd.DataFrame:
        df = _read(self.files(kind))
        if df is None:
            return pd.DataFrame(columns=list(columns))
        # A run killed between writing the compacted tables and removing fragments holds some rows twice.
        subset = ["key", "call"] if kind == "calls" else ["key"]
        return df.drop_duplicates(subset=subset, keep="last").reset_index(drop=True)

    def load(self) -> pd.DataFrame:
        """All finished episodes of this run (empty frame if none)."""
        return self._load("episode", EPISODE_COLUMNS)

    def load_calls(self) -> pd.DataFrame:
        """Every policy call of the finished episodes."""
        return self._load("calls", CALL_COLUMNS)

    def compact(self) -> int:
        """Fold fragments into `episodes.parquet` and `calls.parquet`; returns how many episodes were folded."""
        fragments = self._fragments("episode")
        if not fragments:
            return 0
        episodes, calls = self.load(), self.load_calls()
        episodes = episodes.sort_values(["task_index", "init_index", "seed"]).reset_index(drop=True)
        calls = calls.sort_values(["task_index", "init_index", "seed", "call"]).reset_index(drop=True)
        with atomic_path(self.calls_path) as tmp:
            pq.write_table(pa.Table.from_pandas(calls, schema=pa.schema(CALL_COLUMNS), preserve_index=False), tmp)
        with atomic_path(self.episodes_path) as tmp:
            pq.write_table(pa.Table.from_pandas(episodes, preserve_index=False), tmp)
        for p in self.fragments_dir.glob("*.parquet"):
            p.unlink()
        return len(fragments)

    def set_compute(self, compute: dict) -> None:
        """Record the run's compute model (`harness.compute`), or why there is none, before its episodes land."""
        self._write_manifest_text({**self.manifest(), "compute": compute})

    def record_executor(self, description: dict) -> None:
        """Replace this invocation's executor entry (the last one) by `description`: where units ran (a Ray
        cluster's nodes) is known only once they ran."""
        manifest = self.manifest()
        manifest["invocations"][-1]["executor"] = description
        self._write_manifest_text(manifest)

    def write_manifest(self, manifest: dict) -> None:
        """Create the manifest, or check a resumed run matches it and append this invocation."""
        self.dir.mkdir(parents=True, exist_ok=True)
        manifest = json.loads(json.dumps(manifest, default=str))  # compare as stored: tuples become lists
        invocation = manifest.pop("invocation")
        old = self.manifest()
        if old:
            for field in ("schema_version", "identity", "suite", "protocol", "simulator", "inference"):
                if old.get(field) != manifest.get(field):
                    raise RunMismatch(
                        f"{self.dir} holds episodes with a different {field}; move it away or choose --results"
                    )
            if "compute" in old:
                manifest["compute"] = old["compute"]
            manifest["invocations"] = old.get("invocations", []) + [invocation]
        else:
            manifest["invocations"] = [invocation]
        self._write_manifest_text(manifest)


def ensure_writable(directory: Path) -> None:
    """Raise PermissionError with a one-line reason when results cannot be written under `directory`."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"results directory {directory} is not writable ({err.strerror})") from None


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def invocation_info(**settings) -> dict:
    """Code, package and machine facts of this invocation, plus its run settings (workers, episodes, ...)."""
    packages = {}
    for pkg in ("torch", "numpy", "gymnasium", "pandas", "pyarrow", "duckdb"):
        try:
            packages[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            packages[pkg] = "absent"
    return {
        "argv": sys.argv,
        "user": getpass.getuser(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git": {"commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain"))},
        "versions": {"python": platform.python_version(), **packages},
        "machine": {
            "hostname": socket.gethostname(),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "mujoco_gl": os.environ.get("MUJOCO_GL", ""),
        },
        **settings,
    }
