"""Uploaded files waiting for the user's commit, kept on disk under a random token (nothing is queued before
commit), in the instance's own folder (BLOCKPROOF_UPLOAD_STAGING_DIR). Several web workers of one instance
share the folder; old entries are swept after a day."""
from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import BinaryIO

TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
TTL_SECONDS = 24 * 3600


class TooLarge(Exception):
    pass


class UploadStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _dir(self, token: str) -> Path | None:
        if not TOKEN.match(token or ""):
            return None
        path = self.root / token
        return path if path.is_dir() else None

    def save(self, stream: BinaryIO, *, filename: str, max_bytes: int) -> str:
        self.sweep()
        token = secrets.token_urlsafe(24)
        directory = self.root / token
        directory.mkdir(mode=0o700)
        size = 0
        with open(directory / "upload.csv", "wb") as out:
            while chunk := stream.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    out.close()
                    shutil.rmtree(directory, ignore_errors=True)
                    raise TooLarge()
                out.write(chunk)
        self.write_meta(token, {"filename": filename, "size": size, "created": time.time()})
        return token

    def csv_path(self, token: str) -> Path | None:
        d = self._dir(token)
        return d / "upload.csv" if d and (d / "upload.csv").exists() else None

    def errors_path(self, token: str) -> Path | None:
        """Where the token's error CSV (with each row's original columns) is kept, also after the commit."""
        d = self._dir(token)
        return d / "errors.csv" if d else None

    def meta(self, token: str) -> dict | None:
        d = self._dir(token)
        if d is None or not (d / "meta.json").exists():
            return None
        return json.loads((d / "meta.json").read_text())

    def write_meta(self, token: str, meta: dict) -> None:
        directory = self.root / token
        tmp = directory / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, default=str))
        tmp.replace(directory / "meta.json")

    def drop_file(self, token: str) -> None:
        path = self.csv_path(token)
        if path:
            path.unlink(missing_ok=True)

    def discard(self, token: str) -> bool:
        d = self._dir(token)
        if d is None:
            return False
        shutil.rmtree(d, ignore_errors=True)
        return True

    def sweep(self) -> None:
        cutoff = time.time() - TTL_SECONDS
        for d in self.root.iterdir():
            try:
                if d.stat().st_mtime < cutoff:
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                pass
