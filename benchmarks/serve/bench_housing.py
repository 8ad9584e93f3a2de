"""Serve the housing champion (imputers, a scaler, 43 one-hot encoders, a 100-tree forest) three ways and
load each with wrk, same harness as ``bench_serve.py``:

- ``anchor``   ``mlflow models serve -m models:/housing@champion --env-manager local --workers 1``;
- ``shipyard`` ``shipyard serve --models housing --no-auth``: the compiled numpy path;
- ``before``   the same ``shipyard serve`` with ``SHIPYARD_FAST_PATH=false``: scikit-learn's pipeline,
               which is what served housing before the compiled path (the before/after of the change).

One uvicorn worker each, pinned to one CPU, wrk pinned to the other; POST /invocations with a
``dataframe_split`` body of one row and of 100 rows of the data (a missing category is sent as the
imputer's fill value, "missing", which prices the same: MLflow's server reads a JSON null in a text
column as None, which scikit-learn's imputer does not take for missing). Before measuring, every server must
return identical prices. Reports req/s, p50, p99, errors and within-repetition ratios (median of the
repetitions). Target (issue 13): shipyard >= 20x the anchor's req/s on one row. Run from the repo root.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_serve import (  # noqa: E402
    BenchError,
    ServerSpec,
    WrkResult,
    child_env,
    machine_info,
    predictions,
    run_wrk,
    start,
    stop,
    wait_ready,
)
from harness import benchmark_parser, pin_prefix  # noqa: E402

REPO = HERE.parent.parent
MODEL_URI = "models:/housing@champion"
TARGET = 20.0
MANY = 100


def parse_args(argv: list[str] | None) -> Any:
    venv = Path(sys.executable).parent
    parser = benchmark_parser(
        __doc__.splitlines()[0] + " (see the module docstring).",
        repeats=3,
        output=REPO / "benchmarks" / "results" / "bench_housing.json",
    )
    parser.add_argument("--duration", type=int, default=10, help="Seconds of each measured wrk run.")
    parser.add_argument("--warmup", type=int, default=2, help="Seconds of the discarded warm-up run.")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (one wrk thread).")
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the servers are pinned to.")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU wrk is pinned to.")
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="Seconds to wait for a server.")
    parser.add_argument("--shipyard", default=str(venv / "shipyard"), help="The shipyard entry point.")
    parser.add_argument("--mlflow", default=str(venv / "mlflow"), help="The mlflow entry point.")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="The wrk binary.")
    return parser.parse_args(argv)


def bodies(folder: Path) -> dict[str, Path]:
    """One row and MANY rows of the housing test split with every category present, as MLflow's
    dataframe_split JSON (missing numbers as null)."""
    import numpy as np

    sys.path.insert(0, str(REPO / "src"))
    from shipyard.config.loading import load_config
    from shipyard.data import DataLoader

    config = load_config(REPO / "configs" / "housing.yaml")
    frame = DataLoader(config.dataset.source, base_dir=REPO).load().frame
    features = config.feature_columns
    columns = config.dataset.columns
    text = [c for c in features if columns[c].feature_kind == "categorical"]
    # a missing category is sent as the imputer's own fill value (the same price either way), except in
    # columns whose contract lists the allowed values: those rows are left out
    listed = [c for c in text if columns[c].allowed]
    usable = frame[frame[listed].notna().all(axis=1)].sample(frac=1.0, random_state=0).copy()
    usable[text] = usable[text].fillna(config.features.categorical_fill)
    out = {}
    for name, rows in (("single", usable.head(1)), ("rows100", usable.head(MANY))):
        data = rows[features].astype(object).where(rows[features].notna(), None).to_numpy().tolist()
        body = {"dataframe_split": {"columns": features, "data": data}}
        path = folder / f"{name}.json"
        path.write_text(json.dumps(body, default=lambda v: v.item() if isinstance(v, np.generic) else v))
        out[name] = path
    return out


def main(argv: list[str] | None = None) -> int:
    import subprocess

    args = parse_args(argv)
    server_pin, _ = pin_prefix(args.server_cpu, not args.no_pin)
    client_pin, _ = pin_prefix(args.client_cpu, not args.no_pin)
    home = Path(tempfile.mkdtemp(prefix="bench-housing-"))
    # PATH: the venv's bin first, because `mlflow models serve` execs the first `uvicorn` on PATH
    path = f"{Path(sys.executable).parent}:{__import__('os').environ.get('PATH', '')}"
    env = child_env({"MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}", "PATH": path})
    try:
        shutil.copytree(REPO / "configs", home / "configs")
        (home / "data").mkdir()
        (home / "data" / "raw").symlink_to(REPO / "data" / "raw")
        print("training housing into a temporary store...", flush=True)
        subprocess.run(
            [args.shipyard, "train", "-c", "configs/housing.yaml", "-q"], cwd=home, env=env, check=True
        )
        files = bodies(home)
        shipyard_env = {"SHIPYARD_HOME": str(home), "SHIPYARD_RELOAD_INTERVAL_SECONDS": "0"}

        def anchor(port: int) -> list[str]:
            serve = [args.mlflow, "models", "serve", "-m", MODEL_URI, "--env-manager", "local"]
            return [*serve, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]

        def shipyard(port: int) -> list[str]:
            serve = [args.shipyard, "serve", "--host", "127.0.0.1", "--port", str(port)]
            return [*serve, "--models", "housing", "--no-auth"]

        specs = [
            ServerSpec("anchor", "anchor: `mlflow models serve --env-manager local`", anchor),
            ServerSpec("shipyard", "`shipyard serve` (compiled path)", shipyard, shipyard_env),
            ServerSpec(
                "before",
                "before: `shipyard serve`, SHIPYARD_FAST_PATH=false (scikit-learn)",
                shipyard,
                shipyard_env | {"SHIPYARD_FAST_PATH": "false"},
            ),
        ]
        results: dict[str, dict[str, list[WrkResult]]] = {
            s.name: {"single": [], "rows100": []} for s in specs
        }
        answers: dict[str, dict[str, list[object]]] = {}
        for repetition in range(args.repeats):
            order = specs[repetition % len(specs) :] + specs[: repetition % len(specs)]
            for spec in order:
                server = start(spec, home, env, server_pin, home, f"r{repetition}")
                try:
                    wait_ready(server, files["single"].read_bytes(), time.perf_counter(), args.ready_timeout)
                    for body, path in files.items():
                        answers.setdefault(spec.name, {})[body] = predictions(server, path.read_bytes())
                        run_wrk(args, server.port, path, args.warmup, client_pin, env)
                        result = run_wrk(args, server.port, path, args.duration, client_pin, env)
                        results[spec.name][body].append(result)
                        print(
                            f"rep {repetition + 1} {spec.name:8} {body:7} {result.rps:9.1f} req/s  "
                            f"p50 {result.p50_ms:8.2f} ms  p99 {result.p99_ms:8.2f} ms  "
                            f"errors {result.errors}",
                            flush=True,
                        )
                finally:
                    stop(server)
        for body in files:
            reference = answers["before"][body]
            for name in ("anchor", "shipyard"):
                if answers[name][body] != reference:
                    raise BenchError(f"{name} prices differ from scikit-learn's on the {body} body")
        report = summarise(results, specs, args)
        report["machine"] = machine_info(sys.executable, args.wrk, env)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2))
        print(report["markdown"])
        return 0 if report["target_met"] else 1
    finally:
        shutil.rmtree(home, ignore_errors=True)


def summarise(
    results: dict[str, dict[str, list[WrkResult]]], specs: list[ServerSpec], args: Any
) -> dict[str, Any]:
    def median(name: str, body: str, what: str) -> float:
        return statistics.median(getattr(r, what) for r in results[name][body])

    def ratio(top: str, bottom: str, body: str) -> float:
        return statistics.median(
            a.rps / b.rps for a, b in zip(results[top][body], results[bottom][body], strict=True)
        )

    lines = [
        f"housing, POST /invocations, {args.repeats} repetitions x {args.duration} s, "
        f"wrk -c{args.connections}",
        "",
        "| server | body | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for spec in specs:
        for body in ("single", "rows100"):
            errors = sum(r.errors for r in results[spec.name][body])
            lines.append(
                f"| {spec.label} | {'1 row' if body == 'single' else f'{MANY} rows'} | "
                f"{median(spec.name, body, 'rps'):,.1f} | {median(spec.name, body, 'p50_ms'):.2f} | "
                f"{median(spec.name, body, 'p99_ms'):.2f} | {errors} |"
            )
    ratios = {
        f"shipyard/anchor {body}": ratio("shipyard", "anchor", body) for body in ("single", "rows100")
    } | {f"shipyard/before {body}": ratio("shipyard", "before", body) for body in ("single", "rows100")}
    lines += ["", "| ratio (median of repetitions) | value |", "|---|---|"]
    lines += [f"| {k} req/s | {v:.1f}x |" for k, v in ratios.items()]
    met = ratios["shipyard/anchor single"] >= TARGET
    lines.append(f"\ntarget shipyard/anchor single row >= {TARGET:g}x: {'met' if met else 'NOT met'}")
    return {
        "results": {
            n: {b: [r.__dict__ for r in rs] for b, rs in bodies_.items()} for n, bodies_ in results.items()
        },
        "ratios": ratios,
        "target_met": met,
        "markdown": "\n".join(lines),
    }


if __name__ == "__main__":
    raise SystemExit(main())
