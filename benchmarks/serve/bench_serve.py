"""Serve the iris champion three (or four) ways and load each with wrk: requests/s, p50, p99, errors and
ratios.

The same ``models:/iris@champion`` (scaler + RandomForest, trained once into a temporary store) is
served by:

- ``anchor``   ``mlflow models serve -m models:/iris@champion --env-manager local --workers 1``;
- ``shipyard`` ``shipyard serve --models iris --no-auth`` (hot-swap checks off, access log as the
  service's default unless ``--access-log`` says otherwise; its log goes to a file);
- ``floor``    ``benchmarks/serve/minimal_onnx_server.py``: FastAPI + ONNX Runtime and nothing else;
- ``before``   only with ``--before-src DIR``: an earlier Shipyard's source tree (e.g. a ``git worktree``
  of an older commit), run as ``python -m shipyard serve`` with the same arguments and environment as
  ``shipyard`` and ``DIR/src`` first on ``PYTHONPATH``, so a change can be shown not to slow serving.

Each server is one uvicorn worker pinned with ``taskset -c 0``; wrk (``-t1 -c16 --latency``, a Lua
script for the POST body) is pinned with ``taskset -c 1``. Bodies: one row, and 100 different iris
rows, as ``dataframe_split`` JSON on ``POST /invocations``.

Fair method (shared/STACK-NOTES.md): all the servers are started together once to check that they
return identical predictions; then, in each repetition, every server is started fresh and alone on
its core (order rotated each repetition), gets one discarded warm-up run per body, is measured and
stopped. Ratios are computed within each repetition and their median (min, max) is reported.

Targets from the issue, on single rows: shipyard req/s >= 20x the anchor's, shipyard p99 <= the
anchor's / 20, zero errors everywhere, shipyard req/s >= the floor's / 1.5. With ``before``, the
within-repetition ratios shipyard / before req/s and before p50 (p99) / shipyard p50 (p99) show any
regression (no target: above 1 is faster).

Run from the repo root: ``.venv/bin/python benchmarks/serve/bench_serve.py --repeats 3``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import benchmark_parser, git_revision, machine_basics, pin_prefix, summarise

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "bench_serve.json"
LUA = HERE / "post.lua"
FLOOR_SCRIPT = HERE / "minimal_onnx_server.py"
MODEL_URI = "models:/iris@champion"
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SINGLE_ROW = [5.1, 3.5, 1.4, 0.2]
MANY_ROWS = 100
# Environment that could point a child at another store or turn on telemetry; dropped for every child.
SCRUBBED_PREFIXES = ("SHIPYARD_", "MLFLOW_")
TARGET_SPEEDUP = 20.0  # shipyard req/s vs the anchor's, single row
TARGET_P99 = 20.0  # anchor p99 / shipyard p99, single row
FLOOR_SLACK = 1.5  # shipyard req/s >= floor req/s / FLOOR_SLACK, single row
STOP_GRACE_S = 10.0
BODIES = ("single", "rows100")
BODY_LABEL = {"single": "1 row", "rows100": f"{MANY_ROWS} rows"}
PLAIN_ACCESS_ERROR = re.compile(r'" ([45]\d\d) ')  # uvicorn's access line: "POST /invocations HTTP/1.1" 500


class BenchError(RuntimeError):
    """Set-up, a server or wrk failed; carries what it printed so the report shows the exact error."""


@dataclass
class ServerSpec:
    """How to start one server on a given port, and the extra environment it needs."""

    name: str
    label: str
    command: Callable[[int], list[str]]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Running:
    """A started server: its process (a session leader, so its group can be signalled) and log."""

    spec: ServerSpec
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    ready_s: float | None = None
    stopped: bool = False


@dataclass
class WrkResult:
    """What one wrk run reports."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    seconds: float
    non_2xx_3xx: int
    socket_errors: dict[str, int]

    @property
    def errors(self) -> int:
        """Non-2xx/3xx answers plus every kind of socket error."""
        return self.non_2xx_3xx + sum(self.socket_errors.values())


@dataclass
class Ratio:
    """A ratio per repetition and its median/min/max across repetitions."""

    per_repetition: list[float]
    median: float
    min: float
    max: float


@dataclass(frozen=True)
class RatioSpec:
    """One within-repetition ratio, ``top``'s ``metric`` over ``bottom``'s; reported when both servers ran."""

    label: str
    top: str
    bottom: str
    metric: str  # a WrkResult field: rps, p50_ms or p99_ms


# Above 1 means shipyard does better, except "shipyard p99 / floor p99": what shipyard costs over the floor.
RATIOS = (
    RatioSpec("shipyard / anchor req/s", "shipyard", "anchor", "rps"),
    RatioSpec("anchor p99 / shipyard p99", "anchor", "shipyard", "p99_ms"),
    RatioSpec("shipyard / floor req/s", "shipyard", "floor", "rps"),
    RatioSpec("shipyard p99 / floor p99", "shipyard", "floor", "p99_ms"),
    RatioSpec("shipyard / before req/s", "shipyard", "before", "rps"),
    RatioSpec("before p50 / shipyard p50", "before", "shipyard", "p50_ms"),
    RatioSpec("before p99 / shipyard p99", "before", "shipyard", "p99_ms"),
)


@dataclass(frozen=True)
class BeforeSource:
    """An earlier Shipyard's source tree (``--before-src``) and the revision it holds, for ``before``."""

    root: Path
    revision: str  # git short sha, "-dirty" if tracked files changed; the folder's name outside git

    @property
    def src(self) -> Path:
        """The folder put first on the before server's PYTHONPATH."""
        return self.root / "src"

    @classmethod
    def at(cls, root: Path) -> BeforeSource:
        """The tree at ``root``; ValueError unless it holds ``src/shipyard/__init__.py``."""
        root = root.expanduser().resolve()
        if not (root / "src" / "shipyard" / "__init__.py").is_file():
            raise ValueError(f"{root} is not a Shipyard source tree (no src/shipyard/__init__.py)")
        return cls(root, git_revision(root) or root.name)


def child_env(base: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    """The parent's environment without SHIPYARD_*/MLFLOW_* overrides, plus ``base`` and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"})
    env.update(base)
    env.update(extra or {})
    return env


def shipyard_module(python: str, cwd: Path, env: dict[str, str]) -> Path:
    """The file ``import shipyard`` loads for ``python`` in ``cwd`` with ``env``: what a server there runs."""
    proc = subprocess.run(
        [python, "-c", "import shipyard; print(shipyard.__file__)"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(
            f"{python} cannot import shipyard (exit {proc.returncode}, PYTHONPATH={env.get('PYTHONPATH')}):\n"
            f"{proc.stderr[-2000:]}"
        )
    return Path(proc.stdout.strip()).resolve()


def check_before(
    python: str, before: BeforeSource, specs: dict[str, ServerSpec], cwd: Path, env: dict[str, str]
) -> tuple[Path, Path]:
    """Where the before and the shipyard servers import shipyard from; BenchError unless the before one is
    inside ``before.src`` and the shipyard one is not (else one package would be measured twice)."""
    old = shipyard_module(python, cwd, child_env(env, specs["before"].env))
    new = shipyard_module(python, cwd, child_env(env, specs["shipyard"].env))
    if not old.is_relative_to(before.src):
        raise BenchError(
            f"--before-src: with PYTHONPATH={specs['before'].env['PYTHONPATH']}, {python} imports shipyard "
            f"from {old}, not from {before.src}: the installed package is not shadowed"
        )
    if new.is_relative_to(before.src):
        raise BenchError(f"the shipyard server would also import shipyard from {new}, inside --before-src")
    return old, new


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_bodies(folder: Path, seed: int) -> dict[str, Path]:
    """The single-row body and a body of MANY_ROWS distinct iris rows (fixed seed), written to files."""
    import numpy as np
    from sklearn.datasets import load_iris

    unique = np.unique(load_iris().data, axis=0)
    picked = unique[np.random.default_rng(seed).choice(len(unique), MANY_ROWS, replace=False)]
    rows = {"single": [SINGLE_ROW], "rows100": [[float(v) for v in row] for row in picked]}
    paths = {}
    for name, data in rows.items():
        path = folder / f"body-{name}.json"
        path.write_text(json.dumps({"dataframe_split": {"columns": COLUMNS, "data": data}}))
        paths[name] = path
    return paths


def post(port: int, body: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    """POST ``body`` to /invocations on 127.0.0.1 (no proxies); the status and the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def rows_in(body: bytes) -> int:
    """How many rows a dataframe_split body holds."""
    return len(json.loads(body)["dataframe_split"]["data"])


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a server's log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def log_problems(path: Path) -> Counter[str]:
    """Error lines in a server's log, by kind: 4xx/5xx access lines, ERROR records, exceptions raised."""
    kinds: Counter[str] = Counter()
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return kinds
    in_traceback = False
    for line in text.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            in_traceback = True
        elif in_traceback and line and not line[0].isspace():
            kinds[f"exception {line.strip()[:200]}"] += 1
            in_traceback = False
        elif line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            status = record.get("status")
            if isinstance(status, int) and status >= 400:
                kinds[f"access line status {status}"] += 1
            elif record.get("level") in ("ERROR", "CRITICAL"):
                raised = str(record.get("exception") or "").strip().splitlines()
                what = raised[-1] if raised else str(record.get("message"))
                kinds[f"{record['level']} {record.get('logger')}: {what[:200]}"] += 1
        elif found := PLAIN_ACCESS_ERROR.search(line):
            kinds[f"access line status {found.group(1)}"] += 1
        elif line.startswith(("ERROR", "CRITICAL")):
            kinds[line.strip()[:200]] += 1
    return kinds


def start(
    spec: ServerSpec, cwd: Path, env: dict[str, str], pin: list[str], log_dir: Path, tag: str
) -> Running:
    """Spawn a server in its own session, stdout and stderr to ``<log_dir>/<name>-<tag>.log``."""
    port = free_port()
    log = log_dir / f"{spec.name}-{tag}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*pin, *spec.command(port)],
            cwd=cwd,
            env=child_env(env, spec.env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Running(spec, proc, port, log)


def wait_ready(server: Running, body: bytes, started: float, timeout: float) -> None:
    """Poll with a real POST until it answers 200; raise BenchError with its log if it dies or times out."""
    last = "no answer"
    while time.perf_counter() - started < timeout:
        if server.proc.poll() is not None:
            raise BenchError(
                f"{server.spec.name} exited with {server.proc.returncode} before answering; "
                f"log {server.log}:\n{log_tail(server.log)}"
            )
        try:
            status, answer = post(server.port, body, timeout=10.0)
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200:
                server.ready_s = time.perf_counter() - started
                return
            last = f"HTTP {status}: {answer[:300]!r}"
        time.sleep(0.1)
    raise BenchError(
        f"{server.spec.name} did not answer 200 within {timeout:.0f} s (last: {last}); "
        f"log {server.log}:\n{log_tail(server.log)}"
    )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(server: Running) -> None:
    """SIGTERM the server's process group; SIGKILL whatever of it is left after STOP_GRACE_S."""
    if server.stopped:
        return
    server.stopped = True
    pgid = server.proc.pid  # a session leader: its pid is the group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        # children (mlflow's uvicorn) may outlive the leader: wait for the whole group
        if server.proc.poll() is not None and not _group_alive(pgid):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    server.proc.wait()


def predictions(server: Running, body: bytes) -> list[object]:
    """The server's ``predictions`` for ``body``; BenchError if it does not answer 200 with them."""
    try:
        status, answer = post(server.port, body)
    except OSError as exc:
        raise BenchError(f"{server.spec.name} did not answer: {type(exc).__name__}: {exc}") from exc
    if status != 200:
        raise BenchError(f"{server.spec.name} answered HTTP {status}: {answer[:500]!r}")
    try:
        return list(json.loads(answer)["predictions"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"{server.spec.name} answered without predictions: {answer[:500]!r}") from exc


def check_same(answers: dict[str, list[object]], body_name: str, rows: int) -> None:
    """Every server gave the same predictions, one per row; BenchError naming the first difference."""
    names = list(answers)
    reference = answers[names[0]]
    if len(reference) != rows:
        raise BenchError(f"{names[0]} returned {len(reference)} predictions for {rows} rows ({body_name})")
    for name in names[1:]:
        other = answers[name]
        if other != reference:
            diff = [i for i, (a, b) in enumerate(zip(reference, other, strict=False)) if a != b]
            first = diff[0] if diff else min(len(reference), len(other))
            raise BenchError(
                f"predictions differ on the {body_name} body between {names[0]} and {name}: "
                f"{len(reference)} vs {len(other)} predictions, {len(diff)} differing; first at row "
                f"{first}: {reference[first : first + 1]} vs {other[first : first + 1]}"
            )


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _latency_ms(text: str, percent: str) -> float:
    found = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.MULTILINE)
    if not found:
        raise BenchError(f"no {percent}% latency line in wrk's output:\n{text}")
    return float(found.group(1)) * _UNIT_MS[found.group(2)]


def parse_wrk(text: str) -> WrkResult:
    """Requests/s, p50 and p99 in ms, requests, and errors from ``wrk --latency`` output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    if not rps or not done:
        raise BenchError(f"cannot read wrk's output:\n{text}")
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    counts = [int(v) for v in sockets.groups()] if sockets else [0, 0, 0, 0]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=_latency_ms(text, "50"),
        p99_ms=_latency_ms(text, "99"),
        requests=int(done.group(1)),
        seconds=float(done.group(2)) * _UNIT_MS[done.group(3)] / 1e3,
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(zip(("connect", "read", "write", "timeout"), counts, strict=True)),
    )


def run_wrk(
    args: argparse.Namespace,
    port: int,
    body: Path,
    seconds: int,
    pin: list[str],
    env: dict[str, str],
    path: str = "/invocations",
) -> WrkResult:
    """One wrk run against ``path`` (/invocations) with the Lua script posting ``body``."""
    cmd = [
        *pin,
        args.wrk,
        "-t1",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}{path}",
    ]
    proc = subprocess.run(
        cmd, env=child_env(env, {"BODY_FILE": str(body)}), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BenchError(f"wrk failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return parse_wrk(proc.stdout)


def machine_info(python: str, wrk: str, env: dict[str, str]) -> dict[str, object]:
    """What the numbers depend on: CPU, nproc, OS, the venv's Python and library versions, wrk."""
    probe = (
        "import json, sys, importlib.metadata as m\n"
        "v = {}\n"
        "for d in ('mlflow', 'fastapi', 'starlette', 'uvicorn', 'uvloop', 'httptools', 'onnxruntime',\n"
        "          'skl2onnx', 'scikit-learn', 'orjson', 'shipyard'):\n"
        "    try: v[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: v[d] = None\n"
        "print(json.dumps({'python': sys.version.split()[0], 'versions': v}))\n"
    )
    out = subprocess.run(
        [python, "-c", probe], env=child_env(env), capture_output=True, text=True, check=True
    ).stdout
    child = json.loads(out)
    wrk_out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    wrk_version = (wrk_out.stdout + wrk_out.stderr).splitlines()[0:1]
    return {
        **machine_basics(),
        "python": child["python"],
        "versions": child["versions"],
        "wrk": wrk_version[0].split(" Copyright")[0] if wrk_version else None,
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    venv = REPO / ".venv" / "bin"
    parser = benchmark_parser(
        (
            "Serve the iris RandomForest champion with `mlflow models serve --env-manager local` (the "
            "anchor), `shipyard serve` and a minimal FastAPI + ONNX Runtime server (the floor, "
            "benchmarks/serve/minimal_onnx_server.py), one uvicorn worker each pinned to one CPU, and load "
            "each with wrk pinned to another CPU: POST /invocations, dataframe_split JSON, one row and "
            f"{MANY_ROWS} rows. A temporary store is trained first (`shipyard train -c configs/iris.yaml`); "
            "the servers must return identical predictions before anything is measured. Each "
            "repetition starts every server fresh and alone (order rotated), discards one warm-up run per "
            "body, then measures. Reports requests/s, p50, p99, errors and within-repetition ratios "
            "(median, min, max), checks the issue's targets, prints Markdown and writes JSON. With "
            "--before-src, an earlier Shipyard is measured beside the current one in the same run. Run "
            "from the repo root."
        ),
        epilog=(
            f"Targets (single row, medians of the per-repetition ratios): shipyard req/s >= "
            f"{TARGET_SPEEDUP:g}x the anchor's; shipyard p99 <= anchor p99 / {TARGET_P99:g}; zero errors "
            f"(wrk's non-2xx/3xx plus socket errors) in every measured run; shipyard req/s >= floor req/s / "
            f"{FLOOR_SLACK:g}. Each server's log is also scanned for error lines (e.g. client disconnects "
            "when wrk stops), which are reported but not counted as errors. A full run (3 repeats, 10 s) "
            "takes about 6 minutes (8 with --before-src); `--repeats 1 --duration 3` is a smoke test of "
            "about 1.5 minutes. Before/after comparison: `git worktree add /tmp/shipyard-before <commit>`, "
            "then `--before-src /tmp/shipyard-before`; remove it afterwards with `git worktree remove "
            "/tmp/shipyard-before`."
        ),
        repeats=3,
        output=DEFAULT_OUTPUT,
        cpu=None,
        seed=0,
        tmpdir=True,
    )
    parser.add_argument("--duration", type=int, default=10, help="Seconds of each measured wrk run.")
    parser.add_argument(
        "--warmup", type=int, default=3, help="Seconds of the discarded wrk run before each body (0: none)."
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (one wrk thread).")
    parser.add_argument(
        "--access-log",
        choices=("default", "on", "off"),
        default="default",
        help="shipyard's JSON access log: 'default' leaves SHIPYARD_ACCESS_LOG unset (the service's "
        "default, on), 'on'/'off' set it.",
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the servers are pinned to.")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU wrk is pinned to.")
    parser.add_argument(
        "--ready-timeout", type=float, default=120.0, help="Seconds to wait for a server's first answer."
    )
    parser.add_argument(
        "--before-src",
        type=Path,
        default=None,
        metavar="DIR",
        help="Also measure 'before': the Shipyard source tree in DIR (a checkout of an earlier commit), "
        "served by `<--python> -m shipyard serve` with the shipyard server's arguments and environment "
        "and DIR/src first on PYTHONPATH, so that the old package shadows the installed one (checked at "
        "start-up). It must give the same predictions, runs in every repetition, and adds the ratios "
        "shipyard / before req/s and before p50 (p99) / shipyard p50 (p99) for both bodies.",
    )
    parser.add_argument(
        "--python", default=str(venv / "python"), help="Interpreter of the floor (and before) server."
    )
    parser.add_argument("--shipyard", default=str(venv / "shipyard"), help="The shipyard entry point.")
    parser.add_argument("--mlflow", default=str(venv / "mlflow"), help="The mlflow entry point.")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="The wrk binary.")
    parser.add_argument(
        "--keep", action="store_true", help="Leave the temporary store, bodies and server logs."
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 0 or args.connections < 1:
        parser.error("--duration and --connections must be at least 1, --warmup at least 0")
    try:
        args.before = BeforeSource.at(args.before_src) if args.before_src is not None else None
    except ValueError as exc:
        parser.error(f"--before-src: {exc}")
    return args


def build_specs(args: argparse.Namespace, home: Path) -> dict[str, ServerSpec]:
    """The servers of this run, in the order they are first started: anchor, shipyard, floor, and
    before when ``--before-src`` is given."""
    shipyard_env = {"SHIPYARD_HOME": str(home), "SHIPYARD_RELOAD_INTERVAL_SECONDS": "0"}
    if args.access_log != "default":
        shipyard_env["SHIPYARD_ACCESS_LOG"] = "true" if args.access_log == "on" else "false"

    def anchor(port: int) -> list[str]:
        serve = [args.mlflow, "models", "serve", "-m", MODEL_URI, "--env-manager", "local"]
        return [*serve, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]

    def shipyard(port: int) -> list[str]:
        serve = [args.shipyard, "serve", "--host", "127.0.0.1", "--port", str(port)]
        return [*serve, "--models", "iris", "--no-auth"]

    def floor(port: int) -> list[str]:
        serve = [args.python, str(FLOOR_SCRIPT), "--model-uri", MODEL_URI]
        return [*serve, "--host", "127.0.0.1", "--port", str(port)]

    specs = [
        ServerSpec("anchor", "anchor: `mlflow models serve --env-manager local`", anchor),
        ServerSpec("shipyard", "`shipyard serve --no-auth`", shipyard, shipyard_env),
        ServerSpec("floor", "floor: minimal FastAPI + ONNX", floor),
    ]
    before: BeforeSource | None = args.before
    if before is not None:

        def before_serve(port: int) -> list[str]:
            return [args.python, "-m", "shipyard", *shipyard(port)[1:]]

        pythonpath = os.pathsep.join(p for p in (str(before.src), os.environ.get("PYTHONPATH")) if p)
        before_env = shipyard_env | {"PYTHONPATH": pythonpath}
        specs.append(ServerSpec("before", f"shipyard before ({before.revision})", before_serve, before_env))
    return {spec.name: spec for spec in specs}


def ratio_table(results: dict[str, dict[str, list[WrkResult]]]) -> dict[str, dict[str, Ratio]]:
    """The RATIOS whose two servers ran, within each repetition (same moment, same machine state), per
    body, then summarised."""
    table: dict[str, dict[str, Ratio]] = {}
    for body in BODIES:
        table[body] = {}
        for spec in RATIOS:
            if spec.top not in results or spec.bottom not in results:
                continue
            pairs = zip(results[spec.top][body], results[spec.bottom][body], strict=True)
            values = [getattr(top, spec.metric) / getattr(bottom, spec.metric) for top, bottom in pairs]
            table[body][spec.label] = Ratio(values, **summarise(values))
    return table


def check_targets(
    ratios: dict[str, dict[str, Ratio]], results: dict[str, dict[str, list[WrkResult]]]
) -> list[dict[str, object]]:
    """The issue's four targets, each with its value and whether it is met."""
    single = ratios["single"]
    errors = sum(r.errors for per_body in results.values() for runs in per_body.values() for r in runs)
    speedup = single["shipyard / anchor req/s"].median
    p99 = single["anchor p99 / shipyard p99"].median
    floor = single["shipyard / floor req/s"].median
    return [
        {
            "target": f"shipyard req/s >= {TARGET_SPEEDUP:g}x anchor (1 row)",
            "value": f"{speedup:.1f}x",
            "met": speedup >= TARGET_SPEEDUP,
        },
        {
            "target": f"shipyard p99 <= anchor p99 / {TARGET_P99:g} (1 row)",
            "value": f"anchor p99 / shipyard p99 = {p99:.1f}x",
            "met": p99 >= TARGET_P99,
        },
        {"target": "zero errors in every measured run", "value": f"{errors} errors", "met": errors == 0},
        {
            "target": f"shipyard req/s >= floor req/s / {FLOOR_SLACK:g} (1 row)",
            "value": f"shipyard / floor = {floor:.2f}x (needs >= {1 / FLOOR_SLACK:.2f}x)",
            "met": floor >= 1 / FLOOR_SLACK,
        },
    ]


def markdown(
    specs: dict[str, ServerSpec],
    results: dict[str, dict[str, list[WrkResult]]],
    ready: dict[str, list[float]],
    ratios: dict[str, dict[str, Ratio]],
    targets: list[dict[str, object]],
    machine: dict[str, object],
    meta: dict[str, object],
    problems: dict[str, dict[str, int]],
) -> str:
    """The tables for BENCHMARKS.md, with the machine and method lines they need to be read."""
    v = machine["versions"] if isinstance(machine["versions"], dict) else {}
    lines = [
        f"Machine: {machine['cpu_model']}, nproc={machine['nproc']} (affinity {machine['affinity']}), "
        f"{machine['platform']}",
        f"Python {machine['python']}, mlflow {v.get('mlflow')}, fastapi {v.get('fastapi')}, "
        f"uvicorn {v.get('uvicorn')}, onnxruntime {v.get('onnxruntime')}, skl2onnx {v.get('skl2onnx')}, "
        f"scikit-learn {v.get('scikit-learn')}, shipyard {v.get('shipyard')}, {machine['wrk']}",
        f"Method: repeats={meta['repeats']}; each repetition starts every server fresh and alone "
        f"(order rotated), one uvicorn worker, server pinned with {meta['server_pinning']}; "
        f"`wrk -t1 -c{meta['connections']} -d{meta['duration_s']}s --latency` pinned with "
        f"{meta['client_pinning']}; one discarded {meta['warmup_s']} s warm-up per server per body; "
        f"POST /invocations, dataframe_split JSON; shipyard access log: {meta['access_log']}; "
        "ratios within each repetition, median (min–max).",
    ]
    if "before" in meta:
        before = meta["before"]
        assert isinstance(before, dict)
        lines.append(
            f"Before: `{before['command']}` with `PYTHONPATH={before['src']}` first (shipyard imported from "
            f"`{before['module']}`), same arguments and environment as shipyard; shipyard: "
            f"{before['shipyard_tree']} ({before['shipyard_revision']})."
        )
    lines += [
        "",
        "| body | server | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for body in BODIES:
        for name in specs:
            runs = results[name][body]
            rps = summarise([r.rps for r in runs])
            p99 = summarise([r.p99_ms for r in runs])
            p50 = statistics.median(r.p50_ms for r in runs)
            errors = sum(r.errors for r in runs)
            lines.append(
                f"| {BODY_LABEL[body]} | {specs[name].label} | {rps['median']:,.0f} "
                f"({rps['min']:,.0f}–{rps['max']:,.0f}) | {p50:.2f} | {p99['median']:.2f} "
                f"({p99['min']:.2f}–{p99['max']:.2f}) | {errors} |"
            )
    lines += ["", "| within each repetition | body | median | min | max |", "|---|---|---:|---:|---:|"]
    for body in BODIES:
        for name, r in ratios[body].items():
            lines.append(f"| {name} | {BODY_LABEL[body]} | {r.median:.2f}x | {r.min:.2f}x | {r.max:.2f}x |")
    starts = ", ".join(f"{name} {statistics.median(ready[name]):.1f} s" for name in specs)
    lines += ["", f"Start-up (spawn to first 200 answer), median: {starts}."]
    for name in specs:
        kinds: Counter[str] = Counter()
        for key, found in problems.items():
            if key.startswith(f"{name}-"):
                kinds.update(found)
        if kinds:
            listed = "; ".join(f"{n} x {k}" for k, n in kinds.most_common())
            lines.append(f"Error lines in the {name} log (all repetitions, warm-ups included): {listed}.")
    lines.append("")
    for t in targets:
        lines.append(f"- {t['target']}: **{'met' if t['met'] else 'NOT met'}** ({t['value']})")
    return "\n".join(lines)


def train_store(args: argparse.Namespace, home: Path, env: dict[str, str]) -> None:
    """Copy configs/ and train iris into ``home`` so ``models:/iris@champion`` exists there."""
    shutil.copytree(REPO / "configs", home / "configs")
    cmd = [args.shipyard, "train", "-c", "configs/iris.yaml", "-q"]
    proc = subprocess.run(
        cmd, cwd=home, env=child_env(env, {"SHIPYARD_HOME": str(home)}), capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise BenchError(
            f"training failed (exit {proc.returncode}): {' '.join(cmd)} (cwd {home})\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )


def parity_check(
    specs: dict[str, ServerSpec],
    args: argparse.Namespace,
    home: Path,
    env: dict[str, str],
    pin: list[str],
    bodies: dict[str, bytes],
    servers: list[Running],
) -> dict[str, list[object]]:
    """Start all the servers together, check identical predictions on both bodies, stop them; the
    reference (the anchor's answers)."""
    started = time.perf_counter()
    group = [start(spec, home, env, pin, home / "logs", "parity") for spec in specs.values()]
    servers.extend(group)
    try:
        for server in group:
            wait_ready(server, bodies["single"], started, args.ready_timeout)
        reference: dict[str, list[object]] = {}
        for body in BODIES:
            answers = {server.spec.name: predictions(server, bodies[body]) for server in group}
            check_same(answers, BODY_LABEL[body], rows_in(bodies[body]))
            reference[body] = answers["anchor"]
        return reference
    finally:
        for server in group:
            stop(server)


def main(argv: Sequence[str] | None = None) -> int:
    """Train, check parity, measure alternating, summarise, print Markdown, write JSON."""
    args = parse_args(argv)
    for exe in (args.python, args.shipyard, args.mlflow, args.wrk):
        if shutil.which(exe) is None:
            print(
                f"error: {exe} not found (run `make install` / install wrk, or pass its path)",
                file=sys.stderr,
            )
            return 2
    server_pin, server_pinning = pin_prefix(args.server_cpu, not args.no_pin)
    client_pin, client_pinning = pin_prefix(args.client_cpu, not args.no_pin)
    home = Path(tempfile.mkdtemp(prefix="shipyard-bench-serve-", dir=args.tmpdir))
    (home / "logs").mkdir()
    # PATH: the venv's bin first, because `mlflow models serve` execs the first `uvicorn` on PATH.
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
        "PATH": f"{Path(args.python).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    specs = build_specs(args, home)
    servers: list[Running] = []
    order = list(specs)  # rotated by one each repetition
    results: dict[str, dict[str, list[WrkResult]]] = {n: {b: [] for b in BODIES} for n in order}
    warmups: list[dict[str, object]] = []
    warmup_errors = 0
    runs: list[dict[str, object]] = []
    ready: dict[str, list[float]] = {n: [] for n in order}
    before_meta: dict[str, object] = {}  # what was compared, taken before any server starts
    problems: dict[str, dict[str, int]] = {}
    try:
        machine = machine_info(args.python, args.wrk, env)
        print(f"servers {server_pinning}, wrk {client_pinning}; store under {home}", file=sys.stderr)
        if args.before is not None:
            old, new = check_before(args.python, args.before, specs, home, env)
            shipyard_tree = new.parents[2]  # <tree>/src/shipyard/__init__.py
            before_meta = {
                "src": str(args.before.src),
                "revision": args.before.revision,
                "module": str(old),
                "command": " ".join(specs["before"].command(0)),
                "env": specs["before"].env | {"SHIPYARD_HOME": "<temp store>"},
                "shipyard_tree": str(shipyard_tree),
                "shipyard_revision": git_revision(shipyard_tree) or "not a git checkout",
            }
            print(f"before: shipyard {args.before.revision} from {old}; shipyard from {new}", file=sys.stderr)
        train_store(args, home, env)
        paths = make_bodies(home, args.seed)
        bodies = {name: path.read_bytes() for name, path in paths.items()}
        reference = parity_check(specs, args, home, env, server_pin, bodies, servers)
        print(f"parity: {', '.join(order)} return identical predictions on both bodies", file=sys.stderr)
        for rep in range(1, args.repeats + 1):
            shift = (rep - 1) % len(order)
            for name in order[shift:] + order[:shift]:
                server = start(specs[name], home, env, server_pin, home / "logs", f"rep{rep}")
                servers.append(server)
                wait_ready(server, bodies["single"], time.perf_counter(), args.ready_timeout)
                assert server.ready_s is not None
                ready[name].append(server.ready_s)
                for body in BODIES:
                    if predictions(server, bodies[body]) != reference[body]:
                        raise BenchError(f"{name} (rep {rep}) changed its predictions on {BODY_LABEL[body]}")
                    if args.warmup:
                        w = run_wrk(args, server.port, paths[body], args.warmup, client_pin, env)
                        warmups.append({"rep": rep, "server": name, "body": body, **asdict(w)})
                        warmup_errors += w.errors
                    r = run_wrk(args, server.port, paths[body], args.duration, client_pin, env)
                    results[name][body].append(r)
                    runs.append({"rep": rep, "server": name, "body": body, **asdict(r), "errors": r.errors})
                    print(
                        f"rep {rep}/{args.repeats} {name:<8} {BODY_LABEL[body]:>8}: {r.rps:9,.1f} req/s  "
                        f"p50 {r.p50_ms:8.2f} ms  p99 {r.p99_ms:8.2f} ms  errors {r.errors}",
                        file=sys.stderr,
                    )
                stop(server)
                kinds = log_problems(server.log)
                if kinds:
                    problems[f"{name}-rep{rep}"] = dict(kinds)
                    print(
                        f"{name} log {server.log.name}: " + "; ".join(f"{n} x {k}" for k, n in kinds.items()),
                        file=sys.stderr,
                    )
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for server in servers:
            stop(server)
        if args.keep:
            print(f"kept store, bodies and logs under {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)

    ratios = ratio_table(results)
    targets = check_targets(ratios, results)
    meta: dict[str, object] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "repeats": args.repeats,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "access_log": {"default": "service default (on)", "on": "on", "off": "off"}[args.access_log],
        "server_pinning": server_pinning,
        "client_pinning": client_pinning,
        "model_uri": MODEL_URI,
        "bodies": {name: {"rows": rows_in(b), "bytes": len(b)} for name, b in bodies.items()},
        "rows_seed": args.seed,
        "commands": {name: " ".join(spec.command(0)) for name, spec in specs.items()},  # port 0: a free port
        "shipyard_env": specs["shipyard"].env | {"SHIPYARD_HOME": "<temp store>"},
        "child_env": "SHIPYARD_*/MLFLOW_* unset; MLFLOW_DISABLE_TELEMETRY=true, DO_NOT_TRACK=1, "
        "MLFLOW_TRACKING_URI=sqlite:///<temp store>/mlflow.db, venv bin first on PATH",
        "warmup_errors": warmup_errors,
    }
    if before_meta:
        meta["before"] = before_meta
    table = markdown(specs, results, ready, ratios, targets, machine, meta, problems)
    print(table)
    if warmup_errors:
        print(f"\nnote: {warmup_errors} errors in the discarded warm-up runs", file=sys.stderr)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    output = {
        "meta": meta,
        "machine": machine,
        "runs": runs,
        "warmups": warmups,
        "ready_s": ready,
        "summary": {
            name: {
                body: {
                    "rps": summarise([r.rps for r in results[name][body]]),
                    "p50_ms": summarise([r.p50_ms for r in results[name][body]]),
                    "p99_ms": summarise([r.p99_ms for r in results[name][body]]),
                    "errors": sum(r.errors for r in results[name][body]),
                }
                for body in BODIES
            }
            for name in order
        },
        "ratios": {body: {name: asdict(r) for name, r in per.items()} for body, per in ratios.items()},
        "targets": targets,
        "all_targets_met": all(t["met"] for t in targets),
        "server_log_problems": problems,
        "markdown": table,
    }
    args.output.write_text(json.dumps(output, indent=2) + "\n")
    print(f"\nwrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
