"""``shipyard batch worker``: take batch scoring jobs from the Redis queue and run them until stopped."""

from __future__ import annotations

import os
import re
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from shipyard.cli.output import err_console
from shipyard.config.settings import get_settings
from shipyard.errors import ConfigError


def worker(
    threads: Annotated[
        int,
        typer.Option(
            min=1,
            help="Jobs run at once by this process. Scoring is CPU-bound and each job already scores "
            "on SHIPYARD_BATCH_WORKERS processes (default: every usable CPU): keep 1.",
        ),
    ] = 1,
    queue: Annotated[
        str | None,
        typer.Option(help="Queue to take jobs from (SHIPYARD_BATCH_QUEUE, default shipyard-batch)."),
    ] = None,
    stop_timeout: Annotated[
        float,
        typer.Option(
            min=0,
            help="On SIGTERM or Ctrl-C, wait this many seconds for running jobs; a job still running "
            "then is handed to another worker later (a second signal stops at once).",
        ),
    ] = 30.0,
) -> None:
    """Run jobs queued by POST /batch/jobs (Redis at SHIPYARD_REDIS_URL) until SIGTERM or Ctrl-C."""
    from shipyard.batch.queue import BatchWorker

    if queue is not None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9._-]*", queue):
            raise ConfigError(
                f"--queue '{queue}': a queue name is letters, digits, '.', '_' and '-', "
                "starting with a letter or '_'"
            )
        os.environ["SHIPYARD_BATCH_QUEUE"] = queue
        get_settings.cache_clear()
    settings = get_settings()

    def on_event(job_id: str, text: str) -> None:
        err_console.print(f"job {job_id}: {text}", soft_wrap=True, markup=False, highlight=False)

    runner = BatchWorker(settings, threads=threads, on_event=on_event)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            err_console.print("stopping now; running jobs go back to the queue after the worker timeout")
            os._exit(130)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        runner.start()  # checks Redis first: a clear error, not a traceback, when it is unreachable
        info = runner.describe()
        err_console.print(
            f"batch worker {info['worker']} taking jobs from queue '{info['queue']}' on {info['redis']} "
            f"({info['threads']} at a time); SIGTERM or Ctrl-C stops it",
            soft_wrap=True,
            markup=False,
        )
        while not stop.wait(0.5):
            pass
        err_console.print(f"stopping: waiting up to {stop_timeout:g} s for running jobs")
        runner.stop(stop_timeout)
        err_console.print("worker stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
