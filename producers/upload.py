"""From a validated file to batches of jobs on the queue: dry run (plan), then commit.

One code path for the CLI and the web upload.

plan() streams the file chunk by chunk: validates, classifies each valid row as new, uploaded
before (in this database) or already issued on chain (``fingerprintUsed``), and pre-flights the
contract rules by simulating one row's ``issueCredential`` from the signer's address. It writes
nothing: the new rows are parked in a temporary file (producers.staging), not in memory.

commit() then, in ONE database transaction, writes one batch per institution and its jobs
(state ``validated``) and the documents (to the document store, published just before the commit), and
only after that transaction publishes the jobs to RabbitMQ with publisher confirms, marking each
published slice ``queued``. A failure or Ctrl-C before the commit leaves nothing behind; one during
publishing leaves ``validated`` jobs that ``blockproof requeue BATCH`` publishes (the signer ignores
a job it has taken already, so publishing twice is harmless). A killed upload is finished without a
person (models.recovery): the signer publishes such jobs after ``stalled_upload_seconds``, a
re-upload of the file publishes them at once (and says so), and the next commit removes staging
folders left behind.

Policy: with ``reject_on_invalid`` any invalid row rejects the whole file; otherwise the valid rows
are queued and the rest reported. A pre-flight refusal (paused, institution unknown or inactive,
signer not a controller) blocks the commit unless ``queue_while_blocked``: the signer would only
hold the jobs until someone fixes the contract, so by default nothing is written and the user is
told what to fix.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy import and_, func, select

from blockproof.errors import RpcError, RpcUnavailable
from chain.rpc import Rpc, refuse_wrong_chain
from blockproof.settings import Settings
from models.db import session_scope
from models.states import JobKind, JobState, utcnow
from models.tables import Batch, Job
from models.transitions import transition_where
from models.db import IN_LIST_CHUNK
from producers import documents
from producers.chain_checks import FINGERPRINT_USED, Preflight, preflight, used_on_chain  # noqa: F401
from producers.records import RowError
from blockproof.production import fingerprint_secret, refuse_unfit_for_production
from producers.staging import StagedRows
from models.recovery import republish_stalled
from producers.validation import DateReadings, iter_validated_chunks

MAX_KEPT_ERRORS = 100_000   # row errors kept for the report; the counts stay exact beyond it
log = logging.getLogger("blockproof.upload")
MAX_KEPT_SKIPPED = 10_000   # skipped rows (uploaded before / on chain) listed in the report
INSERT_CHUNK = 5_000
PUBLISH_SLICE = 5_000       # jobs published, then marked queued, per step
Progress = Callable[[str, int, int], None]  # (stage, done, total or 0)


@dataclass
class UploadReport:
    filename: str
    total_rows: int = 0
    new: int = 0
    duplicate: int = 0  # uploaded before (in this database)
    waiting: int = 0  # of those, still unpublished (validated): their upload stopped before queueing them
    waiting_batches: list[int] = field(default_factory=list)
    requeued: int = 0  # waiting rows this commit published
    already_issued: int = 0  # fingerprint already used on chain
    invalid: int = 0  # rows with at least one error
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0  # all row errors, also those beyond MAX_KEPT_ERRORS
    skipped: list[RowError] = field(default_factory=list)  # valid rows not queued, and why
    problems: list[dict] = field(default_factory=list)  # file-level pre-flight refusals
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = True
    rejected: bool = False
    rejected_reason: str = ""
    batch_id: int | None = None  # the first batch (one per institution)
    batch_ids: list[int] = field(default_factory=list)
    written: int = 0
    queued: int = 0

    @property
    def blocked(self) -> bool:
        return bool(self.problems)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["errors"] = [asdict(e) | {"message": e.message} for e in self.errors]
        out["skipped"] = [asdict(e) | {"message": e.message} for e in self.skipped]
        out["blocked"] = self.blocked
        return out


def _used_on_chain(rpc: Rpc, vault_address: str, fingerprints: list[str]) -> set[str]:
    """Lenient form for retries: a refused call counts as not used (the signer pre-flights anyway)."""
    return used_on_chain(rpc, vault_address, fingerprints, strict=False)


def _known_fingerprints(session, fingerprints: list[str]) -> dict[str, tuple[int, str]]:
    """fingerprint -> (batch id, state), for the fingerprints already uploaded (issue jobs in this database)."""
    known: dict[str, tuple[int, str]] = {}
    for start in range(0, len(fingerprints), IN_LIST_CHUNK):
        known.update((fp, (batch, state)) for fp, batch, state in session.execute(
            select(Job.fingerprint, Job.batch_id, Job.state).where(
                Job.kind == JobKind.ISSUE.value, Job.fingerprint.in_(fingerprints[start : start + IN_LIST_CHUNK]))).all())
    return known


IDENTITY = ("institution", "student_id", "student_name", "student_wallet", "degree", "major", "graduation_date",
            "expires_at")


def _known_rows(session, rows: pd.DataFrame) -> dict[tuple, int]:
    """Row identity (every field of the document but its version and salt) -> batch id, for rows already uploaded
    under another fingerprint: the same graduate's same credential after the fingerprint secret was lost or
    replaced (or first issued with plain version 1 fingerprints). Found by student id (indexed), then compared."""
    known: dict[tuple, int] = {}
    ids = list(dict.fromkeys(rows["student_id"].tolist()))
    columns = [getattr(Job, name) for name in IDENTITY]
    for start in range(0, len(ids), IN_LIST_CHUNK):
        for row in session.execute(select(Job.batch_id, *columns).where(
                Job.kind == JobKind.ISSUE.value, Job.student_id.in_(ids[start : start + IN_LIST_CHUNK]))).all():
            known.setdefault(tuple(row[1:]), row[0])
    return known


def _drop_known_rows(session, report: "UploadReport", rows: pd.DataFrame) -> pd.DataFrame:
    known = _known_rows(session, rows)
    if not known:
        return rows
    identity = list(zip(*(rows[name].tolist() for name in IDENTITY)))
    batch = pd.Series([known.get(key) for key in identity], index=rows.index, dtype=object)
    seen = batch.notna()
    report.duplicate += int(seen.sum())
    _skip(report, rows[seen].assign(batch=batch[seen]), lambda b: f"was uploaded before (batch {b}) under another "
          "fingerprint (the fingerprint secret has changed since); not queued again", key="batch")
    return rows[~seen]


def _count_waiting(report: UploadReport, known: dict[str, tuple[int, str]], fingerprints) -> None:
    for fp in fingerprints:
        batch, state = known[fp]
        if state == JobState.VALIDATED.value:
            report.waiting += 1
            if batch not in report.waiting_batches:
                report.waiting_batches.append(batch)


def _skip(report: UploadReport, rows: pd.DataFrame, reason, key: str = "fingerprint") -> None:
    """List skipped rows, each with ``reason(row[key])``."""
    room = MAX_KEPT_SKIPPED - len(report.skipped)
    for line, value in zip(rows["line"][:room], rows[key][:room]):
        report.skipped.append(RowError(int(line), "", "", reason(value)))


def plan(source, *, filename: str, institution: str | None, settings: Settings, engine,
         check_chain: bool = True, stage: bool = True, progress: Progress | None = None
         ) -> tuple[UploadReport, StagedRows]:
    """Validate, classify and pre-flight every row; write nothing. Returns the report and the new rows
    (staged on disk; pass them to commit). CsvFileError for a file that cannot be read at all."""
    report = UploadReport(filename=filename)
    staged = StagedRows(enabled=stage)
    rpc = Rpc.for_settings(settings) if check_chain and settings.vault_address else None
    if rpc is not None:
        refuse_wrong_chain(rpc)
    if check_chain and not settings.vault_address:
        report.warnings.append("No contract address configured: rows were not checked against the chain.")
    readings = DateReadings()
    refuse_unfit_for_production(settings)
    if stage:  # an upload that will write its documents: the store works, or say so before reading the file
        documents.store_for(settings)
    secret = fingerprint_secret(settings)
    try:
        with session_scope(engine) as s:
            for chunk in iter_validated_chunks(source, institution=institution, secret=secret):
                readings.add(chunk.readings)
                report.total_rows += chunk.data_rows
                report.error_count += len(chunk.errors)
                report.invalid += len({e.line for e in chunk.errors})
                report.errors.extend(chunk.errors[: max(0, MAX_KEPT_ERRORS - len(report.errors))])
                rows = chunk.rows
                if not rows.empty:
                    known = _known_fingerprints(s, rows["fingerprint"].tolist())
                    is_dup = rows["fingerprint"].isin(known.keys())
                    report.duplicate += int(is_dup.sum())
                    _count_waiting(report, known, rows["fingerprint"][is_dup])
                    _skip(report, rows[is_dup], lambda fp: f"was uploaded before (batch {known[fp][0]}); not queued again"
                          if known[fp][1] != JobState.VALIDATED.value else f"was uploaded before (batch {known[fp][0]}) "
                          "but its upload stopped before queueing it; the commit queues it")
                    rows = rows[~is_dup]
                if not rows.empty:
                    rows = _drop_known_rows(s, report, rows)
                if rpc is not None and not rows.empty:
                    rows = _drop_issued_on_chain(report, rows, rpc, settings)
                    if report.warnings and report.warnings[-1].startswith("Could not check the chain"):
                        rpc = None
                staged.append(rows)
                if progress:
                    progress("checked", report.total_rows, 0)
        report.new = staged.count
        report.warnings[:0] = readings.warnings()
        if rpc is not None:
            _preflight(report, staged, rpc, settings)
    except BaseException:
        staged.close()
        raise
    return report, staged


def _drop_issued_on_chain(report: UploadReport, rows: pd.DataFrame, rpc: Rpc, settings: Settings) -> pd.DataFrame:
    try:
        used = used_on_chain(rpc, settings.vault_address, rows["fingerprint"].tolist())
    except (RpcError, RpcUnavailable) as exc:
        report.warnings.append(f"Could not check the chain for already issued credentials: {exc}")
        return rows
    on_chain = rows["fingerprint"].isin(used)
    report.already_issued += int(on_chain.sum())
    _skip(report, rows[on_chain], lambda fp: "is already issued on chain (fingerprintUsed); not queued")
    return rows[~on_chain]


def _preflight(report: UploadReport, staged: StagedRows, rpc: Rpc, settings: Settings) -> None:
    """Simulate one new row per institution as the signer would send it; refusals become problems."""
    for row in list(staged.first.values())[:20]:
        try:
            result = preflight(rpc, settings, row)
        except (RpcError, RpcUnavailable) as exc:
            report.warnings.append(f"Could not pre-flight the contract rules: {exc}")
            return
        if not result.ok:
            report.problems.append({"institution": result.institution, "signer": result.sender,
                                    "code": result.code, "message": result.message})


def commit(report: UploadReport, rows: StagedRows, *, settings: Settings, engine, reject_on_invalid: bool = False,
           queue_while_blocked: bool = False, created_by: str = "cli", publish=None,
           progress: Progress | None = None, deadline: datetime | None = None) -> UploadReport:
    """Write the batches and their jobs in one transaction, then queue them (see the module docstring)."""
    report.dry_run = False
    try:
        if reject_on_invalid and report.invalid:
            report.rejected = True
            report.rejected_reason = (f"{report.invalid} invalid row(s) and the upload was asked to reject the "
                                      f"whole file on any invalid row; nothing was written")
            return report
        if report.blocked and not queue_while_blocked:
            report.rejected = True
            report.rejected_reason = "the contract would refuse these credentials now (" + "; ".join(
                p["message"] for p in report.problems) + "); nothing was written"
            return report
        documents.store_for(settings).remove_stale(settings.stalled_upload_seconds)
        if not rows.empty:
            report.batch_ids = _write(report, rows, settings=settings, engine=engine, created_by=created_by,
                                      progress=progress, deadline=deadline)
    finally:
        rows.close()
    report.batch_id = report.batch_ids[0] if report.batch_ids else None
    try:
        for batch_id in report.batch_ids:
            report.queued += enqueue_batch(batch_id, settings=settings, engine=engine, publish=publish,
                                           progress=progress, already=report.queued, total=report.written)
        for batch_id in report.waiting_batches:  # asked for explicitly: no need to wait for the threshold
            report.requeued += republish_stalled(settings=settings, engine=engine, publish=publish,
                                                 older_than_seconds=0, batch_id=batch_id)
    except BaseException:
        report.warnings.append(
            "Stopped while queueing: every job is written but not all are queued; run "
            + " and ".join(f"`blockproof requeue {b}`" for b in report.batch_ids + report.waiting_batches)
            + " to queue the rest.")
        raise
    return report


_JOB_COLUMNS = ("batch_id", "kind", "idempotency_key", "line", "state", "institution", "student_id", "student_name",
                "student_wallet", "degree", "major", "graduation_date", "expires_at", "fingerprint", "document",
                "metadata_suffix", "revocation_reason", "error_code", "error_message", "retryable", "retries",
                "created_at", "updated_at")


def _insert_sql(postgres: bool) -> str:
    """The jobs INSERT as driver SQL: the driver's executemany, without per-row work in SQLAlchemy."""
    mark = "%s" if postgres else "?"
    return (f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({', '.join([mark] * len(_JOB_COLUMNS))}) "
            f"ON CONFLICT (kind, idempotency_key) DO NOTHING")


def _job_values(rows: pd.DataFrame, batch_id: int, postgres: bool, settings: Settings) -> list[tuple]:
    now = utcnow()
    stamp = now if postgres else now.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite DATETIME text form
    validated = JobState.VALIDATED.value
    return [
        (batch_id, "issue", fp, line, validated, inst, sid, name, wallet, degree, major, gdate, exp, fp, doc,
         settings.metadata_suffix(line, fp), "", "", "", False, 0, stamp, stamp)
        for line, inst, sid, name, wallet, degree, major, gdate, exp, fp, doc in zip(
            rows["line"].tolist(), rows["institution"], rows["student_id"], rows["student_name"],
            rows["student_wallet"], rows["degree"], rows["major"], rows["graduation_date"],
            rows["expires_at"].tolist(), rows["fingerprint"], rows["document"])
    ]


def _write(report: UploadReport, rows: StagedRows, *, settings: Settings, engine, created_by: str,
           deadline: datetime | None = None,
           progress: Progress | None) -> list[int]:
    """One transaction: a batch per institution, its jobs, its documents. All or nothing."""
    store = documents.store_for(settings)
    batches: dict[str, int] = {}
    try:
        with session_scope(engine) as s:
            connection = s.connection()
            postgres = connection.dialect.name == "postgresql"
            statement = _insert_sql(postgres)
            done = 0
            for chunk in rows.chunks():
                for institution, part in chunk.groupby("institution", sort=False):
                    if institution not in batches:
                        batches[institution] = _new_batch(s, report, institution, settings, created_by, deadline)
                        store.begin(batches[institution])
                    batch_id = batches[institution]
                    values = _job_values(part, batch_id, postgres, settings)
                    for start in range(0, len(values), INSERT_CHUNK):
                        # a concurrent upload of the same rows loses the race quietly: one job per fingerprint
                        connection.exec_driver_sql(statement, values[start : start + INSERT_CHUNK])
                    store.write(batch_id, part)
                    done += len(part)
                    if progress:
                        progress("written", done, rows.count)
                for batch_id in batches.values():  # a batch with no rows in this chunk is alive all the same
                    store.touch(batch_id)
            counts = dict(s.execute(select(Job.batch_id, func.count()).where(Job.batch_id.in_(batches.values()))
                                    .group_by(Job.batch_id)).all())
            for batch_id in batches.values():
                s.get(Batch, batch_id).row_count = counts.get(batch_id, 0)
                store.publish(batch_id)
            report.written = sum(counts.values())
    except BaseException:
        for batch_id in batches.values():
            try:
                store.discard(batch_id)
            except Exception as exc:  # the store itself failed (a bucket unreachable): keep the first error
                log.warning("batch %s: could not remove its documents from %s (%s); the next upload removes them "
                            "once they are %s s old", batch_id, store.describe(), exc.__class__.__name__,
                            f"{settings.stalled_upload_seconds:.0f}")
        raise
    return list(batches.values())


def _new_batch(s, report: UploadReport, institution: str, settings: Settings, created_by: str,
               deadline: datetime | None = None) -> int:
    first = not s.info.get("has_batch")
    s.info["has_batch"] = True
    batch = Batch(filename=report.filename[:255], institution=institution, created_by=created_by, deadline=deadline,
                  invalid_count=report.invalid if first else 0,
                  duplicate_count=report.duplicate + report.already_issued if first else 0)
    s.add(batch)
    s.flush()
    batch.base_uri = settings.metadata_base_uri(batch.id)
    return batch.id


def enqueue_batch(batch_id: int, *, settings: Settings, engine, publish=None, include_queued: bool = False,
                  progress: Progress | None = None, already: int = 0, total: int = 0) -> int:
    """Publish every not-yet-queued job of a batch (and, after a broker outage, the queued ones), marking
    each published slice queued. Safe to run again: the signer ignores a job it has taken already."""
    if publish is None:
        from blockproof.publishing import publish
    with session_scope(engine) as s:
        states = [JobState.VALIDATED.value] + ([JobState.QUEUED.value] if include_queued else [])
        ids = list(s.execute(select(Job.id).where(Job.batch_id == batch_id, Job.state.in_(states))
                             .order_by(Job.id)).scalars())
    for start in range(0, len(ids), PUBLISH_SLICE):
        part = ids[start : start + PUBLISH_SLICE]
        publish(part, queue_name=settings.queue_name)
        with session_scope(engine) as s:
            transition_where(s, and_(Job.batch_id == batch_id, Job.id.between(part[0], part[-1])), JobState.QUEUED,
                             "published to RabbitMQ", only_from=[JobState.VALIDATED])
        if progress:
            progress("queued", already + start + len(part), total or len(ids))
    return len(ids)
