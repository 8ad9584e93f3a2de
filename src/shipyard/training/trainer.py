"""ModelTrainer: builds the Pipeline (features + estimator), tunes it with Optuna, fits it.

Tuning reports each trial through a callback so the layer above can log it (a nested MLflow run per
trial) without this pure module knowing about tracking.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline

from shipyard.config.pipeline import ParamSpace, PipelineConfig
from shipyard.errors import TrainingError
from shipyard.features.engineering import FeatureEngineer
from shipyard.training.catalogue import make_estimator
from shipyard.training.metrics import METRICS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialResult:
    number: int
    params: dict[str, Any]
    score: float
    seconds: float


TrialCallback = Callable[[TrialResult, int], None]


@dataclass(frozen=True)
class TuningResult:
    best_params: dict[str, Any]
    best_score: float
    metric: str
    trials: list[TrialResult]


class ModelTrainer:
    """Turns a config into a fitted scikit-learn Pipeline."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.features = FeatureEngineer(config)

    def build(self, params: dict[str, Any] | None = None) -> Pipeline:
        """An unfitted Pipeline; ``params`` override the config's estimator parameters."""
        merged = {**self.config.model.params, **(params or {})}
        estimator: BaseEstimator = make_estimator(
            self.config.model.estimator, self.config.dataset.task, merged
        )
        return Pipeline([("features", self.features.build()), ("model", estimator)])

    def fit(self, X: pd.DataFrame, y: pd.Series, params: dict[str, Any] | None = None) -> Pipeline:
        pipeline = self.build(params)
        try:
            pipeline.fit(X, y)
        except (ValueError, TypeError, MemoryError) as exc:
            raise TrainingError(f"fitting {self.config.model.estimator} failed: {exc}") from exc
        return pipeline

    def tune(
        self,
        X: pd.DataFrame,
        y: pd.Series,
        on_trial: TrialCallback | None = None,
        study: Any = None,
        n_trials: int | None = None,
    ) -> TuningResult:
        """Search the config's space with Optuna's TPE sampler, scoring by cross-validation. With
        ``study`` (one shared through a storage by several workers), this worker adds ``n_trials`` to it
        and the result's best is the study's best over every worker."""
        import optuna

        tuning = self.config.tuning
        metric = METRICS[tuning.metric or self.config.evaluation.primary_metric]
        if self.config.dataset.task == "classification":
            cv: Any = StratifiedKFold(tuning.cv_folds, shuffle=True, random_state=tuning.seed)
        else:
            cv = KFold(tuning.cv_folds, shuffle=True, random_state=tuning.seed)
        trials: list[TrialResult] = []

        def objective(trial: optuna.Trial) -> float:
            params = {name: _suggest(trial, name, space) for name, space in tuning.search_space.items()}
            start = time.perf_counter()
            scores = cross_val_score(
                self.build(params), X, y, scoring=metric.scorer, cv=cv, error_score="raise"
            )
            # scikit-learn negates lower-is-better scorers; report the metric itself
            score = float(scores.mean()) if metric.greater_is_better else -float(scores.mean())
            result = TrialResult(trial.number, params, score, time.perf_counter() - start)
            trials.append(result)
            if on_trial is not None:
                on_trial(result, tuning.n_trials)
            return score

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if study is None:
            study = optuna.create_study(
                direction=self.direction, sampler=optuna.samplers.TPESampler(seed=tuning.seed)
            )
        count = tuning.n_trials if n_trials is None else n_trials
        try:
            if count:
                study.optimize(objective, n_trials=count, timeout=tuning.timeout_seconds)
            best = study.best_trial
        except ValueError as exc:
            raise TrainingError(f"tuning failed: {exc}") from exc
        return TuningResult(dict(best.params), float(best.value), metric.name, trials)

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        tuning = self.config.tuning
        metric = METRICS[tuning.metric or self.config.evaluation.primary_metric]
        return "maximize" if metric.greater_is_better else "minimize"


def _suggest(trial: Any, name: str, space: ParamSpace) -> Any:
    if space.type == "categorical":
        return trial.suggest_categorical(name, space.choices)
    assert space.low is not None and space.high is not None
    if space.type == "int":
        return trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
    return trial.suggest_float(name, float(space.low), float(space.high), log=space.log)
