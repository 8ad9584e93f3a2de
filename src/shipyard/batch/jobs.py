"""A batch job's request and its state in Redis: one hash per job, written by the service (submit) and by
the worker that runs it (attempts, progress, outcome), read by ``GET /batch/jobs/{id}``.

States: ``queued`` (waiting for a worker, or for its next attempt after a failure), ``running``,
``finished``; ``failed`` (an error no retry can mend: a missing input, rows that do not fit the model,
an unknown model; not retried) and ``dead`` (every attempt failed, or workers kept dying under it).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from redis import Redis
from redis.typing import EncodableT, FieldT

Status = Literal["queued", "running", "finished", "failed", "dead"]
STATUSES = ("queued", "running", "finished", "failed", "dead")
TERMINAL: frozenset[str] = frozenset({"finished", "failed", "dead"})
OnError = Literal["fail", "skip"]


def now() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="milliseconds")


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class JobSpec:
    """What to score: resolved paths (checked against the batch root) and the scoring options."""

    model: str
    ref: str | None
    input: str
    output: str
    keep: tuple[str, ...] = ()
    on_error: OnError = "fail"
    chunk_rows: int = 100_000
    overwrite: bool = False


@dataclass
class JobState:
    """A job as stored: its spec, where it stands, and one entry per attempt."""

    job_id: str
    spec: JobSpec
    status: Status
    attempts: int
    max_attempts: int
    submitted_at: str
    submitted_by: str
    updated_at: str
    started_at: str | None = None
    finished_at: str | None = None
    rows_done: int = 0
    rows_total: int | None = None
    error: str | None = None
    worker: str | None = None
    committing: bool = False
    staging: str | None = None
    summary: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """The public view of the job (``GET /batch/jobs/{id}``)."""
        summary = self.summary or {}
        total = self.rows_total
        return {
            "job_id": self.job_id,
            "status": self.status,
            "model": self.spec.model,
            "ref": self.spec.ref,
            "version": summary.get("version"),
            "input": self.spec.input,
            "output": self.spec.output,
            "keep": list(self.spec.keep),
            "on_error": self.spec.on_error,
            "progress": {
                "rows_done": self.rows_done,
                "rows_total": total,
                "fraction": round(self.rows_done / total, 4) if total else None,
            },
            "rows_in": summary.get("rows_in"),
            "rows_out": summary.get("rows_out"),
            "rows_rejected": summary.get("rows_rejected"),
            "rejects": summary.get("rejects"),
            "seconds": summary.get("seconds"),
            "rows_per_second": summary.get("rows_per_second"),
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "error": self.error,
            "worker": self.worker,
            "submitted_by": self.submitted_by,
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "updated_at": self.updated_at,
            "history": self.history,
        }


class JobStore:
    """Job hashes under ``shipyard:batch:job:<id>`` (fields are strings; lists and dicts as JSON)."""

    PREFIX = "shipyard:batch:job:"

    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self._guarded = redis.register_script(_GUARDED_UPDATE)

    def key(self, job_id: str) -> str:
        return f"{self.PREFIX}{job_id}"

    def create(self, job_id: str, spec: JobSpec, max_attempts: int, submitted_by: str) -> None:
        stamp = now()
        self.redis.hset(
            self.key(job_id),
            mapping={
                "status": "queued",
                "model": spec.model,
                "ref": json.dumps(spec.ref),
                "input": spec.input,
                "output": spec.output,
                "keep": json.dumps(list(spec.keep)),
                "on_error": spec.on_error,
                "chunk_rows": spec.chunk_rows,
                "overwrite": int(spec.overwrite),
                "attempts": 0,
                "max_attempts": max_attempts,
                "submitted_at": stamp,
                "submitted_by": submitted_by,
                "updated_at": stamp,
                "rows_done": 0,
            },
        )

    def delete(self, job_id: str) -> None:
        self.redis.delete(self.key(job_id))

    def get(self, job_id: str) -> JobState | None:
        raw: dict[bytes, bytes] = self.redis.hgetall(self.key(job_id))  # type: ignore[assignment]
        if not raw:
            return None
        data = {k.decode(): v.decode() for k, v in raw.items()}
        spec = JobSpec(
            model=data["model"],
            ref=json.loads(data["ref"]),
            input=data["input"],
            output=data["output"],
            keep=tuple(json.loads(data["keep"])),
            on_error="skip" if data["on_error"] == "skip" else "fail",
            chunk_rows=int(data["chunk_rows"]),
            overwrite=data["overwrite"] == "1",
        )
        history = sorted(
            (json.loads(v) for k, v in data.items() if k.startswith("attempt:")), key=lambda a: a["attempt"]
        )
        status = data["status"]
        if status not in STATUSES:
            raise ValueError(f"job {job_id} has an unknown status {status!r}")
        return JobState(
            job_id=job_id,
            spec=spec,
            status=cast(Status, status),
            attempts=int(data["attempts"]),
            max_attempts=int(data["max_attempts"]),
            submitted_at=data["submitted_at"],
            submitted_by=data["submitted_by"],
            updated_at=data["updated_at"],
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            rows_done=int(data.get("rows_done", 0)),
            rows_total=int(data["rows_total"]) if data.get("rows_total") else None,
            error=data.get("error") or None,
            worker=data.get("worker"),
            committing=data.get("committing") == "1",
            staging=data.get("staging"),
            summary=json.loads(data["summary"]) if data.get("summary") else None,
            history=history,
        )

    def _update(
        self,
        job_id: str,
        fields: dict[FieldT, EncodableT],
        *,
        attempt: int | None = None,
        delete: tuple[str, ...] = (),
        expire: bool = False,
    ) -> bool:
        """Write ``fields`` atomically, only while the job has not ended and (with ``attempt``) no later
        attempt has started: a stale attempt can never overwrite a newer one or reopen an ended job."""
        args: list[EncodableT] = ["" if attempt is None else attempt, " ".join(delete)]
        args.append(self.ttl_seconds if expire else "")
        for name, value in fields.items():
            args.extend((name, value))
        return bool(self._guarded(keys=[self.key(job_id)], args=args))

    def mark_lost(self, job_id: str, attempt: int) -> None:
        """Record that ``attempt`` never ended (its worker died), if nothing else was recorded."""
        raw = self.redis.hget(self.key(job_id), f"attempt:{attempt}")
        if raw is None:
            return
        entry = json.loads(raw)
        if entry.get("outcome") == "running":
            entry.update(outcome="lost", error="the worker stopped during the attempt")
            self._update(job_id, {f"attempt:{attempt}": json.dumps(entry)})

    def start_attempt(self, job_id: str, worker: str) -> int:
        """Count a new attempt and mark the job running; an earlier attempt that never ended (its worker
        died) is recorded as lost. Returns the attempt's number (1-based); later writes of earlier
        attempts are refused from here on."""
        key = self.key(job_id)
        attempt = int(self.redis.hincrby(key, "attempts", 1))
        if attempt > 1:
            self.mark_lost(job_id, attempt - 1)
        stamp = now()
        self.redis.hsetnx(key, "started_at", stamp)
        self._update(
            job_id,
            {
                "status": "running",
                "worker": worker,
                "updated_at": stamp,
                "rows_done": 0,
                f"attempt:{attempt}": json.dumps(
                    {"attempt": attempt, "worker": worker, "started_at": stamp, "outcome": "running"}
                ),
            },
            attempt=attempt,
            delete=("rows_total",),
        )
        return attempt

    def progress(self, job_id: str, attempt: int, rows_done: int, rows_total: int | None) -> bool:
        """Rows done so far; False when this attempt no longer owns the job."""
        fields: dict[FieldT, EncodableT] = {"rows_done": rows_done, "updated_at": now()}
        if rows_total is not None:
            fields["rows_total"] = rows_total
        return self._update(job_id, fields, attempt=attempt)

    def committing(self, job_id: str, attempt: int, summary: dict[str, Any], staging: Path) -> bool:
        """Scoring is done and the output is about to be moved into place: a later attempt that finds this
        mark finishes the move instead of scoring again. False (nothing written) when a later attempt
        has started or the job has ended: then this attempt must not touch the output."""
        fields: dict[FieldT, EncodableT] = {
            "committing": 1,
            "staging": str(staging),
            "summary": json.dumps(summary),
            "updated_at": now(),
        }
        return self._update(job_id, fields, attempt=attempt)

    def _attempt_entry(self, job_id: str, attempt: int, outcome: str, error: str | None) -> str:
        raw = self.redis.hget(self.key(job_id), f"attempt:{attempt}")
        entry: dict[str, Any] = json.loads(raw) if raw else {"attempt": attempt}
        entry.update(outcome=outcome, ended_at=now())
        if error:
            entry["error"] = error
        return json.dumps(entry)

    def retrying(self, job_id: str, attempt: int, error: str) -> bool:
        """The attempt failed and another one is scheduled (after a backoff)."""
        fields: dict[FieldT, EncodableT] = {
            "status": "queued",
            "error": error,
            "updated_at": now(),
            f"attempt:{attempt}": self._attempt_entry(job_id, attempt, "retrying", error),
        }
        return self._update(job_id, fields, attempt=attempt)

    def stopped(self, job_id: str, attempt: int, reason: str) -> None:
        """The attempt gave up the job to another one (its history entry only; the status is theirs)."""
        self._update(job_id, {f"attempt:{attempt}": self._attempt_entry(job_id, attempt, "stopped", reason)})

    def end(
        self,
        job_id: str,
        status: Literal["finished", "failed", "dead"],
        attempt: int | None,
        *,
        error: str | None = None,
        summary: dict[str, Any] | None = None,
    ) -> bool:
        """The job's final state, once (False if it had ended or a later attempt owns it); the record is
        then kept for ``ttl_seconds``."""
        stamp = now()
        fields: dict[FieldT, EncodableT] = {"status": status, "finished_at": stamp, "updated_at": stamp}
        if error is not None:
            fields["error"] = error
        elif status == "finished":
            fields["error"] = ""
        if summary is not None:
            fields["summary"] = json.dumps(summary)
            fields["rows_done"] = int(summary.get("rows_in", 0))
        if attempt is not None:
            fields[f"attempt:{attempt}"] = self._attempt_entry(job_id, attempt, status, error)
        return self._update(job_id, fields, attempt=attempt, delete=("committing", "staging"), expire=True)


# KEYS[1]: the job; ARGV: expected attempts ('' for any), fields to delete (space-separated), seconds to
# keep the record ('' to leave it), then field, value pairs. Applies only to a job that has not ended.
_GUARDED_UPDATE = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'finished' or status == 'failed' or status == 'dead' then return 0 end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[1] then return 0 end
for name in string.gmatch(ARGV[2], '%S+') do redis.call('HDEL', KEYS[1], name) end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[3] ~= '' then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3])) end
return 1
"""
