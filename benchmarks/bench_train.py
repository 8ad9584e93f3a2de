"""Time ``shipyard train -c configs/iris.yaml`` against a bare scikit-learn script, side by side in one run.

Why whole processes: what a user waits for is the command, imports included, so each configuration is
timed as a subprocess (wall clock, ``time.perf_counter`` around ``subprocess.run``):

- ``bare``           ``python benchmarks/bare_train_iris.py``: same data, split and model, no tracking;
- ``mlflow_import``  ``python -c "import mlflow"``: the fixed cost any MLflow-tracked script pays;
- ``shipyard``       ``shipyard train -c configs/iris.yaml -q`` on an already-migrated store;
- ``shipyard_fresh`` the same command as the first run on a fresh store (includes the one-time SQLite
  migration, experiment and registered-model creation), reported separately.

Fair method (shared/STACK-NOTES.md): one discarded warm-up of each configuration, configurations
alternated within each repetition, ratios computed within each repetition and then their median
reported, the measured process pinned with ``taskset -c 0`` when taskset exists. The aim from the
issue: ``shipyard / (bare + mlflow_import)`` under 1.5.

Run from the repo root: ``.venv/bin/python benchmarks/bench_train.py --repeats 3``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import benchmark_parser, machine_basics, pin_prefix, summarise

REPO = Path(__file__).resolve().parent.parent
CONFIG = Path("configs/iris.yaml")
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "bench_train.json"
TARGET_RATIO = 1.5
TARGET = "shipyard / (bare + mlflow_import)"
# Environment that could point the child at another store or turn on telemetry; dropped for every child.
SCRUBBED_PREFIXES = ("SHIPYARD_", "MLFLOW_")
ACCURACY = re.compile(r"accuracy=([0-9.]+)")


class BenchError(RuntimeError):
    """A measured command failed; carries what it printed so the report shows the exact error."""


@dataclass
class Measure:
    """One configuration: how to build its command and working dir, and the seconds it took."""

    name: str
    label: str
    command: Callable[[], tuple[list[str], Path, dict[str, str]]]
    samples: list[float] = field(default_factory=list)
    accuracy: str | None = None


@dataclass
class Ratio:
    """A ratio (or difference) per repetition and its median/min/max across repetitions."""

    per_repetition: list[float]
    median: float
    min: float
    max: float


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The parent's environment without SHIPYARD_*/MLFLOW_* overrides, telemetry off, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"})
    env.update(extra or {})
    return env


def run_timed(cmd: Sequence[str], cwd: Path, env: dict[str, str], pin: list[str]) -> tuple[float, str]:
    """Wall-clock seconds of the whole process; raises BenchError with its output if it fails."""
    full = [*pin, *cmd]
    start = time.perf_counter()
    proc = subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError(
            f"command failed (exit {proc.returncode}): {' '.join(full)}\n  cwd: {cwd}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return elapsed, proc.stdout


def new_store(root: Path) -> Path:
    """A fresh working dir holding a copy of configs/; SHIPYARD_HOME points here, so mlflow.db lives here."""
    home = Path(tempfile.mkdtemp(prefix="store-", dir=root))
    shutil.copytree(REPO / "configs", home / "configs")
    return home


def machine_info(python: str, tmp_root: Path) -> dict[str, object]:
    """What the numbers depend on: CPUs, OS, the venv's Python and library versions, the store's disk."""
    probe = (
        "import json, sys, importlib.metadata as m\n"
        "v = {}\n"
        "for d in ('mlflow', 'scikit-learn', 'shipyard', 'pandas', 'numpy'):\n"
        "    try: v[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: v[d] = None\n"
        "print(json.dumps({'python': sys.version.split()[0], 'versions': v}))\n"
    )
    out = subprocess.run(
        [python, "-c", probe], env=child_env(), capture_output=True, text=True, check=True
    ).stdout
    child = json.loads(out)
    fs_type = None
    df = shutil.which("df")
    if df:
        lines = subprocess.run(
            [df, "-T", str(tmp_root)], capture_output=True, text=True, check=False
        ).stdout.splitlines()
        fs_type = lines[1].split()[1] if len(lines) > 1 and len(lines[1].split()) > 1 else None
    return {
        **machine_basics(),
        "python": child["python"],
        "versions": child["versions"],
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "store_dir": str(tmp_root),
        "store_fs": fs_type,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = benchmark_parser(
        (
            "Time `shipyard train -c configs/iris.yaml -q` against a bare scikit-learn script fitting the "
            "same model on the same split (benchmarks/bare_train_iris.py) and against `python -c 'import "
            "mlflow'`, as whole processes, alternated within each repetition after one discarded warm-up "
            "of each. Also times the first run on a fresh store (one-time SQLite migration) separately. "
            "Prints a Markdown table and writes JSON. Run from the repo root."
        ),
        repeats=5,
        output=DEFAULT_OUTPUT,
        tmpdir=True,
    )
    parser.add_argument(
        "--python", default=str(REPO / ".venv" / "bin" / "python"), help="Interpreter for bare / import runs."
    )
    parser.add_argument(
        "--shipyard", default=str(REPO / ".venv" / "bin" / "shipyard"), help="The shipyard entry point."
    )
    parser.add_argument(
        "--keep-stores", action="store_true", help="Leave the temporary stores for inspection."
    )
    return parser.parse_args(argv)


def build_measures(args: argparse.Namespace, root: Path) -> list[Measure]:
    """The five configurations in the order they alternate; the warm store is made (not yet migrated) here."""
    warm_home = new_store(root)
    bare_script = str(REPO / "benchmarks" / "bare_train_iris.py")
    train = [args.shipyard, "train", "-c", str(CONFIG), "-q"]

    def bare() -> tuple[list[str], Path, dict[str, str]]:
        return [args.python, bare_script], REPO, child_env()

    def mlflow_import() -> tuple[list[str], Path, dict[str, str]]:
        return [args.python, "-c", "import mlflow"], REPO, child_env()

    mlflow_home = new_store(root)
    mlflow_script = str(REPO / "benchmarks" / "mlflow_train_iris.py")

    def mlflow_tracked() -> tuple[list[str], Path, dict[str, str]]:
        return [args.python, mlflow_script, str(mlflow_home)], REPO, child_env()

    def shipyard_warm() -> tuple[list[str], Path, dict[str, str]]:
        return train, warm_home, child_env({"SHIPYARD_HOME": str(warm_home)})

    def shipyard_fresh() -> tuple[list[str], Path, dict[str, str]]:
        home = new_store(root)
        return train, home, child_env({"SHIPYARD_HOME": str(home)})

    measures = [
        Measure("bare", "bare scikit-learn script", bare),
        Measure("mlflow_import", '`python -c "import mlflow"`', mlflow_import),
        Measure("mlflow_script", "plain MLflow script (fit, log, register; migrated store)", mlflow_tracked),
        Measure("shipyard", "`shipyard train -q`, migrated store", shipyard_warm),
        Measure("shipyard_fresh", "`shipyard train -q`, first run on a fresh store", shipyard_fresh),
    ]
    return measures


def ratio_table(samples: dict[str, list[float]]) -> dict[str, Ratio]:
    """Ratios within each repetition (same moment, same machine state), then summarised across them."""
    b, m, s, f = (samples[k] for k in ("bare", "mlflow_import", "shipyard", "shipyard_fresh"))
    p = samples["mlflow_script"]
    per_rep = {
        "shipyard / bare": [si / bi for si, bi in zip(s, b, strict=True)],
        TARGET: [si / (bi + mi) for si, bi, mi in zip(s, b, m, strict=True)],
        "shipyard / plain MLflow script": [si / pi for si, pi in zip(s, p, strict=True)],
        "shipyard_fresh / bare": [fi / bi for fi, bi in zip(f, b, strict=True)],
        "shipyard_fresh / (bare + mlflow_import)": [
            fi / (bi + mi) for fi, bi, mi in zip(f, b, m, strict=True)
        ],
    }
    extra = {
        "shipyard - (bare + mlflow_import), s": [si - bi - mi for si, bi, mi in zip(s, b, m, strict=True)],
        "shipyard_fresh - shipyard (first-run cost), s": [fi - si for fi, si in zip(f, s, strict=True)],
    }
    return {name: Ratio(v, **summarise(v)) for name, v in {**per_rep, **extra}.items()}


def markdown(
    measures: list[Measure],
    ratios: dict[str, Ratio],
    machine: dict[str, object],
    meta: dict[str, object],
) -> str:
    """The tables for BENCHMARKS.md, with the machine and method lines they need to be read."""
    versions = machine["versions"] if isinstance(machine["versions"], dict) else {}
    lines = [
        f"Machine: {machine['cpu_model']}, nproc={machine['nproc']} (affinity {machine['affinity']}), "
        f"{machine['platform']}, store on {machine['store_fs']}",
        f"Python {machine['python']}, mlflow {versions.get('mlflow')}, "
        f"scikit-learn {versions.get('scikit-learn')}, shipyard {versions.get('shipyard')}",
        f"Method: repeats={meta['repeats']}, configurations alternated, one discarded warm-up of each; "
        f"{meta['pinning']}; wall clock of the whole process.",
        "",
        "| configuration | median (s) | min (s) | max (s) |",
        "|---|---:|---:|---:|",
    ]
    for m in measures:
        st = summarise(m.samples)
        lines.append(f"| {m.label} | {st['median']:.3f} | {st['min']:.3f} | {st['max']:.3f} |")
    lines += ["", "| within each repetition | median | min | max |", "|---|---:|---:|---:|"]
    for name, r in ratios.items():
        unit = "" if name.endswith(", s") else "x"
        lines.append(f"| {name} | {r.median:.2f}{unit} | {r.min:.2f}{unit} | {r.max:.2f}{unit} |")
    target = ratios[TARGET].median
    verdict = "met" if target < TARGET_RATIO else "NOT met"
    lines += [
        "",
        f"Aim `shipyard / (bare + mlflow_import) < {TARGET_RATIO}`: {verdict} (median {target:.2f}x).",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Warm up, measure alternating, summarise, print Markdown, write JSON; non-zero if a command fails."""
    args = parse_args(argv)
    for exe in (args.python, args.shipyard):
        if not Path(exe).exists():
            print(
                f"error: {exe} not found (run `make install` first, or pass --python/--shipyard)",
                file=sys.stderr,
            )
            return 2
    pin, pinning = pin_prefix(args.cpu, not args.no_pin)
    pinning = f"measured process pinned with {pinning}" if pin else pinning
    root = Path(tempfile.mkdtemp(prefix="shipyard-bench-", dir=args.tmpdir))
    try:
        machine = machine_info(args.python, root)
        measures = build_measures(args, root)
        print(f"{pinning}; stores under {root}", file=sys.stderr)
        # One discarded warm-up of each: page cache and .pyc files are hot, and the warm store is migrated.
        for m in measures:
            cmd, cwd, env = m.command()
            seconds, out = run_timed(cmd, cwd, env, pin)
            print(f"warm-up   {m.name:<15} {seconds:7.3f}s (discarded)", file=sys.stderr)
        for rep in range(1, args.repeats + 1):
            for m in measures:
                cmd, cwd, env = m.command()
                seconds, out = run_timed(cmd, cwd, env, pin)
                m.samples.append(seconds)
                found = ACCURACY.search(out)
                m.accuracy = found.group(1) if found else m.accuracy
                print(f"rep {rep}/{args.repeats} {m.name:<15} {seconds:7.3f}s", file=sys.stderr)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep_stores:
            print(f"kept stores under {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    samples = {m.name: m.samples for m in measures}
    ratios = ratio_table(samples)
    accuracies = {m.name: m.accuracy for m in measures if m.accuracy is not None}
    same_model = len(set(accuracies.values())) == 1
    meta: dict[str, object] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "repeats": args.repeats,
        "pinning": pinning,
        "pin_command": pin,
        "order": [m.name for m in measures],
        "commands": {
            "bare": f"{args.python} benchmarks/bare_train_iris.py (cwd: repo root)",
            "mlflow_import": f'{args.python} -c "import mlflow" (cwd: repo root)',
            "shipyard": f"{args.shipyard} train -c {CONFIG} -q (cwd + SHIPYARD_HOME: migrated temp store)",
            "shipyard_fresh": f"{args.shipyard} train -c {CONFIG} -q (cwd + SHIPYARD_HOME: new temp store)",
        },
        "child_env": "SHIPYARD_*/MLFLOW_* unset; MLFLOW_DISABLE_TELEMETRY=true, DO_NOT_TRACK=1",
        "test_accuracy": accuracies,
        "same_accuracy": same_model,
        "target": {"ratio": TARGET, "below": TARGET_RATIO},
    }
    table = markdown(measures, ratios, machine, meta)
    print(table)
    if not same_model:
        print(
            f"\nwarning: test accuracies differ, so the models may not match: {accuracies}", file=sys.stderr
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    results = {
        "meta": meta,
        "machine": machine,
        "samples_s": samples,
        "summary_s": {name: summarise(v) for name, v in samples.items()},
        "ratios": {name: asdict(r) for name, r in ratios.items()},
        "target_met": ratios[TARGET].median < TARGET_RATIO,
        "markdown": table,
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
