"""Drift of current data against the training reference, feature by feature and for the whole dataset.

Tests are chosen as Evidently chooses them by default: with a reference of up to 1,000 rows, the KS test
for numeric features with more than 5 distinct values, chi-squared for categorical and low-cardinality
numeric features, a two-proportion Z-test for binary ones, drift at p < 0.05; with a larger reference,
the normed Wasserstein distance for numeric and Jensen–Shannon for the rest, drift at 0.1. Method and
threshold can be set per feature, among the tests made for the feature's kind. The dataset drifts when
the share of drifted features reaches ``drift_share``, or when the domain classifier
(``monitoring.domain_classifier``) tells current rows from reference rows. Pure: frames in, a report out.

Many features tested at p < 0.05 raise false alarms by construction, so the p-values of the features
tested with a p-value test (KS, chi-squared, Z) are corrected for how many there are before a feature
counts as drifted: Benjamini–Hochberg by default (the false discovery rate), Bonferroni as an option
(the family-wise error rate), or none (Evidently's behaviour). Each feature keeps its raw p-value as its
score, gets the adjusted one, and says whether it drifted before correction. Distance scores
(Wasserstein, Jensen–Shannon, PSI) are not p-values and are never adjusted; the prediction's own test is
not part of the family.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from shipyard.monitoring.estimated import EstimatedPerformance
from shipyard.monitoring.multivariate import (
    DomainClassifierResult,
    DomainClassifierSettings,
    domain_classifier,
)
from shipyard.monitoring.stattests import StatTest, get_stattest

SMALL_REFERENCE = 1000
LOW_CARDINALITY = 5
PLOT_BINS = 20
PLOT_CATEGORIES = 20
CORRECTIONS = ("bh", "bonferroni", "none")
MISSING_MARGIN = 0.05  # a current missing share this much above the reference's is a quality finding


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
    # p-value tests, with a correction on: the adjusted p-value the verdict used, and the raw verdict
    p_adjusted: float | None = None
    drifted_uncorrected: bool | None = None
    # data quality of the current rows: values outside the reference's range (numeric) or categories
    # the reference never had (categorical), as shares of the current values present; values refused
    # by the model's input rules (a float in an integer column, text in a number column): a count and
    # the first reason. A refused value that still reads as a number (1.5 in an integer column) stays in
    # the test and the plot; one that does not (text in a number column) is in neither.
    out_of_range: float | None = None
    unseen_categories: float | None = None
    type_violations: int = 0
    type_violation_example: str | None = None
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
    correction: str = "none"
    rows_not_scored: int = 0  # current rows the model refused (type violations): not in prediction drift
    multivariate: DomainClassifierResult | None = None  # the domain classifier, when it ran
    # mean |TreeSHAP attribution| per feature on a sample of each side, when the caller asked for it:
    # {"rows": {"reference": n, "current": n}, "reference": {feature: value}, "current": {...}}
    attributions: dict[str, Any] | None = None
    # the model's quality estimated without labels (CBPE / DLE), when an estimator is kept with it
    performance: EstimatedPerformance | None = None
    created_at: str = field(default_factory=lambda: datetime.now(tz=UTC).isoformat(timespec="seconds"))

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def drifted_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def dataset_drift(self) -> bool:
        """``drift_share`` of the features drifted, or the domain classifier tells the sides apart."""
        by_share = bool(self.features) and self.drifted_share >= self.drift_share
        return by_share or bool(self.multivariate and self.multivariate.drifted)

    @property
    def quality_issues(self) -> dict[str, dict[str, Any]]:
        """feature -> its data-quality findings, for the features that have any."""
        found: dict[str, dict[str, Any]] = {}
        for f in self.features:
            issues = {
                k: v
                for k, v in (
                    (
                        "current_missing",
                        f.current_missing if f.current_missing > f.reference_missing + MISSING_MARGIN else 0,
                    ),
                    ("out_of_range", f.out_of_range),
                    ("unseen_categories", f.unseen_categories),
                    ("type_violations", f.type_violations),
                )
                if v
            }
            if issues:
                found[f.name] = issues
        return found

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
            quality_issues=self.quality_issues,
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
    name: str,
    kind: str,
    reference: pd.Series,
    current: pd.Series,
    override: DriftOverride | None = None,
    violations: tuple[int, str] | None = None,
) -> FeatureDrift:
    """``violations``: how many of ``current``'s values the model's rules refused and the first reason
    (the caller knows the rules). Refused values that still read as the feature's kind stay in the test."""
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
    count, example = violations or (0, None)
    out_of_range, unseen = _quality(kind, ref, cur)
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
        out_of_range=out_of_range,
        unseen_categories=unseen,
        type_violations=count,
        type_violation_example=example,
        **_plot_data(kind, ref, cur),
    )


def _quality(kind: str, reference: np.ndarray, current: np.ndarray) -> tuple[float | None, float | None]:
    """(share out of the reference's range, share of unseen categories): the one that fits the kind,
    None for the other and when either side has no values."""
    if not reference.size or not current.size:
        return None, None
    if kind == "numeric":
        outside = (current < reference.min()) | (current > reference.max())
        return float(outside.mean()), None
    seen = pd.Series(current, dtype=object).isin(set(reference.tolist()))
    return None, float(1.0 - seen.mean())


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
    correction: str = "bh",
    violations: dict[str, tuple[int, str]] | None = None,
    rows_not_scored: int = 0,
    domain: DomainClassifierSettings | None = None,
) -> DriftReport:
    """Per-feature drift of ``current`` against ``reference``, p-values corrected by ``correction``;
    features missing from ``current`` are reported as an error by the caller, not silently skipped.
    ``violations``: per feature, the values the model's rules refused (count, first reason);
    ``domain``: also train the domain classifier (the multivariate score) with these settings."""
    overrides = overrides or {}
    violations = violations or {}
    features = [
        feature_drift(name, kind, reference[name], current[name], overrides.get(name), violations.get(name))
        for name, kind in feature_kinds.items()
    ]
    correct(features, correction)
    prediction = None
    if prediction_column and prediction_column in reference and prediction_column in current:
        prediction = feature_drift(
            prediction_column, prediction_kind, reference[prediction_column], current[prediction_column]
        )
    return DriftReport(
        model,
        version,
        len(reference),
        len(current),
        drift_share,
        features,
        prediction,
        correction,
        rows_not_scored,
        domain_classifier(reference, current, feature_kinds, domain) if domain else None,
    )


def adjust_p_values(p_values: np.ndarray, method: str) -> np.ndarray:
    """Adjusted p-values: Benjamini–Hochberg (``bh``: the step-up q-values, monotone, capped at 1),
    ``bonferroni`` (m times p, capped at 1) or ``none``. NaN stays NaN and is not counted."""
    _require_method(method)
    p = np.asarray(p_values, dtype=float)
    adjusted = p.copy()
    present = np.flatnonzero(~np.isnan(p))
    m = present.size
    if method == "none" or m == 0:
        return adjusted
    values = p[present]
    if method == "bonferroni":
        adjusted[present] = np.minimum(values * m, 1.0)
        return adjusted
    order = np.argsort(values, kind="stable")
    ranked = values[order] * m / np.arange(1, m + 1)
    q = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    out = np.empty(m)
    out[order] = q
    adjusted[present] = out
    return adjusted


def _require_method(method: str) -> None:
    if method not in CORRECTIONS:
        raise ValueError(f"unknown p-value correction '{method}' (expected one of: {', '.join(CORRECTIONS)})")


def correct(features: list[FeatureDrift], method: str) -> None:
    """Decide the p-value tests' verdicts on adjusted p-values (in place); distances are left alone."""
    _require_method(method)
    tested = [f for f in features if get_stattest(f.test).score_is_p_value]
    if method == "none" or not tested:
        return
    adjusted = adjust_p_values(np.array([f.score for f in tested], dtype=float), method)
    for feature, q in zip(tested, adjusted.tolist(), strict=True):
        feature.drifted_uncorrected = feature.drifted
        if math.isnan(q):
            continue  # nothing to test (no values on one side): not drifted either way
        feature.p_adjusted = q
        feature.drifted = bool(q < feature.threshold)
