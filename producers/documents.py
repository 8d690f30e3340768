"""The document store: each credential's canonical JSON under one folder per batch, ``<batch>/<line>.json``, so the
contract stores the folder's URI once and each credential only its file name.

Two stores behind one interface (``DocumentStore``), chosen by ``BLOCKPROOF_DOCUMENT_STORE``:

- ``directory`` (the functions below): a batch's documents are written into ``<root>/.<batch>.partial/`` and the
  directory is renamed to ``<root>/<batch>/`` in one step just before the batch's database transaction commits: a
  reader never sees half a batch, and a failed upload removes its directory (``discard``).
- ``s3`` (``producers.s3_store``): objects ``<prefix>/<batch>/<line>.json`` in a bucket of any S3-compatible service.
  An object store has no rename, so the objects are written in place while a marker ``<prefix>/.partial/<batch>``
  says the batch is not committed; publishing removes the marker, a failed upload removes the objects, and a
  marker left by a killed upload is found by its age like a stale directory.
"""
from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import pandas as pd

from blockproof.errors import ConfigurationError
from blockproof.settings import Settings

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


def read_document(root: Path, batch_id: int, line: int) -> bytes | None:
    try:
        return (batch_dir(root, batch_id) / suffix_for(line)).read_bytes()
    except FileNotFoundError:
        return None


class DocumentStore(Protocol):
    """Where credential documents are written by uploads and read back by the export."""

    def check(self) -> None:
        """ConfigurationError, naming the setting to fix, when documents cannot be written (called at start-up)."""

    def begin(self, batch_id: int) -> None:
        """Start a batch's documents afresh (leftovers of a crashed upload with the same id are removed)."""

    def write(self, batch_id: int, rows: pd.DataFrame) -> None:
        """Write each row's ``document`` as ``<line>.json`` of an uncommitted batch."""

    def touch(self, batch_id: int) -> None:
        """Mark an uncommitted batch as alive (a long upload, once per chunk)."""

    def publish(self, batch_id: int) -> None:
        """The batch is committed: its documents are the batch's."""

    def discard(self, batch_id: int) -> None:
        """Remove whatever exists of a batch's documents."""

    def remove_stale(self, older_than_seconds: float) -> list[str]:
        """Remove uncommitted batches untouched for longer than this; what was removed."""

    def read_many(self, batch_id: int, lines: list[int]) -> dict[int, bytes | None]:
        """The published documents of these lines (None where there is none)."""

    def describe(self) -> str:
        """Where the documents go, for messages (never credentials)."""


class DirectoryStore:
    """``BLOCKPROOF_DOCUMENT_STORE=directory``: the tree under ``BLOCKPROOF_DOCUMENT_DIR``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"BLOCKPROOF_DOCUMENT_DIR: cannot create {self.root} ({exc.strerror})") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise ConfigurationError(f"BLOCKPROOF_DOCUMENT_DIR: {self.root} is not writable by this user")

    def begin(self, batch_id: int) -> None:
        begin(self.root, batch_id)

    def write(self, batch_id: int, rows: pd.DataFrame) -> None:
        write_staged(partial_dir(self.root, batch_id), rows)

    def touch(self, batch_id: int) -> None:
        touch(self.root, batch_id)

    def publish(self, batch_id: int) -> None:
        publish(self.root, batch_id)

    def discard(self, batch_id: int) -> None:
        discard(self.root, batch_id)

    def remove_stale(self, older_than_seconds: float) -> list[str]:
        return [str(p) for p in remove_stale_partials(self.root, older_than_seconds)]

    def read_many(self, batch_id: int, lines: list[int]) -> dict[int, bytes | None]:
        return {line: read_document(self.root, batch_id, line) for line in lines}

    def describe(self) -> str:
        return f"directory {self.root}"


def store_for(settings: Settings) -> DocumentStore:
    """The configured store, checked once per process and configuration (ConfigurationError when it is unusable)."""
    if settings.document_store == "s3":
        from producers.s3_store import S3Config, open_s3_store

        return open_s3_store(S3Config.from_settings(settings))
    store = DirectoryStore(settings.document_dir)
    store.check()
    return store
