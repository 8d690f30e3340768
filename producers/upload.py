"""From a validated file to a batch of jobs on the queue: dry run, then commit.

One code path for the CLI and the web upload. Nothing is written or queued in a dry run; on
commit the batch and its jobs are written in bulk, then published with publisher confirms.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd
from eth_abi import encode
from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from blockproof.errors import RpcError, RpcUnavailable
from blockproof.rpc import Rpc
from blockproof.settings import Settings
from blockproof.vault import selector
from models.db import session_scope
from models.states import JobState
from models.tables import Batch, Job
from models.transitions import transition_many
from producers.documents import suffix_for, write_documents
from producers.records import RowError
from producers.validation import iter_validated_chunks

FINGERPRINT_USED = "fingerprintUsed(bytes32)"


@dataclass
class UploadReport:
    filename: str
    total_rows: int = 0
    new: int = 0
    duplicate: int = 0  # uploaded before (in this database)
    already_issued: int = 0  # fingerprint already used on chain
    invalid: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = True
    rejected: bool = False
    batch_id: int | None = None
    queued: int = 0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["errors"] = [asdict(e) | {"message": e.message} for e in self.errors]
        return out


def _known_fingerprints(session, fingerprints: list[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(fingerprints), 900):
        known.update(session.execute(select(Job.fingerprint).where(
            Job.kind == "issue", Job.fingerprint.in_(fingerprints[start : start + 900]))).scalars())
    return known


def _used_on_chain(rpc: Rpc, vault: str, fingerprints: list[str]) -> set[str]:
    used: set[str] = set()
    sel = selector(FINGERPRINT_USED).hex()
    for start in range(0, len(fingerprints), 1000):
        part = fingerprints[start : start + 1000]
        calls = [("eth_call", [{"to": vault, "data": "0x" + sel + fp[2:]}, "latest"]) for fp in part]
        for fp, reply in zip(part, rpc.batch(calls)):
            if isinstance(reply, str) and int(reply, 16) == 1:
                used.add(fp)
    return used


def plan(source, *, filename: str, institution: str | None, settings: Settings, engine,
         check_chain: bool = True) -> tuple[UploadReport, pd.DataFrame]:
    """Validate and classify every row; write nothing. Returns the report and the new rows."""
    report = UploadReport(filename=filename)
    rpc = Rpc(settings.rpc_url, settings.rpc_timeout_seconds) if check_chain and settings.vault_address else None
    new_parts = []
    with session_scope(engine) as s:
        for chunk in iter_validated_chunks(source, institution=institution):
            report.total_rows += chunk.data_rows
            report.errors.extend(chunk.errors)
            rows = chunk.rows
            if rows.empty:
                continue
            known = _known_fingerprints(s, rows["fingerprint"].tolist())
            is_dup = rows["fingerprint"].isin(known)
            report.duplicate += int(is_dup.sum())
            rows = rows[~is_dup]
            if rpc is not None and not rows.empty:
                try:
                    used = _used_on_chain(rpc, settings.vault_address, rows["fingerprint"].tolist())
                except (RpcError, RpcUnavailable) as exc:
                    report.warnings.append(f"Could not check the chain for already issued credentials: {exc}")
                    rpc, used = None, set()
                on_chain = rows["fingerprint"].isin(used)
                report.already_issued += int(on_chain.sum())
                rows = rows[~on_chain]
            new_parts.append(rows)
    report.invalid = len({e.line for e in report.errors})
    new_rows = pd.concat(new_parts, ignore_index=True) if new_parts else pd.DataFrame()
    report.new = len(new_rows)
    return report, new_rows


def commit(report: UploadReport, rows: pd.DataFrame, *, settings: Settings, engine, reject_on_invalid: bool = False,
           created_by: str = "cli", publish=None) -> UploadReport:
    """Write the batch and its jobs, then queue them. With reject_on_invalid, any invalid row stops everything."""
    report.dry_run = False
    if reject_on_invalid and report.errors:
        report.rejected = True
        return report
    if rows.empty:
        return report
    with session_scope(engine) as s:
        batch = Batch(filename=report.filename[:255], institution=rows["institution"].iloc[0], row_count=report.total_rows,
                      invalid_count=report.invalid, duplicate_count=report.duplicate + report.already_issued,
                      created_by=created_by)
        s.add(batch)
        s.flush()
        batch.base_uri = settings.resolved_document_base_uri() + f"{batch.id}/"
        write_documents(settings.document_dir, batch.id, rows)
        values = [
            {"batch_id": batch.id, "kind": "issue", "idempotency_key": fp, "line": int(line), "state": JobState.VALIDATED.value,
             "institution": inst, "student_id": sid, "student_name": name, "student_wallet": wallet, "degree": degree,
             "major": major, "graduation_date": gdate, "expires_at": int(exp), "fingerprint": fp, "document": doc,
             "metadata_suffix": suffix_for(int(line)), "error_message": "", "retryable": False, "retries": 0}
            for line, inst, sid, name, wallet, degree, major, gdate, exp, fp, doc in zip(
                rows["line"], rows["institution"], rows["student_id"], rows["student_name"], rows["student_wallet"],
                rows["degree"], rows["major"], rows["graduation_date"], rows["expires_at"], rows["fingerprint"],
                rows["document"])
        ]
        dialect_insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        for start in range(0, len(values), 5000):
            # a concurrent upload of the same rows loses the race quietly: one job per fingerprint
            s.execute(dialect_insert(Job).on_conflict_do_nothing(index_elements=["kind", "idempotency_key"]),
                      values[start : start + 5000])
        report.batch_id = batch.id
    report.queued = enqueue_batch(report.batch_id, settings=settings, engine=engine, publish=publish)
    return report


def enqueue_batch(batch_id: int, *, settings: Settings, engine, publish=None, include_queued: bool = False) -> int:
    """Publish every not-yet-queued job of a batch (and, after a broker outage, the queued ones), then mark it
    queued. Safe to run again: the signer ignores a job it has taken already."""
    if publish is None:
        from workers.actors import publish_jobs as publish
    with session_scope(engine) as s:
        states = [JobState.VALIDATED.value] + ([JobState.QUEUED.value] if include_queued else [])
        ids = list(s.execute(select(Job.id).where(Job.batch_id == batch_id, Job.state.in_(states))
                             .order_by(Job.id)).scalars())
    if not ids:
        return 0
    publish(ids, queue_name=settings.queue_name)
    with session_scope(engine) as s:
        transition_many(s, ids, JobState.QUEUED, "published to RabbitMQ", only_from=[JobState.VALIDATED])
    return len(ids)
