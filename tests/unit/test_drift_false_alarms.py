"""How often drift is reported when nothing moved: reference and current rows drawn from one distribution.

The README's numbers come from ``benchmarks/bench_drift.py --false-alarms`` (80 columns, 1,000 current
rows, both reference sizes); this is the same measurement, small enough for the unit tier: 200 seeds,
four features (two for KS, one each for chi-squared and the Z-test, the tests a reference of up to 1,000
rows gets), 500 rows each side, default tests and ``drift_share``; first without a p-value correction
(Evidently's behaviour), then with Benjamini-Hochberg (the default) and Bonferroni on the same draws.
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
        report = compute_drift(draw(rng, ROWS), draw(rng, ROWS), KINDS, correction="none")
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


def test_a_correction_holds_the_chance_of_any_false_alarm_near_the_threshold() -> None:
    """Four features at p < 0.05 each: some feature drifts in ~1 - 0.95**4 = 19% of no-shift windows
    without correction. Benjamini-Hochberg (all features unchanged: its FDR is the family-wise rate) and
    Bonferroni keep that chance at about 5%, and never flag a feature the uncorrected test did not."""
    windows_flagged: Counter[str] = Counter()
    dataset_alarms: Counter[str] = Counter()
    for seed in range(SEEDS):
        rng = np.random.default_rng([2025, seed])
        reference, current = draw(rng, ROWS), draw(rng, ROWS)
        for correction in ("none", "bh", "bonferroni"):
            report = compute_drift(reference, current, KINDS, correction=correction)
            windows_flagged[correction] += bool(report.drifted_features)
            dataset_alarms[correction] += report.dataset_drift
            if correction != "none":
                for feature in report.features:
                    assert feature.p_adjusted is not None and feature.p_adjusted >= feature.score
                    assert feature.drifted <= bool(feature.drifted_uncorrected)
    rate = {name: count / SEEDS for name, count in windows_flagged.items()}
    assert 0.12 <= rate["none"] <= 0.27, rate
    assert rate["bh"] <= 0.09 and rate["bonferroni"] <= 0.09, rate
    assert rate["bonferroni"] <= rate["bh"] < rate["none"], rate
    # the dataset verdict (half of the features) moves the same way; its rate is measured over 1,000s
    # of windows in benchmarks/bench_monitoring.py (200 seeds see only a handful of such alarms)
    assert dataset_alarms["bonferroni"] <= dataset_alarms["bh"] <= dataset_alarms["none"], dataset_alarms
    assert dataset_alarms["bh"] / SEEDS <= 0.03, dataset_alarms
