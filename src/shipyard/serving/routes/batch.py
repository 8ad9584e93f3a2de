"""Batch scoring jobs: ``POST /batch/jobs`` queues one, ``GET /batch/jobs/{id}`` follows it.

The service only checks and queues; ``shipyard batch worker`` processes score (``shipyard.batch.queue``).
Both routes need a token with the ``batch`` scope (``admin`` implies it), checked before the body is
read: the body is parsed and validated by the route itself (``parsing.parse_model``), after the token.
Paths are confined to ``SHIPYARD_BATCH_ROOT``: a path outside it is refused (403) before anything is read.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from starlette.concurrency import run_in_threadpool

from shipyard.batch.jobs import JobSpec
from shipyard.batch.paths import BatchPathError, check_paths
from shipyard.batch.queue import BatchQueue, QueueUnavailableError
from shipyard.errors import ConflictError, ForbiddenError, InvalidRequestError
from shipyard.serving.auth import Principal
from shipyard.serving.deps import require, services
from shipyard.serving.parsing import parse_model
from shipyard.serving.responses import FastJSONResponse
from shipyard.serving.schemas import BatchJob, BatchJobAccepted, BatchJobRequest, ok, problems, request_body

log = logging.getLogger(__name__)
router = APIRouter(prefix="/batch", tags=["batch"])

BatchScope = Annotated[Principal, Depends(require("batch"))]  # a `batch` or an `admin` token
JOB_ID = r"^[0-9a-f]{32}$"
_queue_lock = threading.Lock()
_QUEUE_DOWN = "the queue (Redis) is unreachable"


async def get_batch_queue(request: Request) -> BatchQueue:
    """The app's queue client, made on first use (making it connects to nothing)."""
    queue: BatchQueue | None = getattr(request.app.state, "batch_queue", None)
    if queue is None:
        with _queue_lock:
            queue = getattr(request.app.state, "batch_queue", None)
            if queue is None:
                queue = request.app.state.batch_queue = BatchQueue(services(request).settings)
    return queue


QueueDep = Annotated[BatchQueue, Depends(get_batch_queue)]


def _path_error(exc: BatchPathError) -> Exception:
    if exc.kind == "outside":
        return ForbiddenError(str(exc))
    if exc.kind == "exists":
        return ConflictError(str(exc))
    return InvalidRequestError(
        "invalid batch job", [{"loc": ["body", exc.field], "msg": exc.reason, "type": "value_error"}]
    )


def _unavailable(exc: QueueUnavailableError) -> HTTPException:
    """Details (where Redis is, why it failed) go to the log, not to the client."""
    log.error("%s", exc)
    return HTTPException(
        503,
        "the batch queue is unavailable (its Redis cannot be reached); try again later",
        headers={"Retry-After": "5"},
    )


@router.post(
    "/jobs",
    status_code=202,
    summary="Queue a batch scoring job (scope: batch)",
    response_model=BatchJobAccepted,  # documents the answer: a returned response is never re-validated
    responses=problems(400, 401, 403, 409, 413, 415, 422, 503, said={503: _QUEUE_DOWN}),
    openapi_extra=request_body(BatchJobRequest),
)
async def submit_job(request: Request, principal: BatchScope, queue: QueueDep) -> FastJSONResponse:
    # the token dependency has run: only now is the body read and validated
    body = parse_model(BatchJobRequest, await request.body(), request.headers.get("content-type", ""))
    settings = queue.settings
    try:
        paths = await run_in_threadpool(
            check_paths, settings, body.input, body.output, overwrite=body.overwrite
        )
    except BatchPathError as exc:
        raise _path_error(exc) from None
    spec = JobSpec(
        model=body.model,
        ref=body.ref,
        input=str(paths.input),
        output=str(paths.output),
        keep=tuple(body.keep),
        on_error=body.on_error,
        chunk_rows=body.chunk_rows or settings.batch_chunk_rows,
        overwrite=body.overwrite,
    )
    try:
        job_id = await run_in_threadpool(queue.submit, spec, principal.subject)
    except QueueUnavailableError as exc:
        raise _unavailable(exc) from None
    status_url = f"{request.scope.get('root_path', '')}/batch/jobs/{job_id}"
    accepted = BatchJobAccepted(job_id=job_id, status="queued", status_url=status_url)
    return FastJSONResponse(accepted.model_dump(), status_code=202, headers={"Location": status_url})


@router.get(
    "/jobs/{job_id}",
    summary="A batch job: status, progress, rows, output, error, attempts (scope: batch)",
    response_model=None,
    responses={**ok(BatchJob), **problems(401, 403, 404, 422, 503, said={503: _QUEUE_DOWN})},
)
async def job_status(
    job_id: Annotated[str, Path(pattern=JOB_ID, description="The id POST /batch/jobs answered.")],
    _: BatchScope,
    queue: QueueDep,
) -> dict[str, Any]:
    try:
        state = await run_in_threadpool(queue.get, job_id)
    except QueueUnavailableError as exc:
        raise _unavailable(exc) from None
    if state is None:
        days = queue.settings.batch_job_ttl_seconds / 86400
        raise HTTPException(404, f"no batch job '{job_id}' (unknown, or ended more than {days:g} days ago)")
    return state.describe()
