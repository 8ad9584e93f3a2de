"""Config errors name the file, the key and what was expected; settings come from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shipyard.config import Settings, load_config
from shipyard.errors import ConfigError
from shipyard.pipeline import load_pipeline_config
from tests.conftest import merge, raw_config


def write(tmp_path: Path, data: object, name: str = "model.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_example_configs_load(repo_root: Path) -> None:
    iris = load_pipeline_config(repo_root / "configs/iris.yaml")
    housing = load_pipeline_config(repo_root / "configs/housing.yaml")
    assert iris.dataset.task == "classification"
    assert iris.feature_columns == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert housing.dataset.target == "saleprice"
    assert "order" not in housing.feature_columns and "pid" not in housing.feature_columns
    assert len(housing.feature_columns) == 79
    assert housing.dataset.columns["ms_subclass"].feature_kind == "categorical"


def test_missing_file_names_the_path_and_lists_configs(tmp_path: Path) -> None:
    write(tmp_path, raw_config("iris"), "iris.yaml")
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found \(configs there: iris\.yaml\)"):
        load_config(tmp_path / "nope.yaml")


def test_unknown_key_names_file_key_and_allowed_keys(tmp_path: Path) -> None:
    path = write(tmp_path, merge(raw_config("iris"), {"model": {"estimatr": "x"}}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert "model.estimatr: unknown key (expected one of: estimator, params)" in message


def test_unknown_key_inside_a_column_spec(tmp_path: Path) -> None:
    data = raw_config("iris")
    data["dataset"]["columns"]["sepal_length"]["maximum"] = 3
    with pytest.raises(
        ConfigError, match=r"dataset\.columns\.sepal_length\.maximum: unknown key \(expected one of: dtype"
    ):
        load_config(write(tmp_path, data))


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    path = write(tmp_path, merge(raw_config("iris"), {"split": {"test_size": "a fifth"}}))
    with pytest.raises(ConfigError, match=r"split\.test_size: expected a valid number.*'a fifth'"):
        load_config(path)


def test_bad_literal_lists_the_choices(tmp_path: Path) -> None:
    path = write(tmp_path, merge(raw_config("iris"), {"dataset": {"task": "clustering"}}))
    with pytest.raises(
        ConfigError, match=r"dataset\.task: expected 'classification' or 'regression', got 'clustering'"
    ):
        load_config(path)


def test_missing_required_key(tmp_path: Path) -> None:
    data = raw_config("iris")
    del data["evaluation"]
    with pytest.raises(ConfigError, match=r"evaluation: required key is missing"):
        load_config(write(tmp_path, data))


def test_invalid_yaml_points_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: iris\ndataset: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML at line \d+"):
        load_config(path)


def test_unknown_estimator_lists_the_catalogue(tmp_path: Path) -> None:
    path = write(tmp_path, merge(raw_config("iris"), {"model": {"estimator": "deep_forest"}}))
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(path)
    assert str(err.value).startswith(f"{path}: model.estimator: unknown estimator 'deep_forest'")
    assert "random_forest" in str(err.value) and "gradient_boosting" in str(err.value)


def test_estimator_that_does_not_fit_the_task(tmp_path: Path) -> None:
    path = write(
        tmp_path, merge(raw_config("iris"), {"model": {"estimator": "linear_regression", "params": {}}})
    )
    with pytest.raises(
        ConfigError, match=r"'linear_regression' does not do classification \(for classification use"
    ):
        load_pipeline_config(path)


def test_unknown_estimator_parameter(tmp_path: Path) -> None:
    path = write(tmp_path, merge(raw_config("iris"), {"model": {"params": {"n_estimator": 5}}}))
    with pytest.raises(
        ConfigError, match=r"model\.params\.n_estimator: not a parameter of RandomForestClassifier"
    ):
        load_pipeline_config(path)


def test_metric_of_the_wrong_task(tmp_path: Path) -> None:
    path = write(tmp_path, merge(raw_config("iris"), {"promotion": {"thresholds": {"r2": 0.5}}}))
    with pytest.raises(ConfigError, match=r"promotion\.thresholds\.r2: unknown classification metric 'r2'"):
        load_pipeline_config(path)


def test_target_must_be_declared(tmp_path: Path) -> None:
    path = write(tmp_path, merge(raw_config("iris"), {"dataset": {"target": "colour"}}))
    with pytest.raises(ConfigError, match=r"target 'colour' is not one of the declared columns"):
        load_config(path)


def test_tuning_enabled_needs_a_space(tmp_path: Path) -> None:
    data = merge(raw_config("iris"), {"tuning": {"enabled": True}})
    data["tuning"]["search_space"] = {}
    with pytest.raises(ConfigError, match=r"tuning: .*search_space is empty"):
        load_config(write(tmp_path, data))


def test_drift_test_of_the_wrong_kind_is_refused_when_the_config_is_read(tmp_path: Path) -> None:
    data = raw_config("housing")
    data["monitoring"] = {"drift": {"ms_zoning": {"method": "ks"}, "lot_area": {"method": "ks"}}}
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, data))
    message = str(err.value)
    assert (
        "monitoring.drift.ms_zoning: drift test 'ks' does not apply to 'ms_zoning', a categorical" in message
    )
    assert message.endswith("tests for categorical features: chisquare, z, jensenshannon, psi")
    # an int column declared categorical counts as categorical, whatever its dtype
    data["monitoring"] = {"drift": {"ms_subclass": {"method": "wasserstein"}}}
    with pytest.raises(
        ConfigError, match=r"'ms_subclass', a categorical feature \('wasserstein' is for numeric"
    ):
        load_config(write(tmp_path, data))
    data["monitoring"] = {"drift": {"ms_zoning": {"method": "chisquare"}, "lot_area": {"method": "ks"}}}
    assert load_config(write(tmp_path, data)).monitoring.drift["ms_zoning"].method == "chisquare"


def test_settings_default_to_an_embedded_store_under_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.store_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert settings.is_local_store
    assert settings.artifact_root == (tmp_path / "mlartifacts").resolve().as_uri()
    assert settings.champion_alias == "champion"


def test_settings_honour_the_standard_mlflow_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    settings = Settings()
    assert settings.store_uri == "http://127.0.0.1:5000"
    assert not settings.is_local_store
    assert settings.artifact_root is None  # the server decides


def test_settings_read_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("SHIPYARD_CHAMPION_ALIAS=prod\nSHIPYARD_TRACKING_URI=sqlite:///x.db\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(Settings.model_config, "env_file", ".env")  # the suite turns .env off; on here
    settings = Settings()
    assert settings.champion_alias == "prod"
    assert settings.store_uri == "sqlite:///x.db"
