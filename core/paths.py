"""Repository locations, defined once."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = REPO_ROOT / "checkpoints"
"""Shipped checkpoints: `checkpoints/<family>/<suite>/`."""
DEFAULT_RESULTS = REPO_ROOT / "results"
REPORTS = REPO_ROOT / "reports"


def shown(path: Path) -> str:
    """`path` relative to the repository when inside it, so reports and manifests carry no machine's layout."""
    full = Path(path).resolve()
    return str(full.relative_to(REPO_ROOT)) if full.is_relative_to(REPO_ROOT) else str(path)
