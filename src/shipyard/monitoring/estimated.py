"""Estimated performance of one window, from the estimator kept with the model (CBPE or DLE, see
``shipyard.training.performance``): what the monitor reports before the labels arrive."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shipyard.training.performance import (
    CBPE,
    SIGNIFICANCE_Z,
    PerformanceEstimator,
    baseline,
    drop_z,
    relative_drop,
    watched_metric,
)


@dataclass
class EstimatedPerformance:
    """The estimate for a window next to the same metrics on the held-out split: realised
    (``reference``) and as the estimator estimated them (``reference_estimate``, what ``drop`` is
    judged against)."""

    method: str  # cbpe | dle
    metric: str  # the watched metric a drop is judged on
    estimated: dict[str, float]
    reference: dict[str, float]
    reference_estimate: dict[str, float]
    drop: float  # relative: how much worse the watched estimate is than the held-out estimate
    max_drop: float
    rows: int
    degraded: bool
    errors: dict[str, float]  # standard error of each estimate over the window's rows
    z: float  # the drop in standard errors (the window's and the held-out estimate's combined)

    def summary(self) -> str:
        shown = self.estimated.get(self.metric, math.nan)
        verdict = "DEGRADED" if self.degraded else "ok"
        return (
            f"estimated {self.metric} {shown:.4g} ({self.method.upper()}, {self.rows} rows) vs "
            f"{self.reference_estimate.get(self.metric, math.nan):.4g} on the held-out split: "
            f"{self.drop:+.1%} worse, {self.z:.1f} standard errors "
            f"(limits {self.max_drop:.0%} and {SIGNIFICANCE_Z:g}) -> {verdict}"
        )


def estimate_window(
    estimator: PerformanceEstimator,
    features: pd.DataFrame,
    predicted: Any,
    *,
    primary_metric: str,
    max_drop: float,
    probabilities: np.ndarray | None = None,
) -> EstimatedPerformance | None:
    """``features``/``predicted``: the window's rows the model scored; ``probabilities``: its class
    probabilities for them (CBPE needs them: the prediction log keeps answers only). None when there
    is nothing to estimate from."""
    if not len(features):
        return None
    if isinstance(estimator, CBPE):
        if probabilities is None or len(probabilities) != len(features):
            return None
        estimated, errors = estimator.estimate_with_errors(probabilities, predicted)
    else:
        estimated, errors = estimator.estimate_with_errors(features, predicted)
    metric = watched_metric(estimator, primary_metric)
    compared = baseline(estimator)
    drop = relative_drop(metric, compared.get(metric, math.nan), estimated[metric])
    z = drop_z(metric, estimator, estimated[metric], errors[metric])
    return EstimatedPerformance(
        method=estimator.method,
        metric=metric,
        estimated=estimated,
        reference=dict(estimator.reference),
        reference_estimate=dict(compared),
        drop=drop,
        max_drop=max_drop,
        rows=len(features),
        # worse by more than the limit, and by more than the estimates' own noise: a few hundred rows
        # of housing move DLE's MAE by ~5 %, so 10 % alone would call one window in five degraded
        degraded=drop > max_drop and z >= SIGNIFICANCE_Z,
        errors=errors,
        z=z if math.isfinite(z) else 1e9,
    )
