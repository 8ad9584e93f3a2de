"""The training steps, one function each: what every runner calls (the CLI's ``run_training``, the DVC
stages through the CLI, the ZenML pipeline's steps). No runner re-implements a step.

prepare (load + validate) -> split -> fit (+ tune) -> evaluate -> register (one MLflow run: params,
metrics, plots, reference, model, version as challenger) -> promote (the gate moves the aliases).
Inputs and outputs are plain values (frames, dataclasses, a fitted Pipeline), so a runner can pass them
between processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.config.pipeline import PipelineConfig
from shipyard.config.settings import Settings
from shipyard.data.sources import DataLoader
from shipyard.data.splits import Split, split_frame
from shipyard.data.validation import DataValidator
from shipyard.errors import ShipyardError
from shipyard.features.engineering import FeatureEngineer
from shipyard.features.profile import build_reference_profile
from shipyard.pipeline.gate import PromotionDecision, decide
from shipyard.registry.artifacts import (
    CONFIG_ARTIFACT,
    PERFORMANCE_ARTIFACT,
    PREDICTION_COLUMN,
    PROFILE_ARTIFACT,
    REFERENCE_ARTIFACT,
    TARGET_COLUMN,
)
from shipyard.registry.lineage import TAG_PREFIX, collect_lineage
from shipyard.registry.models import ModelRegistry
from shipyard.registry.tracking import ExperimentTracker, InputSpec
from shipyard.training.metrics import evaluate
from shipyard.training.performance import CBPE, DLE, PerformanceEstimator
from shipyard.training.plots import (
    confusion_matrix_figure,
    feature_importance_figure,
    predicted_vs_actual_figure,
    raw_feature_importance,
)
from shipyard.training.trainer import ModelTrainer, TrialResult

log = logging.getLogger(__name__)

RUNNER_TAG = f"{TAG_PREFIX}runner"  # cli, dvc or zenml
DVC_STAGE_TAG = f"{TAG_PREFIX}dvc_stage"
FEEDBACK_ARTIFACT = "retrain/feedback_rows.parquet"
FEEDBACK_ROWS_TAG = f"{TAG_PREFIX}retrain.feedback_rows"  # how many feedback rows a retrain added


@dataclass
class RunExtras:
    """What a retrain adds to a plain run: labelled rows appended to the config's data, tags saying why
    it ran (on the run and the version), and JSON documents kept with the run (e.g. the drift report)."""

    rows: pd.DataFrame | None = None
    tags: dict[str, str] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreparedData:
    """Validated rows and where they came from (the lineage records uri and digest)."""

    frame: pd.DataFrame
    uri: str
    name: str
    digest: str
    source_rows: int
    extra_rows: int = 0


@dataclass
class FittedModel:
    pipeline: Any  # a fitted scikit-learn Pipeline
    best_params: dict[str, Any] = field(default_factory=dict)
    trials: list[TrialResult] = field(default_factory=list)
    tuning_metric: str | None = None
    best_score: float | None = None


@dataclass
class Evaluation:
    metrics: dict[str, float]  # on the test split
    train_metrics: dict[str, float]
    test_predictions: list[Any]
    profile: dict[str, Any]
    reference: pd.DataFrame
    estimator: PerformanceEstimator | None = None  # CBPE / DLE, fitted on the held-out split


@dataclass
class Registration:
    model_name: str
    version: str
    run_id: str
    experiment: str
    experiment_id: str


def prepare_data(
    config: PipelineConfig, base_dir: Path | None = None, extra_rows: pd.DataFrame | None = None
) -> PreparedData:
    """Load the config's data (plus ``extra_rows``, e.g. labelled feedback) and validate it against the
    data contract; invalid data raises before anything is tracked."""
    loaded = DataLoader(config.dataset.source, base_dir).load()
    data = loaded.frame
    extra = 0 if extra_rows is None else len(extra_rows)
    if extra_rows is not None and extra:
        data = pd.concat([data, extra_rows.reindex(columns=data.columns)], ignore_index=True)
    frame = DataValidator(config.dataset).check(data)
    return PreparedData(frame, loaded.uri, loaded.name, loaded.digest, len(loaded.frame), extra)


def split_data(config: PipelineConfig, data: PreparedData) -> Split:
    ds = config.dataset
    return split_frame(data.frame, config.feature_columns, ds.target, config.split, ds.task)


def fit_model(
    config: PipelineConfig,
    split: Split,
    on_trial: Callable[[TrialResult, int], None] | None = None,
) -> FittedModel:
    """Tune (when the config says so) with cross-validation on the training split, then fit."""
    trainer = ModelTrainer(config)
    if not config.tuning.enabled:
        return FittedModel(trainer.fit(split.X_train, split.y_train))
    tuned = trainer.tune(split.X_train, split.y_train, on_trial)
    pipeline = trainer.fit(split.X_train, split.y_train, tuned.best_params)
    return FittedModel(pipeline, tuned.best_params, tuned.trials, tuned.metric, tuned.best_score)


def evaluate_model(config: PipelineConfig, fitted: FittedModel, split: Split) -> Evaluation:
    """Test and train metrics, the reference profile and the reference sample drift compares with."""
    ds = config.dataset
    pipeline = fitted.pipeline
    train_predictions = pipeline.predict(split.X_train)
    profile = build_reference_profile(
        split.X_train,
        split.y_train,
        train_predictions,
        {c: ds.columns[c].feature_kind for c in config.feature_columns},
        ds.task,
        config.features.profile_bins,
    )
    test_predictions = np.asarray(pipeline.predict(split.X_test))
    return Evaluation(
        metrics=evaluate(pipeline, split.X_test, split.y_test, ds.task),
        train_metrics=evaluate(pipeline, split.X_train, split.y_train, ds.task),
        test_predictions=test_predictions.tolist(),
        profile=profile,
        reference=reference_sample(
            split.X_train, split.y_train, train_predictions, config.monitoring.reference_rows
        ),
        estimator=fit_performance_estimator(config, pipeline, split, test_predictions),
    )


def fit_performance_estimator(
    config: PipelineConfig, pipeline: Any, split: Split, test_predictions: Any
) -> PerformanceEstimator | None:
    """CBPE (classifiers with probabilities) or DLE (regressors) fitted on the held-out split, so the
    monitor can estimate the model's quality on windows whose labels have not arrived; None when
    the config turns it off or the split is too small to learn from."""
    if not config.monitoring.estimated_performance.enabled or len(split.X_test) < 20:
        return None
    if config.dataset.task == "classification":
        if not hasattr(pipeline, "predict_proba"):
            return None
        proba = np.asarray(pipeline.predict_proba(split.X_test), dtype=float)
        return CBPE.fit(list(pipeline.classes_), proba, split.y_test, test_predictions)
    columns = config.dataset.columns
    categorical = [c for c in config.feature_columns if columns[c].feature_kind == "categorical"]
    return DLE.fit(split.X_test[config.feature_columns], test_predictions, split.y_test, categorical)


def reference_sample(
    X: pd.DataFrame, y: pd.Series, predictions: Any, rows: int, seed: int = 0
) -> pd.DataFrame:
    """Training features with the target and the model's predictions, at most ``rows`` rows: what drift
    detection compares live data against."""
    frame = X.copy()
    frame[TARGET_COLUMN] = y.to_numpy()
    frame[PREDICTION_COLUMN] = np.asarray(predictions)
    if len(frame) > rows:
        frame = frame.sample(rows, random_state=seed)
    return frame.reset_index(drop=True)


def register_model(
    config: PipelineConfig,
    settings: Settings,
    data: PreparedData,
    split: Split,
    fitted: FittedModel,
    evaluation: Evaluation,
    extras: RunExtras | None = None,
    runner: str = "cli",
) -> Registration:
    """One MLflow run with everything a reader needs, then a new registered version as challenger."""
    extras = extras or RunExtras()
    ds = config.dataset
    resolved = config.model_dump(mode="json")
    lineage = collect_lineage(data.uri, data.digest, resolved)
    model_name = settings.model_name or config.model_name
    experiment = settings.experiment or config.experiment_name
    tracker = ExperimentTracker(settings)
    registry = ModelRegistry(settings)
    experiment_id = tracker.ensure_experiment(experiment)
    tags = {
        **lineage.tags(),
        f"{TAG_PREFIX}config_name": config.name,
        f"{TAG_PREFIX}task": ds.task,
        RUNNER_TAG: runner,
        **extras.tags,
    }
    with tracker.run(run_name=f"{config.name}-train", tags=tags) as run_id:
        params = {k: v for k, v in resolved.items() if k not in ("dataset", "tuning", "description")}
        params["dataset"] = {k: v for k, v in resolved["dataset"].items() if k != "columns"}
        params["tuning"] = {k: v for k, v in resolved["tuning"].items() if k != "search_space"}
        tracker.log_params(params)
        tracker.log_dict(resolved, CONFIG_ARTIFACT)
        for artifact, document in extras.documents.items():
            tracker.log_dict(document, artifact)
        if extras.rows is not None and len(extras.rows):
            tracker.log_frame(extras.rows, FEEDBACK_ARTIFACT)
        tracker.log_dataset(data.frame, data.uri, data.name, ds.target, context="training")
        tracker.log_metrics({"rows_train": len(split.X_train), "rows_test": len(split.X_test)})
        for trial in fitted.trials:
            with tracker.run(run_name=f"trial-{trial.number}", nested=True):
                tracker.log_params({"trial": trial.number, **trial.params})
                tracker.log_metrics({f"cv_{fitted.tuning_metric}": trial.score, "seconds": trial.seconds})
        if fitted.trials:
            tracker.log_params({"best": fitted.best_params})
            tracker.log_metrics({f"cv_best_{fitted.tuning_metric}": float(fitted.best_score or 0.0)})
        tracker.log_metrics(evaluation.metrics, prefix="test_")
        tracker.log_metrics(evaluation.train_metrics, prefix="train_")
        _log_plots(tracker, config, fitted.pipeline, split, evaluation.test_predictions)
        tracker.log_dict(evaluation.profile, PROFILE_ARTIFACT)
        tracker.log_frame(evaluation.reference, REFERENCE_ARTIFACT)
        if evaluation.estimator is not None:
            tracker.log_object(evaluation.estimator, PERFORMANCE_ARTIFACT)

        example = split.X_train.head(5)
        inputs = [
            InputSpec(c, ds.columns[c].dtype, ds.columns[c].nullable, ds.columns[c].allowed)
            for c in config.feature_columns
        ]
        logged = tracker.log_model(
            fitted.pipeline,
            inputs,
            example,
            fitted.pipeline.predict(example),
            {f"{TAG_PREFIX}config_name": config.name},
        )
        version = registry.register(
            model_name,
            logged.model_uri,
            logged.model_id,
            logged.run_id,
            {
                **lineage.tags(),
                f"{TAG_PREFIX}primary_metric": config.evaluation.primary_metric,
                f"{TAG_PREFIX}config_name": config.name,
                RUNNER_TAG: runner,
                **extras.tags,
            },
        ).version
        registry.set_alias(model_name, settings.challenger_alias, version)
    return Registration(model_name, version, run_id, experiment, experiment_id)


def promote_model(
    config: PipelineConfig,
    settings: Settings,
    registration: Registration,
    split: Split,
    metrics: dict[str, float],
) -> PromotionDecision:
    """The gate: champion only when the thresholds are met and the champion is not better on the same
    new test split; the decision and its reason are recorded on the version and the run."""
    registry = ModelRegistry(settings)
    name, version = registration.model_name, registration.version
    decision = _gate(config, settings, registry, name, metrics, split)
    if decision.promote:
        registry.set_alias(name, settings.champion_alias, version)
        registry.remove_alias(name, settings.challenger_alias)
    registry.record_decision(
        name, version, "promoted" if decision.promote else "rejected", decision.reason, "gate"
    )
    tracker = ExperimentTracker(settings)
    with tracker.resume(registration.run_id):
        tracker.set_tags({f"{TAG_PREFIX}promoted": str(decision.promote).lower()})
    return decision


def _gate(
    config: PipelineConfig,
    settings: Settings,
    registry: ModelRegistry,
    model_name: str,
    metrics: dict[str, float],
    split: Split,
) -> PromotionDecision:
    """Score the current champion on the new test split, then apply the config's rule."""
    primary = config.evaluation.primary_metric
    champion = registry.version_by_alias(model_name, settings.champion_alias)
    if champion is None:
        return decide(metrics, primary, config.promotion)
    score: float | None = None
    source = None
    if config.promotion.compare_with_champion:
        try:
            loaded = registry.load(model_name, champion.version)
            score = evaluate(loaded.model, split.X_test, split.y_test, config.dataset.task).get(primary)
            source = "new test split"
        except (ShipyardError, ValueError, KeyError, TypeError) as exc:
            # e.g. the champion was trained on other columns: fall back to what it recorded
            log.warning("champion v%s cannot score the new test split: %s", champion.version, exc)
            score = champion.metrics.get(f"test_{primary}")
            source = "recorded metric"
    return decide(metrics, primary, config.promotion, champion.version, score, source)


def _log_plots(
    tracker: ExperimentTracker,
    config: PipelineConfig,
    pipeline: Any,
    split: Split,
    predictions: list[Any],
) -> None:
    if config.dataset.task == "classification":
        labels = list(pipeline.classes_)
        figure = confusion_matrix_figure(split.y_test, np.asarray(predictions), labels)
        tracker.log_figure(figure, "plots/confusion_matrix.png")
    else:
        figure = predicted_vs_actual_figure(split.y_test, np.asarray(predictions))
        tracker.log_figure(figure, "plots/predicted_vs_actual.png")
    importance = raw_feature_importance(pipeline, FeatureEngineer(config))
    if importance is not None:
        tracker.log_figure(feature_importance_figure(importance), "plots/feature_importance.png")
        tracker.log_dict({str(k): float(v) for k, v in importance.items()}, "feature_importance.json")
