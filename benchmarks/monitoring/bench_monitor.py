"""The monitor over a large store: ``Monitor.drift`` on 1,000,000 logged iris rows and on 100,000 logged
housing rows (79 features), on SQLite and on PostgreSQL, plus the feedback join and the store's write
throughput while it is filled.

Set-up: a temporary folder gets a copy of configs/ and data/raw/housing.csv; ``shipyard train -c
configs/iris.yaml`` and ``-c configs/housing.yaml`` register both models in an embedded MLflow store
there (``MLFLOW_TRACKING_URI=sqlite:///...``; with ``--quick`` housing's forest has 20 trees: the
model's size does not enter drift's time, only its predictions do). Each registered version is loaded
as the service loads it (``ReadyModel``), the training data (``DataLoader`` of the config) is checked
by the service's input rules into a batch, and scored once.

Fill: for each store (a fresh SQLite file; a fresh database on a throwaway PostgreSQL cluster from
tests/pg_cluster.py, restarted with production durability and pinned to the other CPU) and each model,
N single-row requests drawn with replacement from the training rows (fixed seed) are submitted to the
real writer (``PredictionLog``) and written ``--chunk`` (1000) requests per drain (``flush``: the same
drain the background writer runs; one chunk and 1000 request rows per transaction), with request ids
made as the service makes them (``RequestIds``: a per-process prefix and a counter). The drains are
timed: rows/s is what the store takes while filling (JSON encoding included, building the entries
not). Then ``--labelled`` (10%) of the requests get a feedback label (``write_feedback``, 10,000 per
call, timed too).

Timed, in-process, one discarded warm-up of each (which also loads the drift reference from the
registry), then all cases alternate within each repetition with a ``gc.collect()`` before each call,
median (min–max) of ``--repeats`` (3):

- ``Monitor.drift(model)`` with ``drift_window`` = every logged row (N) and the default (5000): what
  one monitoring round costs per model (served versions, read the window, ``compute_drift``, save the
  result);
- ``store.read_log(model, window=W, version=v)`` alone: the reading part of it;
- ``store.labelled_pairs(model, window)`` with the default quality window (1000) and with every
  labelled request: the live-quality join.

Run from the repo root: ``.venv/bin/python benchmarks/monitoring/bench_monitor.py`` (1M iris + 100k
housing rows per store; about 7 minutes), ``--quick`` (50k + 10k rows; 1–2 minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: tests.pg_cluster
import bench_serve as bs
from bench_drift import pin as pin_process
from bench_log_store import throwaway_postgres
from harness import benchmark_parser, git_revision, machine_basics, summarise

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "bench_monitor.json"
STORES = ("sqlite", "postgres")
FEEDBACK_BATCH = 10_000
QUICK_HOUSING_TREES = 20


@dataclass
class Dataset:
    """One model, its logged rows in every store, and what filling them cost."""

    name: str
    config: str
    rows: int
    version: str = ""
    features: int = 0
    fill: dict[str, dict[str, float]] = field(default_factory=dict)  # store -> numbers


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = benchmark_parser(__doc__ or "", repeats=3, output=DEFAULT_OUTPUT, cpu=0, seed=0, tmpdir=True)
    parser.add_argument("--quick", action="store_true", help="50,000 iris and 10,000 housing rows.")
    parser.add_argument("--iris-rows", type=int, default=None, help="Logged iris rows (default 1,000,000).")
    parser.add_argument(
        "--housing-rows", type=int, default=None, help="Logged housing rows (default 100,000)."
    )
    parser.add_argument("--chunk", type=int, default=1000, help="Requests per drain of the writer.")
    parser.add_argument("--labelled", type=float, default=0.1, help="Share of requests given feedback.")
    parser.add_argument(
        "--stores", default=",".join(STORES), help=f"Comma-separated subset of {', '.join(STORES)}."
    )
    parser.add_argument(
        "--pg-settings",
        choices=("durable", "fast"),
        default="durable",
        help="'durable': PostgreSQL's default fsync/synchronous_commit/full_page_writes (on); 'fast': "
        "the test fixture's (off).",
    )
    parser.add_argument("--pg-cpu", type=int, default=1, help="CPU PostgreSQL is pinned to.")
    parser.add_argument(
        "--shipyard", default=str(REPO / ".venv" / "bin" / "shipyard"), help="The shipyard entry point."
    )
    parser.add_argument("--keep", action="store_true", help="Leave the temporary folder.")
    args = parser.parse_args(argv)
    args.iris_rows = args.iris_rows or (50_000 if args.quick else 1_000_000)
    args.housing_rows = args.housing_rows or (10_000 if args.quick else 100_000)
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if not args.stores or any(s not in STORES for s in args.stores):
        parser.error(f"--stores: choose from {', '.join(STORES)}")
    if min(args.iris_rows, args.housing_rows, args.chunk) < 10 or not 0 < args.labelled <= 1:
        parser.error("row counts and --chunk must be at least 10, --labelled in (0, 1]")
    return args


# --- set-up ---------------------------------------------------------------------------------------------


def prepare_home(home: Path, quick: bool) -> None:
    """configs/ and the housing CSV copied in; with ``quick`` a smaller housing forest."""
    shutil.copytree(REPO / "configs", home / "configs")
    (home / "data" / "raw").mkdir(parents=True)
    shutil.copy2(REPO / "data" / "raw" / "housing.csv", home / "data" / "raw" / "housing.csv")
    if quick:
        import yaml

        path = home / "configs" / "housing.yaml"
        config = yaml.safe_load(path.read_text())
        config["model"]["params"]["n_estimators"] = QUICK_HOUSING_TREES
        path.write_text(yaml.safe_dump(config, sort_keys=False))


def train(args: argparse.Namespace, home: Path, env: dict[str, str], config: str) -> float:
    cmd = [args.shipyard, "train", "-c", config, "-q"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=home, env=bs.child_env(env), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise bs.BenchError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - started


@dataclass
class Pool:
    """The training rows as the service would log them: checked batch columns, predictions, labels."""

    batch: dict[str, Any]
    predictions: list[Any]
    truth: list[Any]
    classifier: bool

    @property
    def rows(self) -> int:
        return len(self.predictions)


def load_pool(settings: Any, home: Path, data: Dataset) -> Pool:
    from shipyard.config.loading import load_config
    from shipyard.data.sources import DataLoader
    from shipyard.inference.ready import ReadyModel
    from shipyard.registry.models import ModelRegistry

    config = load_config(home / data.config)
    frame = DataLoader(config.dataset.source, base_dir=home).load().frame
    registry = ModelRegistry(settings)
    info = registry.resolve(config.model_name, "1")
    data.version = str(info.version)
    ready = ReadyModel(registry.load(config.model_name, data.version), bulk=True)
    check = ready.check(frame)
    predicted = ready.predict(check.batch, probabilities=False)
    truth = frame[config.dataset.target].to_numpy()[check.good].tolist()
    data.features = len(check.batch)
    return Pool(check.batch, list(predicted.values), truth, ready.is_classifier)


# --- filling ------------------------------------------------------------------------------------------


def fill(store: Any, data: Dataset, pool: Pool, args: argparse.Namespace) -> dict[str, float]:
    """N single-row requests through PredictionLog, ``args.chunk`` per drain; then feedback for a share
    of them. Returns timings and counts."""
    import numpy as np

    from shipyard.monitoring.prediction_log import PredictionLog
    from shipyard.serving.middleware import RequestIds

    log = PredictionLog(store, queue_size=args.chunk)
    ids = RequestIds()  # the service's ids: a per-process random prefix and a counter
    rng = np.random.default_rng(args.seed)
    picks = rng.integers(0, pool.rows, size=data.rows)
    latency = rng.gamma(2.0, 0.5, size=data.rows)
    columns = list(pool.batch.items())
    now = time.time() - data.rows * 1e-3  # one request a millisecond, ending now
    every = max(1, round(1 / args.labelled))
    labelled: list[tuple[str, list[Any]]] = []
    build = write = 0.0
    for start in range(0, data.rows, args.chunk):
        t0 = time.perf_counter()
        for j in range(start, min(start + args.chunk, data.rows)):
            i = int(picks[j])
            rid = ids.next()
            entry = (
                rid,
                now + j * 1e-3,
                data.name,
                data.version,
                "champion",
                {name: col[i : i + 1] for name, col in columns},
                [pool.predictions[i]],
                float(latency[j]),
                pool.classifier,
            )
            if not log.submit(entry):
                raise bs.BenchError("the prediction log refused an entry (queue full)")
            if j % every == 0:
                labelled.append((rid, [pool.truth[i]]))
        t1 = time.perf_counter()
        log.flush()
        write += time.perf_counter() - t1
        build += t1 - t0
    if log.dropped or log.written != data.rows:
        raise bs.BenchError(
            f"{data.name}: the log wrote {log.written} of {data.rows} rows ({log.dropped} dropped)"
        )
    t0 = time.perf_counter()
    for start in range(0, len(labelled), FEEDBACK_BATCH):
        store.write_feedback(labelled[start : start + FEEDBACK_BATCH])
    feedback = time.perf_counter() - t0
    return {
        "rows": data.rows,
        "drains": -(-data.rows // args.chunk),
        "write_s": write,
        "rows_per_s": data.rows / write,
        "us_per_request": write / data.rows * 1e6,
        "build_s": build,
        "labelled": len(labelled),
        "feedback_s": feedback,
        "feedback_per_s": len(labelled) / feedback if feedback else 0.0,
    }


def store_size(store: Any) -> int | None:
    """Bytes the store takes on disk (SQLite: the file and its WAL; PostgreSQL: the database)."""
    if store.path is not None:
        return sum(p.stat().st_size for p in store.path.parent.glob(store.path.name + "*") if p.is_file())
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())


# --- timing -------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One timed call: which store, which model, what it does."""

    store: str
    dataset: str
    what: str  # drift | read_log | labelled_pairs
    window: str  # all | default
    call: Callable[[], int]  # returns the rows it covered, to check the window
    seconds: list[float] = field(default_factory=list)
    covered: int = 0
    first_s: float = 0.0


def make_cases(store_name: str, store: Any, data: Dataset, settings: Any, labelled: int) -> list[Case]:
    from prometheus_client import CollectorRegistry

    from shipyard.monitoring.gauges import MonitorGauges
    from shipyard.monitoring.monitor import Monitor
    from shipyard.serving.monitor_app import registry_references

    cases = []
    windows = {"all": data.rows, "default": settings.drift_window}
    for label, window in windows.items():
        monitor = Monitor(
            settings.model_copy(update={"drift_window": window}),
            store,
            MonitorGauges(CollectorRegistry()),
            registry_references(settings),
        )

        def drift(monitor: Any = monitor) -> int:
            reports = monitor.drift(data.name)
            if len(reports) != 1:
                raise bs.BenchError(f"{data.name}: {len(reports)} drift reports (expected 1)")
            return int(reports[0].current_rows)

        def read(window: int = window) -> int:
            return len(store.read_log(data.name, window=window, version=data.version))

        cases.append(Case(store_name, data.name, "drift", label, drift))
        cases.append(Case(store_name, data.name, "read_log", label, read))
    for label, window in {"default": settings.quality_window, "all": labelled}.items():

        def pairs(window: int = window) -> int:
            found = store.labelled_pairs(data.name, window)
            return sum(len(p.predicted) for p in found.values())

        cases.append(Case(store_name, data.name, "labelled_pairs", label, pairs))
    return cases


def window_rows(case: Case, data: Dataset, settings: Any, labelled: int) -> int:
    if case.what == "labelled_pairs":
        return labelled if case.window == "all" else min(labelled, settings.quality_window)
    return data.rows if case.window == "all" else min(data.rows, settings.drift_window)


def run_cases(cases: list[Case], repeats: int) -> None:
    for case in cases:  # warm-up: loads the references, fills caches; timed but not counted
        gc.collect()
        t0 = time.perf_counter()
        case.covered = case.call()
        case.first_s = time.perf_counter() - t0
        print(f"warm-up {case.store} {case.dataset} {case.what} {case.window}: {case.first_s:.3f} s",
              file=sys.stderr)  # fmt: skip
    for rep in range(repeats):
        shift = rep % len(cases)
        for case in cases[shift:] + cases[:shift]:
            gc.collect()
            t0 = time.perf_counter()
            covered = case.call()
            case.seconds.append(time.perf_counter() - t0)
            if covered != case.covered:
                raise bs.BenchError(f"{case}: covered {covered} rows, {case.covered} in the warm-up")
        print(f"repetition {rep + 1}/{repeats} done", file=sys.stderr)


# --- report -------------------------------------------------------------------------------------------


def markdown(
    args: argparse.Namespace,
    datasets: list[Dataset],
    cases: list[Case],
    sizes: dict[str, int | None],
    meta: dict[str, Any],
) -> str:
    m = meta["machine"]
    pg = meta.get("postgres") or {}
    lines = [
        f"Machine: {m['cpu_model']}, nproc={m['nproc']} (affinity {m['affinity']}), {m['platform']}; "
        f"load average at start {meta['loadavg_at_start']}",
        f"Python {sys.version.split()[0]}, shipyard {meta['revision']}, {meta['pinning']}"
        + (
            f"; PostgreSQL {pg.get('server_version')} (fsync={pg.get('fsync')}, synchronous_commit="
            f"{pg.get('synchronous_commit')}), pinned: {pg.get('pinning')}"
            if pg
            else ""
        )
        + (" — QUICK RUN" if args.quick else ""),
        f"Method: {args.repeats} repetitions, all cases alternating, one discarded warm-up each; writer "
        f"drains of {args.chunk} single-row requests; {args.labelled:.0%} of requests labelled.",
        "",
        "Filling the store through PredictionLog (the drains only; JSON encoding included):",
        "",
        "| store | model | features | rows | write s | rows/s | µs per request | feedback rows/s | size MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for store in args.stores:
        for data in datasets:
            f = data.fill[store]
            size = sizes.get(f"{store}/{data.name}")
            lines.append(
                f"| {store} | {data.name} | {data.features} | {data.rows:,} | {f['write_s']:.2f} | "
                f"{f['rows_per_s']:,.0f} | {f['us_per_request']:.1f} | {f['feedback_per_s']:,.0f} | "
                f"{size / 1e6 if size is not None else float('nan'):,.1f} |"
            )
    lines += [
        "",
        "| store | model | call | window (rows) | median s | min s | max s | first call s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        s = summarise(case.seconds)
        lines.append(
            f"| {case.store} | {case.dataset} | {case.what} | {case.window} ({case.covered:,}) | "
            f"{s['median']:.3f} | {s['min']:.3f} | {s['max']:.3f} | {case.first_s:.3f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="shipyard-bench-monitor-", dir=args.tmpdir))
    (home / "stores").mkdir()
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db", "SHIPYARD_HOME": str(home)}
    datasets = [
        Dataset("iris", "configs/iris.yaml", args.iris_rows),
        Dataset("housing", "configs/housing.yaml", args.housing_rows),
    ]
    meta: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "revision": git_revision(REPO) or "not a git checkout",
        "machine": machine_basics(),
        "loadavg_at_start": [round(v, 2) for v in os.getloadavg()],
        "quick": args.quick,
    }
    cases: list[Case] = []
    sizes: dict[str, int | None] = {}
    stores: list[Any] = []
    cwd = Path.cwd()
    try:
        with contextlib.ExitStack() as stack:
            prepare_home(home, args.quick)
            for data in datasets:
                seconds = train(args, home, env, data.config)
                print(f"trained {data.name} in {seconds:.1f} s", file=sys.stderr)
            cluster = None
            if "postgres" in args.stores:
                pg_cpu = None if args.no_pin else args.pg_cpu
                cluster, meta["postgres"] = stack.enter_context(
                    throwaway_postgres(args.tmpdir, pg_cpu, args.pg_settings == "durable")
                )
                print(f"postgres: {meta['postgres']}", file=sys.stderr)
            meta["pinning"] = pin_process(args.cpu, not args.no_pin)
            # this process reads the embedded MLflow store like `shipyard monitor` would
            for key in [k for k in os.environ if k.startswith(bs.SCRUBBED_PREFIXES)]:
                del os.environ[key]
            os.environ.update(env | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"})
            os.chdir(home)
            from shipyard.config.settings import Settings
            from shipyard.monitoring.store import MonitoringStore

            settings = Settings(_env_file=None)  # type: ignore[call-arg]
            pools = {data.name: load_pool(settings, home, data) for data in datasets}
            for store_name in args.stores:
                for data in datasets:
                    if store_name == "sqlite":
                        url = f"sqlite:///{home / 'stores' / data.name}.db"
                    else:
                        assert cluster is not None
                        url = cluster.create_database(
                            f"monitor_{data.name}", f"bench_{data.name}", "bench-pw"
                        )
                    store = MonitoringStore.open(url)
                    stores.append(store)
                    data.fill[store_name] = fill(store, data, pools[data.name], args)
                    sizes[f"{store_name}/{data.name}"] = store_size(store)
                    print(f"filled {store_name} {data.name}: {data.fill[store_name]}", file=sys.stderr)
                    labelled = int(data.fill[store_name]["labelled"])
                    cases += make_cases(store_name, store, data, settings, labelled)
            run_cases(cases, args.repeats)
            for case in cases:
                data = next(d for d in datasets if d.name == case.dataset)
                expected = window_rows(case, data, settings, int(data.fill[case.store]["labelled"]))
                if case.covered != expected:
                    raise bs.BenchError(
                        f"{case.store} {case.dataset} {case.what} {case.window}: {case.covered} rows, "
                        f"expected {expected}"
                    )
            for store in stores:
                store.close()
    except bs.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        os.chdir(cwd)
        if args.keep:
            print(f"kept {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    text = markdown(args, datasets, cases, sizes, meta)
    print(text)
    output = {
        "meta": meta | {"args": {k: str(v) for k, v in vars(args).items()}},
        "fill": {d.name: d.fill for d in datasets},
        "sizes_bytes": sizes,
        "cases": [
            {
                "store": c.store,
                "dataset": c.dataset,
                "call": c.what,
                "window": c.window,
                "rows": c.covered,
                "seconds": c.seconds,
                "first_s": c.first_s,
                **summarise(c.seconds),
            }
            for c in cases
        ],
        "markdown": text,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2) + "\n")
    print(f"\nwrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
