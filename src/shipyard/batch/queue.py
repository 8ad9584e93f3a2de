"""Batch jobs through Redis: the service submits, ``shipyard batch worker`` processes take and run them.

Why Dramatiq (over RQ, the other well-kept Redis job library): what this queue must guarantee is built
in and tunable there. Its Redis broker keeps each taken message in a per-worker "unacknowledged" set and
every worker process sends heartbeats; a worker that stops (SIGKILL, out of memory, a lost node) has its
messages put back on the queue by the others once its heartbeats are ``heartbeat_timeout`` old — a
constructor argument, so a dead worker's job moves on after ``SHIPYARD_BATCH_WORKER_TIMEOUT_SECONDS``.
Retries with exponential backoff and a dead-letter queue are its standard ``Retries`` middleware, and a
time limit its ``TimeLimit``. RQ (3.0) also re-queues abandoned jobs, but finds them only once a
heartbeat TTL padded with fixed 60-second margins has passed, at a maintenance pass every 10 minutes by
default: minutes, not seconds, and not tunable below that without patching it. Dramatiq is LGPL-3.0
(used as an unmodified library). Its one gap here, that its retry count misses attempts whose worker
was killed, is filled by counting attempts in the job's state.

On top of Dramatiq (``runner.py``): a lease so one job never runs twice at once, an output staged and
moved into place once, attempts counted by Shipyard (a killed attempt counts too), and each job's state
(status, progress, rows, attempts, error) in a Redis hash the service answers ``GET /batch/jobs/{id}``
from (``jobs.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries, TimeLimit
from redis import Redis
from redis.exceptions import RedisError

from shipyard.batch.jobs import JobSpec, JobState, JobStore, new_job_id
from shipyard.batch.runner import Events, JobEnded, JobRunner, RetryAttempt
from shipyard.config.settings import Settings
from shipyard.errors import ShipyardError

log = logging.getLogger(__name__)

ACTOR_NAME = "shipyard_batch_score"
NAMESPACE = "shipyard-dramatiq"
# Dramatiq counts retries only for raised errors; Shipyard's own attempt count ends a job first. This is
# the backstop beyond that (e.g. deliveries while another worker holds the lease).
EXTRA_RETRIES = 20


class QueueUnavailableError(ShipyardError):
    """Redis, which holds the batch queue and the jobs' state, cannot be reached (503 in the service)."""

    exit_code = 10


def redacted(url: str) -> str:
    """The Redis URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def unavailable(settings: Settings, exc: BaseException) -> QueueUnavailableError:
    return QueueUnavailableError(
        f"the batch queue is unavailable: cannot reach Redis at {redacted(settings.redis_url)} "
        f"(SHIPYARD_REDIS_URL): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    )


def connect(settings: Settings) -> Redis:
    """A client for ``SHIPYARD_REDIS_URL`` that fails fast when Redis is down (no connection is made
    until the first command)."""
    try:
        return Redis.from_url(
            settings.redis_url, socket_connect_timeout=3, socket_timeout=15, health_check_interval=30
        )
    except ValueError as exc:
        raise QueueUnavailableError(f"SHIPYARD_REDIS_URL is not a Redis URL: {exc}") from None


class BatchQueue:
    """The queue and job store as the service and the workers see them; nothing connects until used."""

    def __init__(self, settings: Settings, redis: Redis | None = None) -> None:
        self.settings = settings
        self.redis = redis if redis is not None else connect(settings)
        self.store = JobStore(self.redis, settings.batch_job_ttl_seconds)
        self.broker = RedisBroker(  # type: ignore[no-untyped-call]
            client=self.redis,
            namespace=NAMESPACE,
            heartbeat_timeout=int(settings.batch_worker_timeout_seconds * 1000),
            maintenance_chance=max(1, int(settings.batch_requeue_chance * 1_000_000)),
            middleware=[
                TimeLimit(time_limit=settings.batch_time_limit_seconds * 1000),
                Retries(
                    max_retries=settings.batch_max_attempts + EXTRA_RETRIES,
                    min_backoff=max(1, int(settings.batch_retry_backoff_seconds * 1000)),
                    max_backoff=max(1, int(settings.batch_retry_max_backoff_seconds * 1000)),
                ),
            ],
        )
        self.runner: JobRunner | None = None
        self.actor: dramatiq.Actor[[str], None] = dramatiq.Actor(
            self._deliver,
            broker=self.broker,
            actor_name=ACTOR_NAME,
            queue_name=settings.batch_queue,
            priority=0,
            options={"throws": (JobEnded,)},
        )

    def ping(self) -> None:
        try:
            self.redis.ping()
        except RedisError as exc:
            raise unavailable(self.settings, exc) from None

    def submit(self, spec: JobSpec, submitted_by: str) -> str:
        """Store the job as queued and send it to the workers; its id."""
        job_id = new_job_id()
        try:
            self.store.create(job_id, spec, self.settings.batch_max_attempts, submitted_by)
            self.actor.send(job_id)
        except RedisError as exc:
            with contextlib.suppress(RedisError):
                self.store.delete(job_id)
            raise unavailable(self.settings, exc) from None
        log.info("batch job %s queued on %s by %s", job_id, self.settings.batch_queue, submitted_by)
        return job_id

    def get(self, job_id: str) -> JobState | None:
        try:
            return self.store.get(job_id)
        except RedisError as exc:
            raise unavailable(self.settings, exc) from None

    def dead_letters(self) -> int:
        """How many messages sit in Dramatiq's dead-letter set for this queue (kept for a week)."""
        return int(self.redis.zcard(f"{NAMESPACE}:{self.settings.batch_queue}.XQ"))

    def _deliver(self, job_id: str) -> None:
        if self.runner is None:
            raise RuntimeError("this BatchQueue runs no worker (call BatchWorker.start)")
        try:
            self.runner.run(job_id)
        except RetryAttempt as exc:
            raise dramatiq.Retry(str(exc)) from exc


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class BatchWorker:
    """A worker process's Dramatiq worker: ``threads`` jobs at a time (one is right for CPU-bound
    scoring; run more processes for more), taking one message at a time so no job waits in a busy
    worker's memory while another worker is idle."""

    def __init__(
        self, settings: Settings, *, threads: int = 1, on_event: Events | None = None, name: str | None = None
    ) -> None:
        self.queue = BatchQueue(settings)
        self.name = name or worker_name()
        self.queue.runner = JobRunner(settings, self.queue.redis, self.queue.store, self.name, on_event)
        self.worker = dramatiq.Worker(
            self.queue.broker, queues={settings.batch_queue}, worker_threads=threads
        )
        self.worker.queue_prefetch = threads  # Dramatiq's default takes twice as many as it runs
        self.started = False

    def start(self) -> None:
        """Check Redis, then start the consumer and worker threads (they run until ``stop``)."""
        self.queue.ping()
        self.queue.broker.emit_after("process_boot")  # starts the time-limit watcher, as Dramatiq's CLI does
        self.worker.start()
        self.started = True

    def stop(self, timeout_seconds: float) -> None:
        """Stop taking jobs and wait up to ``timeout_seconds`` for those running; one still running then is
        handed to another worker once this one's heartbeats are old (nothing is lost)."""
        if self.started:
            self.worker.stop(timeout=int(timeout_seconds * 1000))
            self.started = False
        self.queue.broker.close()

    def describe(self) -> dict[str, Any]:
        settings = self.queue.settings
        return {
            "worker": self.name,
            "queue": settings.batch_queue,
            "redis": redacted(settings.redis_url),
            "threads": self.worker.worker_threads,
        }
