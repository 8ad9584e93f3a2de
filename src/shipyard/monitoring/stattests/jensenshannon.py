"""Jensen–Shannon distance between category (or binned) distributions: categorical, large reference."""

from __future__ import annotations

import numpy as np
from scipy.spatial import distance as sp_distance

from shipyard.monitoring.stattests.binning import shares


def distance(reference: np.ndarray, current: np.ndarray) -> float:
    ref, cur = shares(reference, current)
    return float(sp_distance.jensenshannon(ref, cur, base=2))
