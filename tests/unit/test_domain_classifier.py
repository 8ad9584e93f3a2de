"""The multivariate drift score (issue 16): a domain classifier catches a joint shift that leaves every
feature's own distribution unchanged, which every per-feature test misses; it stays quiet when nothing
moved; it names the features it used; it is part of the dataset verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.monitoring.drift import compute_drift
from shipyard.monitoring.multivariate import DomainClassifierSettings, domain_classifier

KINDS = {"height": "numeric", "weight": "numeric", "age": "numeric", "city": "categorical"}


def people(rng: np.random.Generator, rows: int, joint_shift: bool = False) -> pd.DataFrame:
    height = rng.normal(170, 10, rows)
    weight = 0.9 * (height - 170) + rng.normal(70, 4, rows)  # strongly tied to height
    if joint_shift:  # the same weights, no longer tied to the heights: every marginal unchanged
        weight = rng.permutation(weight)
    return pd.DataFrame(
        {
            "height": height,
            "weight": weight,
            "age": rng.integers(18, 80, rows).astype(float),
            "city": rng.choice(["north", "south", "east", np.nan], rows, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )


def test_a_joint_shift_is_caught_and_no_single_feature_shows_it() -> None:
    rng = np.random.default_rng(11)
    reference, current = people(rng, 1500), people(rng, 800, joint_shift=True)
    report = compute_drift(reference, current, KINDS, domain=DomainClassifierSettings())
    assert report.drifted_features == []  # every per-feature test: no drift
    found = report.multivariate
    assert found is not None and found.drifted and found.auroc > 0.7 and found.p_value < 1e-6
    assert {f["name"] for f in found.top_features[:2]} == {"height", "weight"}
    assert report.dataset_drift  # the verdict a retrain trigger reads includes it
    assert report.to_dict()["multivariate"]["auroc"] == found.auroc


def test_no_shift_stays_quiet_over_seeds() -> None:
    alarms, aurocs = 0, []
    for seed in range(12):
        rng = np.random.default_rng([5, seed])
        found = domain_classifier(
            people(rng, 600), people(rng, 300), KINDS, DomainClassifierSettings(seed=seed)
        )
        assert found is not None
        alarms += found.drifted
        aurocs.append(found.auroc)
        assert found.drifted or found.top_features == []  # features are named only on drift
    assert alarms <= 1, aurocs
    assert 0.4 < float(np.median(aurocs)) < 0.56, aurocs


def test_rows_are_sampled_and_tiny_windows_are_skipped() -> None:
    rng = np.random.default_rng(3)
    found = domain_classifier(
        people(rng, 5000), people(rng, 4000), KINDS, DomainClassifierSettings(max_rows=500)
    )
    assert found is not None and found.reference_rows == 500 and found.current_rows == 500
    assert domain_classifier(people(rng, 100), people(rng, 3), KINDS) is None
    off = compute_drift(people(rng, 300), people(rng, 300), KINDS)
    assert off.multivariate is None  # only when asked for


def test_the_domain_classifier_is_configured() -> None:
    from pydantic import ValidationError

    from shipyard.config.pipeline import MonitoringConfig

    config = MonitoringConfig()
    assert config.domain_classifier.enabled and config.domain_classifier.threshold == 0.6
    with pytest.raises(ValidationError, match="threshold"):
        MonitoringConfig(domain_classifier={"threshold": 0.4})
