"""What every benchmark harness here shares: its command-line options, pinning a measured process to a
core, and summaries."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import textwrap
from collections.abc import Sequence
from pathlib import Path


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown in --help; a description keeps its own line breaks (a module docstring)."""


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def benchmark_parser(
    description: str,
    *,
    repeats: int,
    output: Path | None = None,
    cpu: int | None = 0,
    seed: int | None = None,
    tmpdir: bool = False,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """The parser every benchmark starts from, with the options they share: --repeats (at least 1),
    --no-pin (alias --no-taskset), and where the benchmark has them --output (JSON results), --cpu (the
    CPU the measured process is pinned to), --seed and --tmpdir. Each adds its own options to it."""
    if "\n" not in description.strip():
        description = textwrap.fill(description, 100)
    parser = argparse.ArgumentParser(description=description, epilog=epilog, formatter_class=_HelpFormatter)
    parser.add_argument(
        "--repeats", type=_at_least_one, default=repeats, help="Measured repetitions of every configuration."
    )
    if output is not None:
        parser.add_argument("--output", type=Path, default=output, help="Where to write the JSON results.")
    if cpu is not None:
        parser.add_argument("--cpu", type=int, default=cpu, help="CPU to pin the measured process to.")
    parser.add_argument(
        "--no-pin",
        "--no-taskset",
        dest="no_pin",
        action="store_true",
        help="Do not pin to a CPU, even where pinning is possible.",
    )
    if seed is not None:
        parser.add_argument("--seed", type=int, default=seed, help="Seed of the generated data.")
    if tmpdir:
        parser.add_argument(
            "--tmpdir",
            type=Path,
            default=None,
            help="Parent folder of the temporary stores (default: system tmp).",
        )
    return parser


def pin_prefix(cpu: int, enabled: bool) -> tuple[list[str], str]:
    """``taskset -c <cpu>`` if taskset exists and the CPU is ours to use; otherwise no pinning, and why."""
    if not enabled:
        return [], "not pinned (--no-taskset)"
    taskset = shutil.which("taskset")
    if taskset is None:
        return [], "not pinned (taskset not found)"
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if cpu not in allowed:
        return [], f"not pinned (CPU {cpu} not in this process's affinity set {sorted(allowed)})"
    return [taskset, "-c", str(cpu)], f"`taskset -c {cpu}`"


def git_revision(folder: Path) -> str | None:
    """The short commit checked out at ``folder``, ``-dirty`` if tracked files differ from it; None outside
    git. Says which code a result belongs to."""
    git = shutil.which("git")
    if git is None:
        return None
    head = subprocess.run(
        [git, "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    if head.returncode != 0:
        return None
    status = subprocess.run(
        [git, "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def summarise(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max: the median is the headline, min/max show the spread."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def machine_basics() -> dict[str, object]:
    """CPU count and model, this process's CPU affinity, and the platform: the line every table needs."""
    import platform
    from pathlib import Path

    cpu_model = None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "platform": platform.platform(),
    }
