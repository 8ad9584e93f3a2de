"""The compiled numpy path answers exactly as scikit-learn does (the housing pipeline: imputers, scalers,
one-hot encoders with unknown categories ignored, a forest), and refuses what it cannot reproduce."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.inference import ReadyModel
from shipyard.inference.compiled import CompiledPipeline, UnsupportedModelError, compile_pipeline
from shipyard.inference.engines import SklearnEngine, select_engine
from shipyard.registry.models import LoadedModel


def frame_batch(loaded: LoadedModel, rows: pd.DataFrame) -> Any:
    check = ReadyModel(loaded, fast_path=False).check(rows)
    assert check.rejected == 0
    return check.batch


def test_housing_is_compiled_and_identical_on_every_row(housing_loaded: tuple[LoadedModel, Any]) -> None:
    loaded, split = housing_loaded
    engine, reason = select_engine(loaded)
    assert isinstance(engine, CompiledPipeline), reason
    assert reason.startswith("compiled numpy path: values identical to scikit-learn's on")
    rows = pd.concat([split.X_train, split.X_test], ignore_index=True)  # all 2,930 sales
    batch = frame_batch(loaded, rows)
    compiled, _ = engine.predict(batch)
    exact, _ = SklearnEngine(loaded.model, False).predict(batch)
    assert np.array_equal(compiled, exact)
    assert np.array_equal(compiled, loaded.model.predict(rows))  # scikit-learn on the plain frame too


def test_unknown_categories_missing_values_and_extremes_match(
    housing_loaded: tuple[LoadedModel, Any],
) -> None:
    loaded, split = housing_loaded
    rows = split.X_test.head(40).copy()
    optional = [c.name for c in loaded.inputs if not c.required]
    numeric = [c for c in rows.columns if pd.api.types.is_numeric_dtype(rows[c])]
    categorical = [c for c in rows.columns if c not in numeric]
    rows.loc[rows.index[:10], optional] = np.nan  # every optional column missing
    for column in categorical[:10]:
        if column not in {c.name for c in loaded.inputs if c.allowed}:
            rows.loc[rows.index[10:20], column] = "never-seen-before"  # encoded as all zeros
    rows.loc[rows.index[20:30], numeric] = rows[numeric].iloc[20:30] * 1e6  # far outside training
    rows.loc[rows.index[30:], numeric] = 0
    batch = frame_batch(loaded, rows)
    engine, _ = select_engine(loaded)
    compiled, _ = engine.predict(batch)
    assert np.array_equal(compiled, SklearnEngine(loaded.model, False).predict(batch)[0])


@pytest.mark.parametrize(
    "variant", ["extra_trees", "single_tree", "minmax", "robust", "no_scaler", "mean_imputer"]
)
def test_other_tree_regressors_and_scalers_are_compiled_exactly(
    housing_loaded: tuple[LoadedModel, Any], variant: str
) -> None:
    from sklearn.base import clone
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.preprocessing import MinMaxScaler, RobustScaler
    from sklearn.tree import DecisionTreeRegressor

    loaded, split = housing_loaded
    model = clone(loaded.model)
    if variant == "extra_trees":
        model.set_params(model=ExtraTreesRegressor(n_estimators=5, random_state=0))
    if variant == "single_tree":
        model.set_params(model=DecisionTreeRegressor(random_state=0))
    for name, _, _ in model.steps[0][1].transformers:
        scaler = f"features__{name}__scale"
        if scaler in model.get_params():
            if variant == "minmax":
                model.set_params(**{scaler: MinMaxScaler(clip=True)})
            if variant == "robust":
                model.set_params(**{scaler: RobustScaler()})
            if variant == "no_scaler":
                model.set_params(**{scaler: "passthrough"})
        imputer = f"features__{name}__impute__strategy"
        if variant == "mean_imputer" and name == "numeric_nullable":
            model.set_params(**{imputer: "mean"})
    model.fit(split.X_train, split.y_train)
    compiled = compile_pipeline(model)
    batch = frame_batch(loaded, split.X_test)
    assert np.array_equal(compiled.predict(batch)[0], model.predict(split.X_test))


def test_what_cannot_be_compiled_says_why_and_stays_on_scikit_learn(
    housing_loaded: tuple[LoadedModel, Any],
) -> None:
    from sklearn.base import clone
    from sklearn.ensemble import GradientBoostingRegressor

    loaded, split = housing_loaded
    boosted = clone(loaded.model).set_params(model=GradientBoostingRegressor(n_estimators=5))
    boosted.fit(split.X_train.head(300), split.y_train.head(300))
    with pytest.raises(UnsupportedModelError, match="GradientBoostingRegressor is not a tree regressor"):
        compile_pipeline(boosted)
    other = LoadedModel(boosted, "h", "1", None, loaded.inputs, loaded.profile or {}, loaded.input_example)
    engine, reason = select_engine(other)
    assert isinstance(engine, SklearnEngine) and "may be missing" in reason
    assert select_engine(loaded, fast_path=False)[1] == "fast path off"
