"""The ONNX fast path is used only when it agrees with scikit-learn; otherwise the reason is given."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shipyard.inference.engines import OnnxEngine, SklearnEngine, reference_batch, select_engine
from shipyard.inference.records import InputSchema
from shipyard.registry.models import LoadedModel


def test_classifier_runs_on_onnx_with_identical_answers(iris_loaded: tuple[LoadedModel, Any]) -> None:
    loaded, split = iris_loaded
    engine, reason = select_engine(loaded)
    assert isinstance(engine, OnnxEngine), reason
    assert reason.startswith("labels equal and probabilities within 1e-05 on")
    rng = np.random.default_rng(7)
    # iris is measured on a 0.1 cm grid, so real rows sit exactly on split points: test on that grid,
    # 9,000 rows (each of the 150 rows 60 times, nudged by -0.1/0/+0.1 cm), the number the README states
    grid = pd.concat([split.X_train, split.X_test] * 60, ignore_index=True).round(1)
    rows = grid + rng.choice([-0.1, 0.0, 0.1], grid.shape)
    assert len(rows) == 9_000
    batch = InputSchema(loaded.inputs).batch_from_records(rows.to_dict("records"))
    labels, proba = engine.predict(batch)
    assert list(labels) == list(loaded.model.predict(rows))
    assert np.allclose(proba, loaded.model.predict_proba(rows), atol=1e-5)


def test_fast_path_can_be_turned_off(iris_loaded: tuple[LoadedModel, Any]) -> None:
    engine, reason = select_engine(iris_loaded[0], fast_path=False)
    assert isinstance(engine, SklearnEngine) and reason == "fast path off"


def test_regressor_needs_an_accepted_tolerance(iris_loaded: tuple[LoadedModel, Any]) -> None:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    loaded, split = iris_loaded
    model = Pipeline([("scale", StandardScaler()), ("model", RandomForestRegressor(20, random_state=0))])
    model.fit(split.X_train, split.X_train["petal_width"] * 2)
    regressor = LoadedModel(model, "r", "1", None, loaded.inputs, {}, split.X_train.head(5))
    exact, why = select_engine(regressor)
    assert isinstance(exact, SklearnEngine) and "set a tolerance" in why
    loose, why = select_engine(regressor, regression_rtol=0.05)
    assert isinstance(loose, OnnxEngine), why
    reference = reference_batch(regressor)
    values, _ = loose.predict(reference)
    assert np.allclose(values, model.predict(pd.DataFrame(reference)), rtol=0.05)
    strict, why = select_engine(regressor, regression_rtol=1e-12)
    assert isinstance(strict, SklearnEngine) and "relative (> tolerance 1e-12)" in why


def test_reference_rows_cover_every_input(iris_loaded: tuple[LoadedModel, Any]) -> None:
    batch = reference_batch(iris_loaded[0], rows=50)
    assert set(batch) == {c.name for c in iris_loaded[0].inputs}
    assert all(len(v) == 55 for v in batch.values())  # 5 example rows + 50 drawn
