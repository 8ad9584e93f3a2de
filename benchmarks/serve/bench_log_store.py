"""What the prediction log costs on the serving path, by store: `shipyard serve` with the log off, on
the embedded SQLite store, and on PostgreSQL, in the same run.

Same machinery and method as bench_serve.py (whose helpers this imports: training, bodies, server
start/stop, wrk): the iris champion (scaler + RandomForest, 100 trees) trained into a temporary store;
each server one uvicorn worker pinned with ``taskset -c 0``, wrk (``-t1 -c16 --latency``) pinned with
``taskset -c 1``; one row and 100 rows as ``dataframe_split`` JSON on ``POST /invocations``. Three
configurations of the same ``shipyard serve --models iris --no-auth``:

- ``off``      ``SHIPYARD_PREDICTION_LOG=false``;
- ``sqlite``   the log on, the default store (``SHIPYARD_MONITORING_URL`` unset: an SQLite file in the
  temporary folder, a fresh file for every server start, named by ``SHIPYARD_PREDICTION_LOG_PATH``);
- ``postgres`` the log on, ``SHIPYARD_MONITORING_URL=postgresql+psycopg://...``: a fresh database for
  every server start on one throwaway cluster (tests/pg_cluster.py's ``PostgresCluster``: initdb +
  pg_ctl on 127.0.0.1, as an unprivileged user when run as root), restarted with production
  durability (fsync, synchronous_commit and full_page_writes on; ``--pg-settings fast`` keeps the test
  fixture's fsync=off) and its processes pinned to wrk's core, so the api's core pays only the api's
  share of the writing (in production the database is another machine).

In every configuration the in-process monitor is off (``SHIPYARD_MONITOR_IN_PROCESS=false``, as on api
replicas when a ``shipyard monitor`` runs): this measures the writes; the monitor's cost is
benchmarks/monitoring/bench_monitor.py's. Alias following is off (``SHIPYARD_RELOAD_INTERVAL_SECONDS=0``),
the access log as the service's default.

Each repetition starts every configuration fresh and alone (order rotated), checks it answers both
bodies, runs one discarded warm-up per body, then measures. After the last run of a server the
harness waits for its writer (``shipyard_prediction_log_written_total`` on /metrics) and reads that
counter and ``shipyard_prediction_log_dropped_total``; the server then gets SIGTERM (which drains the
log) and the rows stored are counted in its store. Rows acknowledged = the 2xx answers the harness and
wrk received times the rows per body; the store may hold a few more (requests answered after wrk
stopped reading, at most ``connections`` per wrk run), never fewer: fewer is reported as missing.

Reported: req/s, p50, p99 and errors per configuration and body, median (min–max); the ratios
sqlite/off and postgres/off req/s (and p99) within each repetition; rows acknowledged, written,
stored, dropped, missing. Aim (issue 12): logging to PostgreSQL costs under 10% of the log-off
throughput on single rows (median postgres/off >= 0.90).

Run from the repo root: ``.venv/bin/python benchmarks/serve/bench_log_store.py --repeats 3`` (about 6
minutes); ``--quick`` is a smoke test (2 repetitions of 3 s runs, about 2 minutes).
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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: tests.pg_cluster
import bench_serve as bs
from harness import benchmark_parser, git_revision, pin_prefix, summarise

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "bench_log_store.json"
CONFIGS = ("off", "sqlite", "postgres")
LABEL = {
    "off": "prediction log off",
    "sqlite": "log on, SQLite (default store)",
    "postgres": "log on, PostgreSQL",
}
AIM_COST = 0.10  # postgres costs under 10% of the log-off req/s, single row
WRITER_WAIT_S = 15.0  # how long the harness waits for the writer to catch up after the last run
METRIC_LINE = re.compile(r"^(shipyard_prediction_log_(?:written|dropped)_total)\s+([0-9.eE+-]+)\s*$", re.M)


# --- a throwaway PostgreSQL cluster (shared with benchmarks/monitoring/bench_monitor.py) ----------------


def _pg_command(cluster: Any, *argv: str) -> list[str]:
    command = [str(cluster.bindir / argv[0]), *argv[1:]]
    return ["runuser", "-u", cluster.os_user, "--", *command] if cluster.os_user else command


def restart_durable(cluster: Any) -> None:
    """Restart the fixture's cluster without its test-speed options (fsync, synchronous_commit and
    full_page_writes back to PostgreSQL's defaults, on), so commits cost what they cost in production."""
    options = f"-p {cluster.port} -k {cluster.socket_dir} -c listen_addresses={cluster.host}"
    proc = subprocess.run(
        _pg_command(cluster, "pg_ctl", "restart", "-D", str(cluster.data), "-l", str(cluster.log), "-w",
                    "-t", "60", "-m", "fast", "-o", options),
        cwd=cluster.base, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise bs.BenchError(f"pg_ctl restart failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    cluster._wait_until_accepting(30)  # the fixture's own readiness probe


def pg_settings(cluster: Any) -> dict[str, str]:
    """The durability settings the running cluster reports."""
    with cluster.admin_connect() as conn:
        return {
            name: str(conn.execute(f"SHOW {name}").fetchone()[0])
            for name in ("server_version", "fsync", "synchronous_commit", "full_page_writes")
        }


def pin_postgres(cluster: Any, cpu: int) -> str:
    """Pin the postmaster and its current children to ``cpu``; backends forked later inherit it."""
    if not hasattr(os, "sched_setaffinity") or cpu not in os.sched_getaffinity(0):
        return "not pinned"
    leader = int((cluster.data / "postmaster.pid").read_text().split()[0])
    pids = [leader]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == leader:
                pids.append(int(stat.parent.name))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(pid, {cpu})
    return f"CPU {cpu} (postmaster {leader} and {len(pids) - 1} children)"


@contextlib.contextmanager
def throwaway_postgres(
    parent: Path | None, cpu: int | None, durable: bool
) -> Iterator[tuple[Any, dict[str, str]]]:
    """A started cluster and what it runs with (version, durability, pinning); stopped and removed after."""
    from tests.pg_cluster import PostgresCluster, find_bindir

    if find_bindir() is None:
        raise bs.BenchError("PostgreSQL is not installed (apt-get install postgresql)")
    # under /tmp by default: the server's user (not root) must be able to reach the folder
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="shipyard-bench-pg-", dir=parent)))
    try:
        cluster.start()
        if durable:
            restart_durable(cluster)
        info = pg_settings(cluster)
        info["pinning"] = pin_postgres(cluster, cpu) if cpu is not None else "not pinned"
        yield cluster, info
    finally:
        cluster.stop()


def store_rows(url: str) -> tuple[int, int]:
    """Requests and rows in a monitoring store's prediction_requests table."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            # a store written before schema 2 (an older Shipyard) has its chunks only
            table = "prediction_requests" if sa.inspect(conn).has_table("prediction_requests") else None
            query = (
                "SELECT count(*), coalesce(sum(rows), 0) FROM prediction_requests"
                if table
                else "SELECT coalesce(sum(requests), 0), coalesce(sum(rows), 0) FROM prediction_chunks"
            )
            requests, rows = conn.exec_driver_sql(query).one()
    finally:
        engine.dispose()
    return int(requests), int(rows)


# --- the serving measurement --------------------------------------------------------------------------


@dataclass
class Rows:
    """Rows one server start acknowledged to its clients, and what its log says it did with them."""

    acknowledged: int = 0
    written: int = 0  # shipyard_prediction_log_written_total once the writer caught up
    dropped: int = 0  # shipyard_prediction_log_dropped_total
    stored: int = 0  # rows in the store after SIGTERM
    stored_requests: int = 0
    in_flight_bound: int = 0  # rows wrk may have left unread when it stopped: connections x rows per run
    logged: bool = True

    @property
    def missing(self) -> int:
        """Acknowledged rows the store lacks (none can be missing with the log off: nothing is kept)."""
        return max(0, self.acknowledged - self.stored) if self.logged else 0

    @property
    def surplus(self) -> int:
        """Rows stored beyond those acknowledged: answers wrk stopped reading, at most in_flight_bound;
        more would mean rows written twice."""
        return max(0, self.stored - self.acknowledged)


def log_counters(port: int) -> dict[str, float]:
    """The prediction log's written and dropped counters from the server's /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode()
    finally:
        conn.close()
    if response.status != 200:
        raise bs.BenchError(f"/metrics answered HTTP {response.status}")
    found = {name: float(value) for name, value in METRIC_LINE.findall(text)}
    return {
        "written": found.get("shipyard_prediction_log_written_total", 0.0),
        "dropped": found.get("shipyard_prediction_log_dropped_total", 0.0),
    }


def wait_for_writer(port: int, acknowledged: int) -> dict[str, float]:
    """Poll /metrics until the writer has written (or dropped) every acknowledged row, or its counters
    stop moving for a second, or WRITER_WAIT_S passes."""
    deadline = time.monotonic() + WRITER_WAIT_S
    last, still_since = log_counters(port), time.monotonic()
    while time.monotonic() < deadline:
        if last["written"] + last["dropped"] >= acknowledged and time.monotonic() - still_since > 0.3:
            break
        time.sleep(0.2)
        now = log_counters(port)
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since > 1.0:
            break
    return last


def server_spec(args: argparse.Namespace, config: str, home: Path, extra: dict[str, str]) -> bs.ServerSpec:
    """``shipyard serve`` in one of the three configurations (``extra``: where this start's store is)."""
    env = {
        "SHIPYARD_HOME": str(home),
        "SHIPYARD_RELOAD_INTERVAL_SECONDS": "0",
        "SHIPYARD_MONITOR_IN_PROCESS": "false",
        "SHIPYARD_PREDICTION_LOG": "false" if config == "off" else "true",
        **extra,
    }

    def command(port: int) -> list[str]:
        serve = [args.shipyard, "serve", "--host", "127.0.0.1", "--port", str(port)]
        return [*serve, "--models", "iris", "--no-auth"]

    if config == "before":  # an earlier Shipyard's tree first on PYTHONPATH, as bench_serve's --before-src
        before: bs.BeforeSource = args.before
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(before.src), os.environ.get("PYTHONPATH")) if p)

        def command_before(port: int) -> list[str]:
            return [args.python, "-m", "shipyard", *command(port)[1:]]

        return bs.ServerSpec(config, f"log on, SQLite, before ({before.revision})", command_before, env)
    return bs.ServerSpec(config, LABEL[config], command, env)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    venv = REPO / ".venv" / "bin"
    parser = benchmark_parser(__doc__ or "", repeats=3, output=DEFAULT_OUTPUT, cpu=None, seed=0, tmpdir=True)
    parser.add_argument("--duration", type=int, default=10, help="Seconds of each measured wrk run.")
    parser.add_argument("--warmup", type=int, default=3, help="Seconds of the discarded wrk run (0: none).")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (one wrk thread).")
    parser.add_argument(
        "--quick", action="store_true", help="Smoke test: 2 repetitions, 3 s runs, 1 s warm-ups."
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the servers are pinned to.")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU wrk (and PostgreSQL) are pinned to.")
    parser.add_argument(
        "--pg-settings",
        choices=("durable", "fast"),
        default="durable",
        help="'durable': PostgreSQL's default fsync/synchronous_commit/full_page_writes (on); 'fast': "
        "the test fixture's (off).",
    )
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help=f"Comma-separated subset of {', '.join(CONFIGS)}."
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=120.0, help="Seconds to wait for a server's first answer."
    )
    parser.add_argument("--python", default=str(venv / "python"), help="The venv's interpreter.")
    parser.add_argument("--shipyard", default=str(venv / "shipyard"), help="The shipyard entry point.")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="The wrk binary.")
    parser.add_argument("--keep", action="store_true", help="Leave the temporary store and server logs.")
    parser.add_argument(
        "--before-src",
        type=Path,
        default=None,
        metavar="DIR",
        help="Add a fourth configuration, 'before': the log on SQLite served by an earlier Shipyard's source "
        "tree in DIR (`python -m shipyard serve` with DIR/src first on PYTHONPATH, checked at start-up), "
        "to show what a change did to the log's cost in the same run.",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.duration, args.warmup = min(args.repeats, 2), 3, 1
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if not args.configs or any(c not in CONFIGS for c in args.configs):
        parser.error(f"--configs: choose from {', '.join(CONFIGS)}")
    args.before = None
    if args.before_src is not None:
        try:
            args.before = bs.BeforeSource.at(args.before_src)
        except ValueError as exc:
            parser.error(f"--before-src: {exc}")
        args.configs.append("before")
        LABEL["before"] = f"log on, SQLite, before ({args.before.revision})"
    if args.duration < 1 or args.warmup < 0 or args.connections < 1:
        parser.error("--duration and --connections must be at least 1, --warmup at least 0")
    return args


def ratios(
    results: dict[str, dict[str, list[bs.WrkResult]]], configs: list[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """store/off req/s and p99 within each repetition, per body."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for body in bs.BODIES:
        table[body] = {}
        for store in ("sqlite", "postgres", "before"):
            if store not in configs or "off" not in configs:
                continue
            for metric, label in (("rps", "req/s"), ("p99_ms", "p99")):
                pairs = zip(results[store][body], results["off"][body], strict=True)
                values = [getattr(a, metric) / getattr(b, metric) for a, b in pairs]
                table[body][f"{store} / off {label}"] = {"per_repetition": values, **summarise(values)}
        if "sqlite" in configs and "before" in configs:
            pairs = zip(results["sqlite"][body], results["before"][body], strict=True)
            values = [a.rps / b.rps for a, b in pairs]
            table[body]["sqlite / before req/s"] = {"per_repetition": values, **summarise(values)}
    return table


def markdown(
    args: argparse.Namespace,
    results: dict[str, dict[str, list[bs.WrkResult]]],
    rows: dict[str, list[Rows]],
    table: dict[str, dict[str, dict[str, Any]]],
    machine: dict[str, Any],
    meta: dict[str, Any],
) -> str:
    v = machine["versions"]
    pg = meta.get("postgres") or {}
    lines = [
        f"Machine: {machine['cpu_model']}, nproc={machine['nproc']} (affinity {machine['affinity']}), "
        f"{machine['platform']}; load average at start {machine['loadavg_at_start']}",
        f"Python {machine['python']}, fastapi {v.get('fastapi')}, uvicorn {v.get('uvicorn')}, "
        f"shipyard {v.get('shipyard')} ({meta['revision']}), {machine['wrk']}"
        + (
            f"; PostgreSQL {pg.get('server_version')} (fsync={pg.get('fsync')}, synchronous_commit="
            f"{pg.get('synchronous_commit')}, full_page_writes={pg.get('full_page_writes')}), pinned: "
            f"{pg.get('pinning')}"
            if pg
            else ""
        ),
        f"Method: repeats={args.repeats}; every configuration started fresh and alone each repetition "
        f"(order rotated), one uvicorn worker pinned with {meta['server_pinning']}; "
        f"`wrk -t1 -c{args.connections} -d{args.duration}s --latency` pinned with {meta['client_pinning']}; "
        f"one discarded {args.warmup} s warm-up per body; in-process monitor off; ratios within each "
        "repetition, median (min–max).",
        "",
        "| body | configuration | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for body in bs.BODIES:
        for config in args.configs:
            runs = results[config][body]
            rps, p99 = summarise([r.rps for r in runs]), summarise([r.p99_ms for r in runs])
            p50 = statistics.median(r.p50_ms for r in runs)
            lines.append(
                f"| {bs.BODY_LABEL[body]} | {LABEL[config]} | {rps['median']:,.0f} "
                f"({rps['min']:,.0f}–{rps['max']:,.0f}) | {p50:.2f} | {p99['median']:.2f} "
                f"({p99['min']:.2f}–{p99['max']:.2f}) | {sum(r.errors for r in runs)} |"
            )
    lines += ["", "| within each repetition | body | median | min | max |", "|---|---|---:|---:|---:|"]
    for body in bs.BODIES:
        for name, r in table[body].items():
            lines.append(
                f"| {name} | {bs.BODY_LABEL[body]} | {r['median']:.3f} | {r['min']:.3f} | {r['max']:.3f} |"
            )
    lines += [
        "",
        "| configuration | rows acknowledged | written (/metrics) | stored after SIGTERM | dropped "
        "| missing | stored beyond acknowledged (bound) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for config in args.configs:
        got = rows[config]
        lines.append(
            f"| {LABEL[config]} | {sum(r.acknowledged for r in got):,} | {sum(r.written for r in got):,} | "
            f"{sum(r.stored for r in got):,} | {sum(r.dropped for r in got):,} | "
            f"{sum(r.missing for r in got):,} | {sum(r.surplus for r in got):,} "
            f"({sum(r.in_flight_bound for r in got if r.logged):,}) |"
        )
    lines.append("")
    for line in meta["verdicts"]:
        lines.append(f"- {line}")
    return "\n".join(lines)


def verdicts(
    args: argparse.Namespace, table: dict[str, dict[str, dict[str, Any]]], rows: dict[str, list[Rows]]
) -> list[str]:
    out = []
    single = table.get("single", {})
    for store in ("sqlite", "postgres", "before"):
        ratio = single.get(f"{store} / off req/s")
        if ratio is None:
            continue
        cost = 1 - ratio["median"]
        aim = f"; aim under {AIM_COST:.0%}: **{'met' if cost < AIM_COST else 'NOT met'}**"
        said = (
            f"{store} costs {cost:.1%} of the log-off req/s"
            if cost >= 0
            else f"{store} measured faster than log off (noise: no cost visible)"
        )
        out.append(
            f"{said} (1 row, median {store}/off {ratio['median']:.3f}, min {ratio['min']:.3f}, "
            f"max {ratio['max']:.3f}){aim if store == 'postgres' else ''}"
        )
    for config in args.configs:
        if config == "off":
            continue
        missing = sum(r.missing for r in rows[config])
        dropped = sum(r.dropped for r in rows[config])
        beyond = [r for r in rows[config] if r.surplus > r.in_flight_bound]
        out.append(
            f"{config}: {missing} acknowledged rows missing from the store, {dropped} dropped by the log"
            + (" (every acknowledged row stored)" if missing == 0 and dropped == 0 else "")
            + (
                f"; {len(beyond)} server start(s) stored more rows than requests could explain "
                "(written twice?)"
                if beyond
                else ""
            )
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for exe in (args.python, args.shipyard, args.wrk):
        if shutil.which(exe) is None:
            print(f"error: {exe} not found (make install / apt-get install wrk)", file=sys.stderr)
            return 2
    server_pin, server_pinning = pin_prefix(args.server_cpu, not args.no_pin)
    client_pin, client_pinning = pin_prefix(args.client_cpu, not args.no_pin)
    home = Path(tempfile.mkdtemp(prefix="shipyard-bench-logstore-", dir=args.tmpdir))
    (home / "logs").mkdir()
    (home / "stores").mkdir()
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
        "PATH": f"{Path(args.python).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    results: dict[str, dict[str, list[bs.WrkResult]]] = {c: {b: [] for b in bs.BODIES} for c in args.configs}
    rows: dict[str, list[Rows]] = {c: [] for c in args.configs}
    runs: list[dict[str, Any]] = []
    servers: list[bs.Running] = []
    meta: dict[str, Any] = {}
    try:
        with contextlib.ExitStack() as stack:
            machine = bs.machine_info(args.python, args.wrk, env)
            cluster = None
            if "postgres" in args.configs:
                pg_cpu = args.client_cpu if not args.no_pin else None
                cluster, meta["postgres"] = stack.enter_context(
                    throwaway_postgres(args.tmpdir, pg_cpu, args.pg_settings == "durable")
                )
                print(f"postgres: {meta['postgres']}", file=sys.stderr)
            print(f"servers {server_pinning}, wrk {client_pinning}; store under {home}", file=sys.stderr)
            if args.before is not None:
                spec = server_spec(args, "before", home, {})
                module = bs.shipyard_module(args.python, home, bs.child_env(env, spec.env))
                if not module.is_relative_to(args.before.src):
                    raise bs.BenchError(
                        f"--before-src: shipyard imported from {module}, not {args.before.src}"
                    )
                meta["before"] = {"src": str(args.before.src), "revision": args.before.revision}
            bs.train_store(args, home, env)
            paths = bs.make_bodies(home, args.seed)
            bodies = {name: path.read_bytes() for name, path in paths.items()}
            for rep in range(1, args.repeats + 1):
                shift = (rep - 1) % len(args.configs)
                for config in args.configs[shift:] + args.configs[:shift]:
                    url = None
                    extra: dict[str, str] = {}
                    if config in ("sqlite", "before"):
                        db = home / "stores" / f"{config}-rep{rep}.db"
                        extra["SHIPYARD_PREDICTION_LOG_PATH"] = str(db)
                        url = f"sqlite:///{db}"
                    elif config == "postgres":
                        assert cluster is not None
                        url = cluster.create_database(f"serve_rep{rep}", f"bench_rep{rep}", f"pw-rep{rep}")
                        extra["SHIPYARD_MONITORING_URL"] = url
                    else:
                        url = f"sqlite:///{home / 'predictions.db'}"  # opened, never written
                    server = bs.start(server_spec(args, config, home, extra), home, env, server_pin,
                                      home / "logs", f"rep{rep}")  # fmt: skip
                    servers.append(server)
                    count = Rows(logged=config != "off")
                    bs.wait_ready(server, bodies["single"], time.perf_counter(), args.ready_timeout)
                    count.acknowledged += 1
                    for body in bs.BODIES:
                        answer = bs.predictions(server, bodies[body])
                        if len(answer) != bs.rows_in(bodies[body]):
                            raise bs.BenchError(f"{config}: {len(answer)} predictions for {body}")
                        count.acknowledged += len(answer)
                        rows_per = bs.rows_in(bodies[body])
                        if args.warmup:
                            w = bs.run_wrk(args, server.port, paths[body], args.warmup, client_pin, env)
                            count.acknowledged += (w.requests - w.non_2xx_3xx) * rows_per
                            count.in_flight_bound += args.connections * rows_per
                        r = bs.run_wrk(args, server.port, paths[body], args.duration, client_pin, env)
                        count.acknowledged += (r.requests - r.non_2xx_3xx) * rows_per
                        count.in_flight_bound += args.connections * rows_per
                        results[config][body].append(r)
                        runs.append(
                            {"rep": rep, "config": config, "body": body, **asdict(r), "errors": r.errors}
                        )
                        print(
                            f"rep {rep}/{args.repeats} {config:<8} {bs.BODY_LABEL[body]:>8}: {r.rps:9,.1f} "
                            f"req/s  p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  errors {r.errors}",
                            file=sys.stderr,
                        )
                    counters = wait_for_writer(server.port, count.acknowledged if config != "off" else 0)
                    count.written, count.dropped = int(counters["written"]), int(counters["dropped"])
                    bs.stop(server)
                    count.stored_requests, count.stored = store_rows(url)
                    rows[config].append(count)
                    print(f"rep {rep}/{args.repeats} {config:<8} rows: {asdict(count)}", file=sys.stderr)
                    if config in ("sqlite", "before") and not args.keep:
                        for path in db.parent.glob(db.name + "*"):
                            path.unlink()
    except bs.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for server in servers:
            bs.stop(server)
        if args.keep:
            print(f"kept store and logs under {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)

    table = ratios(results, args.configs)
    meta.update(
        {
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "revision": git_revision(REPO) or "not a git checkout",
            "repeats": args.repeats,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "quick": args.quick,
            "server_pinning": server_pinning,
            "client_pinning": client_pinning,
            "configs": args.configs,
            "pg_settings": args.pg_settings,
        }
    )
    meta["verdicts"] = verdicts(args, table, rows)
    text = markdown(args, results, rows, table, machine, meta)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    output = {
        "meta": meta,
        "machine": machine,
        "runs": runs,
        "rows": {
            c: [asdict(r) | {"missing": r.missing, "surplus": r.surplus} for r in got]
            for c, got in rows.items()
        },
        "summary": {
            c: {
                b: {
                    "rps": summarise([r.rps for r in results[c][b]]),
                    "p50_ms": summarise([r.p50_ms for r in results[c][b]]),
                    "p99_ms": summarise([r.p99_ms for r in results[c][b]]),
                    "errors": sum(r.errors for r in results[c][b]),
                }
                for b in bs.BODIES
            }
            for c in args.configs
        },
        "ratios": table,
        "markdown": text,
    }
    args.output.write_text(json.dumps(output, indent=2) + "\n")
    print(f"\nwrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
