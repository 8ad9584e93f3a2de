"""Batch scoring speed and memory on every core: `shipyard batch score` (streaming, chunked) with one
scoring process and with several (--workers), against the bare model's own predict on the same rows held
in memory (the anchor), the forest's own threads (`n_jobs=-1`) as the cheaper alternative, and optionally
Spark local mode.

Models: the iris champion (scaler + random forest, 100 trees) and the housing champion (imputers,
scalers, 43 one-hot encoders, random forest of 100 full-depth trees), trained into a temporary store
from configs/. Inputs: N rows in Parquet generated from each data set's distribution (iris: normal draws
around the species' overall means, as before; housing: every column drawn independently from its
empirical distribution in data/raw/housing.csv, missing values and categories included).

Variants, each in its own process, unpinned (both cores are the point), alternating between repetitions:
  bare           the frame read whole, then `model.predict` (labels only) over 100,000-row slices: the anchor
  bare n_jobs=-1 the same with the forest's `n_jobs=-1` (joblib threads; tree predict releases the GIL)
  workers=1      `score_file` in one process (read, check every value, labels and probabilities, write)
  workers=1 n_jobs=-1  the same with the forest's threads
  workers=N      `score_file` with N scoring processes (--workers, default: every usable CPU)
  spark          `--engine spark`, local[2] (with --spark)
rows/s is the scoring itself (model loading, worker start, Spark's JVM and session excluded for every
variant); wall includes them. Peak RSS is of the whole process tree (the variant's process and its
children, sampled every 20 ms from /proc, summed).

    .venv/bin/python benchmarks/bench_batch.py --rows 1000000 --repeats 3 [--models iris,housing] [--spark]
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import benchmark_parser, git_revision, machine_basics, summarise

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent
SLICE = 100_000

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
variant, home, model_name, source, out, workers = sys.argv[1:7]
from shipyard.config import Settings
from shipyard.registry import models as registry_models
settings = Settings(home=Path(home), tracking_uri=f"sqlite:///{home}/mlflow.db")
threads = variant.endswith("n_jobs=-1")
if threads:  # the forest predicts on joblib threads: patched on the loaded model, for the measurement only
    load = registry_models.ModelRegistry.load
    def load_threaded(self, *args, **kwargs):
        loaded = load(self, *args, **kwargs)
        loaded.model.steps[-1][1].n_jobs = -1
        return loaded
    registry_models.ModelRegistry.load = load_threaded
started = time.perf_counter()
summary = {}
if variant.startswith("bare"):
    import pandas as pd
    loaded = registry_models.ModelRegistry(settings).load(model_name)
    frame = pd.read_parquet(source, columns=[c.name for c in loaded.inputs])
    ready = time.perf_counter()
    for start in range(0, len(frame), SLICE):
        loaded.model.predict(frame.iloc[start : start + SLICE])
    done = time.perf_counter()
    rows = len(frame)
elif variant.startswith("workers"):
    from shipyard.batch.scoring import score_file
    count = int(variant.split()[0].split("=")[1])
    result = score_file(settings, model_name, None, Path(source), Path(out), keep=["id"], workers=count)
    done = time.perf_counter()
    ready = started + result.load_seconds
    rows = result.rows_in
    summary = {"workers": result.workers, "max_chunks_in_flight": result.max_chunks_in_flight}
else:
    from shipyard.batch.spark import score_with_spark
    result = score_with_spark(settings, model_name, None, Path(source), Path(out), keep=["id"])
    done = time.perf_counter()
    ready = started + result.load_seconds  # the model loaded and the Spark session up (JVM start)
    rows = result.rows_in
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "score_seconds": done - ready, "wall_seconds": done - started,
                  "main_peak_rss_mb": peak, **summary}))
""".replace("SLICE", str(SLICE))


def tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants, summed (from /proc)."""
    import psutil

    try:
        parent = psutil.Process(root)
        processes = [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total / 2**20


def run_variant(
    command: list[str], env: dict[str, str], cwd: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run one measured process, sampling its tree's memory every 20 ms; (result, peak tree RSS MB)."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.02):
            peak = max(peak, tree_rss_mb(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = process.communicate(timeout=3600)
    finally:
        stop.set()
        sampler.join(5)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), peak


def iris_frame(n: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "sepal_length": rng.normal(5.8, 0.8, n),
            "sepal_width": rng.normal(3.0, 0.4, n),
            "petal_length": rng.normal(3.7, 1.7, n).clip(0.1),
            "petal_width": rng.normal(1.2, 0.7, n).clip(0.1),
        }
    )


def housing_frame(n: int, seed: int) -> Any:
    """Each column drawn on its own from its values in the data (missing values kept as missing)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    raw = pd.read_csv(REPO / "data/raw/housing.csv", keep_default_na=False, na_values=[""])
    columns: dict[str, Any] = {"id": np.arange(n)}
    for name in raw.columns:
        if name not in ("order", "pid", "saleprice"):
            columns[name] = raw[name].to_numpy()[rng.integers(0, len(raw), n)]
    return pd.DataFrame(columns)


FRAMES = {"iris": iris_frame, "housing": housing_frame}


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(
        __doc__, repeats=3, output=REPO / "benchmarks/results/bench_batch.json", cpu=None, seed=0
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="Generated rows to score per model.")
    parser.add_argument("--models", default="iris,housing", help="Comma-separated: iris, housing.")
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
        help="Scoring processes of the parallel variant (default: every usable CPU).",
    )
    parser.add_argument("--spark", action="store_true", help="Also run Spark local mode (needs pyspark).")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in FRAMES]
    if unknown:
        parser.error(f"--models: unknown {', '.join(unknown)} (known: {', '.join(FRAMES)})")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", PYTHONPATH=str(REPO / "src"))
    parallel = f"workers={args.workers}"
    variants = ["bare", "bare n_jobs=-1", "workers=1", "workers=1 n_jobs=-1", parallel]
    variants += ["spark"] if args.spark else []
    report: dict[str, Any] = {
        "machine": machine_basics(),
        "revision": git_revision(REPO),
        "rows": args.rows,
        "pin": "not pinned: every variant may use every CPU",
        "load_before": os.getloadavg(),
        "models": {},
        "ratios": {},
    }
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-batch-") as tmp:
        home = Path(tmp)
        (home / "configs").mkdir()
        for name in models:
            text = (REPO / f"configs/{name}.yaml").read_text()
            text = text.replace("path: data/raw/", f"path: {REPO}/data/raw/")
            (home / f"configs/{name}.yaml").write_text(text)
            subprocess.run(
                [str(VENV / "shipyard"), "train", "-c", f"configs/{name}.yaml", "-q"],
                cwd=home,
                env=env,
                check=True,
                capture_output=True,
            )
        for name in models:
            source = home / f"{name}.parquet"
            FRAMES[name](args.rows, args.seed).to_parquet(source, index=False)
            print(f"{name}: {args.rows:,} rows in {source.stat().st_size / 1e6:.1f} MB Parquet", flush=True)
            runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
            for rep in range(args.repeats):
                order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
                for variant in order:
                    out = home / f"out-{name}.parquet"
                    command = [
                        sys.executable,
                        "-c",
                        CHILD,
                        variant,
                        str(home),
                        name,
                        str(source),
                        str(out),
                        "0",
                    ]
                    done, tree_peak = run_variant(command, env, home)
                    if done.returncode != 0:
                        print(done.stderr[-3000:], file=sys.stderr)
                        return 1
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    result["rows_per_second"] = result["rows"] / result["score_seconds"]
                    result["tree_peak_rss_mb"] = tree_peak
                    runs[variant].append(result)
                    print(
                        f"{name} rep {rep + 1}/{args.repeats} {variant:<20} "
                        f"{result['rows_per_second']:>10,.0f} rows/s"
                        f"  score {result['score_seconds']:6.2f} s  wall {result['wall_seconds']:6.2f} s"
                        f"  tree peak RSS {tree_peak:,.0f} MB  load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
            table = {
                v: {
                    k: summarise([r[k] for r in rs])
                    for k in ("rows_per_second", "score_seconds", "wall_seconds", "tree_peak_rss_mb")
                }
                for v, rs in runs.items()
            }
            ratios = {
                v: summarise(
                    [
                        r["rows_per_second"] / b["rows_per_second"]
                        for r, b in zip(runs[v], runs["bare"], strict=True)
                    ]
                )
                for v in variants
                if v != "bare"
            }
            report["models"][name] = {"runs": runs, "summary": table, "ratio_to_bare": ratios}
            report["ratios"][f"{name}: {parallel} / bare rows/s"] = ratios[parallel]
            if (
                name == "iris"
            ):  # the benchmark gate's check (bench_check.py): the default run against the floor
                report["ratios"]["streaming / floor rows/s"] = ratios[parallel]
            print(f"\n{name}, {args.rows:,} rows, median of {args.repeats} (min–max):\n")
            print("| variant | rows/s | x bare | score s | wall s | peak RSS MB (process tree) |")
            print("|---|---:|---:|---:|---:|---:|")
            for v in variants:
                t = table[v]
                ratio = (
                    "1.00"
                    if v == "bare"
                    else f"{ratios[v]['median']:.2f} ({ratios[v]['min']:.2f}–{ratios[v]['max']:.2f})"
                )
                print(
                    f"| {v} | {t['rows_per_second']['median']:,.0f} ({t['rows_per_second']['min']:,.0f}–"
                    f"{t['rows_per_second']['max']:,.0f}) | {ratio} | {t['score_seconds']['median']:.2f} | "
                    f"{t['wall_seconds']['median']:.2f} | {t['tree_peak_rss_mb']['median']:,.0f} |"
                )
            verdict = "met" if ratios[parallel]["median"] >= 1.5 else "NOT met"
            print(
                f"\n{name}: {parallel} / bare {ratios[parallel]['median']:.2f}x; "
                f"issue #13 aim >= 1.5x: {verdict}\n"
            )
    report["load_after"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(argv=None))
