"""run_training(config): the plain runner. prepare -> split -> fit -> evaluate -> register -> promote.

Each step is a function in ``pipeline.steps`` that the other runners (DVC stages through the CLI, the
ZenML pipeline) call too. Validation happens before any MLflow run starts, so invalid data leaves
nothing behind in the store; a failure inside the run marks it FAILED and moves no alias.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shipyard.config.pipeline import PipelineConfig
from shipyard.config.settings import Settings
from shipyard.data.splits import Split
from shipyard.pipeline.gate import PromotionDecision
from shipyard.pipeline.progress import NullReporter, Reporter
from shipyard.pipeline.steps import (
    FEEDBACK_ARTIFACT,
    Evaluation,
    FittedModel,
    PreparedData,
    Registration,
    RunExtras,
    evaluate_model,
    fit_model,
    prepare_data,
    promote_model,
    reference_sample,
    register_model,
    split_data,
)
from shipyard.registry.models import ModelRegistry
from shipyard.registry.tracking import ExperimentTracker


@dataclass
class TrainingSummary:
    """What a training run produced, whichever runner ran it; printed by the CLI and written as JSON with
    ``--output``. The test truth and predictions (DVC plot data) stay out of the JSON."""

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
    runner: str = "cli"
    test_truth: list[Any] = field(default_factory=list, repr=False)
    test_predictions: list[Any] = field(default_factory=list, repr=False)

    @property
    def promoted(self) -> bool:
        return self.decision.promote

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for per_row in ("test_truth", "test_predictions"):
            del out[per_row]
        out["decision"] = self.decision.to_dict()
        out["promoted"] = self.promoted
        return out


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._started = 0.0

    def start(self) -> None:
        self._started = time.perf_counter()

    def stop(self, name: str) -> None:
        self.seconds[name] = round(time.perf_counter() - self._started, 3)


def run_training(
    config: PipelineConfig,
    settings: Settings,
    reporter: Reporter | None = None,
    base_dir: Path | None = None,
    extras: RunExtras | None = None,
    runner: str = "cli",
) -> TrainingSummary:
    """Train, track, register and gate one model described by ``config``: the one training entry point
    (the CLI, DVC stages, tuning and retraining all call it; the ZenML runner chains the same steps)."""
    report = reporter or NullReporter()
    extras = extras or RunExtras()
    timer = _Timer()
    ds = config.dataset

    timer.start()
    report.step("load", ds.source.name or str(ds.source.path))
    data = prepare_data(config, base_dir, extras.rows)
    timer.stop("load+validate")
    added = f" + {data.extra_rows} labelled rows from feedback" if data.extra_rows else ""
    report.done("load", f"{data.source_rows} rows from {data.uri}{added}")
    report.done("validate", f"{len(data.frame)} rows passed {len(ds.columns)} column contracts")

    # reach the tracking store before the expensive part, so a store that is down fails fast
    experiment = settings.experiment or config.experiment_name
    report.step("track", settings.store_uri)
    ExperimentTracker(settings).ensure_experiment(experiment)
    report.done("track", f"experiment '{experiment}'")

    split = split_data(config, data)
    if config.tuning.enabled:
        report.step("tune", f"{config.tuning.n_trials} trials, {config.tuning.cv_folds}-fold CV")
    else:
        report.step("train", config.model.estimator)
    timer.start()
    fitted = fit_model(config, split, report.trial)
    timer.stop("fit")
    if fitted.trials:
        report.done(
            "tune", f"best cv {fitted.tuning_metric} {fitted.best_score:.4f} with {fitted.best_params}"
        )
    report.done("train", f"{config.model.estimator} on {len(split.X_train)} rows")

    timer.start()
    report.step("evaluate")
    evaluation = evaluate_model(config, fitted, split)
    timer.stop("evaluate")
    report.done("evaluate", ", ".join(f"{k} {v:.4f}" for k, v in evaluation.metrics.items()))

    timer.start()
    report.step("register", settings.model_name or config.model_name)
    registration = register_model(config, settings, data, split, fitted, evaluation, extras, runner)
    timer.stop("track+register")
    report.done(
        "register",
        f"{registration.model_name} version {registration.version} (alias {settings.challenger_alias})",
    )

    timer.start()
    report.step("gate")
    decision = promote_model(config, settings, registration, split, evaluation.metrics)
    timer.stop("gate")
    report.done(
        "gate", ("promoted to champion: " if decision.promote else "stays challenger: ") + decision.reason
    )

    return training_summary(
        config, settings, data, split, fitted, evaluation, registration, decision, timer.seconds, runner
    )


def training_summary(
    config: PipelineConfig,
    settings: Settings,
    data: PreparedData,
    split: Split,
    fitted: FittedModel,
    evaluation: Evaluation,
    registration: Registration,
    decision: PromotionDecision,
    seconds: dict[str, float],
    runner: str,
) -> TrainingSummary:
    """What every runner returns once the steps ran, test truth and predictions included."""
    aliases = ModelRegistry(settings).get_version(registration.model_name, registration.version).aliases
    return TrainingSummary(
        config=config.name,
        model_name=registration.model_name,
        version=registration.version,
        run_id=registration.run_id,
        experiment=registration.experiment,
        experiment_id=registration.experiment_id,
        tracking_uri=settings.store_uri,
        metrics=evaluation.metrics,
        decision=decision,
        aliases=aliases,
        data_hash=data.digest,
        rows={"total": len(data.frame), "train": len(split.X_train), "test": len(split.X_test)},
        best_params=fitted.best_params,
        seconds=seconds,
        runner=runner,
        test_truth=split.y_test.tolist(),
        test_predictions=evaluation.test_predictions,
    )


__all__ = [
    "FEEDBACK_ARTIFACT",
    "RunExtras",
    "TrainingSummary",
    "reference_sample",
    "run_training",
    "training_summary",
]
