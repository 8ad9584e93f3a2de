"""Drift of a registered model's inputs and predictions: the reference it was trained against (from the
registry) versus current rows (a file today; the prediction log next)."""

from __future__ import annotations

import pandas as pd

from shipyard.config.loading import parse_config
from shipyard.config.settings import Settings
from shipyard.errors import DataError
from shipyard.inference.predictor import Predictor
from shipyard.monitoring.drift import DriftOverride, DriftReport, compute_drift
from shipyard.monitoring.prediction_log import read_log
from shipyard.registry.artifacts import PREDICTION_COLUMN
from shipyard.registry.models import ModelRegistry, load_reference


def logged_rows(settings: Settings, name: str, since: float | None, window: int) -> pd.DataFrame:
    """Rows of ``name`` from the prediction log; a clear error when there are none."""
    path = settings.prediction_log_file
    rows = read_log(path, name, since=since, window=window)
    if rows.empty:
        raise DataError(
            f"no logged predictions for '{name}' in {path}"
            + (" in that period" if since else "")
            + " (is the service logging there? see SHIPYARD_PREDICTION_LOG_PATH, or pass --current FILE)"
        )
    return rows


def drift_for_model(
    settings: Settings, name: str, current: pd.DataFrame, ref: str | None = None
) -> DriftReport:
    """Compare ``current`` rows with the reference of ``name`` (the champion unless ``ref`` says
    otherwise); the model scores the current rows so prediction drift is reported too."""
    registry = ModelRegistry(settings)
    reference = load_reference(registry, name, ref)
    config = parse_config(reference.config, source=f"config of {name} v{reference.version}")
    features = config.feature_columns
    missing = [c for c in features if c not in current.columns]
    if missing:
        raise DataError(f"current data lacks feature(s) of {name}: {', '.join(missing)}")
    kinds: dict[str, str] = {c: config.dataset.columns[c].feature_kind for c in features}
    overrides = {
        column: DriftOverride(rule.method, rule.threshold) for column, rule in config.monitoring.drift.items()
    }
    scored = current[features].copy()
    loaded = registry.load(name, reference.version)
    scored[PREDICTION_COLUMN] = Predictor(loaded).predict(current)["prediction"].to_numpy()
    task_kind = "categorical" if config.dataset.task == "classification" else "numeric"
    return compute_drift(
        reference.frame,
        scored,
        kinds,
        model=name,
        version=reference.version,
        drift_share=config.monitoring.drift_share,
        overrides=overrides,
        prediction_column=PREDICTION_COLUMN,
        prediction_kind=task_kind,
    )
