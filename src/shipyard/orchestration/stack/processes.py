"""Detached service processes: start one in its own process group, tell whether it still runs, stop it
and every child it made, and check ports and health endpoints.

Liveness reads ``/proc`` where it exists, so a zombie (a process that exited but was not reaped yet,
which happens to services whose parent, ``shipyard stack up``, has gone) counts as stopped, and a PID
the kernel reused for another program is never signalled: a service is identified by its PID *and*
its start time.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` this module needs."""

    state: str
    pgid: int
    start_ticks: int


def proc_stat(pid: int) -> ProcStat | None:
    """``/proc/<pid>/stat`` parsed, or None when the process does not exist (or there is no /proc)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after its last ')'
    fields = text[text.rindex(")") + 2 :].split()
    return ProcStat(state=fields[0], pgid=int(fields[2]), start_ticks=int(fields[19]))


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot), to recognise it later; None without /proc."""
    stat = proc_stat(pid)
    return stat.start_ticks if stat else None


def is_running(pid: int, started: int | None = None) -> bool:
    """Whether ``pid`` is a live (not zombie) process, and the same one that started at ``started``."""
    if _PROC.is_dir():
        stat = proc_stat(pid)
        if stat is None or stat.state in ("Z", "X"):
            return False
        return started is None or stat.start_ticks == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``."""
    if not _PROC.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = proc_stat(int(entry.name))
        if stat is not None and stat.pgid == pgid and stat.state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def spawn(command: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` detached: a new session (so its own process group, out of reach of the
    terminal's Ctrl-C), stdin from /dev/null, stdout and stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_group(
    pgid: int,
    started: int | None,
    timeout: float,
    reap: Callable[[], object] | None = None,
) -> str:
    """SIGTERM the process group ``pgid``, SIGKILL what is left after ``timeout`` seconds.

    ``pgid`` is the PID of the group's leader (each service starts a new session). When that PID now
    belongs to another program (its start time differs from ``started``), nothing is signalled. Returns
    what happened: ``"not running"``, ``"stopped"``, ``"killed"`` or ``"pid reused"``.
    """
    leader = proc_stat(pgid)
    if leader is not None and started is not None and leader.start_ticks != started:
        return "pid reused"
    if not group_members(pgid):
        return "not running"
    _signal_group(pgid, signal.SIGTERM)
    if _wait_gone(pgid, timeout, reap):
        return "stopped"
    _signal_group(pgid, signal.SIGKILL)
    _wait_gone(pgid, 10.0, reap)
    return "killed"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _wait_gone(pgid: int, timeout: float, reap: Callable[[], object] | None) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if reap is not None:
            reap()
        if not group_members(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on (or holds) ``host:port``. SO_REUSEADDR as servers set it, so a port
    only in TIME_WAIT after a server stopped counts as free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def http_ok(url: str, timeout: float = 2.0, login: tuple[str, str] | None = None) -> bool:
    """Whether GET ``url`` answers 200 (as ``login``, a basic-auth user and password, when given)."""
    request = urllib.request.Request(url)
    if login is not None:
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def log_tail(log: Path, lines: int = 15, ignore: str | None = None) -> str:
    """The last lines of a log file for error messages, without those containing ``ignore`` (the
    access log lines of the health checks that were waiting for the service)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.rstrip().splitlines() if not (ignore and ignore in line)]
    return "\n".join(kept[-lines:])
