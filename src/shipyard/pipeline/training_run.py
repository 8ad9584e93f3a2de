"""run_training(config): load -> validate -> split -> (tune) -> train -> evaluate -> register -> gate.

Validation happens before any MLflow run starts, so invalid data leaves nothing behind in the store.
Every other step runs inside one MLflow run; a failure marks the run FAILED and moves no alias.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.config.pipeline import PipelineConfig
from shipyard.config.settings import Settings
from shipyard.data.sources import DataLoader
from shipyard.data.splits import split_frame
from shipyard.data.validation import DataValidator
from shipyard.errors import ShipyardError
from shipyard.features.profile import build_reference_profile
from shipyard.pipeline.gate import PromotionDecision, decide
from shipyard.pipeline.progress import NullReporter, Reporter
from shipyard.registry.artifacts import (
    CONFIG_ARTIFACT,
    PREDICTION_COLUMN,
    PROFILE_ARTIFACT,
    REFERENCE_ARTIFACT,
    TARGET_COLUMN,
)
from shipyard.registry.lineage import TAG_PREFIX, collect_lineage
from shipyard.registry.models import ModelRegistry
from shipyard.registry.tracking import ExperimentTracker, InputSpec
from shipyard.training.metrics import evaluate
from shipyard.training.plots import (
    confusion_matrix_figure,
    feature_importance_figure,
    predicted_vs_actual_figure,
    raw_feature_importance,
)
from shipyard.training.trainer import ModelTrainer, TrialResult

log = logging.getLogger(__name__)


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


@dataclass
class TrainingSummary:
    """What a training run produced; printed by the CLI and written as JSON with ``--output``."""

    config: str
    model_name: str
    version: str
    run_id: str
    experiment: str
    experiment_id: str
    tracking_uri: str
    metrics: dict[str, float]
    decision: PromotionDecision
    aliases: list[str]
    data_hash: str
    rows: dict[str, int]
    best_params: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        return self.decision.promote

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["decision"] = self.decision.to_dict()
        out["promoted"] = self.promoted
        return out


@dataclass
class RunExtras:
    """What a retrain adds to a plain run: labelled rows appended to the config's data, tags saying why
    it ran (on the run and the version), and JSON documents kept with the run (e.g. the drift report)."""

    rows: pd.DataFrame | None = None
    tags: dict[str, str] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)


FEEDBACK_ARTIFACT = "retrain/feedback_rows.parquet"


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def time(self, name: str, start: float) -> None:
        self.seconds[name] = round(time.perf_counter() - start, 3)


def run_training(
    config: PipelineConfig,
    settings: Settings,
    reporter: Reporter | None = None,
    base_dir: Path | None = None,
    extras: RunExtras | None = None,
) -> TrainingSummary:
    """Train, track, register and gate one model described by ``config``."""
    report = reporter or NullReporter()
    extras = extras or RunExtras()
    timer = _Timer()
    ds = config.dataset

    t = time.perf_counter()
    report.step("load", ds.source.name or str(ds.source.path))
    loaded = DataLoader(ds.source, base_dir).load()
    data = loaded.frame
    added = ""
    if extras.rows is not None and len(extras.rows):
        data = pd.concat([data, extras.rows.reindex(columns=data.columns)], ignore_index=True)
        added = f" + {len(extras.rows)} labelled rows from feedback"
    timer.time("load", t)
    report.done(
        "load", f"{loaded.frame.shape[0]} rows x {loaded.frame.shape[1]} columns from {loaded.uri}{added}"
    )

    t = time.perf_counter()
    report.step("validate")
    frame = DataValidator(ds).check(data)
    timer.time("validate", t)
    report.done("validate", f"{len(frame)} rows passed {len(ds.columns)} column contracts")

    split = split_frame(frame, config.feature_columns, ds.target, config.split, ds.task)
    trainer = ModelTrainer(config)
    resolved = config.model_dump(mode="json")
    lineage = collect_lineage(loaded.uri, loaded.digest, resolved)
    model_name = settings.model_name or config.model_name
    experiment = settings.experiment or config.experiment_name

    tracker = ExperimentTracker(settings)
    registry = ModelRegistry(settings)
    report.step("track", settings.store_uri)
    experiment_id = tracker.ensure_experiment(experiment)
    run_tags = {
        **lineage.tags(),
        f"{TAG_PREFIX}config_name": config.name,
        f"{TAG_PREFIX}task": ds.task,
        **extras.tags,
    }
    report.done("track", f"experiment '{experiment}'")

    with tracker.run(run_name=f"{config.name}-train", tags=run_tags) as run_id:
        params = {k: v for k, v in resolved.items() if k not in ("dataset", "tuning", "description")}
        params["dataset"] = {k: v for k, v in resolved["dataset"].items() if k != "columns"}
        params["tuning"] = {k: v for k, v in resolved["tuning"].items() if k != "search_space"}
        tracker.log_params(params)
        tracker.log_dict(resolved, CONFIG_ARTIFACT)
        for artifact, document in extras.documents.items():
            tracker.log_dict(document, artifact)
        if extras.rows is not None and len(extras.rows):
            tracker.log_frame(extras.rows, FEEDBACK_ARTIFACT)
        tracker.log_dataset(frame, loaded.uri, loaded.name, ds.target, context="training")
        tracker.log_metrics({"rows_train": len(split.X_train), "rows_test": len(split.X_test)})

        best_params: dict[str, Any] = {}
        if config.tuning.enabled:
            t = time.perf_counter()
            report.step("tune", f"{config.tuning.n_trials} trials, {config.tuning.cv_folds}-fold CV")

            def on_trial(result: TrialResult, total: int) -> None:
                with tracker.run(run_name=f"trial-{result.number}", nested=True):
                    tracker.log_params({"trial": result.number, **result.params})
                    tracker.log_metrics({f"cv_{tuning_metric}": result.score, "seconds": result.seconds})
                report.trial(result, total)

            tuning_metric = config.tuning.metric or config.evaluation.primary_metric
            tuned = trainer.tune(split.X_train, split.y_train, on_trial)
            best_params = tuned.best_params
            tracker.log_params({"best": best_params})
            tracker.log_metrics({f"cv_best_{tuned.metric}": tuned.best_score})
            timer.time("tune", t)
            report.done("tune", f"best cv {tuned.metric} {tuned.best_score:.4f} with {best_params}")

        t = time.perf_counter()
        report.step("train", config.model.estimator)
        pipeline = trainer.fit(split.X_train, split.y_train, best_params)
        timer.time("train", t)
        report.done("train", f"{config.model.estimator} on {len(split.X_train)} rows")

        t = time.perf_counter()
        report.step("evaluate")
        metrics = evaluate(pipeline, split.X_test, split.y_test, ds.task)
        tracker.log_metrics(metrics, prefix="test_")
        tracker.log_metrics(evaluate(pipeline, split.X_train, split.y_train, ds.task), prefix="train_")
        _log_plots(tracker, trainer, pipeline, split.X_test, split.y_test, ds.task)
        train_predictions = pipeline.predict(split.X_train)
        profile = build_reference_profile(
            split.X_train,
            split.y_train,
            train_predictions,
            {c: ds.columns[c].feature_kind for c in config.feature_columns},
            ds.task,
            config.features.profile_bins,
        )
        tracker.log_dict(profile, PROFILE_ARTIFACT)
        tracker.log_frame(
            reference_sample(
                split.X_train, split.y_train, train_predictions, config.monitoring.reference_rows
            ),
            REFERENCE_ARTIFACT,
        )
        timer.time("evaluate", t)
        report.done("evaluate", ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))

        t = time.perf_counter()
        report.step("register", model_name)
        example = split.X_train.head(5)
        inputs = [
            InputSpec(c, ds.columns[c].dtype, ds.columns[c].nullable, ds.columns[c].allowed)
            for c in config.feature_columns
        ]
        logged = tracker.log_model(
            pipeline, inputs, example, pipeline.predict(example), {f"{TAG_PREFIX}config_name": config.name}
        )
        version = registry.register(
            model_name,
            logged.model_uri,
            logged.model_id,
            logged.run_id,
            {
                **lineage.tags(),
                f"{TAG_PREFIX}primary_metric": config.evaluation.primary_metric,
                **extras.tags,
            },
        ).version
        registry.set_alias(model_name, settings.challenger_alias, version)
        timer.time("register", t)
        report.done("register", f"{model_name} version {version} (alias {settings.challenger_alias})")

        t = time.perf_counter()
        report.step("gate")
        decision = _gate(config, settings, registry, model_name, metrics, split.X_test, split.y_test)
        if decision.promote:
            registry.set_alias(model_name, settings.champion_alias, version)
            registry.remove_alias(model_name, settings.challenger_alias)
        registry.record_decision(
            model_name, version, "promoted" if decision.promote else "rejected", decision.reason, "gate"
        )
        tracker.set_tags({f"{TAG_PREFIX}promoted": str(decision.promote).lower()})
        timer.time("gate", t)
        report.done(
            "gate", ("promoted to champion: " if decision.promote else "stays challenger: ") + decision.reason
        )

    aliases = registry.get_version(model_name, version).aliases
    return TrainingSummary(
        config=config.name,
        model_name=model_name,
        version=version,
        run_id=run_id,
        experiment=experiment,
        experiment_id=experiment_id,
        tracking_uri=settings.store_uri,
        metrics=metrics,
        decision=decision,
        aliases=aliases,
        data_hash=loaded.digest,
        rows={"total": len(frame), "train": len(split.X_train), "test": len(split.X_test)},
        best_params=best_params,
        seconds=timer.seconds,
    )


def _gate(
    config: PipelineConfig,
    settings: Settings,
    registry: ModelRegistry,
    model_name: str,
    metrics: dict[str, float],
    X_test: pd.DataFrame,
    y_test: pd.Series,
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
            score = evaluate(loaded.model, X_test, y_test, config.dataset.task).get(primary)
            source = "new test split"
        except (ShipyardError, ValueError, KeyError, TypeError) as exc:
            # e.g. the champion was trained on other columns: fall back to what it recorded
            log.warning("champion v%s cannot score the new test split: %s", champion.version, exc)
            score = champion.metrics.get(f"test_{primary}")
            source = "recorded metric"
    return decide(metrics, primary, config.promotion, champion.version, score, source)


def _log_plots(
    tracker: ExperimentTracker,
    trainer: ModelTrainer,
    pipeline: Any,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    task: str,
) -> None:
    predictions = pipeline.predict(X_test)
    if task == "classification":
        labels = list(pipeline.classes_)
        tracker.log_figure(confusion_matrix_figure(y_test, predictions, labels), "plots/confusion_matrix.png")
    else:
        tracker.log_figure(predicted_vs_actual_figure(y_test, predictions), "plots/predicted_vs_actual.png")
    importance = raw_feature_importance(pipeline, trainer.features)
    if importance is not None:
        tracker.log_figure(feature_importance_figure(importance), "plots/feature_importance.png")
        tracker.log_dict({str(k): float(v) for k, v in importance.items()}, "feature_importance.json")


__all__ = ["RunExtras", "TrainingSummary", "reference_sample", "run_training"]
