"""How often drift is reported when nothing moved: reference and current rows drawn from one distribution.

The README's numbers come from ``benchmarks/bench_drift.py --false-alarms`` (80 columns, 1,000 current
rows, both reference sizes); this is the same measurement, small enough for the unit tier: 200 seeds,
four features (two for KS, one each for chi-squared and the Z-test, the tests a reference of up to 1,000
rows gets), 500 rows each side, default tests and ``drift_share``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from shipyard.monitoring.drift import compute_drift

SEEDS = 200
ROWS = 500
KINDS = {"length": "numeric", "income": "numeric", "colour": "categorical", "member": "categorical"}


def draw(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "length": rng.normal(10.0, 2.0, rows),
            "income": rng.lognormal(10.0, 0.5, rows),
            "colour": rng.choice(
                ["red", "green", "blue", "grey", "black"], rows, p=[0.4, 0.2, 0.2, 0.1, 0.1]
            ),
            "member": rng.choice(["yes", "no"], rows, p=[0.7, 0.3]),
        }
    )


def test_false_alarm_rate_over_200_seeds_of_identical_distributions() -> None:
    flags: Counter[str] = Counter()
    checks: Counter[str] = Counter()
    dataset_alarms = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng([2024, seed])
        report = compute_drift(draw(rng, ROWS), draw(rng, ROWS), KINDS)
        dataset_alarms += report.dataset_drift
        for feature in report.features:
            flags[feature.test] += feature.drifted
            checks[feature.test] += 1

    assert checks == {"ks": 2 * SEEDS, "chisquare": SEEDS, "z": SEEDS}  # the small-reference defaults
    # every test at p < 0.05: over the 800 feature checks, the false-alarm rate is the nominal 5% give or
    # take sampling (one standard error is 0.8 points here)
    pooled = sum(flags.values()) / sum(checks.values())
    assert 0.03 <= pooled <= 0.08, f"{pooled:.1%} of feature checks said drift ({dict(flags)})"
    # no single test far above its nominal rate (10% is beyond the 99.9% binomial bound for 200 checks)
    for test, count in checks.items():
        assert flags[test] / count <= 0.10, f"{test}: {flags[test]}/{count} checks said drift"
    # the dataset drifts only when half of its features do: two of four at once, about 1.4% by chance
    assert dataset_alarms / SEEDS <= 0.04, f"dataset drift reported for {dataset_alarms} of {SEEDS} seeds"
    assert dataset_alarms / SEEDS < pooled
