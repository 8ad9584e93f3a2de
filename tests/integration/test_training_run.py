"""run_training against a real MLflow SQLite store: tracking, registry, gate, lineage, loading back."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from shipyard import __version__
from shipyard.config import Settings
from shipyard.config.pipeline import ParamSpace
from shipyard.data import DataLoader, split_frame
from shipyard.errors import DataValidationError
from shipyard.pipeline import run_training
from shipyard.registry import ModelRegistry
from shipyard.registry.lineage import git_state
from shipyard.training import ModelTrainer
from tests.conftest import ConfigFactory

pytestmark = pytest.mark.integration


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def step(self, name: str, detail: str = "") -> None:
        self.events.append(("step", name))

    def done(self, name: str, detail: str = "") -> None:
        self.events.append(("done", name))

    def trial(self, result: object, total: int) -> None:
        self.events.append(("trial", str(total)))


def client(settings: Settings) -> MlflowClient:
    return MlflowClient(tracking_uri=settings.store_uri, registry_uri=settings.store_uri)


def test_first_run_registers_a_champion_with_everything_logged(
    settings: Settings, iris_config: ConfigFactory
) -> None:
    recorder = Recorder()
    summary = run_training(iris_config(), settings, recorder)
    assert summary.version == "1" and summary.promoted and summary.aliases == ["champion"]
    assert summary.metrics["accuracy"] >= 0.9
    assert [name for kind, name in recorder.events if kind == "done"] == [
        "load", "validate", "track", "train", "evaluate", "register", "gate",
    ]  # fmt: skip

    c = client(settings)
    run = c.get_run(summary.run_id)
    # params are the resolved config
    assert run.data.params["model.params.n_estimators"] == "20"
    assert run.data.params["model.estimator"] == "random_forest"
    assert run.data.params["split.test_size"] == "0.2"
    # metrics on the test split
    assert run.data.metrics["test_accuracy"] == pytest.approx(summary.metrics["accuracy"])
    assert {"test_f1_macro", "test_roc_auc_ovr", "train_accuracy", "rows_train"} <= set(run.data.metrics)
    # lineage tags on the run and on the version
    commit, dirty = git_state()
    version = c.get_model_version("iris", "1")
    for tags in (run.data.tags, version.tags):
        assert tags["shipyard.git_commit"] == commit
        assert tags["shipyard.git_dirty"] == ("unknown" if dirty is None else str(dirty).lower())
        assert tags["shipyard.data_hash"] == summary.data_hash and len(summary.data_hash) == 64
        assert len(tags["shipyard.config_hash"]) == 64
        assert tags["shipyard.package_version"] == __version__
    assert version.tags["shipyard.promotion.decision"] == "promoted"
    assert "no champion yet" in version.tags["shipyard.promotion.reason"]
    # the training data is an MLflow dataset input
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.name == "iris"
    assert inputs[0].tags[0].value == "training"
    # artifacts: reference profile, plots, resolved config
    files = {f.path for f in c.list_artifacts(summary.run_id)} | {
        f.path for f in c.list_artifacts(summary.run_id, "plots")
    }
    assert {
        "reference_profile.json",
        "config.json",
        "plots/confusion_matrix.png",
        "plots/feature_importance.png",
    } <= files
    profile = mlflow.artifacts.load_dict(f"runs:/{summary.run_id}/reference_profile.json")
    assert profile["rows"] == summary.rows["train"] == 120
    # artifacts stay inside home, never in ./mlruns of the working directory
    assert list(Path(settings.home, "mlartifacts").rglob("MLmodel"))


def test_champion_loaded_back_predicts_as_during_training(
    settings: Settings, iris_config: ConfigFactory
) -> None:
    cfg = iris_config()
    run_training(cfg, settings)
    frame = DataLoader(cfg.dataset.source).load().frame
    split = split_frame(frame, cfg.feature_columns, "species", cfg.split, "classification")
    in_memory = ModelTrainer(cfg).fit(split.X_train, split.y_train)

    loaded = ModelRegistry(settings).load("iris")  # the champion
    assert loaded.version == "1"
    assert [c.name for c in loaded.inputs] == cfg.feature_columns
    assert np.array_equal(loaded.model.predict(split.X_test), in_memory.predict(split.X_test))
    assert np.allclose(loaded.model.predict_proba(split.X_test), in_memory.predict_proba(split.X_test))
    # and through MLflow's generic pyfunc loader, as any MLflow client would
    pyfunc = mlflow.pyfunc.load_model("models:/iris@champion")
    assert list(pyfunc.predict(split.X_test)) == list(in_memory.predict(split.X_test))


def test_gate_keeps_a_worse_model_as_challenger_and_promotes_a_better_one(
    settings: Settings, iris_config: ConfigFactory
) -> None:
    first = run_training(iris_config(), settings)
    assert first.promoted
    # a one-leaf-deep, one-tree forest scores worse on the same split
    weak = iris_config(model={"params": {"n_estimators": 1, "max_depth": 1}}, promotion={"thresholds": {}})
    second = run_training(weak, settings)
    assert not second.promoted
    assert second.aliases == ["challenger"]
    assert second.decision.champion_version == "1"
    assert second.decision.champion_score_source == "new test split"
    assert "< champion v1's" in second.decision.reason
    registry = ModelRegistry(settings)
    assert registry.version_by_alias("iris", "champion").version == "1"  # type: ignore[union-attr]
    assert registry.get_version("iris", "2").tags["shipyard.promotion.decision"] == "rejected"
    # a model at least as good takes over, and the challenger alias is cleared
    third = run_training(iris_config(), settings)
    assert third.promoted and third.aliases == ["champion"]
    assert registry.version_by_alias("iris", "challenger") is None
    assert [v.aliases for v in registry.versions("iris")] == [["champion"], [], []]


def test_thresholds_block_promotion_even_without_a_champion(
    settings: Settings, iris_config: ConfigFactory
) -> None:
    summary = run_training(iris_config(promotion={"thresholds": {"accuracy": 0.999}}), settings)
    assert not summary.promoted
    assert summary.decision.reason.startswith("below thresholds: accuracy")
    assert ModelRegistry(settings).version_by_alias("iris", "champion") is None


def test_invalid_data_stops_before_anything_is_tracked(
    settings: Settings, iris_config: ConfigFactory, tmp_path: Path
) -> None:
    frame = DataLoader(iris_config().dataset.source).load().frame
    frame.loc[0, "species"] = "rose"
    frame.loc[1, "sepal_length"] = -1.0
    path = tmp_path / "iris-bad.csv"
    frame.to_csv(path, index=False)
    cfg = iris_config(dataset={"source": {"kind": "csv", "path": str(path), "name": None}})
    with pytest.raises(DataValidationError) as err:
        run_training(cfg, settings)
    assert {(f.column, f.failing) for f in err.value.report.failures} == {("species", 1), ("sepal_length", 1)}
    c = client(settings)
    assert c.search_registered_models() == []
    assert c.search_runs([e.experiment_id for e in c.search_experiments()]) == []


def test_housing_regression_logs_predicted_vs_actual(
    settings: Settings, housing_config: ConfigFactory
) -> None:
    summary = run_training(housing_config(), settings)
    assert summary.promoted and summary.metrics["r2"] >= 0.8
    assert set(summary.metrics) == {"mae", "mse", "rmse", "r2"}
    assert summary.metrics["rmse"] == pytest.approx(np.sqrt(summary.metrics["mse"]))
    c = client(settings)
    plots = {f.path for f in c.list_artifacts(summary.run_id, "plots")}
    assert plots == {"plots/predicted_vs_actual.png", "plots/feature_importance.png"}
    # the signature comes from the data contract: nullable columns are optional, ints stay ints
    loaded = ModelRegistry(settings).load("housing", summary.version)
    types = {c.name: (c.type, c.required) for c in loaded.inputs}
    assert types["lot_frontage"] == ("double", False)
    assert types["lot_area"] == ("long", True)
    assert types["alley"] == ("string", False)
    raw = pd.read_csv(housing_config().dataset.source.path, keep_default_na=False, na_values=[""])
    rows = raw.drop(columns=["alley", "lot_frontage"]).head(3)  # optional columns may be absent
    from shipyard.inference import ReadyModel

    out = ReadyModel(loaded).predict_frame(rows)
    assert np.isfinite(out["prediction"]).all()


def test_tuning_logs_each_trial_as_a_nested_run(settings: Settings, iris_config: ConfigFactory) -> None:
    cfg = iris_config(tuning={"enabled": True, "n_trials": 3})
    space = {"max_depth": ParamSpace(type="int", low=2, high=6)}
    cfg = cfg.model_copy(update={"tuning": cfg.tuning.model_copy(update={"search_space": space})})
    recorder = Recorder()
    summary = run_training(cfg, settings, recorder)
    assert ("trial", "3") in recorder.events
    assert set(summary.best_params) == {"max_depth"}
    c = client(settings)
    children = c.search_runs(
        [summary.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{summary.run_id}'"
    )
    assert len(children) == 3
    assert all("cv_f1_macro" in r.data.metrics for r in children)
    parent = c.get_run(summary.run_id)
    assert parent.data.params["best.max_depth"] == str(summary.best_params["max_depth"])


def test_manual_promotion_records_who_and_why(settings: Settings, iris_config: ConfigFactory) -> None:
    run_training(iris_config(), settings)
    run_training(
        iris_config(model={"params": {"n_estimators": 1, "max_depth": 1}}, promotion={"thresholds": {}}),
        settings,
    )
    registry = ModelRegistry(settings)
    info = registry.promote("iris", "2", reason="rollback drill", by="alice")
    assert info.aliases == ["champion"] or "champion" in info.aliases
    assert info.tags["shipyard.promotion.decision"] == "promoted (manual)"
    assert info.tags["shipyard.promotion.by"] == "alice"
    assert info.tags["shipyard.promotion.reason"] == "rollback drill"
    assert registry.version_by_alias("iris", "champion").version == "2"  # type: ignore[union-attr]


def test_summary_is_json_serialisable(settings: Settings, iris_config: ConfigFactory) -> None:
    summary = run_training(iris_config(), settings)
    data = json.loads(json.dumps(summary.to_dict(), default=str))
    assert data["promoted"] is True and data["decision"]["primary_metric"] == "f1_macro"
