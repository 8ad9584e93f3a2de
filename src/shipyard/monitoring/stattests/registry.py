"""The registry of named drift tests: what each computes, on which kind of feature, and when it says drift.

Which kinds a test fits comes from the config's table (``DRIFT_METHOD_KINDS``), so a config is refused
for the same reason the registry would refuse the test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shipyard.config.pipeline import DRIFT_METHOD_KINDS, FeatureKind, drift_method_misfit
from shipyard.errors import ConfigError
from shipyard.monitoring.stattests import chisquare, jensenshannon, ks, psi, wasserstein, ztest


@dataclass(frozen=True)
class StatTest:
    name: str
    title: str
    score_is_p_value: bool  # True: drift when score < threshold; False: drift when score >= threshold
    default_threshold: float
    compute: Callable[[np.ndarray, np.ndarray], float]

    @property
    def kinds(self) -> tuple[FeatureKind, ...]:
        """The feature kinds this test is valid for."""
        return DRIFT_METHOD_KINDS[self.name]

    def require_fits(self, feature: str, kind: str) -> None:
        """Refuse to test a feature of a kind this test is not made for (KS on categories, ...)."""
        problem = drift_method_misfit(feature, kind, self.name)
        if problem:
            raise ConfigError(problem)

    def drifted(self, score: float, threshold: float) -> bool:
        return score < threshold if self.score_is_p_value else score >= threshold


STATTESTS: dict[str, StatTest] = {
    t.name: t
    for t in (
        StatTest("ks", "Kolmogorov–Smirnov p-value", True, 0.05, ks.p_value),
        StatTest("chisquare", "chi-squared p-value", True, 0.05, chisquare.p_value),
        StatTest("z", "two-proportion Z-test p-value", True, 0.05, ztest.p_value),
        StatTest("wasserstein", "Wasserstein distance (normed)", False, 0.1, wasserstein.normed_distance),
        StatTest("jensenshannon", "Jensen–Shannon distance", False, 0.1, jensenshannon.distance),
        StatTest("psi", "population stability index", False, 0.1, psi.index),
    )
}


def get_stattest(name: str) -> StatTest:
    found = STATTESTS.get(name)
    if found is None:
        raise ConfigError(f"unknown drift test '{name}' (expected one of: {', '.join(STATTESTS)})")
    return found
