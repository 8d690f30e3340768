"""Validated rows parked on disk between the dry run and the commit, so memory stays bounded.

A dry run streams the file chunk by chunk; the rows that would be written are appended (pickled
DataFrame chunks) to an anonymous temporary file instead of being held in memory. Commit reads
them back one chunk at a time. The file vanishes when closed or when the process ends.
"""
from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator

import pandas as pd


class StagedRows:
    def __init__(self, enabled: bool = True):
        self._file = tempfile.TemporaryFile(prefix="blockproof-staged-") if enabled else None
        self._chunks = 0
        self.count = 0
        self.first: dict[str, dict] = {}  # first staged row per institution (for the pre-flight)

    def append(self, rows: pd.DataFrame) -> None:
        if rows.empty:
            return
        for institution, index in rows.groupby("institution", sort=False).groups.items():
            self.first.setdefault(institution, rows.loc[index[0]].to_dict())
        self.count += len(rows)
        if self._file is not None:
            pickle.dump(rows, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._chunks += 1

    def chunks(self) -> Iterator[pd.DataFrame]:
        if self._file is None:
            raise RuntimeError("these rows were planned without staging (dry run only)")
        self._file.seek(0)
        for _ in range(self._chunks):
            yield pickle.load(self._file)

    @property
    def empty(self) -> bool:
        return self.count == 0

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
