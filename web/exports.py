"""A batch's results, downloaded: the mail-merge CSV and the ZIP of credential documents (streamed; viewer login)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from producers.export import iter_documents_zip, iter_results_csv
from web import audit
from web.api import Viewer

router = APIRouter()


def _download(request: Request, batch_id: int, user, make, media_type: str, filename: str) -> StreamingResponse:
    state = request.app.state
    extra = {"store": state.document_store} if make is iter_documents_zip else {}
    chunks = make(batch_id, settings=state.settings, engine=state.engine, **extra)  # NotFound (404) before sending
    audit.record(state.engine, user.name, "batch.export", f"batch {batch_id}", file=filename)
    return StreamingResponse(chunks, media_type=media_type,
                             headers={"content-disposition": f'attachment; filename="{filename}"',
                                      "cache-control": "no-store"})


@router.get("/api/batches/{batch_id}/results.csv", tags=["batches"],
            summary="The batch's results for mail merge: line, student id, name, wallet, credential id, fingerprint, "
                    "transaction, block, state, verification link (spreadsheet-safe CSV, streamed)")
def results_csv(request: Request, batch_id: int, user: Viewer):
    return _download(request, batch_id, user, iter_results_csv, "text/csv; charset=utf-8",
                     f"batch-{batch_id}-results.csv")


@router.get("/api/batches/{batch_id}/documents.zip", tags=["batches"],
            summary="A ZIP with the credential document of every issued credential of the batch, named by student id "
                    "(streamed)")
def documents_zip(request: Request, batch_id: int, user: Viewer):
    return _download(request, batch_id, user, iter_documents_zip, "application/zip",
                     f"batch-{batch_id}-documents.zip")
