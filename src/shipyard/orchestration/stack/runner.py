"""``up``, ``down`` and ``status`` of the process stack, with its state in a folder (``.stack/``):

    .stack/state.json          each service: pid (= its process group), start time, port, url, log
    .stack/logs/<service>.log  stdout and stderr of each service
    .stack/mlflow/             the server's SQLite store and artifacts (unless a PostgreSQL URL is set)
    .stack/monitoring.db       the monitoring store the api processes and the monitor share (unless
                               SHIPYARD_MONITORING_URL names another, e.g. PostgreSQL)
    .stack/prometheus/         the generated config and Prometheus's data

``up`` starts the services one by one and waits for each to be healthy before the next; if one fails,
times out or ``up`` is interrupted (Ctrl-C, SIGTERM), it stops what it started. ``down`` stops every
recorded service by process group (SIGTERM, then SIGKILL) and is safe to repeat.
"""

from __future__ import annotations

import fcntl
import json
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from shipyard.errors import ShipyardError
from shipyard.orchestration.mlflow_users import write_private
from shipyard.orchestration.stack.plan import StackOptions, build_plan, load_stack_settings
from shipyard.orchestration.stack.processes import (
    http_ok,
    is_running,
    log_tail,
    port_in_use,
    spawn,
    start_ticks,
    stop_group,
)
from shipyard.orchestration.stack.specs import HOST, JobStep, ServiceSpec, StackPlan

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
LOCK_FILE = ".lock"


class StackError(ShipyardError):
    """A stack service could not start (port in use, exited, not healthy in time) or the stack is busy.

    ``log_tail`` holds the last lines of the failing service's log, for the CLI to show."""

    exit_code = 12

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class Reporter(Protocol):
    """Progress of ``up`` (``cli.output.ConsoleReporter`` fits)."""

    def step(self, name: str, detail: str = "") -> None: ...

    def done(self, name: str, detail: str = "") -> None: ...


@dataclass
class ServiceState:
    """One started service as recorded in ``state.json``."""

    name: str
    kind: str
    pid: int | None
    start_ticks: int | None
    port: int | None
    url: str | None
    health_url: str | None
    log: str
    command: list[str]
    exit_code: int | None = None  # a job that finished

    def running(self) -> bool:
        return self.pid is not None and is_running(self.pid, self.start_ticks)


@dataclass(frozen=True)
class StackRun:
    """What ``up`` started."""

    state_dir: Path
    services: list[ServiceState]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Stopped:
    name: str
    pid: int
    outcome: str  # stopped, killed, not running, pid reused
    seconds: float


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    kind: str
    state: str  # running, stopped, done, failed (exit N)
    healthy: bool | None
    pid: int | None
    port: int | None
    url: str | None
    log: str


def resolve_state_dir(state_dir: Path | None = None, cwd: Path | None = None) -> Path:
    """``state_dir``, else SHIPYARD_STACK_DIR, else ``.stack``; relative to the working directory."""
    folder = state_dir or load_stack_settings().state_dir
    return folder if folder.is_absolute() else (cwd or Path.cwd()).resolve() / folder


def read_state(state_dir: Path) -> list[ServiceState]:
    path = state_dir / STATE_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
        return [ServiceState(**item) for item in data["services"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise StackError(f"{path} is not a stack state file ({exc}); remove it once nothing runs") from exc


def _write_state(state_dir: Path, cwd: Path, services: list[ServiceState]) -> None:
    data = {"cwd": str(cwd), "updated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    data_services: list[dict[str, Any]] = [asdict(s) for s in services]
    tmp = state_dir / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps({**data, "services": data_services}, indent=2) + "\n")
    tmp.replace(state_dir / STATE_FILE)


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One ``stack`` command at a time per state folder."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / LOCK_FILE).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StackError(
                f"another `shipyard stack` command is using {state_dir} (an `up` still starting? "
                "press Ctrl-C there: it stops what it started)"
            ) from None
        yield


@contextmanager
def _signals(handler: Any) -> Iterator[None]:
    """Install ``handler`` for SIGTERM and SIGINT meanwhile (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def up(options: StackOptions, reporter: Reporter | None = None, cwd: Path | None = None) -> StackRun:
    """Start the stack; on any failure or interruption stop what was started and re-raise."""
    state_dir = resolve_state_dir(options.state_dir, cwd)
    with _locked(state_dir):
        alive = [s for s in read_state(state_dir) if s.exit_code is None and s.running()]
        if alive:
            pids = ", ".join(f"{s.name} pid {s.pid}" for s in alive)
            raise StackError(
                f"a stack is already running from {state_dir} ({pids}): `shipyard stack down` first"
            )
        plan = build_plan(replace(options, state_dir=state_dir), cwd)
        _check_ports(plan)
        starter = _Starter(plan, reporter)
        with _signals(_interrupt):  # SIGTERM too, so `kill <up's pid>` cleans up like Ctrl-C
            try:
                for spec in plan.services:
                    starter.start(spec)
            except BaseException as exc:
                with _signals(signal.SIG_IGN):  # a second Ctrl-C must not leave orphans behind
                    stopped = starter.stop_all()
                names = ", ".join(stopped) or "nothing was running"
                if isinstance(exc, StackError):
                    raise StackError(f"{exc}; stopped what had started: {names}", exc.log_tail) from None
                why = "interrupted" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
                logger.warning("%s: stopped what had started: %s", why, names)
                raise
        return StackRun(plan.state_dir, starter.states, plan.notes)


def _check_ports(plan: StackPlan) -> None:
    """Refuse, before anything starts, a port another program holds (the plan refused duplicates)."""
    taken = []
    for spec in plan.services:
        try:
            if spec.port is not None and port_in_use(HOST, spec.port):
                taken.append(spec)
        except OSError as exc:
            raise StackError(f"cannot listen on {HOST}:{spec.port} for {spec.name}: {exc.strerror}") from None
    if taken:
        listed = ", ".join(
            f"{s.port} ({s.name}; set {s.port_setting})" if s.port_setting else f"{s.port} ({s.name})"
            for s in taken
        )
        raise StackError(f"port in use on {HOST}: {listed}; nothing was started")


class _Starter:
    """Starts services one by one, records each in the state file as soon as it has a PID."""

    def __init__(self, plan: StackPlan, reporter: Reporter | None) -> None:
        self.plan = plan
        self.reporter = reporter
        self.states: list[ServiceState] = []
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, spec: ServiceSpec) -> None:
        if self.reporter:
            self.reporter.step(spec.name, "starting" if spec.kind == "server" else "running")
        for path, text in spec.files.items():  # owner-only: one of them holds the MLflow credentials
            write_private(path, text)
        log = self.plan.log(spec.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(b"")
        if spec.kind == "job":
            detail = self._run_job(spec, log)
        else:
            state = self._launch(spec, spec.commands[0], log)
            self._wait_healthy(spec, state, log)
            detail = f"{spec.url} (pid {state.pid})"
        if self.reporter:
            self.reporter.done(spec.name, f"{detail}, log {self._shown(log)}")

    def _launch(self, spec: ServiceSpec, command: tuple[str, ...], log: Path) -> ServiceState:
        proc = spawn(command, spec.env, self.plan.cwd, log)
        self._procs[proc.pid] = proc
        state = ServiceState(
            name=spec.name,
            kind=spec.kind,
            pid=proc.pid,
            start_ticks=start_ticks(proc.pid),
            port=spec.port,
            url=spec.url,
            health_url=spec.health_url,
            log=str(log),
            command=list(command),
        )
        self.states = [s for s in self.states if s.name != spec.name] + [state]
        _write_state(self.plan.state_dir, self.plan.cwd, self.states)
        return state

    def _wait_healthy(self, spec: ServiceSpec, state: ServiceState, log: Path) -> None:
        assert state.pid is not None and spec.health_url is not None
        proc = self._procs[state.pid]
        probe = urlsplit(spec.health_url).path
        deadline = time.monotonic() + spec.timeout
        while True:
            code = proc.poll()
            if code is not None:
                raise StackError(
                    f"{spec.name} exited with code {code} before it was ready; see {self._shown(log)}",
                    log_tail(log, ignore=probe),
                )
            if http_ok(spec.health_url):
                return
            if time.monotonic() > deadline:
                waited = f"{spec.timeout:.0f} s ({spec.health_url})"
                raise StackError(
                    f"{spec.name} not ready after {waited}; see {self._shown(log)}",
                    log_tail(log, ignore=probe),
                )
            time.sleep(0.25)

    def _run_job(self, spec: ServiceSpec, log: Path) -> str:
        """Run the job's commands in order; returns what it did."""
        deadline = time.monotonic() + spec.timeout
        ran, skipped = [], []
        for index, command in enumerate(spec.commands):
            step = spec.steps[index] if index < len(spec.steps) else JobStep(label=command[-1])
            if step.skip_if_ok and http_ok(step.skip_if_ok, login=step.login):
                skipped.append(step.label)
                with log.open("ab") as out:
                    out.write(f"{step.label}: already done ({step.skip_if_ok} answers), skipped\n".encode())
                continue
            with log.open("ab") as out:
                out.write(f"$ {' '.join(command)}\n".encode())
            ran.append(step.label)
            state = self._launch(spec, command, log)
            assert state.pid is not None
            try:
                code = self._procs[state.pid].wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                raise StackError(
                    f"{spec.name} did not finish in {spec.timeout:.0f} s; see {self._shown(log)}",
                    log_tail(log),
                ) from None
            state.exit_code = code
            _write_state(self.plan.state_dir, self.plan.cwd, self.states)
            if code != 0:
                raise StackError(
                    f"{spec.name}: {step.label} failed with exit code {code}; see {self._shown(log)}",
                    log_tail(log),
                )
        if not ran:  # recorded all the same, so `status` shows the job as done
            self.states.append(
                ServiceState(spec.name, spec.kind, None, None, None, None, None, str(log), [], exit_code=0)
            )
            _write_state(self.plan.state_dir, self.plan.cwd, self.states)
        parts = [f"{spec.ran_text} {', '.join(ran)}"] if ran else []
        if skipped:
            parts.append(f"{', '.join(skipped)}: {spec.skipped_text}")
        return "; ".join(parts)

    def stop_all(self, timeout: float = 30.0) -> list[str]:
        """Stop every started service, last first; returns the names of those that were running."""
        stopped = []
        for state in reversed(self.states):
            if state.pid is None or state.exit_code is not None:
                continue
            proc = self._procs.get(state.pid)
            outcome = stop_group(state.pid, state.start_ticks, timeout, reap=proc.poll if proc else None)
            if outcome in ("stopped", "killed"):
                stopped.append(state.name)
        (self.plan.state_dir / STATE_FILE).unlink(missing_ok=True)
        return stopped

    def _shown(self, path: Path) -> str:
        return _relative(path, self.plan.cwd)


def down(state_dir: Path | None = None, timeout: float = 30.0, cwd: Path | None = None) -> list[Stopped]:
    """Stop every recorded service (last started first); nothing recorded is not an error."""
    folder = resolve_state_dir(state_dir, cwd)
    if not (folder / STATE_FILE).is_file():
        return []
    with _locked(folder):
        results = []
        for state in reversed(read_state(folder)):
            if state.pid is None or state.exit_code is not None:
                continue
            began = time.monotonic()
            outcome = stop_group(state.pid, state.start_ticks, timeout)
            results.append(Stopped(state.name, state.pid, outcome, time.monotonic() - began))
        (folder / STATE_FILE).unlink(missing_ok=True)
        return results


def status(state_dir: Path | None = None, cwd: Path | None = None) -> list[ServiceStatus]:
    """What the state folder records, and whether each service runs and answers its health check."""
    folder = resolve_state_dir(state_dir, cwd)
    out = []
    for state in read_state(folder):
        running = state.running()
        if state.exit_code is not None:
            shown = "done" if state.exit_code == 0 else f"failed (exit {state.exit_code})"
        else:
            shown = "running" if running else "stopped"
        healthy = http_ok(state.health_url) if running and state.health_url else None
        log = _relative(Path(state.log), (cwd or Path.cwd()).resolve())
        out.append(
            ServiceStatus(state.name, state.kind, shown, healthy, state.pid, state.port, state.url, log)
        )
    return out


def _relative(path: Path, cwd: Path) -> str:
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)
