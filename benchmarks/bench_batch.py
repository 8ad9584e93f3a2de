"""Batch scoring speed and memory: `shipyard batch score` (streaming, chunked) against the bare model's
predict on the same rows held in memory (the floor), and Spark local mode on the same file.

Each variant runs in its own process (so its peak RSS is its own), pinned to one core with taskset
when available, alternating between repetitions. The model is the iris champion (scaler + random
forest, 100 trees) trained into a temporary store; the input is N generated iris-like rows in Parquet.
Reported: rows/s of the scoring itself (model loading, and Spark's JVM and session start, excluded for
every variant), wall seconds with all of that, and the process's peak RSS (for Spark, the Python driver
only: the JVM and Python workers are separate processes).

    .venv/bin/python benchmarks/bench_batch.py --rows 1000000 --repeats 3 [--spark]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import benchmark_parser, machine_basics, pin_prefix, summarise

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
variant, home, source, out = sys.argv[1:5]
# bare: the model's own predict on the whole frame in memory (labels only: the floor);
# shipyard: read in chunks, check, predict labels and probabilities, write; spark: local mode
from shipyard.config import Settings
settings = Settings(home=Path(home), tracking_uri=f"sqlite:///{home}/mlflow.db")
started = time.perf_counter()
if variant == "bare":
    import numpy as np, pandas as pd
    from shipyard.registry import ModelRegistry
    model = ModelRegistry(settings).load("iris").model
    frame = pd.read_parquet(source)
    loaded = time.perf_counter()
    labels = model.predict(frame[["sepal_length", "sepal_width", "petal_length", "petal_width"]])
    done = time.perf_counter()
    rows = len(frame)
elif variant == "shipyard":
    from shipyard.batch.scoring import score_file
    summary = score_file(settings, "iris", None, Path(source), Path(out), keep=["id"])
    done = time.perf_counter()
    loaded = started + summary.load_seconds
    rows = summary.rows_in
else:
    from shipyard.batch.spark import score_with_spark
    summary = score_with_spark(settings, "iris", None, Path(source), Path(out), keep=["id"])
    done = time.perf_counter()
    loaded = started + summary.load_seconds  # the model loaded and the Spark session up (JVM start)
    rows = summary.rows_in
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = {"rows": rows, "score_seconds": done - loaded, "wall_seconds": done - started}
print(json.dumps({**result, "peak_rss_mb": peak / 1024}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, repeats=3, output=REPO / "benchmarks/results/bench_batch.json")
    parser.add_argument("--rows", type=int, default=1_000_000, help="Generated iris-like rows to score.")
    parser.add_argument("--spark", action="store_true", help="Also run Spark local mode (needs pyspark).")
    args = parser.parse_args(argv)
    pin, pin_note = pin_prefix(args.cpu, not args.no_pin)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", PYTHONPATH=str(REPO / "src"))
    variants = ["bare", "shipyard", *(["spark"] if args.spark else [])]
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-batch-") as tmp:
        home = Path(tmp)
        (home / "configs").mkdir()
        (home / "configs/iris.yaml").write_text((REPO / "configs/iris.yaml").read_text())
        subprocess.run(
            [str(VENV / "shipyard"), "train", "-c", "configs/iris.yaml", "-q"],
            cwd=home,
            env=env,
            check=True,
            capture_output=True,
        )
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng(0)
        n = args.rows
        frame = pd.DataFrame(
            {
                "id": np.arange(n),
                "sepal_length": rng.normal(5.8, 0.8, n),
                "sepal_width": rng.normal(3.0, 0.4, n),
                "petal_length": rng.normal(3.7, 1.7, n).clip(0.1),
                "petal_width": rng.normal(1.2, 0.7, n).clip(0.1),
            }
        )
        source = home / "input.parquet"
        frame.to_parquet(source, index=False)
        del frame
        print(f"{n:,} rows in {source.stat().st_size / 1e6:.1f} MB Parquet; {pin_note}", flush=True)
        for rep in range(args.repeats):
            order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
            for variant in order:
                out = home / f"out-{variant}.parquet"
                done = subprocess.run(
                    [*pin, sys.executable, "-c", CHILD, variant, str(home), str(source), str(out)],
                    cwd=home,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode != 0:
                    print(done.stderr[-3000:], file=sys.stderr)
                    return 1
                result = json.loads(done.stdout.strip().splitlines()[-1])
                result["rows_per_second"] = result["rows"] / result["score_seconds"]
                results[variant].append(result)
                print(
                    f"rep {rep + 1}/{args.repeats} {variant:<8} {result['rows_per_second']:>12,.0f} rows/s  "
                    f"score {result['score_seconds']:.2f} s  wall {result['wall_seconds']:.2f} s  "
                    f"peak RSS {result['peak_rss_mb']:,.0f} MB",
                    flush=True,
                )
    table = {v: {k: summarise([r[k] for r in rs]) for k in rs[0]} for v, rs in results.items()}
    ratios = [
        s["rows_per_second"] / b["rows_per_second"]
        for s, b in zip(results["shipyard"], results["bare"], strict=True)
    ]
    print("\n| variant | rows/s | score s | wall s (with loading) | peak RSS MB |\n|---|---:|---:|---:|---:|")
    for v, t in table.items():
        print(
            f"| {v} | {t['rows_per_second']['median']:,.0f} ({t['rows_per_second']['min']:,.0f}–"
            f"{t['rows_per_second']['max']:,.0f}) | {t['score_seconds']['median']:.2f} | "
            f"{t['wall_seconds']['median']:.2f} | {t['peak_rss_mb']['median']:,.0f} |"
        )
    ratio = summarise(ratios)
    verdict = "met" if ratio["median"] >= 0.8 else "NOT met"
    print(
        f"\nshipyard / bare rows/s, within each repetition: median {ratio['median']:.2f}x "
        f"(min {ratio['min']:.2f}x, max {ratio['max']:.2f}x); aim >= 0.8x: {verdict}"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "machine": machine_basics(),
                "rows": args.rows,
                "pin": pin_note,
                "runs": results,
                "summary": table,
                "ratio": ratio,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
