"""Two-sample Kolmogorov–Smirnov test: the default for numeric features with a small reference."""

from __future__ import annotations

import numpy as np
from scipy import stats


def p_value(reference: np.ndarray, current: np.ndarray) -> float:
    return float(stats.ks_2samp(reference, current).pvalue)
