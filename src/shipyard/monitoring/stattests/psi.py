"""Population stability index over shared bins (or categories)."""

from __future__ import annotations

import numpy as np

from shipyard.monitoring.stattests.binning import shares


def index(reference: np.ndarray, current: np.ndarray) -> float:
    ref, cur = shares(reference, current)
    ref = np.clip(ref, 1e-4, None)
    cur = np.clip(cur, 1e-4, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))
