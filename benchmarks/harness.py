"""What every benchmark harness here shares: pinning a measured process to a core, and summaries."""

from __future__ import annotations

import os
import shutil
import statistics
from collections.abc import Sequence


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
