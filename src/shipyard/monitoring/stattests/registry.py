"""The registry of named drift tests: what each computes, on which kind of feature, and when it says drift."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shipyard.errors import ConfigError
from shipyard.monitoring.stattests import chisquare, jensenshannon, ks, psi, wasserstein, ztest


@dataclass(frozen=True)
class StatTest:
    name: str
    title: str
    kinds: tuple[str, ...]  # "numeric", "categorical"
    score_is_p_value: bool  # True: drift when score < threshold; False: drift when score >= threshold
    default_threshold: float
    compute: Callable[[np.ndarray, np.ndarray], float]

    def drifted(self, score: float, threshold: float) -> bool:
        return score < threshold if self.score_is_p_value else score >= threshold


STATTESTS: dict[str, StatTest] = {
    t.name: t
    for t in (
        StatTest("ks", "Kolmogorov–Smirnov p-value", ("numeric",), True, 0.05, ks.p_value),
        StatTest(
            "chisquare", "chi-squared p-value", ("categorical", "numeric"), True, 0.05, chisquare.p_value
        ),
        StatTest("z", "two-proportion Z-test p-value", ("categorical",), True, 0.05, ztest.p_value),
        StatTest(
            "wasserstein",
            "Wasserstein distance (normed)",
            ("numeric",),
            False,
            0.1,
            wasserstein.normed_distance,
        ),
        StatTest(
            "jensenshannon",
            "Jensen–Shannon distance",
            ("categorical", "numeric"),
            False,
            0.1,
            jensenshannon.distance,
        ),
        StatTest("psi", "population stability index", ("numeric", "categorical"), False, 0.1, psi.index),
    )
}


def get_stattest(name: str) -> StatTest:
    found = STATTESTS.get(name)
    if found is None:
        raise ConfigError(f"unknown drift test '{name}' (expected one of: {', '.join(STATTESTS)})")
    return found
