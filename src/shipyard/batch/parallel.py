"""Batch scoring on every core: chunks read by this process, checked and scored by worker processes,
written back in input order by this process.

Each worker is a fresh interpreter (``python -m shipyard.batch.scoring_worker``: nothing inherited from a
parent that may hold threads, locks or an open store, and unlike multiprocessing's 'spawn' no re-run of
the caller's main script) that loads the model once through the registry and the same ``ReadyModel``
as every scoring path; the run starts only if every worker loaded the same version. This process never
loads the model (nor imports MLflow): it reads, dispatches and writes. At most ``workers + 1`` chunks
are in flight (read and not yet written: one being scored per worker and one read ahead), so memory
stays bounded whatever the input size. A worker that dies fails the run naming the chunk it held; the
caller then leaves no output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa

from shipyard.batch.chunks import ChunkResult, ChunkScorer, ChunkTask, batch_from_ipc, table_from_ipc, to_ipc
from shipyard.config.settings import Settings
from shipyard.errors import ShipyardError
from shipyard.registry.models import InputColumn

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 600.0  # a worker must have loaded the model by then (a slow registry, a big model)
POLL_SECONDS = 1.0  # how often a wait for results also looks for workers that died
STOP_SECONDS = 5.0
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # unless set


class ScoringWorkerError(ShipyardError):
    """A scoring worker process died or failed unexpectedly; nothing was written. Worth a retry (a
    worker killed for memory, say), unlike errors about the input or the model."""

    exit_code = 70  # EX_SOFTWARE


@dataclass(frozen=True)
class WorkerJob:
    """What a worker needs to score chunks: where the model is and what the output keeps."""

    settings: Settings
    model: str
    ref: str | None  # alias or version, as the caller gave it; every worker must resolve the same one
    keep: tuple[str, ...]
    on_error: str
    multi_file: bool


@dataclass
class _Worker:
    number: int
    process: subprocess.Popen[bytes]
    conn: Connection
    task: ChunkTask | None = None
    last: ChunkTask | None = None  # the chunk it scored last
    alive: bool = True
    loaded: bool = False


@dataclass
class ModelFacts:
    """What the worker that loaded the model reports, for checks and the summary in this process."""

    version: str
    inputs: list[InputColumn]
    engine: str
    peak_rss_mb: list[float] = field(default_factory=list)


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling, else its text as a ScoringWorkerError."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return ScoringWorkerError(f"{type(exc).__name__}: {exc}")
    return exc


def worker_main(conn: Connection) -> None:
    """A worker's life: receive the job, load the model, then score chunks until told to stop or the
    parent is gone (run by ``shipyard.batch.scoring_worker``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    from shipyard.inference import ReadyModel
    from shipyard.registry.models import ModelRegistry

    try:
        job: WorkerJob = conn.recv()
        loaded = ModelRegistry(job.settings).load(job.model, job.ref)
        ready = ReadyModel(
            loaded,
            fast_path=job.settings.fast_path,
            regression_rtol=job.settings.onnx_regression_rtol,
            bulk=True,
        )
        ready.warm_up()  # the first prediction's lazy set-up belongs to loading, as in the service
        scorer = ChunkScorer(ready, job.keep, job.on_error, job.multi_file)
    except (EOFError, OSError):
        return
    except BaseException as exc:
        conn.send(("failed", _portable(exc), traceback.format_exc()))
        return
    conn.send(("ready", ModelFacts(loaded.version, list(loaded.inputs), ready.engine.name)))
    while True:
        try:
            message = conn.recv()
            if message is None:
                conn.send(("stopped", _peak_rss_mb()))
                return
            task: ChunkTask = message
            payload = conn.recv_bytes()
        except (EOFError, OSError):  # the parent is gone
            return
        try:
            result = scorer.score(task, batch_from_ipc(payload))
            header = (result.rows, result.out is not None, result.rejected is not None)
            conn.send(("done", task.index, header, result.rejected_count, result.error))
            for table in (result.out, result.rejected):
                if table is not None:
                    conn.send_bytes(to_ipc(table))
        except (BrokenPipeError, ConnectionResetError):
            return
        except BaseException as exc:
            conn.send(("failed", _portable(exc), traceback.format_exc()))
            return


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), for the run's memory report."""
    try:
        with open(f"/proc/{os.getpid()}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _describe(task: ChunkTask) -> str:
    return f"chunk {task.index + 1} (rows {task.row_base + 1}-{task.row_base + task.rows} of {task.file})"


class ScoringPool:
    """``workers`` scoring processes; ``ordered`` scores chunks with them and gives the results back in
    input order with at most ``limit`` chunks in flight (``max_in_flight`` records the most seen)."""

    def __init__(self, job: WorkerJob, workers: int, start_timeout: float = START_TIMEOUT_SECONDS) -> None:
        if workers < 2:
            raise ValueError("a pool needs at least two workers; one scores in this process")
        self.job = job
        self.size = workers
        self.limit = workers + 1
        self.start_timeout = start_timeout
        self.max_in_flight = 0
        self.facts: ModelFacts | None = None
        self._workers: list[_Worker] = []

    # --- life cycle ------------------------------------------------------------------------------
    def __enter__(self) -> ScoringPool:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(graceful=kind is None)

    def start(self) -> ModelFacts:
        """Start the workers and wait until each has loaded the model (or one fails to)."""
        import shipyard

        package_root = str(Path(shipyard.__file__).resolve().parents[1])  # the same code, installed or not
        env = {
            **ONE_THREAD,  # one process per core already: native thread pools would only contend
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
        }
        for number in range(1, self.size + 1):
            ours, theirs = socket.socketpair()
            try:
                process = subprocess.Popen(
                    [sys.executable, "-m", "shipyard.batch.scoring_worker", str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    env=env,
                )
            finally:
                theirs.close()
            worker = _Worker(number, process, Connection(ours.detach()))
            self._workers.append(worker)
            try:
                worker.conn.send(self.job)
            except OSError:  # it stopped at once (an interpreter or import failure, on its stderr)
                self._died(worker)
        deadline = time.monotonic() + self.start_timeout
        waiting = {w.number: w for w in self._workers}
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ScoringWorkerError(
                    f"{len(waiting)} scoring worker(s) had not loaded the model "
                    f"after {self.start_timeout:g} s"
                )
            ready = wait([w.conn for w in waiting.values()], timeout=min(left, POLL_SECONDS))
            for worker in list(waiting.values()):
                if worker.conn in ready:
                    facts = self._receive(worker, None)
                    if self.facts is not None and facts.version != self.facts.version:
                        raise ScoringWorkerError(
                            f"the workers loaded different versions of {self.job.model} "
                            f"({self.facts.version} and {facts.version}): its alias moved meanwhile; "
                            "run again"
                        )
                    self.facts = self.facts or facts
                    worker.loaded = True
                    del waiting[worker.number]
                elif worker.process.poll() is not None:
                    self._died(worker)
        assert self.facts is not None
        return self.facts

    def close(self, graceful: bool = True) -> None:
        """Stop every worker: politely after a run (collecting their peak memory), at once otherwise."""
        for worker in self._workers:
            if graceful and worker.alive and worker.task is None:
                try:
                    worker.conn.send(None)
                    if worker.conn.poll(STOP_SECONDS):
                        reply = worker.conn.recv()
                        if reply[0] == "stopped" and self.facts is not None:
                            self.facts.peak_rss_mb.append(float(reply[1]))
                except (EOFError, OSError):
                    pass
        for worker in self._workers:
            if graceful:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.process.wait(STOP_SECONDS)
            for stop in (worker.process.terminate, worker.process.kill):
                if worker.process.poll() is None:
                    stop()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        worker.process.wait(STOP_SECONDS)
            worker.conn.close()
        self._workers = []

    # --- scoring ---------------------------------------------------------------------------------
    def ordered(
        self, chunks: Iterator[tuple[ChunkTask, pa.RecordBatch]]
    ) -> Iterator[tuple[ChunkTask, ChunkResult]]:
        """Score ``chunks`` on the workers; yield (task, result) in input order."""
        done: dict[int, tuple[ChunkTask, ChunkResult]] = {}
        in_flight = 0  # read and not yet given back
        ahead: tuple[ChunkTask, pa.RecordBatch] | None = None
        exhausted = False
        next_out = 0
        while True:
            # read ahead and hand chunks to idle workers, within the bound
            while not exhausted:
                if ahead is None:
                    if in_flight >= self.limit:
                        break
                    ahead = next(chunks, None)
                    if ahead is None:
                        exhausted = True
                        break
                    in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, in_flight)
                idle = next((w for w in self._workers if w.task is None), None)
                if idle is None:
                    break
                self._send(idle, *ahead)
                ahead = None
            if next_out in done:
                yield done.pop(next_out)
                next_out += 1
                in_flight -= 1
                continue
            busy = [w for w in self._workers if w.task is not None]
            if not busy:
                if exhausted and ahead is None:
                    return
                raise ScoringWorkerError("no scoring worker is running")  # cannot happen: all died
            # a worker that dies closes its end: its connection turns readable and the read fails
            ready = wait([w.conn for w in busy], timeout=POLL_SECONDS)
            for worker in busy:
                if worker.conn in ready:
                    task = worker.task
                    assert task is not None
                    done[task.index] = (task, self._receive(worker, task))
            for worker in self._workers:
                if worker.task is None and worker.process.poll() is not None:
                    self._died(worker)  # an idle worker that died

    def _send(self, worker: _Worker, task: ChunkTask, batch: pa.RecordBatch) -> None:
        payload = to_ipc(batch)
        worker.task = task
        try:
            worker.conn.send(task)
            worker.conn.send_bytes(payload)
        except OSError:
            self._died(worker)

    def _receive(self, worker: _Worker, task: ChunkTask | None) -> Any:
        try:
            message = worker.conn.recv()
            if message[0] == "failed":
                _, error, trace = message
                worker.alive = False
                log.debug("scoring worker %d failed:\n%s", worker.number, trace)
                where = f" while scoring {_describe(task)}" if task is not None else " loading the model"
                if isinstance(error, ShipyardError):
                    raise error
                raise ScoringWorkerError(
                    f"scoring worker {worker.number} failed{where}: {type(error).__name__}: {error}; "
                    "nothing was written"
                )
            if message[0] == "ready":
                return message[1]
            _, _, (rows, has_out, has_rejected), rejected_count, error = message
            out = table_from_ipc(worker.conn.recv_bytes()) if has_out else None
            rejected = table_from_ipc(worker.conn.recv_bytes()) if has_rejected else None
        except (EOFError, OSError):
            self._died(worker)
        worker.task, worker.last = None, worker.task
        return ChunkResult(rows, out, rejected, rejected_count, error)

    def _died(self, worker: _Worker) -> None:
        worker.alive = False
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(STOP_SECONDS)
        code = worker.process.returncode
        how = (
            f"killed by {signal.Signals(-code).name}"
            if code is not None and code < 0 and -code in signal.valid_signals()
            else f"exit code {code}"
        )
        if worker.task is not None:
            doing = f"while scoring {_describe(worker.task)}"
        else:
            doing = (
                f"after scoring {_describe(worker.last)}, while idle"
                if worker.last is not None
                else ("while idle" if worker.loaded else "while loading the model")
            )
        raise ScoringWorkerError(
            f"scoring worker {worker.number} (pid {worker.process.pid}) died ({how}) {doing}; "
            "nothing was written"
        )
