"""Where a single-row prediction's time goes, hop by hop (issue 13): the whole Shipyard app and the floor
(benchmarks/serve/minimal_onnx_server.py) driven in-process through ASGI, N requests in a loop, with a
timer around each hop; then both served by uvicorn and loaded with wrk (bench_serve's harness), so the
HTTP server's share is the difference between the wrk time per request and the in-process one.

Hops of `POST /invocations` (dataframe_split, one iris row; or housing with --model housing):
request context (request id, body limit, metrics, access log, all inside RequestContextMiddleware),
body read, auth, JSON parsing, envelope + validation (the batch the model takes), the model (engine,
plus building the answer), the record (per-variant metrics, prediction-log submit), the request
metrics, the access-log line, rendering (orjson), and the rest (the fast lane's own code, ASGI calls).
Timers cost ~0.2 us each; the table reports microseconds per request (median of --repeats runs).
Run from the repo root: `.venv/bin/python benchmarks/serve/profile_hops.py [--model housing]`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from harness import benchmark_parser, pin_prefix  # noqa: E402

SPENT: dict[str, int] = defaultdict(int)


def timed(hop: str, function: Callable[..., Any]) -> Callable[..., Any]:
    if asyncio.iscoroutinefunction(function):

        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter_ns()
            try:
                return await function(*args, **kwargs)
            finally:
                SPENT[hop] += time.perf_counter_ns() - started

        return timed_async

    def timed_sync(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT[hop] += time.perf_counter_ns() - started

    return timed_sync


def instrument() -> None:
    """Timers around each hop, patched where the request path looks them up."""
    import orjson

    from shipyard.inference.ready import ReadyModel
    from shipyard.monitoring.prediction_log import PredictionLog
    from shipyard.serving import fastlane, middleware
    from shipyard.serving.accesslog import AccessLog
    from shipyard.serving.dataplane import DataPlane
    from shipyard.serving.metrics import ServiceMetrics
    from shipyard.serving.routes import invocations

    fastlane._read_body = timed("body read", fastlane._read_body)
    invocations.authorize = timed("auth", invocations.authorize)
    invocations.parse_json = timed("JSON parsing", invocations.parse_json)
    invocations.batch_from_mlflow_json = timed("envelope + validation", invocations.batch_from_mlflow_json)
    ReadyModel.predict = timed("model (engine + answer)", ReadyModel.predict)
    from shipyard.inference import compiled, engines

    for engine in (engines.OnnxEngine, engines.SklearnEngine, compiled.CompiledPipeline):
        engine.predict = timed("  of which: the engine", engine.predict)  # type: ignore[method-assign]
    DataPlane._record = timed("record (metrics + log submit)", DataPlane._record)
    PredictionLog.submit = timed("  of which: prediction-log submit", PredictionLog.submit)
    ServiceMetrics.request_done = timed("request metrics", ServiceMetrics.request_done)
    AccessLog.write = timed("access-log line", AccessLog.write)

    class Orjson:
        OPT_SERIALIZE_NUMPY = orjson.OPT_SERIALIZE_NUMPY
        dumps = staticmethod(timed("rendering (orjson)", orjson.dumps))
        loads = staticmethod(orjson.loads)

    fastlane.orjson = Orjson  # type: ignore[assignment]
    middleware.RequestContextMiddleware.__call__ = timed(  # type: ignore[method-assign]
        "TOTAL in-process", middleware.RequestContextMiddleware.__call__
    )


async def drive(app: Any, body: bytes, count: int, total_hop: str | None) -> float:
    """``count`` requests through ``app`` in-process; microseconds per request."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/invocations",
        "raw_path": b"/invocations",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter_ns()
    for _ in range(count):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter_ns() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"answers other than 200: {sorted(set(statuses))}")
    return elapsed / count / 1e3


def train(home: Path, model: str) -> None:
    shutil.copytree(REPO / "configs", home / "configs")
    (home / "data").mkdir()
    (home / "data" / "raw").symlink_to(REPO / "data" / "raw")
    subprocess.run(
        [str(Path(sys.executable).parent / "shipyard"), "train", "-c", f"configs/{model}.yaml", "-q"],
        cwd=home,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"},
        check=True,
        capture_output=True,
    )


def body_for(model: str, body: str = "single") -> bytes:
    if model == "iris":
        from bench_serve import make_bodies

        folder = Path(tempfile.mkdtemp())
        try:
            return make_bodies(folder, 0)[body].read_bytes()
        finally:
            shutil.rmtree(folder)
    from bench_housing import bodies

    folder = Path(tempfile.mkdtemp())
    try:
        return bodies(folder)["single"].read_bytes()
    finally:
        shutil.rmtree(folder)


async def profile_shipyard(home: Path, model: str, body: bytes, count: int, repeats: int) -> dict[str, float]:
    from shipyard.config.settings import Settings
    from shipyard.serving.app import create_app

    settings = Settings(
        home=home,
        tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
        models=[model],
        auth_enabled=False,
        reload_interval_seconds=0,
        drift_interval_seconds=0,
    )
    import io

    from shipyard.serving import accesslog

    sink = io.StringIO()
    original = accesslog.AccessLog.__init__

    def quiet(self: Any, stream: Any = None, max_lines: int = 256) -> None:
        original(self, sink, max_lines)  # the lines are made and written, to memory not the terminal

    accesslog.AccessLog.__init__ = quiet  # type: ignore[method-assign]
    app = create_app(settings)
    runs: list[dict[str, float]] = []
    async with app.router.lifespan_context(app):
        await drive(app, body, 200, None)  # warm-up
        for _ in range(repeats):
            SPENT.clear()
            per_request = await drive(app, body, count, "TOTAL in-process")
            hops = {hop: ns / count / 1e3 for hop, ns in SPENT.items()}
            hops["wall clock per request"] = per_request
            runs.append(hops)
            sink.seek(0)
            sink.truncate()
    return {hop: statistics.median(run.get(hop, 0.0) for run in runs) for hop in runs[0]}


async def profile_floor(home: Path, model: str, body: bytes, count: int, repeats: int) -> float:
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    from minimal_onnx_server import create_app

    app = create_app(f"models:/{model}@champion")
    await drive(app, body, 200, None)
    return statistics.median([await drive(app, body, count, None) for _ in range(repeats)])


def wrk_rates(home: Path, model: str, body: bytes, args: Any) -> dict[str, float]:
    """Requests/s under wrk for shipyard and the floor, served by uvicorn (bench_serve's harness)."""
    from bench_serve import ServerSpec, child_env, run_wrk, start, stop, wait_ready

    env = child_env({"MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"})
    body_file = home / "body.json"
    body_file.write_bytes(body)
    server_pin, _ = pin_prefix(0, not args.no_pin)
    client_pin, _ = pin_prefix(1, not args.no_pin)

    def shipyard(port: int) -> list[str]:
        exe = str(Path(sys.executable).parent / "shipyard")
        return [exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--models", model, "--no-auth"]

    def floor(port: int) -> list[str]:
        script = str(HERE / "minimal_onnx_server.py")
        return [sys.executable, script, "--model-uri", f"models:/{model}@champion", "--port", str(port)]

    extra = dict(item.split("=", 1) for item in args.env)
    specs = [ServerSpec("shipyard", "shipyard", shipyard, {"SHIPYARD_HOME": str(home), **extra})]
    if model == "iris":
        specs.append(ServerSpec("floor", "floor", floor))
    wrk_args = type("A", (), {"wrk": shutil.which("wrk") or "wrk", "connections": 16})()
    rates: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.repeats):
        for spec in specs:
            server = start(spec, home, env, server_pin, home, spec.name)
            try:
                wait_ready(server, body, time.perf_counter(), 180)
                run_wrk(wrk_args, server.port, body_file, 2, client_pin, env)  # type: ignore[arg-type]
                result = run_wrk(wrk_args, server.port, body_file, args.duration, client_pin, env)  # type: ignore[arg-type]
                rates[spec.name].append(result.rps)
            finally:
                stop(server)
    return {name: statistics.median(values) for name, values in rates.items()}


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(
        __doc__.splitlines()[0] + " (see the module docstring).",
        repeats=3,
        output=REPO / "benchmarks" / "results" / "profile_hops.json",
        cpu=None,
    )
    parser.add_argument("--model", choices=["iris", "housing"], default="iris")
    parser.add_argument("--requests", type=int, default=5000, help="In-process requests per repetition.")
    parser.add_argument("--duration", type=int, default=8, help="Seconds of each measured wrk run.")
    parser.add_argument("--no-wrk", action="store_true", help="Only the in-process breakdown.")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="Extra environment for the served shipyard (SHIPYARD_PREDICTION_LOG=false: that part's cost).",
    )
    parser.add_argument(
        "--body",
        choices=["single", "rows100"],
        default="single",
        help="iris only: one row, or bench_serve's 100 distinct rows.",
    )
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="profile-hops-"))
    try:
        train(home, args.model)
        body = body_for(args.model, args.body)
        rates = {} if args.no_wrk else wrk_rates(home, args.model, body, args)
        instrument()
        hops = asyncio.run(profile_shipyard(home, args.model, body, args.requests, args.repeats))
        floor = (
            asyncio.run(profile_floor(home, args.model, body, args.requests, args.repeats))
            if args.model == "iris"
            else None
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    total = hops.pop("TOTAL in-process")
    wall = hops.pop("wall clock per request")
    named = sum(v for k, v in hops.items() if not k.startswith("  "))
    lines = [
        f"{args.model}, POST /invocations, {'one row' if args.body == 'single' else '100 rows'}; "
        f"in-process: {args.requests} requests x {args.repeats}",
        "",
        "| hop | us per request | share of the in-process total |",
        "|---|---|---|",
    ]
    order = [
        "body read",
        "auth",
        "JSON parsing",
        "envelope + validation",
        "model (engine + answer)",
        "  of which: the engine",
        "record (metrics + log submit)",
        "  of which: prediction-log submit",
        "request metrics",
        "access-log line",
        "rendering (orjson)",
    ]
    for hop in order:
        if hop in hops:
            lines.append(f"| {hop} | {hops[hop]:.1f} | {hops[hop] / total:.0%} |")
    rest = total - named
    lines.append(f"| the rest (fast lane, middleware, ASGI calls) | {rest:.1f} | {rest / total:.0%} |")
    lines.append(f"| **in-process total** | **{total:.1f}** | 100% |")
    result: dict[str, Any] = {"model": args.model, "hops_us": hops, "in_process_us": total, "wall_us": wall}
    if floor is not None:
        lines.append(
            f"| floor in-process total (FastAPI + ONNX, no checks) | {floor:.1f} | {floor / total:.0%} |"
        )
        result["floor_in_process_us"] = floor
    if rates:
        lines += [
            "",
            "| served by uvicorn, wrk -c16 | req/s | us per request | HTTP server + socket (us) |",
            "|---|---|---|---|",
        ]
        for name, rps in rates.items():
            inner = total if name == "shipyard" else (floor or 0.0)
            lines.append(f"| {name} | {rps:,.0f} | {1e6 / rps:.1f} | {1e6 / rps - inner:.1f} |")
        result["wrk_rps"] = rates
    text = "\n".join(lines)
    print(text)
    result["markdown"] = text
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
