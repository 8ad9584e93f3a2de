"""Two-proportion Z-test: the default for binary features with a small reference."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def p_value(reference: np.ndarray, current: np.ndarray) -> float:
    values = np.union1d(np.unique(reference), np.unique(current))
    positive = values[-1]
    n1, n2 = len(reference), len(current)
    p1, p2 = float(np.mean(reference == positive)), float(np.mean(current == positive))
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 1.0 if p1 == p2 else 0.0
    z = (p1 - p2) / spread
    return float(2 * stats.norm.sf(abs(z)))
