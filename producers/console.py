"""How the upload and revoke commands talk to a person: progress on a TTY, messages on stderr,
exit codes that scripts can branch on (clig.dev)."""
from __future__ import annotations

import sys
import time

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INVALID, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
SHOWN_ERRORS = 50


def err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class ProgressLine:
    """One self-overwriting status line on a TTY (at most 10 redraws a second); silent otherwise."""

    LABELS = {"checked": "validated and checked", "written": "written", "queued": "queued"}

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._last = 0.0
        self._shown = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.1 and done != total):
            return
        self._last = now
        of = f" of {total:,}" if total else ""
        self.stream.write(f"\r\x1b[K{done:,}{of} rows {self.LABELS.get(stage, stage)}…")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def print_row_errors(errors, total: int) -> None:
    for error in errors[:SHOWN_ERRORS]:
        err(error.message)
    if total > SHOWN_ERRORS:
        err(f"… and {total - SHOWN_ERRORS} more (use --errors-out FILE for all of them)")


def print_upload_summary(report) -> None:
    print_row_errors(report.errors, report.error_count or len(report.errors))
    for problem in report.problems:
        err(f"error: pre-flight ({problem['code']}): {problem['message']}")
    for warning in report.warnings:
        err(f"warning: {warning}")
    waiting = getattr(report, "waiting", 0)
    if waiting:
        err(f"{waiting} earlier row(s) of this file were written by an upload that stopped before queueing them; "
            + ("the commit queues them." if report.dry_run else
               "nothing was queued (rejected)." if report.rejected else f"{report.requeued} queued now."))
    if report.dry_run:
        outcome = "dry run, nothing written"
    elif report.rejected:
        outcome = f"rejected: {report.rejected_reason}"
    elif report.batch_ids:
        batches = ", ".join(str(b) for b in report.batch_ids)
        outcome = f"batch {batches}: {report.written} written, {report.queued} queued"
    else:
        outcome = "nothing new to queue"
    if waiting and not report.dry_run and not report.rejected:
        outcome += f"; {report.requeued} earlier row(s) queued again"
    err(f"{report.total_rows} rows: {report.new} new, {report.duplicate} uploaded before, "
        f"{report.already_issued} already on chain, {report.invalid} invalid ({outcome})")


def upload_exit_code(report) -> int:
    """0 all good; 1 the contract would refuse (nothing written); 3 rows invalid and nothing written
    (dry run or --reject-on-invalid); 4 valid rows queued, invalid ones reported."""
    if report.blocked and (report.dry_run or report.rejected):
        return EXIT_ERROR
    if report.rejected or (report.invalid and report.dry_run):
        return EXIT_INVALID
    return EXIT_PARTIAL if report.invalid else EXIT_OK


def revoke_exit_code(report) -> int:
    if report.errors and (report.dry_run or report.rejected or not report.created):
        return EXIT_INVALID
    return EXIT_PARTIAL if report.errors else EXIT_OK
