"""Atomic file writes: write under a temporary name in the same folder, then rename.

A process killed at any moment (even `kill -9`) leaves either the old file or the new one under the final
name, never a truncated one; leftovers are hidden `.<name>.<pid>.tmp<suffix>` files.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to `path` (same suffix, so writers that infer the format from it work);
    on a clean exit it replaces `path`, on an exception it is removed. Creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
