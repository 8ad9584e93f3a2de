"""Time ``compute_drift`` on 100,000 current rows x 80 features, and the HTML report rendered from it.

Why these sizes: the housing model has 79 features and a training set of 2,344 rows, which is the
reference drift compares against; a monitoring job may check a day's 100,000 requests. With more than
1,000 reference rows ``compute_drift`` chooses the large-reference tests (normed Wasserstein for numeric,
Jensen–Shannon for categorical and low-cardinality numeric), so that is the headline case. A 1,000-row
reference (KS, chi-squared) is timed at the same current size, since a small reference sample is the
other configuration users meet. Rendering the HTML report (one PNG per feature) is timed separately:
it is a different cost, paid once per report, not per check.

Data: synthetic, from a fixed seed, shaped like housing: 60 numeric features (normal, log-normal,
counts, uniform, and 5 ordinal ones with 5 levels) and 20 categorical string columns (pandas ``str``
dtype, as ``read_csv`` gives) with 10–30 categories each; some columns have 5% missing values. The
current data is shifted on 10 features (7 numeric, 3 categorical), so the report has something to say.

Method: in-process wall clock (``time.perf_counter``) around one call; one discarded warm-up of each
configuration, then the configurations alternate within each repetition, with a ``gc.collect()``
before each call; median, min and max across repetitions. The process is pinned to one CPU with
``os.sched_setaffinity`` when it may (``--no-pin`` to turn off). With ``--profile auto`` (the default)
one extra call of each drift case runs under cProfile when the aim is not met, and the report says
where the time goes. Aim: drift under 1 s for 100,000 x 80.

False alarms (``--false-alarms``): no timing; for each of ``--seeds`` seeds (200) the reference and the
current rows are both drawn, unshifted, from the same 80 columns, so every drift flag is a false alarm.
Both reference sizes are run (1,000 rows: KS / chi-squared; 2,344 rows: Wasserstein / Jensen–Shannon)
against 1,000 current rows, with the default tests and ``drift_share`` 0.5. Reported: the dataset-level
false-alarm rate (seeds whose report says ``dataset_drift``), the share of seeds with at least one
drifted feature, and per test the share of feature checks that said drift, with Wilson 95% intervals.

Run from the repo root: ``.venv/bin/python benchmarks/bench_drift.py`` (``--help`` for options), and
``.venv/bin/python benchmarks/bench_drift.py --false-alarms`` for the false-alarm rates.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import importlib.metadata
import json
import math
import os
import platform
import pstats
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import benchmark_parser, machine_basics, summarise

from shipyard.monitoring.drift import DriftReport, compute_drift
from shipyard.monitoring.report_html import render_html

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "bench_drift.json"
FALSE_ALARM_OUTPUT = REPO / "benchmarks" / "results" / "bench_drift_false_alarms.json"
TARGET_SECONDS = 1.0
NUMERIC, CATEGORICAL = 60, 20
ORDINAL = 5  # of the numeric features, the last ones: 5 levels, so they go to the categorical-style test
SHIFTED_NUMERIC, SHIFTED_CATEGORICAL = 7, 3
MISSING_SHARE = 0.05
NUMERIC_SHAPES = ("normal", "lognormal", "count", "uniform")
PROFILE_TOP = 20


@dataclass(frozen=True)
class FeatureSpec:
    """How one synthetic column is drawn, and whether the current data is shifted on it."""

    name: str
    kind: str  # numeric | categorical
    shape: str  # normal | lognormal | count | uniform | ordinal | categories
    params: tuple[float, ...]
    shifted: bool
    missing: bool
    categories: tuple[str, ...] = ()
    shares: tuple[float, ...] = ()


@dataclass
class Measure:
    """One timed configuration: what it calls and the seconds each repetition took."""

    name: str
    label: str
    call: Callable[[], Any]
    samples: list[float] = field(default_factory=list)


def feature_specs(rng: np.random.Generator) -> list[FeatureSpec]:
    """60 numeric then 20 categorical columns; the first 7 numeric and first 3 categorical are shifted."""
    specs = []
    for j in range(NUMERIC):
        shape = "ordinal" if j >= NUMERIC - ORDINAL else NUMERIC_SHAPES[j % len(NUMERIC_SHAPES)]
        params: tuple[float, ...] = {
            "normal": (float(rng.uniform(-50, 50)), float(rng.uniform(1, 20))),
            "lognormal": (float(rng.uniform(8, 12)), float(rng.uniform(0.2, 0.6))),
            "count": (float(rng.uniform(2, 12)),),
            "uniform": (0.0, float(rng.uniform(10, 1000))),
            "ordinal": (5.0,),
        }[shape]
        specs.append(FeatureSpec(f"num_{j:02d}", "numeric", shape, params, j < SHIFTED_NUMERIC, j % 6 == 5))
    for j in range(CATEGORICAL):
        count = int(rng.integers(10, 31))
        shares = rng.dirichlet(np.full(count, 0.8))
        specs.append(
            FeatureSpec(
                f"cat_{j:02d}",
                "categorical",
                "categories",
                (),
                j < SHIFTED_CATEGORICAL,
                j % 5 == 4,
                tuple(f"c{j:02d}_{k:02d}" for k in range(count)),
                tuple(float(s) for s in shares),
            )
        )
    return specs


def draw(spec: FeatureSpec, rows: int, rng: np.random.Generator, shift: bool) -> np.ndarray:
    """One column; ``shift`` moves it by about half a spread (or mixes in rotated category shares)."""
    values: np.ndarray
    p = spec.params
    if spec.shape == "normal":
        values = rng.normal(p[0] + (0.5 * p[1] if shift else 0.0), p[1], rows)
    elif spec.shape == "lognormal":
        values = rng.lognormal(p[0] + (0.3 if shift else 0.0), p[1], rows)
    elif spec.shape == "count":
        values = rng.poisson(p[0] * (1.4 if shift else 1.0), rows).astype(float)
    elif spec.shape == "uniform":
        values = rng.uniform(p[0] + (0.3 * p[1] if shift else 0.0), p[1] * (1.3 if shift else 1.0), rows)
    elif spec.shape == "ordinal":
        values = rng.integers(0, int(p[0]), rows).astype(float)
    else:
        shares = np.asarray(spec.shares)
        if shift:
            shares = 0.5 * shares + 0.5 * np.roll(shares, 1)
        values = rng.choice(np.asarray(spec.categories, dtype=object), rows, p=shares / shares.sum())
    if spec.missing:
        values = values.astype(object) if spec.kind == "categorical" else values
        values[rng.random(rows) < MISSING_SHARE] = None if spec.kind == "categorical" else np.nan
    return values


def make_frame(specs: list[FeatureSpec], rows: int, seed: int, shifted: bool) -> pd.DataFrame:
    """A frame as the monitoring job gets it: float columns, and string columns of pandas' ``str`` dtype."""
    rng = np.random.default_rng(seed)
    columns = {
        s.name: pd.Series(
            draw(s, rows, rng, shifted and s.shifted), dtype="str" if s.kind == "categorical" else float
        )
        for s in specs
    }
    return pd.DataFrame(columns)


def pin(cpu: int, enabled: bool) -> str:
    """Pin this process to ``cpu`` if allowed; returns how the numbers were taken, for the report."""
    if not enabled:
        return "not pinned (--no-pin)"
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this platform)"
    allowed = os.sched_getaffinity(0)
    if cpu not in allowed:
        return f"not pinned (CPU {cpu} not in this process's affinity set {sorted(allowed)})"
    os.sched_setaffinity(0, {cpu})
    return f"process pinned to CPU {cpu} (os.sched_setaffinity)"


def machine_info() -> dict[str, object]:
    """What the numbers depend on: CPUs, OS, Python and the numeric libraries' versions."""
    versions: dict[str, str | None] = {}
    for dist in ("shipyard", "numpy", "pandas", "scipy", "matplotlib", "pyarrow"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        **machine_basics(),
        "python": platform.python_version(),
        "versions": versions,
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def profile(call: Callable[[], Any]) -> tuple[list[dict[str, object]], dict[str, float]]:
    """Top functions by own time, and the cumulative time of compute_drift's stages (per-feature steps)."""
    profiler = cProfile.Profile()
    profiler.runcall(call)
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:PROFILE_TOP]
    top: list[dict[str, object]] = [
        {
            "function": f"{Path(file).name}:{line}({func})" if line else func,
            "calls": calls,
            "own_s": round(own, 4),
            "cumulative_s": round(cum, 4),
        }
        for (file, line, func), (_, calls, own, cum, _) in rows
    ]
    stages = {
        "drift.py _values (to numpy)": ("drift.py", "_values"),
        "drift.py default_test (np.unique)": ("drift.py", "default_test"),
        "drift.py _plot_data (histograms, value_counts)": ("drift.py", "_plot_data"),
        "stattests wasserstein": ("wasserstein.py", "normed_distance"),
        "stattests jensenshannon": ("jensenshannon.py", "distance"),
        "stattests ks": ("ks.py", "p_value"),
        "stattests chisquare": ("chisquare.py", "p_value"),
        "stattests z": ("ztest.py", "p_value"),
        "stattests binning.shares (in jensenshannon)": ("binning.py", "shares"),
        "drift.py compute_drift (total)": ("drift.py", "compute_drift"),
    }
    found = {
        label: sum(v[3] for (file, _, func), v in raw.items() if file.endswith(name) and func == wanted)
        for label, (name, wanted) in stages.items()
    }
    return top, {label: round(seconds, 4) for label, seconds in found.items() if seconds > 0}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = benchmark_parser(
        (
            "Time shipyard.monitoring.drift.compute_drift on 100,000 current rows x 80 synthetic features "
            "(60 numeric, 20 categorical, 10 shifted) against a 2,344-row reference (Wasserstein / "
            "Jensen–Shannon) and a 1,000-row reference (KS / chi-squared), and render_html of the first "
            "report, in-process, alternated within each repetition after one discarded warm-up. Prints "
            "a Markdown table and writes JSON. Run from the repo root. With --false-alarms: measure "
            "instead how often drift is reported when reference and current rows come from the same "
            "distribution, over --seeds seeds."
        ),
        repeats=5,
        output=DEFAULT_OUTPUT,
        seed=20240601,
    )
    parser.add_argument(
        "--current-rows",
        type=int,
        default=None,
        help="Rows of current data (default: 100,000; 1,000 with --false-alarms).",
    )
    parser.add_argument(
        "--reference-rows", type=int, default=2344, help="Large reference (housing's training size)."
    )
    parser.add_argument(
        "--small-reference-rows", type=int, default=1000, help="Small reference (KS / chi-squared)."
    )
    parser.add_argument(
        "--html", type=Path, default=None, help="Also write the rendered report here, to look at it."
    )
    parser.add_argument(
        "--profile",
        choices=("auto", "on", "off"),
        default="auto",
        help="cProfile one extra call of each drift case: auto = only when the aim is not met.",
    )
    parser.add_argument(
        "--false-alarms",
        action="store_true",
        help=f"Measure false-alarm rates, not time (JSON to {FALSE_ALARM_OUTPUT.name} unless --output).",
    )
    parser.add_argument("--seeds", type=int, default=200, help="Seeds of the false-alarm measurement.")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.current_rows is None:
        args.current_rows = 1000 if args.false_alarms else 100_000
    if args.false_alarms and args.output == DEFAULT_OUTPUT:
        args.output = FALSE_ALARM_OUTPUT
    if args.small_reference_rows > 1000 or args.reference_rows <= 1000:
        parser.error("--small-reference-rows must be <= 1000 and --reference-rows > 1000 (test choice)")
    return args


def tests_chosen(report: DriftReport) -> str:
    counts = Counter(f.test for f in report.features)
    return ", ".join(f"{name} {n}" for name, n in counts.most_common())


def markdown(
    measures: list[Measure],
    reports: dict[str, DriftReport],
    machine: dict[str, object],
    meta: dict[str, Any],
    stages: dict[str, dict[str, float]],
    tops: dict[str, list[dict[str, object]]],
) -> str:
    """The table for BENCHMARKS.md, with the machine, data and method lines it needs to be read."""
    versions = machine["versions"] if isinstance(machine["versions"], dict) else {}
    shifted = SHIFTED_NUMERIC + SHIFTED_CATEGORICAL
    lines = [
        f"Machine: {machine['cpu_model']}, nproc={machine['nproc']} (affinity {machine['affinity']}), "
        f"{machine['platform']}",
        f"Python {machine['python']}, numpy {versions.get('numpy')}, pandas {versions.get('pandas')}, "
        f"scipy {versions.get('scipy')}, matplotlib {versions.get('matplotlib')}",
        f"Data: {meta['current_rows']:,} current rows x {NUMERIC + CATEGORICAL} features ({NUMERIC} numeric, "
        f"{CATEGORICAL} categorical with 10–30 categories), {shifted} shifted, seed {meta['seed']}.",
        f"Method: repeats={meta['repeats']}, configurations alternated, one discarded warm-up of each; "
        f"{meta['pinning']}; in-process wall clock of one call.",
        "",
        f"| configuration | tests chosen | drifted (of {NUMERIC + CATEGORICAL}; {shifted} shifted) "
        "| median (s) | min (s) | max (s) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for m in measures:
        st = summarise(m.samples)
        report = reports.get(m.name)
        chosen = tests_chosen(report) if report else "—"
        drifted = str(len(report.drifted_features)) if report else "—"
        lines.append(
            f"| {m.label} | {chosen} | {drifted} | {st['median']:.3f} | {st['min']:.3f} | {st['max']:.3f} |"
        )
    large = summarise(measures[0].samples)["median"]
    small = summarise(measures[1].samples)["median"]
    lines += [
        "",
        f"Aim: drift under {TARGET_SECONDS:g} s for {meta['current_rows']:,} x {NUMERIC + CATEGORICAL}: "
        f"{'met' if large < TARGET_SECONDS else 'NOT met'} (median {large:.3f} s, "
        f"{meta['reference_rows']:,}-row reference).",
        f"Same aim with the {meta['small_reference_rows']:,}-row reference: "
        f"{'met' if small < TARGET_SECONDS else 'NOT met'} (median {small:.3f} s).",
    ]
    for name, stage in stages.items():
        lines += [
            "",
            f"Where the time goes ({name}, one call under cProfile, which inflates it):",
            "",
            "| stage (cumulative over all features) | seconds |",
            "|---|---:|",
            *(f"| {label} | {seconds:.3f} |" for label, seconds in stage.items()),
            "",
            "| function (top by own time) | calls | own (s) | cumulative (s) |",
            "|---|---:|---:|---:|",
            *(
                f"| `{row['function']}` | {row['calls']} | {row['own_s']} | {row['cumulative_s']} |"
                for row in tops[name][:12]
            ),
        ]
    return "\n".join(lines)


def wilson(hits: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a rate: honest at 0 hits and small counts, unlike p ± 2 SE."""
    if trials == 0:
        return 0.0, 1.0
    rate = hits / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_cell(hits: int, trials: int) -> str:
    low, high = wilson(hits, trials)
    return f"{hits / trials:.1%} ({hits:,}/{trials:,}; 95% CI {low:.1%}–{high:.1%})"


def false_alarm_run(
    specs: list[FeatureSpec], reference_rows: int, current_rows: int, seeds: int, base_seed: int
) -> dict[str, Any]:
    """``seeds`` draws of reference and current rows from one distribution, each checked with the
    default tests; every drift flag is a false alarm."""
    kinds = {s.name: s.kind for s in specs}
    dataset = any_feature = 0
    checks: dict[str, list[int]] = {}  # test -> [flags, checks]
    per_feature: dict[str, int] = Counter()
    tests: dict[str, str] = {}
    for seed in range(seeds):
        reference = make_frame(specs, reference_rows, base_seed + 2 * seed + 1, shifted=False)
        current = make_frame(specs, current_rows, base_seed + 2 * seed + 2, shifted=False)
        report = compute_drift(reference, current, kinds, model="bench", version="1")
        dataset += report.dataset_drift
        any_feature += bool(report.drifted_features)
        for f in report.features:
            tally = checks.setdefault(f.test, [0, 0])
            tally[0] += f.drifted
            tally[1] += 1
            per_feature[f.name] += f.drifted
            tests[f.name] = f.test
    feature_rates: dict[str, list[float]] = {}
    for name, test in tests.items():
        feature_rates.setdefault(test, []).append(per_feature[name] / seeds)
    return {
        "reference_rows": reference_rows,
        "current_rows": current_rows,
        "seeds": seeds,
        "drift_share": 0.5,
        "dataset_drift": dataset,
        "any_feature_drifted": any_feature,
        "tests": {
            test: {
                "flags": flags,
                "checks": total,
                "rate": flags / total,
                "wilson95": wilson(flags, total),
                "features": len(feature_rates[test]),
                "per_feature_rate_min": min(feature_rates[test]),
                "per_feature_rate_max": max(feature_rates[test]),
            }
            for test, (flags, total) in checks.items()
        },
    }


def false_alarm_markdown(runs: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"Data: {NUMERIC + CATEGORICAL} synthetic columns ({NUMERIC} numeric, {CATEGORICAL} categorical), "
        f"none shifted: reference and current rows from the same distribution; {meta['seeds']} seeds "
        f"(feature shapes from seed {meta['seed']}); default tests and thresholds, drift_share 0.5.",
        "",
        "| reference rows | current rows | dataset drift reported (false alarm) | seeds with ≥ 1 drifted "
        "feature |",
        "|---:|---:|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run['reference_rows']:,} | {run['current_rows']:,} | "
            f"{rate_cell(run['dataset_drift'], run['seeds'])} | "
            f"{rate_cell(run['any_feature_drifted'], run['seeds'])} |"
        )
    lines += [
        "",
        "| reference rows | test | features | feature checks that said drift | per-feature rate, min–max |",
        "|---:|---|---:|---|---|",
    ]
    for run in runs:
        for test, t in run["tests"].items():
            spread = f"{t['per_feature_rate_min']:.1%}–{t['per_feature_rate_max']:.1%}"
            rate = rate_cell(t["flags"], t["checks"])
            lines.append(f"| {run['reference_rows']:,} | {test} | {t['features']} | {rate} | {spread} |")
    return "\n".join(lines)


def false_alarms(args: argparse.Namespace) -> int:
    """Both reference regimes, ``--seeds`` seeds each: print Markdown, write JSON."""
    specs = feature_specs(np.random.default_rng(args.seed))
    runs = []
    for reference_rows in (args.small_reference_rows, args.reference_rows):
        started = time.perf_counter()
        runs.append(false_alarm_run(specs, reference_rows, args.current_rows, args.seeds, args.seed))
        print(
            f"reference {reference_rows:,}: {args.seeds} seeds in {time.perf_counter() - started:.1f}s",
            file=sys.stderr,
        )
    meta = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seed": args.seed,
        "seeds": args.seeds,
        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL, "ordinal_numeric": ORDINAL},
        "missing": [s.name for s in specs if s.missing],
    }
    table = false_alarm_markdown(runs, meta)
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    results = {"meta": meta, "machine": machine_info(), "runs": runs, "markdown": table}
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.output}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Build the data, warm up, measure alternating, summarise, print Markdown, write JSON."""
    args = parse_args(argv)
    if args.false_alarms:
        return false_alarms(args)
    pinning = pin(args.cpu, not args.no_pin)
    machine = machine_info()
    specs = feature_specs(np.random.default_rng(args.seed))
    kinds = {s.name: s.kind for s in specs}
    print("building synthetic frames ...", file=sys.stderr)
    reference = make_frame(specs, args.reference_rows, args.seed + 1, shifted=False)
    small_reference = make_frame(specs, args.small_reference_rows, args.seed + 2, shifted=False)
    current = make_frame(specs, args.current_rows, args.seed + 3, shifted=True)

    reports: dict[str, DriftReport] = {}

    def drift_large() -> DriftReport:
        return compute_drift(reference, current, kinds, model="bench", version="1")

    def drift_small() -> DriftReport:
        return compute_drift(small_reference, current, kinds, model="bench", version="1")

    def render() -> str:
        return render_html(reports["drift_large"])

    measures = [
        Measure("drift_large", f"`compute_drift`, reference {args.reference_rows:,} rows", drift_large),
        Measure("drift_small", f"`compute_drift`, reference {args.small_reference_rows:,} rows", drift_small),
        Measure("render_html", "", render),
    ]
    # One discarded warm-up of each: imports, scipy's lazy loading and matplotlib's font cache are paid here.
    page = ""
    for m in measures:
        seconds, result = timed(m.call)
        if isinstance(result, DriftReport):
            reports[m.name] = result
        else:
            page = result
        print(f"warm-up   {m.name:<12} {seconds:7.3f}s (discarded)", file=sys.stderr)
    measures[2].label = (
        f"`render_html` of the {args.reference_rows:,}-row report "
        f"({len(reports['drift_large'].features)} plots, {len(page.encode()) / 1e6:.2f} MB)"
    )
    for rep in range(1, args.repeats + 1):
        for m in measures:
            seconds, _ = timed(m.call)
            m.samples.append(seconds)
            print(f"rep {rep}/{args.repeats} {m.name:<12} {seconds:7.3f}s", file=sys.stderr)

    stages: dict[str, dict[str, float]] = {}
    tops: dict[str, list[dict[str, object]]] = {}
    for m in measures[:2]:
        slow = summarise(m.samples)["median"] >= TARGET_SECONDS
        if args.profile == "on" or (args.profile == "auto" and slow):
            tops[m.label], stages[m.label] = profile(m.call)

    meta: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "repeats": args.repeats,
        "seed": args.seed,
        "current_rows": args.current_rows,
        "reference_rows": args.reference_rows,
        "small_reference_rows": args.small_reference_rows,
        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL, "ordinal_numeric": ORDINAL},
        "shifted": [s.name for s in specs if s.shifted],
        "missing": [s.name for s in specs if s.missing],
        "dtypes": {str(k): int(v) for k, v in current.dtypes.astype(str).value_counts().items()},
        "pinning": pinning,
        "order": [m.name for m in measures],
        "target": {"drift_seconds_below": TARGET_SECONDS},
    }
    table = markdown(measures, reports, machine, meta, stages, tops)
    print(table)
    if args.html:
        args.html.write_text(page, encoding="utf-8")
        print(f"\nwrote {args.html}", file=sys.stderr)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    results = {
        "meta": meta,
        "machine": machine,
        "samples_s": {m.name: m.samples for m in measures},
        "summary_s": {m.name: summarise(m.samples) for m in measures},
        "labels": {m.name: m.label for m in measures},
        "reports": {
            name: {
                "tests": dict(Counter(f.test for f in r.features)),
                "drifted_features": r.drifted_features,
                "dataset_drift": r.dataset_drift,
            }
            for name, r in reports.items()
        },
        "html_bytes": len(page.encode()),
        "target_met": summarise(measures[0].samples)["median"] < TARGET_SECONDS,
        "target_met_small_reference": summarise(measures[1].samples)["median"] < TARGET_SECONDS,
        "profile": {"stages_s": stages, "top_own_time": tops},
        "markdown": table,
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
