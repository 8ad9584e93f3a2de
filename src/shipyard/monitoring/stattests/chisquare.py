"""Chi-squared test of homogeneity between reference and current category counts.

A two-sample test (a 2 x k contingency table), not a goodness-of-fit test against the reference's
shares: the reference is a sample too, and treating its shares as exact flags drift in identical
distributions far more often than the nominal 5%.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from shipyard.monitoring.stattests.binning import category_counts


def p_value(reference: np.ndarray, current: np.ndarray) -> float:
    reference_counts, current_counts = category_counts(reference, current)
    categories = reference_counts.index.union(current_counts.index)
    if len(categories) < 2:
        return 1.0
    table = np.vstack(
        [
            reference_counts.reindex(categories, fill_value=0).to_numpy(dtype=float),
            current_counts.reindex(categories, fill_value=0).to_numpy(dtype=float),
        ]
    )
    return float(stats.chi2_contingency(table, correction=False).pvalue)
