"""The benchmark gate: short runs of the serving and batch benchmarks, each reduced to a ratio measured in
the same run (Shipyard against the floor, the anchor or the bare model), compared with the ratios in
benchmarks/baseline.json. A ratio more than --tolerance (20 %) below its baseline fails the gate.

Ratios, not raw numbers: a busier or slower machine slows both sides of a ratio alike, so the gate
catches Shipyard getting slower, not the machine. It still needs a quiet machine (CI's shared runners
are too noisy: CI does not run it). Run it before merging a change on the serving or batch path:

    make bench-check                                   # ~3 minutes; exit 1 on a regression
    .venv/bin/python benchmarks/bench_check.py --update --runs 3  # after an accepted change: new
                                                                  # baseline, the median of 3 runs

Checks: iris single row and 100 rows, shipyard / floor req/s (bench_serve.py); housing single row,
shipyard / anchor req/s (bench_housing.py); batch scoring rows/s, shipyard / bare predict
(bench_batch.py). Each is run briefly, --runs times (default 1; the median is compared); the numbers
and the verdict are printed as a table. Record a baseline from at least 3 runs on a quiet machine: one
run can catch the floor on a bad moment (the first baseline did: 0.996x the floor on one row, where
three runs on a quiet machine give ~0.6x).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import benchmark_parser  # noqa: E402

BASELINE = HERE / "baseline.json"


@dataclass(frozen=True)
class Check:
    name: str
    script: str
    arguments: tuple[str, ...]
    path: tuple[str, ...]  # where the ratio is in the script's JSON output


CHECKS = (
    Check(
        "iris 1 row: shipyard / floor req/s",
        "serve/bench_serve.py",
        ("--repeats", "1", "--duration", "4", "--warmup", "1"),
        ("ratios", "single", "shipyard / floor req/s", "median"),
    ),
    Check(
        "iris 100 rows: shipyard / floor req/s",
        "serve/bench_serve.py",
        ("--repeats", "1", "--duration", "4", "--warmup", "1"),
        ("ratios", "rows100", "shipyard / floor req/s", "median"),
    ),
    Check(
        "housing 1 row: shipyard / anchor req/s",
        "serve/bench_housing.py",
        ("--repeats", "1", "--duration", "4", "--warmup", "1"),
        ("ratios", "shipyard/anchor single"),
    ),
    Check(
        "batch iris: --workers 2 / bare predict rows/s",
        "bench_batch.py",
        ("--rows", "200000", "--repeats", "1", "--models", "iris"),
        ("ratios", "iris: workers=2 / bare rows/s", "median"),
    ),
)


def dig(document: Any, path: tuple[str, ...]) -> float:
    for key in path:
        if not isinstance(document, dict) or key not in document:
            raise KeyError(f"no {' -> '.join(path)} in the results (missing {key!r})")
        document = document[key]
    return float(document)


def run(check: Check, folder: Path, cache: dict[tuple[str, tuple[str, ...]], Any]) -> float:
    key = (check.script, check.arguments)
    if key not in cache:  # bench_serve gives two checks from one run
        output = folder / f"{Path(check.script).stem}.json"
        command = [sys.executable, str(HERE / check.script), *check.arguments, "--output", str(output)]
        print(f"$ {' '.join(command[1:])}", flush=True)
        done = subprocess.run(command, cwd=HERE.parent, capture_output=True, text=True)
        if not output.is_file():
            raise RuntimeError(
                f"{check.script} wrote no results (exit {done.returncode}):\n{done.stderr[-3000:]}"
            )
        cache[key] = json.loads(output.read_text())
    return dig(cache[key], check.path)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__.splitlines()[0], repeats=1, cpu=None)
    parser.add_argument("--tolerance", type=float, default=0.20, help="Largest accepted drop of a ratio.")
    parser.add_argument("--update", action="store_true", help="Write the measured ratios as the baseline.")
    parser.add_argument("--only", action="append", help="Run only the checks whose name contains this.")
    parser.add_argument(
        "--runs", type=int, default=1, help="Run every check this many times; the median counts."
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    baseline = json.loads(BASELINE.read_text()) if BASELINE.is_file() else {}
    samples: dict[str, list[float]] = {}
    errors: list[str] = []  # a check that did not run: never written as a baseline
    for attempt in range(args.runs):
        if args.runs > 1:
            print(f"run {attempt + 1}/{args.runs}", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
            cache: dict[tuple[str, tuple[str, ...]], Any] = {}
            for check in CHECKS:
                if args.only and not any(part in check.name for part in args.only):
                    continue
                try:
                    samples.setdefault(check.name, []).append(run(check, Path(tmp), cache))
                except (RuntimeError, KeyError, ValueError) as exc:
                    errors.append(f"{check.name}: {exc}")
    failed = list(errors)
    measured = {name: statistics.median(values) for name, values in samples.items()}
    rows = ["| check | baseline | now | change | verdict |", "|---|---|---|---|---|"]
    for name, now in measured.items():
        base = baseline.get(name)
        if base is None:
            rows.append(f"| {name} | – | {now:.3g} | – | no baseline |")
            continue
        change = now / base - 1
        ok = now >= base * (1 - args.tolerance)
        rows.append(f"| {name} | {base:.3g} | {now:.3g} | {change:+.0%} | {'ok' if ok else 'REGRESSION'} |")
        if not ok:
            failed.append(f"{name}: {now:.3g} is {-change:.0%} below the baseline {base:.3g}")
    print("\n".join(rows))
    if args.runs > 1:
        for name, values in samples.items():
            print(f"{name}: runs {', '.join(f'{v:.3g}' for v in values)}")
    if args.update and measured and not errors:
        BASELINE.write_text(json.dumps({**baseline, **measured}, indent=2, sort_keys=True) + "\n")
        print(f"baseline written: {BASELINE}")
        return 0
    for failure in failed:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
