"""Drift of a registered model's inputs and predictions: the reference it was trained against (from the
registry) versus current rows (a file, or the prediction log)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shipyard.config.loading import parse_config
from shipyard.config.settings import Settings
from shipyard.errors import DataError
from shipyard.inference import ReadyModel
from shipyard.inference.explain import ExplainUnsupportedError
from shipyard.inference.frames import FrameCheck
from shipyard.inference.records import Batch, batch_rows
from shipyard.monitoring.drift import DriftOverride, DriftReport, compute_drift
from shipyard.monitoring.estimated import EstimatedPerformance, estimate_window
from shipyard.monitoring.multivariate import DomainClassifierSettings
from shipyard.monitoring.store import MonitoringStore
from shipyard.registry.artifacts import PREDICTION_COLUMN
from shipyard.registry.lineage import TAG_PREFIX
from shipyard.registry.models import ModelRegistry, load_reference
from shipyard.training.metrics import METRICS
from shipyard.training.performance import CBPE

# rows -> (the model's answers, its class probabilities) for the rows it accepts, and which rows those are
Scorer = Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray | None, np.ndarray]]


@dataclass(frozen=True)
class DriftReference:
    """Everything drift needs from a registered version: its reference rows and its config's rules."""

    name: str
    version: str
    frame: pd.DataFrame
    features: list[str]
    kinds: dict[str, str]
    overrides: dict[str, DriftOverride]
    drift_share: float
    prediction_kind: str
    correction: str = "bh"
    domain: DomainClassifierSettings | None = None
    estimator: Any = None  # CBPE / DLE kept with the version (shipyard.training.performance)
    primary_metric: str = ""
    max_drop: float = 0.1
    scorer: Scorer | None = None  # re-scores logged rows for CBPE's probabilities (loaded on first use)


class LazyScorer:
    """The version's model, loaded the first time a window needs its class probabilities (the
    prediction log keeps the answers only); one load per reference."""

    def __init__(self, registry: ModelRegistry, name: str, version: str) -> None:
        self.registry, self.name, self.version = registry, name, version
        self._ready: ReadyModel | None = None

    def __call__(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        if self._ready is None:
            settings = self.registry.settings
            self._ready = ReadyModel(
                self.registry.load(self.name, self.version),
                fast_path=settings.fast_path,
                regression_rtol=settings.onnx_regression_rtol,
                bulk=True,
            )
        return score_rows(self._ready, rows)


def score_rows(
    ready: ReadyModel, rows: pd.DataFrame, check: FrameCheck | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The model's answers and class probabilities for the rows it accepts, and the mask of those
    (``check``: the rows already checked by ``ready.check``)."""
    check = ready.check(rows) if check is None else check
    if not check.good.any():
        return np.empty(0, dtype=object), None, check.good
    scored = ready.score(check.batch)
    proba_columns = [c for c in ready.output_columns if c != "prediction"]
    proba = scored[proba_columns].to_numpy(dtype=float) if ready.is_classifier and proba_columns else None
    return scored["prediction"].to_numpy(), proba, check.good


def reference_for(registry: ModelRegistry, name: str, ref: str | None = None) -> DriftReference:
    reference = load_reference(registry, name, ref)
    config = parse_config(reference.config, source=f"config of {name} v{reference.version}")
    features = config.feature_columns
    estimated = config.monitoring.estimated_performance
    estimator = reference.estimator if estimated.enabled else None
    return DriftReference(
        name=name,
        version=reference.version,
        frame=reference.frame,
        features=features,
        kinds={c: config.dataset.columns[c].feature_kind for c in features},
        overrides={c: DriftOverride(r.method, r.threshold) for c, r in config.monitoring.drift.items()},
        drift_share=config.monitoring.drift_share,
        prediction_kind="categorical" if config.dataset.task == "classification" else "numeric",
        correction=config.monitoring.correction,
        domain=(
            DomainClassifierSettings(dc.threshold, dc.max_rows)
            if (dc := config.monitoring.domain_classifier).enabled
            else None
        ),
        estimator=estimator,
        primary_metric=config.evaluation.primary_metric,
        max_drop=estimated.max_drop,
        scorer=LazyScorer(registry, name, reference.version) if isinstance(estimator, CBPE) else None,
    )


def require_features(reference: DriftReference, current: pd.DataFrame) -> None:
    missing = [c for c in reference.features if c not in current.columns]
    if missing:
        raise DataError(f"current data lacks feature(s) of {reference.name}: {', '.join(missing)}")


def drift_against(
    reference: DriftReference,
    current: pd.DataFrame,
    violations: dict[str, tuple[int, str]] | None = None,
    rows_not_scored: int = 0,
    scored: tuple[np.ndarray, np.ndarray | None, np.ndarray] | None = None,
) -> DriftReport:
    """``current`` must hold the features and a ``_prediction`` column (NaN where not scored).
    ``scored``: the model's (answers, probabilities, accepted-rows mask) for ``current`` when the caller
    has them; else the reference's scorer makes them if the estimator needs them."""
    require_features(reference, current)
    report = compute_drift(
        reference.frame,
        current,
        reference.kinds,
        model=reference.name,
        version=reference.version,
        drift_share=reference.drift_share,
        overrides=reference.overrides,
        prediction_column=PREDICTION_COLUMN,
        prediction_kind=reference.prediction_kind,
        correction=reference.correction,
        violations=violations,
        rows_not_scored=rows_not_scored,
        domain=reference.domain,
    )
    report.performance = estimated_performance(reference, current, scored)
    return report


def estimated_performance(
    reference: DriftReference,
    current: pd.DataFrame,
    scored: tuple[np.ndarray, np.ndarray | None, np.ndarray] | None = None,
) -> EstimatedPerformance | None:
    """The window's estimated quality (CBPE / DLE), or None when the version keeps no estimator."""
    if reference.estimator is None:
        return None
    if isinstance(reference.estimator, CBPE):
        if scored is None and reference.scorer is not None:
            scored = reference.scorer(current[reference.features])
        if scored is None:
            return None
        predicted, proba, good = scored
        rows = current.loc[good, reference.features]
    else:  # DLE reads the logged answers: nothing to re-score
        answered = pd.to_numeric(current[PREDICTION_COLUMN], errors="coerce")
        good = answered.notna().to_numpy()
        rows, predicted, proba = current.loc[good, reference.features], answered[good].to_numpy(), None
    return estimate_window(
        reference.estimator,
        rows,
        predicted,
        primary_metric=reference.primary_metric,
        max_drop=reference.max_drop,
        probabilities=proba,
    )


def logged_rows(settings: Settings, name: str, since: float | None, window: int) -> pd.DataFrame:
    """Rows of ``name`` from the monitoring store; a clear error when there are none."""
    store = MonitoringStore.for_reading(settings.monitoring_store_url)
    try:
        rows = store.read_log(name, since=since, window=window)
    finally:
        store.close()
    if rows.empty:
        raise DataError(
            f"no logged predictions for '{name}' in {store.where}"
            + (" in that period" if since else "")
            + " (is the service logging there? see SHIPYARD_MONITORING_URL, or pass --current FILE)"
        )
    return rows


def drift_for_model(
    settings: Settings, name: str, current: pd.DataFrame, ref: str | None = None, explain_rows: int = 0
) -> DriftReport:
    """Compare ``current`` rows with the reference of ``name`` (the champion unless ``ref`` says
    otherwise); the model scores the current rows so prediction drift is reported too. Values the
    model's rules refuse (a float in an integer column) are reported per feature, not a failure: the
    rows they are in are left out of the prediction drift only. ``explain_rows`` > 0: also the mean
    |attribution| per feature on that many rows of each side (tree models; slow on deep forests)."""
    registry = ModelRegistry(settings)
    reference = reference_for(registry, name, ref)
    require_features(reference, current)
    scored = current[reference.features].copy()
    loaded = registry.load(name, reference.version)
    ready = ReadyModel(
        loaded, fast_path=settings.fast_path, regression_rtol=settings.onnx_regression_rtol, bulk=True
    )
    check = ready.check(current)
    predictions = np.full(len(current), np.nan, dtype=object)
    answers = score_rows(ready, current, check)
    if check.good.any():
        predictions[check.good] = answers[0]
    scored[PREDICTION_COLUMN] = (
        predictions if ready.is_classifier else pd.to_numeric(pd.Series(predictions, index=scored.index))
    )
    report = drift_against(reference, scored, check.refused, check.rejected, scored=answers)
    if explain_rows > 0 and check.good.any():
        report.attributions = mean_attributions(ready, reference.frame, check.batch, explain_rows)
    return report


def mean_attributions(
    ready: ReadyModel, reference: pd.DataFrame, current: Batch, rows: int, seed: int = 0
) -> dict[str, Any] | None:
    """Mean |TreeSHAP attribution| per feature on up to ``rows`` rows of the reference and of the current
    batch (sampled, seeded); None when the model has no tree model to explain."""
    rng = np.random.default_rng(seed)

    def sample(batch: Batch) -> Batch:
        size = batch_rows(batch)
        if size <= rows:
            return batch
        pick = np.sort(rng.choice(size, rows, replace=False))
        return {k: v[pick] for k, v in batch.items()}

    sides = {"reference": sample(ready.check(reference).batch), "current": sample(current)}
    out: dict[str, Any] = {"rows": {k: batch_rows(b) for k, b in sides.items()}}
    for side, batch in sides.items():
        if not batch_rows(batch):
            return None
        try:
            found = ready.explain(batch)
        except ExplainUnsupportedError:
            return None
        out[side] = {c: float(np.mean([abs(e.attributions[c]) for e in found])) for c in ready.columns}
    return out


def model_task(registry: ModelRegistry, name: str, ref: str | None = None) -> str:
    """classification or regression, from the primary metric the version was registered with."""
    info = registry.resolve(name, ref)
    metric = info.tags.get(f"{TAG_PREFIX}primary_metric", "")
    if metric not in METRICS:
        raise DataError(f"{name} v{info.version} records no primary metric; cannot tell its task")
    return METRICS[metric].task
