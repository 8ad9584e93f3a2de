"""Estimated performance before labels arrive: fitted at training time on the held-out split, kept with
the model, applied by the monitor to each window of logged rows.

- ``CBPE`` (confidence-based performance estimation, classifiers): calibrated on the held-out split
  with isotonic regression. A row's chance of being right is its calibrated confidence (the model's
  probability for the class it answered, mapped through a calibrator of "answer right" on it: top-label
  calibration), so the expected accuracy of a window is their mean. The expected macro F1 comes from
  the expected true/false positives and false negatives per class, from class probabilities calibrated
  one-vs-rest (each row renormalised), as NannyML does. Top-label calibration was kept for accuracy
  because one-vs-rest calibration renormalised overstated it by 1.3-3.3 points on a shifted sample where
  top-label stayed within 0.7 (five seeds, tests/unit/test_performance_estimation.py's set-up). Valid
  under covariate shift (the inputs move, the relation from inputs to labels does not); blind to
  concept shift by construction.
- ``DLE`` (direct loss estimation, regressors): two small gradient-boosted models learn the absolute
  and the squared error of the model from the features and its prediction on the held-out split; the
  expected MAE of a window is the mean predicted absolute error, the expected RMSE the root of the mean
  predicted squared error.

Both record the realised metrics on the held-out split (``reference``) and their own estimate of the
same split (``reference_estimate``): a window's drop is judged estimate against estimate, as NannyML
judges a chunk against the reference period's estimates. That cancels what bias the estimator has, and
the realised figure carries the noise of every row's own error on a few hundred rows (housing's
held-out MAE moves by ~5 % between two halves of its split) where an estimate, a mean of predicted
errors, is smoother. DLE's ``reference_estimate`` is cross-fitted (5 folds of the held-out split), so
it is what the estimator says of rows it did not learn from. Pure: numpy, pandas and scikit-learn only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

CLASSIFIER_METRICS = ("accuracy", "f1_macro")
REGRESSOR_METRICS = ("mae", "rmse")
PREDICTION_FEATURE = "__prediction__"
FOLDS = 5  # for DLE's cross-fitted estimate of its own held-out split
BOOTSTRAP = 100  # resamples for the standard error of the expected macro F1
SIGNIFICANCE_Z = 3.0  # a drop counts only this many standard errors away from the held-out estimate
PRIOR_ROWS = 50  # pseudo-rows shrinking a calibration towards the model's own probabilities


@dataclass
class CBPE:
    """Calibrated confidence -> expected accuracy and macro F1 (classifiers)."""

    classes: list[str]
    calibrators: list[IsotonicRegression | None]  # one per class; None: the class never appeared
    confidence: IsotonicRegression | None = None  # answered-class probability -> P(answer right)
    reference: dict[str, float] = field(default_factory=dict)  # realised on the held-out split
    reference_estimate: dict[str, float] = field(default_factory=dict)  # estimated on it
    reference_error: dict[str, float] = field(default_factory=dict)  # that estimate's standard error
    method: str = "cbpe"

    @property
    def metrics(self) -> tuple[str, ...]:
        return CLASSIFIER_METRICS

    @classmethod
    def fit(cls, classes: list[Any], proba: np.ndarray, truth: Any, predicted: Any) -> CBPE:
        names = [str(c) for c in classes]
        y = np.asarray([str(t) for t in truth])
        calibrators: list[IsotonicRegression | None] = []
        for i, name in enumerate(names):
            hits = (y == name).astype(float)
            if hits.min() == hits.max():  # one outcome only: nothing to calibrate against
                calibrators.append(None)
                continue
            calibrators.append(_isotonic(proba[:, i], hits))
        answered = np.asarray([str(v) for v in predicted])
        right = (answered == y).astype(float)
        confidence = None
        if right.min() != right.max():
            confidence = _isotonic(_answered_probability(proba, answered, names), right)
        estimator = cls(names, calibrators, confidence)
        estimator.reference = realised(predicted, truth, classifier=True)
        estimator.reference_estimate, estimator.reference_error = estimator.estimate_with_errors(
            proba, predicted
        )
        return estimator

    def calibrated(self, proba: np.ndarray) -> np.ndarray:
        out = np.empty_like(proba, dtype=float)
        for i, iso in enumerate(self.calibrators):
            out[:, i] = proba[:, i] if iso is None else iso.predict(proba[:, i])
        total = out.sum(axis=1, keepdims=True)
        # a row every calibrator put at 0 keeps the model's own probabilities
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), proba)

    def estimate(self, proba: np.ndarray, predicted: Any) -> dict[str, float]:
        """Expected accuracy and macro F1 of ``predicted`` (the labels the model answered) given the
        model's probabilities for the same rows (columns in ``classes`` order)."""
        return self.estimate_with_errors(proba, predicted)[0]

    def estimate_with_errors(
        self, proba: np.ndarray, predicted: Any
    ) -> tuple[dict[str, float], dict[str, float]]:
        """``estimate`` and each figure's standard error over the rows (accuracy: from the rows' chances
        of being right; macro F1: from ``BOOTSTRAP`` resamples of the rows, seeded)."""
        raw = np.asarray(proba, dtype=float)
        if not len(raw):
            return {"accuracy": math.nan, "f1_macro": math.nan}, {"accuracy": math.nan, "f1_macro": math.nan}
        p = self.calibrated(raw)
        answered = np.asarray([str(v) for v in predicted])
        confidence = _answered_probability(raw, answered, self.classes)
        # no calibrator: the held-out split had every answer right (or wrong): it says that again
        right = confidence if self.confidence is None else self.confidence.predict(confidence)
        columns = _columns(answered, self.classes)
        rows = len(p)
        resamples = np.random.default_rng(0).integers(0, rows, (BOOTSTRAP, rows))
        f1_spread = np.std([_expected_f1(p[pick], columns[pick]) for pick in resamples])
        estimated = {"accuracy": float(right.mean()), "f1_macro": _expected_f1(p, columns)}
        errors = {"accuracy": float(right.std() / math.sqrt(rows)), "f1_macro": float(f1_spread)}
        return estimated, errors


def _expected_f1(p: np.ndarray, columns: np.ndarray) -> float:
    """Macro F1 from the expected true/false positives and false negatives per class."""
    f1s = []
    for i in range(p.shape[1]):
        said = columns == i
        tp = float(p[said, i].sum())
        fp = float((1.0 - p[said, i]).sum())
        fn = float(p[~said, i].sum())
        denominator = 2 * tp + fp + fn
        f1s.append(2 * tp / denominator if denominator > 0 else 0.0)
    return float(np.mean(f1s))


@dataclass
class DLE:
    """Predicted absolute and squared error -> expected MAE and RMSE (regressors)."""

    features: list[str]
    categorical: list[str]
    absolute: Pipeline
    squared: Pipeline
    reference: dict[str, float] = field(default_factory=dict)
    reference_estimate: dict[str, float] = field(default_factory=dict)  # cross-fitted on the split
    reference_error: dict[str, float] = field(default_factory=dict)  # that estimate's standard error
    method: str = "dle"

    @property
    def metrics(self) -> tuple[str, ...]:
        return REGRESSOR_METRICS

    @classmethod
    def fit(cls, X: pd.DataFrame, predicted: Any, truth: Any, categorical: list[str], seed: int = 0) -> DLE:
        features = list(X.columns)
        inputs = _inputs(X, predicted, features, categorical)
        error = np.asarray(predicted, dtype=float) - np.asarray(truth, dtype=float)
        absolute = _error_model(features, categorical, seed).fit(inputs, np.abs(error))
        squared = _error_model(features, categorical, seed).fit(inputs, error**2)
        estimator = cls(features, list(categorical), absolute, squared)
        estimator.reference = realised(predicted, truth, classifier=False)
        folds = KFold(min(FOLDS, len(inputs)), shuffle=True, random_state=seed)
        out_of_fold = {
            name: np.clip(
                cross_val_predict(_error_model(features, categorical, seed), inputs, target, cv=folds),
                0,
                None,
            )
            for name, target in (("absolute", np.abs(error)), ("squared", error**2))
        }
        estimator.reference_estimate, estimator.reference_error = _loss_figures(
            out_of_fold["absolute"], out_of_fold["squared"]
        )
        return estimator

    def estimate(self, X: pd.DataFrame, predicted: Any) -> dict[str, float]:
        return self.estimate_with_errors(X, predicted)[0]

    def estimate_with_errors(
        self, X: pd.DataFrame, predicted: Any
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Expected MAE and RMSE, and their standard errors over the rows."""
        inputs = _inputs(X, predicted, self.features, self.categorical)
        if not len(inputs):
            nothing = {"mae": math.nan, "rmse": math.nan}
            return nothing, dict(nothing)
        absolute = np.clip(self.absolute.predict(inputs), 0.0, None)
        squared = np.clip(self.squared.predict(inputs), 0.0, None)
        return _loss_figures(absolute, squared)


def _loss_figures(absolute: np.ndarray, squared: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """Expected MAE and RMSE from per-row predicted losses, with standard errors (RMSE's by the delta
    method: se(sqrt(m)) = se(m) / (2 sqrt(m)))."""
    rows = len(absolute)
    mse = float(squared.mean())
    rmse = math.sqrt(mse)
    estimated = {"mae": float(absolute.mean()), "rmse": rmse}
    errors = {
        "mae": float(absolute.std() / math.sqrt(rows)),
        "rmse": float(squared.std() / math.sqrt(rows) / (2 * rmse)) if rmse > 0 else 0.0,
    }
    return estimated, errors


PerformanceEstimator = CBPE | DLE


def _isotonic(scores: np.ndarray, outcomes: np.ndarray) -> IsotonicRegression:
    """Isotonic calibration of ``scores`` to ``outcomes``, shrunk towards the scores themselves by
    ``PRIOR_ROWS`` pseudo-rows (each row's own score as its outcome): on a held-out split of 30 rows
    with one mistake, plain isotonic regression says every row less confident than that mistake is
    surely wrong; with 1,000 rows the prior weighs 5 %."""
    weight = np.r_[np.ones(len(scores)), np.full(len(scores), PRIOR_ROWS / len(scores))]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    return iso.fit(np.r_[scores, scores], np.r_[outcomes, scores], sample_weight=weight)


def _columns(answered: np.ndarray, classes: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    return np.asarray([index.get(a, -1) for a in answered], dtype=int)


def _answered_probability(proba: np.ndarray, answered: np.ndarray, classes: list[str]) -> np.ndarray:
    """The model's probability for the class it answered (0 for a label it has no column for)."""
    columns = _columns(answered, classes)
    out = np.zeros(len(proba))
    known = columns >= 0
    out[known] = proba[np.nonzero(known)[0], columns[known]]
    return out


def realised(predicted: Any, truth: Any, classifier: bool) -> dict[str, float]:
    """The metrics an estimator estimates, computed on labels (the held-out split, or revealed ones)."""
    from sklearn.metrics import f1_score

    if classifier:
        p, t = [str(v) for v in predicted], [str(v) for v in truth]
        return {
            "accuracy": float(np.mean([a == b for a, b in zip(p, t, strict=True)])),
            "f1_macro": float(f1_score(t, p, average="macro", zero_division=0)),
        }
    error = np.asarray(predicted, dtype=float) - np.asarray(truth, dtype=float)
    return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error**2).mean()))}


def watched_metric(estimator: PerformanceEstimator, primary: str) -> str:
    """The metric a drop is judged on: the config's primary metric when the estimator estimates it,
    else accuracy (classifiers) or MAE (regressors: R² needs the labels' variance)."""
    return primary if primary in estimator.metrics else estimator.metrics[0]


def baseline(estimator: PerformanceEstimator) -> dict[str, float]:
    """What a window's estimate is compared with: the estimator's own estimate of the held-out split
    (the realised figures for an estimator saved before it kept one)."""
    return getattr(estimator, "reference_estimate", None) or estimator.reference


def drop_z(metric: str, estimator: PerformanceEstimator, estimated: float, error: float) -> float:
    """How many standard errors the window's estimate is worse than the held-out estimate (the two
    errors combined; +inf when neither has one, e.g. an estimator saved before they were kept)."""
    compared = baseline(estimator).get(metric, math.nan)
    if math.isnan(estimated) or math.isnan(compared):
        return 0.0
    worse = compared - estimated if metric in CLASSIFIER_METRICS else estimated - compared
    spread = math.hypot(error, getattr(estimator, "reference_error", {}).get(metric, 0.0))
    if spread == 0 or math.isnan(spread):
        return math.inf if worse > 0 else 0.0
    return float(worse / spread)


def relative_drop(metric: str, reference: float, estimated: float) -> float:
    """How much worse ``estimated`` is than ``reference``, as a share of ``reference`` (0 or negative:
    not worse). Accuracy and F1 are better higher, MAE and RMSE lower."""
    if not reference or math.isnan(estimated):
        return 0.0
    worse = reference - estimated if metric in CLASSIFIER_METRICS else estimated - reference
    return float(worse / abs(reference))


def _inputs(X: pd.DataFrame, predicted: Any, features: list[str], categorical: list[str]) -> pd.DataFrame:
    frame = X[features].copy()
    for column in features:
        if column in categorical:
            values = frame[column]
            frame[column] = (
                values.astype(object).where(values.notna(), None).map(lambda v: v if v is None else str(v))
            )
        else:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame[PREDICTION_FEATURE] = np.asarray(predicted, dtype=float)
    return frame


def _error_model(features: list[str], categorical: list[str], seed: int) -> Pipeline:
    """A small, regularised booster: the held-out split is a few hundred rows."""
    encode = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                ),
                categorical,
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    booster = HistGradientBoostingRegressor(
        max_iter=100,
        learning_rate=0.05,
        max_depth=3,
        min_samples_leaf=20,
        l2_regularization=1.0,
        categorical_features=list(range(len(categorical))) if categorical else None,
        random_state=seed,
    )
    return Pipeline([("encode", encode), ("errors", booster)])
