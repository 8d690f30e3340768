"""The document store: each credential's canonical JSON under one directory per batch, so the
contract stores the directory's URI once and each credential only its file name.

A batch's documents are written into ``<root>/.<batch>.partial/`` and the directory is renamed to
``<root>/<batch>/`` in one step just before the batch's database transaction commits: a reader
never sees half a batch, and a failed upload removes its directory (``discard``).
"""
from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

WRITER_THREADS = 4  # file creation is system-call bound; threads overlap it (the GIL is released)


def batch_dir(root: Path, batch_id: int) -> Path:
    return Path(root) / str(batch_id)


def partial_dir(root: Path, batch_id: int) -> Path:
    return Path(root) / f".{batch_id}.partial"


def suffix_for(line: int) -> str:
    return f"{line}.json"


def begin(root: Path, batch_id: int) -> Path:
    """A fresh, empty staging directory for a new batch (leftovers of a crashed upload are removed)."""
    discard(root, batch_id)
    directory = partial_dir(root, batch_id)
    directory.mkdir(parents=True)
    return directory


def _write_many(directory: str, lines, documents) -> None:
    for line, document in zip(lines, documents):
        with open(os.path.join(directory, f"{line}.json"), "w", encoding="utf-8") as f:
            f.write(document)


def write_staged(directory: Path, rows: pd.DataFrame) -> None:
    """Write each row's document as <line>.json into a staging directory from ``begin``."""
    lines, documents = rows["line"].tolist(), rows["document"].tolist()
    step = max(1, -(-len(lines) // WRITER_THREADS))
    with ThreadPoolExecutor(WRITER_THREADS) as pool:
        for f in [pool.submit(_write_many, str(directory), lines[i : i + step], documents[i : i + step])
                  for i in range(0, len(lines), step)]:
            f.result()


def touch(root: Path, batch_id: int) -> None:
    """Mark a staging directory as alive (a long upload touches each of its batches' directories per chunk)."""
    os.utime(partial_dir(root, batch_id))


def remove_stale_partials(root: Path, older_than_seconds: float, now: float | None = None) -> list[Path]:
    """Remove staging directories untouched for longer than ``older_than_seconds``: an upload killed before its
    commit leaves one behind, and with ids that are never reused (PostgreSQL) nobody else would remove it."""
    root = Path(root)
    if not root.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - older_than_seconds
    removed = []
    for directory in root.glob(".*.partial"):
        try:
            if directory.is_dir() and directory.stat().st_mtime < cutoff:
                shutil.rmtree(directory, ignore_errors=True)
                removed.append(directory)
        except OSError:  # removed meanwhile by another upload
            pass
    return removed


def publish(root: Path, batch_id: int) -> None:
    """Make the staged directory the batch's directory (one rename)."""
    os.replace(partial_dir(root, batch_id), batch_dir(root, batch_id))


def discard(root: Path, batch_id: int) -> None:
    """Remove whatever exists of a batch's documents (staged or published)."""
    for directory in (partial_dir(root, batch_id), batch_dir(root, batch_id)):
        shutil.rmtree(directory, ignore_errors=True)


def write_documents(root: Path, batch_id: int, rows: pd.DataFrame) -> None:
    """All of a batch's documents at once: <root>/<batch>/<line>.json (staged, then renamed)."""
    write_staged(begin(root, batch_id), rows)
    publish(root, batch_id)
