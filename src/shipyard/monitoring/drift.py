"""Drift of current data against the training reference, feature by feature and for the whole dataset.

Tests are chosen as Evidently chooses them by default: with a reference of up to 1,000 rows, the KS test
for numeric features with more than 5 distinct values, chi-squared for categorical and low-cardinality
numeric features, a two-proportion Z-test for binary ones, drift at p < 0.05; with a larger reference,
the normed Wasserstein distance for numeric and Jensen–Shannon for the rest, drift at 0.1. Method and
threshold can be set per feature, among the tests made for the feature's kind. The dataset drifts when
the share of drifted features reaches ``drift_share``. Pure: frames in, a report out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from shipyard.monitoring.stattests import StatTest, get_stattest

SMALL_REFERENCE = 1000
LOW_CARDINALITY = 5
PLOT_BINS = 20
PLOT_CATEGORIES = 20


@dataclass(frozen=True)
class DriftOverride:
    method: str | None = None
    threshold: float | None = None


@dataclass
class FeatureDrift:
    """One feature's verdict and what a plot of reference vs current needs."""

    name: str
    kind: str  # numeric | categorical
    test: str
    test_title: str
    score: float
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    reference_missing: float
    current_missing: float
    # plot data: shares per bin (numeric: edges has one more item) or per category
    edges: list[float] | None = None
    categories: list[str] | None = None
    reference_shares: list[float] = field(default_factory=list)
    current_shares: list[float] = field(default_factory=list)


@dataclass
class DriftReport:
    model: str
    version: str | None
    reference_rows: int
    current_rows: int
    drift_share: float
    features: list[FeatureDrift]
    prediction: FeatureDrift | None = None
    created_at: str = field(default_factory=lambda: datetime.now(tz=UTC).isoformat(timespec="seconds"))

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def drifted_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.features) and self.drifted_share >= self.drift_share

    @property
    def report_id(self) -> str:
        """Names this report where a retrain records why it ran: time plus a digest of the content."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()
        stamp = self.created_at[:19].replace("-", "").replace(":", "")
        return f"drift-{self.model or 'data'}-{stamp}-{digest[:8]}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            report_id=self.report_id,
            drifted_features=self.drifted_features,
            drifted_share=self.drifted_share,
            dataset_drift=self.dataset_drift,
        )
        return out


def default_test(kind: str, reference: np.ndarray) -> str:
    """Evidently's default choice for a feature of this kind and reference."""
    distinct = len(np.unique(reference.astype(str) if kind == "categorical" else reference))
    numeric_like = kind == "numeric" and distinct > LOW_CARDINALITY
    if len(reference) <= SMALL_REFERENCE:
        if numeric_like:
            return "ks"
        return "z" if distinct <= 2 and kind == "categorical" else "chisquare"
    return "wasserstein" if numeric_like else "jensenshannon"


def _values(series: pd.Series, kind: str) -> np.ndarray:
    present = series.dropna()
    if kind == "numeric":
        return pd.to_numeric(present, errors="coerce").dropna().to_numpy(dtype=float)
    return present.astype(str).to_numpy(dtype=object)


def _plot_data(kind: str, reference: np.ndarray, current: np.ndarray) -> dict[str, Any]:
    if kind == "numeric" and reference.size and current.size:
        low = float(min(reference.min(), current.min()))
        high = float(max(reference.max(), current.max()))
        if low == high:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, PLOT_BINS + 1)
        ref = np.histogram(reference, edges)[0] / max(reference.size, 1)
        cur = np.histogram(current, edges)[0] / max(current.size, 1)
        return {"edges": edges.tolist(), "reference_shares": ref.tolist(), "current_shares": cur.tolist()}
    ref_counts = pd.Series(reference, dtype=object).value_counts()
    cur_counts = pd.Series(current, dtype=object).value_counts()
    top = (
        list(ref_counts.index[:PLOT_CATEGORIES])
        + [c for c in cur_counts.index if c not in ref_counts.index][:5]
    )
    ref_total, cur_total = max(len(reference), 1), max(len(current), 1)
    return {
        "categories": [str(c) for c in top],
        "reference_shares": [float(ref_counts.get(c, 0)) / ref_total for c in top],
        "current_shares": [float(cur_counts.get(c, 0)) / cur_total for c in top],
    }


def feature_drift(
    name: str, kind: str, reference: pd.Series, current: pd.Series, override: DriftOverride | None = None
) -> FeatureDrift:
    ref, cur = _values(reference, kind), _values(current, kind)
    method = (override.method if override else None) or default_test(kind, ref)
    test: StatTest = get_stattest(method)
    test.require_fits(name, kind)
    threshold = override.threshold if override and override.threshold is not None else test.default_threshold
    if ref.size == 0 or cur.size == 0:
        score, drifted = float("nan"), False
    else:
        score = test.compute(ref, cur)
        drifted = test.drifted(score, threshold)
    return FeatureDrift(
        name=name,
        kind=kind,
        test=test.name,
        test_title=test.title,
        score=score,
        threshold=threshold,
        drifted=bool(drifted),
        reference_rows=len(reference),
        current_rows=len(current),
        reference_missing=float(reference.isna().mean()) if len(reference) else 0.0,
        current_missing=float(current.isna().mean()) if len(current) else 0.0,
        **_plot_data(kind, ref, cur),
    )


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    feature_kinds: dict[str, str],
    model: str = "",
    version: str | None = None,
    drift_share: float = 0.5,
    overrides: dict[str, DriftOverride] | None = None,
    prediction_column: str | None = None,
    prediction_kind: str = "categorical",
) -> DriftReport:
    """Per-feature drift of ``current`` against ``reference``; features missing from ``current`` are
    reported as an error by the caller, not silently skipped."""
    overrides = overrides or {}
    features = [
        feature_drift(name, kind, reference[name], current[name], overrides.get(name))
        for name, kind in feature_kinds.items()
    ]
    prediction = None
    if prediction_column and prediction_column in reference and prediction_column in current:
        prediction = feature_drift(
            prediction_column, prediction_kind, reference[prediction_column], current[prediction_column]
        )
    return DriftReport(model, version, len(reference), len(current), drift_share, features, prediction)
