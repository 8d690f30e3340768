"""The document store: each credential's canonical JSON under one directory per batch, so the
contract stores the directory's URI once and each credential only its file name."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def batch_dir(root: Path, batch_id: int) -> Path:
    return Path(root) / str(batch_id)


def suffix_for(line: int) -> str:
    return f"{line}.json"


def write_documents(root: Path, batch_id: int, rows: pd.DataFrame) -> None:
    """Write each row's document as <root>/<batch>/<line>.json (atomic per file)."""
    directory = batch_dir(root, batch_id)
    directory.mkdir(parents=True, exist_ok=True)
    for line, document in zip(rows["line"], rows["document"]):
        path = directory / suffix_for(int(line))
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(document)
        os.replace(tmp, path)
