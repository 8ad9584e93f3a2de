"""Estimator catalogue, feature engineering, metrics and Optuna tuning, on small frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.config.pipeline import SourceConfig
from shipyard.data import DataLoader, split_frame
from shipyard.errors import ConfigError
from shipyard.features import FeatureEngineer
from shipyard.training import METRICS, ModelTrainer, TrialResult, evaluate, make_estimator
from shipyard.training.plots import raw_feature_importance
from tests.conftest import ConfigFactory


def test_catalogue_builds_per_task_and_rejects_bad_params() -> None:
    assert type(make_estimator("random_forest", "regression", {"n_estimators": 3})).__name__ == (
        "RandomForestRegressor"
    )
    assert type(make_estimator("logistic_regression", "classification", {})).__name__ == "LogisticRegression"
    with pytest.raises(ConfigError, match="not a parameter of Ridge"):
        make_estimator("ridge", "regression", {"n_estimators": 3})


def test_feature_engineer_imputes_encodes_and_ignores_unknown_categories(
    housing_config: ConfigFactory,
) -> None:
    cfg = housing_config()
    engineer = FeatureEngineer(cfg)
    assert "neighborhood" in engineer.categorical and "gr_liv_area" in engineer.numeric
    assert "ms_subclass" in engineer.categorical  # declared kind: categorical
    frame = DataLoader(cfg.dataset.source).load().frame
    X = frame[cfg.feature_columns]
    transformer = engineer.build().fit(X)
    unseen = X.head(3).copy()
    unseen["neighborhood"] = "Atlantis"
    unseen["lot_frontage"] = np.nan
    out = transformer.transform(unseen)
    assert np.isfinite(out).all()
    names = transformer.get_feature_names_out()
    assert engineer.raw_feature_of("categorical__neighborhood_NAmes") == "neighborhood"
    assert engineer.raw_feature_of("numeric__gr_liv_area") == "gr_liv_area"
    assert {engineer.raw_feature_of(n) for n in names} == set(cfg.feature_columns)


def test_metrics_and_importance_on_iris(iris_config: ConfigFactory) -> None:
    cfg = iris_config()
    frame = DataLoader(cfg.dataset.source).load().frame
    split = split_frame(frame, cfg.feature_columns, "species", cfg.split, "classification")
    trainer = ModelTrainer(cfg)
    model = trainer.fit(split.X_train, split.y_train)
    metrics = evaluate(model, split.X_test, split.y_test, "classification")
    assert set(metrics) == {"accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc_ovr"}
    assert metrics["accuracy"] == pytest.approx((model.predict(split.X_test) == split.y_test).mean())
    importance = raw_feature_importance(model, trainer.features)
    assert importance is not None
    assert set(importance.index) == set(cfg.feature_columns)
    assert importance.sum() == pytest.approx(1.0)
    assert importance.index[0].startswith("petal")


def test_regression_metrics_directions() -> None:
    assert METRICS["r2"].greater_is_better and not METRICS["rmse"].greater_is_better

    class Constant:
        def predict(self, X: pd.DataFrame) -> np.ndarray:
            return np.full(len(X), 2.0)

    metrics = evaluate(
        Constant(), pd.DataFrame({"a": [0, 0, 0, 0]}), pd.Series([1.0, 3.0, 1.0, 3.0]), "regression"
    )
    assert metrics == {"mae": 1.0, "mse": 1.0, "rmse": 1.0, "r2": 0.0}


def test_tuning_runs_the_trials_and_reports_each(iris_config: ConfigFactory) -> None:
    cfg = iris_config(
        tuning={
            "enabled": True,
            "n_trials": 3,
            "search_space": {"n_estimators": {"type": "int", "low": 5, "high": 15}},
        }
    )
    frame = DataLoader(SourceConfig(kind="bundled", name="iris")).load().frame
    seen: list[TrialResult] = []
    result = ModelTrainer(cfg).tune(frame[cfg.feature_columns], frame["species"], lambda r, n: seen.append(r))
    assert [t.number for t in seen] == [0, 1, 2]
    assert all(5 <= t.params["n_estimators"] <= 15 for t in seen)
    assert result.metric == "f1_macro"
    assert result.best_score == max(t.score for t in seen)
    assert result.best_params in [t.params for t in seen]
