"""SIMPLER assets: the offline copy mirrored into a writable cache that MS_ASSET_DIR points at, with generated
stand-ins (`stand_ins.py`) for official files the copy lacks, and the downloader of the official set.

The offline copy is `<repo>/../shared/assets/simpler` (or `$VLA_SIMPLER_ASSETS`), a folder holding `data/`;
the cache is `~/.cache/vla-bench/simpler-assets` (or `$VLA_SIMPLER_ASSET_CACHE`). The cache's
`stand_ins.json` records which files are stand-ins, so every run manifest can say so.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core.io import atomic_path, write_text_atomic
from core.paths import REPO_ROOT
from tasks.simpler.stand_ins import BRIDGE_DIR, STAND_INS, write_stand_in

STAND_IN_MANIFEST = "stand_ins.json"
"""File in the cache: official path -> {"file", "what", "sha256"} of each stand-in in use."""


def asset_source() -> Path:
    """The read-only offline asset copy (a folder holding `data/`)."""
    return Path(os.environ.get("VLA_SIMPLER_ASSETS", REPO_ROOT.parent / "shared" / "assets" / "simpler"))


def asset_cache() -> Path:
    """The writable folder MS_ASSET_DIR points at."""
    default = Path.home() / ".cache" / "vla-bench" / "simpler-assets"
    return Path(os.environ.get("VLA_SIMPLER_ASSET_CACHE", default))


@dataclass(frozen=True)
class AssetInfo:
    ms_asset_dir: Path
    stand_ins: tuple[str, ...]
    """Official files replaced by generated stand-ins, each as 'path: what it is'; empty with the full set."""


@lru_cache(maxsize=None)
def prepare_assets() -> AssetInfo:
    """Mirror the offline assets into the cache, generate stand-ins for missing files, set MS_ASSET_DIR.

    A file is official when it is in the source copy, or already in the cache and not recorded there as a
    stand-in (e.g. after `MS_ASSET_DIR=<cache> python -m mani_skill.utils.download_asset bridge_v2_real2sim`).
    Safe to call from several worker processes at once (file lock).
    """
    src, cache = asset_source(), asset_cache()
    if not (src / "data").is_dir() and not (cache / BRIDGE_DIR).is_dir():
        raise FileNotFoundError(
            f"SIMPLER assets not found: neither {src}/data (set VLA_SIMPLER_ASSETS) nor {cache}/{BRIDGE_DIR}"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest_path = cache / STAND_IN_MANIFEST
        recorded = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        if (src / "data").is_dir():
            _sync_tree(src / "data", cache / "data")
        stand_ins = {}
        for official, (written, what) in STAND_INS.items():
            if (cache / official).exists() and official not in recorded:
                if written != official:
                    (cache / written).unlink(missing_ok=True)  # an official file is back: drop the stand-in
                continue
            path = cache / written
            if official in recorded and path.exists() and _sha256(path) == recorded[official]["sha256"]:
                stand_ins[official] = recorded[official]
                continue
            write_stand_in(official, path)
            stand_ins[official] = {"file": written, "what": what, "sha256": _sha256(path)}
        write_text_atomic(manifest_path, json.dumps(stand_ins, indent=1, sort_keys=True))
    _point_maniskill_at(cache)
    return AssetInfo(cache, tuple(f"{k}: {v['what']}" for k, v in sorted(stand_ins.items())))


def download_official_assets() -> int:
    """`make assets-simpler`, for a machine with internet: fetch ManiSkill's official Bridge assets into the
    cache, replacing the generated stand-ins (their files and record are removed first, so an interrupted
    download simply falls back to stand-ins again at the next run). Returns the exit status."""
    import subprocess

    cache = asset_cache()
    cache.mkdir(parents=True, exist_ok=True)
    (cache / STAND_IN_MANIFEST).unlink(missing_ok=True)
    for written, _ in STAND_INS.values():
        (cache / written).unlink(missing_ok=True)
    env = {**os.environ, "MS_ASSET_DIR": str(cache)}
    for uid in ("bridge_v2_real2sim", "widowx250s"):
        proc = subprocess.run([sys.executable, "-m", "mani_skill.utils.download_asset", uid, "-y"], env=env)
        if proc.returncode != 0:
            print(f"error: downloading SIMPLER asset {uid!r} failed (needs internet); stand-ins stay in use",
                  file=sys.stderr)
            return 2
    print(f"official SIMPLER assets in {cache}; runs now record simpler_assets=official")
    return 0


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sync_tree(src: Path, dst: Path) -> None:
    """Copy files of src into dst where missing or different in size/mtime; dst files stay writable."""
    for root, _, files in os.walk(src):
        out = dst / Path(root).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in files:
            s, d = Path(root) / name, out / name
            st = s.stat()
            if d.exists() and d.stat().st_size == st.st_size and int(d.stat().st_mtime) == int(st.st_mtime):
                continue
            with atomic_path(d) as tmp:
                shutil.copyfile(s, tmp)
                os.chmod(tmp, 0o644)
                os.utime(tmp, (st.st_atime, st.st_mtime))


def _point_maniskill_at(cache: Path) -> None:
    """ManiSkill reads MS_ASSET_DIR once, at import: set it before, and refuse a mismatch after."""
    if "mani_skill" in sys.modules:
        import mani_skill

        if Path(mani_skill.ASSET_DIR).resolve() != (cache / "data").resolve():
            raise RuntimeError(
                f"mani_skill was imported with ASSET_DIR={mani_skill.ASSET_DIR}; SIMPLER needs "
                f"MS_ASSET_DIR={cache} set before mani_skill is first imported"
            )
    os.environ["MS_ASSET_DIR"] = str(cache)
