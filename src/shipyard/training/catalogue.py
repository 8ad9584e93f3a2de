"""The estimator catalogue: names a config may use, per task, mapped to scikit-learn classes."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from shipyard.errors import ConfigError

ESTIMATORS: dict[str, dict[str, type[BaseEstimator]]] = {
    "random_forest": {"classification": RandomForestClassifier, "regression": RandomForestRegressor},
    "extra_trees": {"classification": ExtraTreesClassifier, "regression": ExtraTreesRegressor},
    "gradient_boosting": {
        "classification": GradientBoostingClassifier,
        "regression": GradientBoostingRegressor,
    },
    "hist_gradient_boosting": {
        "classification": HistGradientBoostingClassifier,
        "regression": HistGradientBoostingRegressor,
    },
    "logistic_regression": {"classification": LogisticRegression},
    "linear_regression": {"regression": LinearRegression},
    "ridge": {"regression": Ridge},
}


def estimator_class(name: str, task: str) -> type[BaseEstimator]:
    """The class for ``name`` and ``task``; a ConfigError names what is available otherwise."""
    by_task = ESTIMATORS.get(name)
    if by_task is None:
        raise ConfigError(
            f"model.estimator: unknown estimator '{name}' (expected one of: {', '.join(ESTIMATORS)})"
        )
    cls = by_task.get(task)
    if cls is None:
        fits = [n for n, t in ESTIMATORS.items() if task in t]
        raise ConfigError(
            f"model.estimator: '{name}' does not do {task} (for {task} use one of: {', '.join(fits)})"
        )
    return cls


def check_params(name: str, task: str, params: dict[str, Any], key: str = "model.params") -> None:
    """Fail early, naming the key, when a parameter is not one the estimator takes."""
    cls = estimator_class(name, task)
    known = set(cls().get_params())
    unknown = sorted(set(params) - known)
    if unknown:
        expected = ", ".join(sorted(known))
        raise ConfigError(
            f"{key}.{unknown[0]}: not a parameter of {cls.__name__} (expected one of: {expected})"
        )


def make_estimator(name: str, task: str, params: dict[str, Any]) -> BaseEstimator:
    check_params(name, task, params)
    try:
        return estimator_class(name, task)(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.params: {exc}") from None
