"""Run results on disk: one Parquet file per episode plus a JSON manifest.

Layout: `<results>/<policy tag>/<suite>/{manifest.json, episodes/<unit key>.parquet, videos/, trajectories/}`. Each episode
file is written to a temporary name and renamed, so a run killed at any moment (even `kill -9`) keeps every
finished episode and no half-written file; rerunning the same command skips the episodes already on disk.
"""
from __future__ import annotations

import getpass
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

from core.paths import REPO_ROOT
from harness.episode import EpisodeRecord


class RunMismatch(ValueError):
    """An existing run directory holds episodes evaluated under different conditions."""


def policy_tag(policy: str, checkpoint_sha256: str) -> str:
    return f"{policy}-{checkpoint_sha256[:12]}" if checkpoint_sha256 else policy


class RunStore:
    """Episodes and manifest of one (policy, checkpoint, suite)."""

    def __init__(self, results_root: Path, policy: str, checkpoint_sha256: str, suite: str):
        self.dir = Path(results_root) / policy_tag(policy, checkpoint_sha256) / suite
        self.episodes_dir = self.dir / "episodes"
        self.videos_dir = self.dir / "videos"
        self.trajectories_dir = self.dir / "trajectories"
        self.manifest_path = self.dir / "manifest.json"

    def completed_keys(self) -> set[str]:
        if not self.episodes_dir.is_dir():
            return set()
        return {p.stem for p in self.episodes_dir.glob("*.parquet")}

    def write_episode(self, key: str, record: EpisodeRecord) -> None:
        self.episodes_dir.mkdir(parents=True, exist_ok=True)
        final = self.episodes_dir / f"{key}.parquet"
        tmp = self.episodes_dir / f".{key}.{os.getpid()}.tmp"
        pq.write_table(pa.Table.from_pylist([record.row()]), tmp)
        os.replace(tmp, final)

    def load(self) -> pd.DataFrame:
        """All finished episodes of this run (empty frame if none)."""
        return load_episodes(self.episodes_dir)

    def write_manifest(self, manifest: dict) -> None:
        """Create the manifest, or check a resumed run matches it and append this invocation."""
        self.dir.mkdir(parents=True, exist_ok=True)
        manifest = json.loads(json.dumps(manifest, default=str))  # compare as stored: tuples become lists
        invocation = manifest.pop("invocation")
        if self.manifest_path.exists():
            old = json.loads(self.manifest_path.read_text())
            for field in ("policy", "checkpoint_sha256", "suite", "protocol", "simulator"):
                if old.get(field) != manifest.get(field):
                    raise RunMismatch(
                        f"{self.dir} holds episodes with a different {field}; move it away or choose --results"
                    )
            manifest["invocations"] = old.get("invocations", []) + [invocation]
        else:
            manifest["invocations"] = [invocation]
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        os.replace(tmp, self.manifest_path)


def load_episodes(episodes_dir: Path) -> pd.DataFrame:
    files = sorted(Path(episodes_dir).glob("*.parquet")) if Path(episodes_dir).is_dir() else []
    if not files:
        return pd.DataFrame(columns=list(EpisodeRecord.__dataclass_fields__))
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


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
    for pkg in ("torch", "numpy", "gymnasium", "pandas", "pyarrow"):
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
