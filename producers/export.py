"""A batch's results for the registrar: a CSV for mail merge and a ZIP of the graduates' credential documents.

Both are generators of bytes read from the database a page of jobs at a time (keyset on the job id), so a
100,000-row batch streams in bounded memory to a file (CLI) or an HTTP response (web). The ZIP's documents are read
back from the document store (a directory or an S3 bucket: producers.documents), each checked against its
fingerprint; one the store lost or holds altered is taken from the database's copy (the bytes the fingerprint was
computed from), and one warning per export names them. The CSV is written like the
error CSV (UTF-8 with a BOM, CRLF, cells a spreadsheet would run as formulas prefixed with ').
"""
from __future__ import annotations

import csv
import io
import logging
import re
import zipfile
from collections.abc import Iterator

from sqlalchemy import select

from blockproof.errors import NotFound
from blockproof.settings import Settings
from models.states import JobKind, JobState
from models.tables import Batch, CredentialEvent, Job
from producers import documents
from producers.error_report import neutralise
from producers.hashing import keccak

COLUMNS = ["line", "student_id", "student_name", "student_wallet", "credential_id", "fingerprint", "transaction",
           "block", "state", "verification_link"]
PAGE = 2_000
SHOWN_LINES = 20  # lines named in the export's warning about documents the store lacks
REVOKED = "revoked"  # shown as the state of a confirmed credential whose revocation the chain recorded
log = logging.getLogger("blockproof.export")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_JOB_FIELDS = (Job.id, Job.line, Job.student_id, Job.student_name, Job.student_wallet, Job.credential_id,
               Job.fingerprint, Job.tx_hash, Job.block_number, Job.state)


def _check_batch(engine, batch_id: int) -> None:
    with engine.connect() as c:
        kind = c.execute(select(Batch.kind).where(Batch.id == batch_id)).scalar()
    if kind is None:
        raise NotFound(f"batch {batch_id} does not exist")
    if kind != JobKind.ISSUE.value:
        raise NotFound(f"batch {batch_id} is a revocation batch: it has no credentials to export")


def _pages(engine, batch_id: int, *, documents: bool = False) -> Iterator[tuple[list, set[int]]]:
    """(jobs, ids of their credentials that are revoked), PAGE jobs at a time, in line order."""
    fields = _JOB_FIELDS + ((Job.document,) if documents else ())
    after = 0
    while True:
        with engine.connect() as c:
            rows = c.execute(select(*fields).where(Job.batch_id == batch_id, Job.kind == JobKind.ISSUE.value, Job.id > after)
                             .order_by(Job.id).limit(PAGE)).all()
            ids = [r.credential_id for r in rows if r.credential_id is not None]
            revoked = set(c.execute(select(CredentialEvent.credential_id).where(
                CredentialEvent.credential_id.in_(ids), CredentialEvent.revoked.is_(True))).scalars()) if ids else set()
        if not rows:
            return
        yield rows, revoked
        after = rows[-1].id


def result_row(job, revoked: bool, settings: Settings) -> list:
    state = REVOKED if revoked and job.state == JobState.CONFIRMED.value else job.state
    return [job.line, job.student_id, job.student_name, job.student_wallet,
            "" if job.credential_id is None else job.credential_id, job.fingerprint, job.tx_hash or "",
            "" if job.block_number is None else job.block_number, state, settings.verification_url(job.fingerprint)]


def iter_results_csv(batch_id: int, *, settings: Settings, engine) -> Iterator[bytes]:
    """The results CSV of one issue batch, every job in line order (NotFound for an unknown or revocation batch)."""
    _check_batch(engine, batch_id)
    return _csv(batch_id, settings, engine)


def _csv(batch_id: int, settings: Settings, engine) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield ("\ufeff" + out.getvalue()).encode("utf-8")
    for rows, revoked in _pages(engine, batch_id):
        out.seek(0)
        out.truncate()
        for job in rows:
            writer.writerow([neutralise(cell) for cell in result_row(job, job.credential_id in revoked, settings)])
        yield out.getvalue().encode("utf-8")


def document_name(student_id: str, line: int, taken: set[str]) -> str:
    """``<student id>.json`` made safe as a file name; a second credential of the same student (or an id that only
    differs in unsafe characters) gets ``-line<N>`` added, so no document overwrites another."""
    stem = _UNSAFE_NAME.sub("_", student_id).lstrip(".") or f"line{line}"
    name = f"{stem}.json"
    if name in taken:
        name = f"{stem}-line{line}.json"
    taken.add(name)
    return name


class _Sink:
    """A write-only stream: zipfile writes into it (without seeking: data descriptors), the generator drains it."""

    def __init__(self):
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def iter_documents_zip(batch_id: int, *, settings: Settings, engine,
                       store: documents.DocumentStore | None = None) -> Iterator[bytes]:
    """A ZIP of the credential documents of the batch's issued (confirmed) credentials, each named by student id;
    the bytes in each file are exactly the canonical JSON whose keccak-256 is the fingerprint on chain."""
    _check_batch(engine, batch_id)
    return _zip(batch_id, engine, store or documents.store_for(settings))


def stored_or_kept(job, stored: bytes | None) -> tuple[bytes | None, str | None]:
    """The document for the ZIP: the store's when it is the one the fingerprint commits to, else the database's
    copy (None without one), with why."""
    if stored is not None and "0x" + keccak(stored).hex() == job.fingerprint.lower():
        return stored, None
    return (job.document.encode("utf-8") if job.document else None), \
        "missing from" if stored is None else "altered in"


def _zip(batch_id: int, engine, store: documents.DocumentStore) -> Iterator[bytes]:
    sink = _Sink()
    taken: set[str] = set()
    problems: dict[str, list[int]] = {}
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for rows, _ in _pages(engine, batch_id, documents=True):
            issued = [job for job in rows if job.state == JobState.CONFIRMED.value]
            stored = store.read_many(batch_id, [job.line for job in issued])
            for job in issued:
                body, problem = stored_or_kept(job, stored[job.line])
                if problem:
                    problems.setdefault(problem if body is not None else f"{problem} (no database copy either: "
                                        "left out of the ZIP)", []).append(job.line)
                if body is not None:
                    archive.writestr(document_name(job.student_id, job.line, taken), body)
            yield sink.take()
    yield sink.take()
    for problem, lines in problems.items():  # one line per kind, however many documents: a store switched
        shown = ", ".join(map(str, lines[:SHOWN_LINES])) + (", …" if len(lines) > SHOWN_LINES else "")
        log.warning("batch %s: %d document(s) %s the document store (%s), lines %s; the database's copies are "
                    "exported", batch_id, len(lines), problem, store.describe(), shown)
