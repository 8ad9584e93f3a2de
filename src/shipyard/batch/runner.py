"""One attempt at a batch job, made so that however many times a job is delivered, it is done once.

- A **lease** (a Redis lock with a short expiry, renewed by a thread while the attempt runs) keeps two
  workers from running the same job at once; a worker that dies stops renewing it and the lease lapses
  before the queue hands the job to another worker (the lease lasts half the worker timeout).
- Each attempt has a number, counted in the job's state, and every write an attempt makes is refused
  once a later attempt has started or the job has ended (an atomic check in Redis): a worker that was
  only thought dead can never overwrite its successor's state or output.
- The scorer writes into a **staging folder** beside the output (``.<name>.<job>.<attempt>.staging/``),
  itself under a temporary name until its last chunk; a killed attempt leaves only that folder, which
  the next attempt removes. The output is then **moved into place** (a rename on the same file system)
  after a ``committing`` mark is stored with the summary: a worker killed between the mark and the end
  finishes the move on the next delivery instead of scoring again.
- A job that has **ended** (finished, failed, dead) is acknowledged without work when delivered again.
- **Attempts are counted here**, not by the queue library: an attempt that died with its worker counts
  too, so a job that kills every worker (out of memory, say) ends ``dead`` instead of looping.

Errors that no retry can mend (a missing or unreadable input, rows that do not fit the model, an unknown
model) end the job ``failed`` at once; any other error is retried with backoff until the attempts run out
(``dead``).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NoReturn

from dramatiq.middleware import TimeLimitExceeded
from redis import Redis
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from shipyard.batch import scoring
from shipyard.batch.jobs import TERMINAL, JobState, JobStore
from shipyard.batch.parallel import ScoringWorkerError
from shipyard.batch.paths import BatchPathError, batch_root, resolve_inside
from shipyard.config.settings import Settings
from shipyard.errors import ModelNotFoundError, RegistryError, ShipyardError

log = logging.getLogger(__name__)

Events = Callable[[str, str], None]  # (job id, what happened) for the worker's console


class RetryAttempt(Exception):  # noqa: N818 — an instruction to the queue, not a failure
    """Deliver the job again after the queue's backoff."""


class JobEnded(Exception):  # noqa: N818
    """The job ended failed or dead: the queue keeps the message in its dead-letter set, no retry."""


class LeaseLostError(Exception):
    """Another worker may have taken the job over: stop without touching the output."""


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying cannot help: our own errors about the request, data or model (a registry that
    cannot be reached is worth another try; a model that does not exist is not)."""
    if isinstance(exc, RegistryError):
        return isinstance(exc, ModelNotFoundError)
    if isinstance(exc, ScoringWorkerError):  # a scoring process died (out of memory, say): try again
        return False
    return isinstance(exc, ShipyardError)


def one_line(exc: BaseException) -> str:
    """The error's first line, with its type unless it is one of ours (whose messages stand alone)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, ShipyardError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Lease:
    """The job's lease, renewed every quarter of its life by a daemon thread while the attempt runs."""

    def __init__(self, redis: Redis, job_id: str, seconds: float) -> None:
        self.lock = Lock(
            redis, f"{JobStore.PREFIX}{job_id}:lease", timeout=seconds, blocking=False, thread_local=False
        )
        self.seconds = seconds
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        if not self.lock.acquire(blocking=False):
            return False
        self._thread = threading.Thread(target=self._renew, name="batch-lease", daemon=True)
        self._thread.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 4):
            try:
                self.lock.reacquire()
            except LockError:
                # lapsed (this process was starved of CPU for a while): take it back unless another
                # worker has taken it, in which case this attempt must stop
                token = self.lock.local.token
                try:
                    if token is None or not self.lock.acquire(blocking=False, token=token):
                        self.lost.set()
                        return
                except RedisError as exc:
                    log.warning("could not renew the lease on %s: %s", self.lock.name, exc)
            except RedisError as exc:  # a blip: try again
                log.warning("could not renew the lease on %s: %s", self.lock.name, exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(LockError, RedisError):
            self.lock.release()


def staging_folder(destination: Path, job_id: str, attempt: int) -> Path:
    """A hidden folder beside the output, one per attempt, on the same file system (renames are atomic)."""
    return destination.parent / f".{destination.name}.{job_id}.{attempt}.staging"


def rejects_name(destination: Path) -> Path:
    """Where the scorer puts rejected rows for ``destination`` (``<output>.rejects.csv``)."""
    return destination.with_name(destination.name + ".rejects.csv")


class JobRunner:
    """Runs deliveries of jobs for one worker process (``worker`` names it in the job's history)."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        store: JobStore,
        worker: str,
        on_event: Events | None = None,
        progress_every_seconds: float = 0.25,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.store = store
        self.worker = worker
        self.on_event = on_event
        self.lease_seconds = settings.batch_worker_timeout_seconds / 2
        self.progress_every = progress_every_seconds

    def _event(self, job_id: str, text: str) -> None:
        if self.on_event is not None:
            self.on_event(job_id, text)
        else:
            log.info("job %s: %s", job_id, text)

    def run(self, job_id: str) -> None:
        """One delivery of ``job_id``: returns when it is done (or was already), raises RetryAttempt for
        another delivery later, JobEnded when it failed for good.

        A delivery is acknowledged without a successor only once the job has ended: while another
        attempt may still need the queue's message, RetryAttempt leaves a fresh copy behind."""
        state = self.store.get(job_id)
        if state is None:
            self._event(job_id, "unknown (expired or deleted): skipped")
            return
        if state.status in TERMINAL:
            self._event(job_id, f"already {state.status}: nothing to do")
            return
        lease = _Lease(self.redis, job_id, self.lease_seconds)
        if not lease.acquire():
            raise RetryAttempt("another worker is running this job; checking again later")
        try:
            state = self.store.get(job_id)  # fresh, now that the job is ours
            if state is None or state.status in TERMINAL:
                return
            self._attempt(state, lease)
        finally:
            lease.release()

    def _attempt(self, state: JobState, lease: _Lease) -> None:
        job_id, spec = state.job_id, state.spec
        if state.attempts >= state.max_attempts:
            error = (
                f"gave up after {state.attempts} attempt(s): the worker stopped during the last one "
                f"({state.error or 'no error was recorded'})"
            )
            self.store.mark_lost(job_id, state.attempts)
            if not self.store.end(job_id, "dead", None, error=error):
                raise RetryAttempt("the job changed meanwhile")
            self._event(job_id, f"dead: {error}")
            raise JobEnded(error)
        attempt = self.store.start_attempt(job_id, self.worker)
        self._event(
            job_id,
            f"attempt {attempt}/{state.max_attempts}: {spec.model}@{spec.ref or 'champion'} "
            f"{spec.input} -> {spec.output}",
        )
        try:
            root = batch_root(self.settings)
            source = resolve_inside("input", spec.input, root)
            destination = resolve_inside("output", spec.output, root)
        except BatchPathError as exc:
            self._fail(job_id, attempt, str(exc), "failed")
        if state.committing and state.summary is not None and state.staging:
            # an earlier attempt scored the job and stopped while moving its output into place
            self._move_into_place(Path(state.staging), destination, state.summary, spec.overwrite)
            if destination.exists():
                self._finish(
                    job_id, attempt, state.summary, "(the earlier attempt's output, moved into place)"
                )
                return
        for leftover in destination.parent.glob(f".{destination.name}.{job_id}.*.staging"):
            shutil.rmtree(leftover, ignore_errors=True)  # earlier attempts' partial files
        if destination.exists() and not spec.overwrite:
            self._fail(
                job_id, attempt, f"output {destination} appeared after the job was submitted", "failed"
            )
        staging = staging_folder(destination, job_id, attempt)
        try:
            staging.mkdir(parents=True)
            summary = scoring.score_file(
                self.settings,
                spec.model,
                spec.ref,
                source,
                staging / destination.name,
                chunk_rows=spec.chunk_rows,
                keep=spec.keep,
                on_error=spec.on_error,
                progress=self._progress(job_id, attempt, lease),
            )
            if lease.lost.is_set():
                raise LeaseLostError("another worker took the job's lease")
        except LeaseLostError as exc:
            self._stop(job_id, attempt, staging, str(exc))
        except Exception as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if is_permanent(exc):
                self._fail(job_id, attempt, one_line(exc), "failed")
            if attempt >= state.max_attempts:
                self._fail(
                    job_id, attempt, f"attempt {attempt}/{state.max_attempts}: {one_line(exc)}", "dead"
                )
            log.debug("job %s attempt %d failed", job_id, attempt, exc_info=True)
            if not self.store.retrying(job_id, attempt, one_line(exc)):
                raise RetryAttempt("the job changed meanwhile") from None
            self._event(job_id, f"attempt {attempt} failed, will retry: {one_line(exc)}")
            raise RetryAttempt(one_line(exc)) from exc
        except TimeLimitExceeded:  # raised into this thread by the queue's time-limit middleware
            shutil.rmtree(staging, ignore_errors=True)
            limit = self.settings.batch_time_limit_seconds
            self._fail(job_id, attempt, f"stopped after the time limit ({limit:g} s)", "failed")
        final = {
            **summary.to_dict(),
            "input": str(source),
            "output": str(destination),
            "rejects": str(rejects_name(destination)) if summary.rejects else None,
        }
        if not self.store.committing(job_id, attempt, final, staging):
            self._stop(job_id, attempt, staging, "a later attempt took the job over")
        self._move_into_place(staging, destination, final, spec.overwrite)
        self._finish(job_id, attempt, final)

    def _finish(self, job_id: str, attempt: int, summary: dict[str, Any], note: str = "") -> None:
        if not self.store.end(job_id, "finished", attempt, summary=summary):
            raise RetryAttempt("the job changed meanwhile")
        self._event(
            job_id,
            f"finished: {summary['rows_out']} rows out of {summary['rows_in']} "
            f"({summary['rows_rejected']} rejected) in {summary['seconds']:.2f} s {note}".rstrip(),
        )

    def _stop(self, job_id: str, attempt: int, staging: Path, reason: str) -> NoReturn:
        """Give the job up to another attempt without touching the output."""
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(RedisError):
            self.store.stopped(job_id, attempt, reason)
        self._event(job_id, f"attempt {attempt} stopped: {reason}")
        raise RetryAttempt(reason)

    def _fail(self, job_id: str, attempt: int, error: str, status: Literal["failed", "dead"]) -> NoReturn:
        if not self.store.end(job_id, status, attempt, error=error):
            raise RetryAttempt("the job changed meanwhile")
        self._event(job_id, f"{status}: {error}")
        raise JobEnded(error)

    def _progress(self, job_id: str, attempt: int, lease: _Lease) -> scoring.Progress:
        last = 0.0

        def report(rows_done: int, rows_total: int | None) -> None:
            nonlocal last
            if lease.lost.is_set():
                raise LeaseLostError("another worker took the job's lease")
            moment = time.monotonic()
            if moment - last >= self.progress_every:
                last = moment
                try:
                    owned = self.store.progress(job_id, attempt, rows_done, rows_total)
                except RedisError:  # progress is informative; the job goes on
                    return
                if not owned:
                    raise LeaseLostError("a later attempt took the job over")

        return report

    @staticmethod
    def _move_into_place(staging: Path, destination: Path, summary: dict[str, Any], overwrite: bool) -> None:
        """Rejected rows first, then the output (its arrival marks the job done); idempotent."""
        staged_rejects = rejects_name(staging / destination.name)
        final_rejects = rejects_name(destination)
        if staged_rejects.exists():
            staged_rejects.replace(final_rejects)
        elif not summary.get("rejects") and overwrite:
            final_rejects.unlink(missing_ok=True)  # a replaced output's old rejects no longer apply
        staged = staging / destination.name
        if staged.exists():
            staged.replace(destination)
        shutil.rmtree(staging, ignore_errors=True)
