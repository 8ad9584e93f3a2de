"""The compiled path: a fitted preprocessing + tree-ensemble regressor evaluated in numpy, no pandas.

scikit-learn spends ~50 ms on one housing row, nearly all of it in pandas and in the per-transformer
and per-tree Python overhead, not in arithmetic. Here the fitted state is read once at load: the
imputers' statistics, the scalers' parameters, the one-hot encoders' categories (a dict per column) and
every tree's nodes, packed into flat arrays. A request then costs one pass over its columns and one
vectorised walk down all the trees at once.

Every operation repeats scikit-learn's own, in its order and precision, so the answers are the same:
imputing replaces NaN by the fitted statistic; scaling subtracts then divides in float64 as the scalers
do; unknown categories encode as all zeros (``handle_unknown="ignore"``); the trees compare the features
cast to float32 (as ``DecisionTree*.predict`` validates them) with the float64 thresholds; the forest's
mean is accumulated tree after tree from zero, then divided, as ``ForestRegressor.predict`` does.
``select_engine`` keeps this path only if its answers match scikit-learn's on reference rows (missing
values included); anything it does not know how to compile raises ``UnsupportedModelError`` with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.inference.records import Batch, batch_rows


class UnsupportedModelError(ValueError):
    """The fitted model has a part the compiled path does not reproduce (the reason says which)."""


Step = Callable[[np.ndarray], np.ndarray]


@dataclass
class NumericBlock:
    """Numeric columns, imputed and scaled as one float64 block (column order kept)."""

    columns: list[str]
    steps: list[Step]

    def transform(self, batch: Batch, n: int) -> np.ndarray:
        block = np.empty((n, len(self.columns)), dtype=np.float64)
        for j, name in enumerate(self.columns):
            block[:, j] = batch[name]
        for step in self.steps:
            block = step(block)
        return block


@dataclass
class CategoricalBlock:
    """Categorical columns, imputed (NaN -> a constant) and one-hot encoded (unknown -> all zeros)."""

    columns: list[str]
    fill: Any  # the imputer's constant, or None without an imputer
    codes: list[dict[Any, int]]  # per column: category -> output position within the block
    width: int

    def transform(self, batch: Batch, n: int) -> np.ndarray:
        block = np.zeros((n, self.width), dtype=np.float64)
        fill = self.fill
        for name, lookup in zip(self.columns, self.codes, strict=True):
            for i, value in enumerate(batch[name]):
                if fill is not None and isinstance(value, float) and math.isnan(value):
                    value = fill
                position = lookup.get(value)
                if position is not None:
                    block[i, position] = 1.0
        return block


Block = NumericBlock | CategoricalBlock


class CompiledForest:
    """Every tree's nodes in flat arrays; leaves point to themselves, so all rows walk the same number
    of levels (the deepest tree's depth) with no per-level test for having arrived."""

    def __init__(self, trees: list[Any]) -> None:
        lefts, rights, features, thresholds, values, roots = [], [], [], [], [], []
        offset = 0
        depth = 0
        for tree in trees:
            t = tree.tree_
            if t.n_outputs != 1 or t.value.shape[2] != 1:
                raise UnsupportedModelError("a tree with more than one output")
            count = t.node_count
            ids = np.arange(count)
            leaf = t.children_left == -1
            lefts.append(np.where(leaf, ids, t.children_left) + offset)
            rights.append(np.where(leaf, ids, t.children_right) + offset)
            features.append(np.where(leaf, 0, t.feature))
            thresholds.append(np.where(leaf, np.inf, t.threshold))
            values.append(t.value[:, 0, 0].astype(np.float64))
            roots.append(offset)
            offset += count
            depth = max(depth, int(t.max_depth))
        self.left = np.concatenate(lefts).astype(np.intp)
        self.right = np.concatenate(rights).astype(np.intp)
        self.feature = np.concatenate(features).astype(np.intp)
        self.threshold = np.concatenate(thresholds)
        self.value = np.concatenate(values)
        self.roots = np.asarray(roots, dtype=np.intp)
        self.depth = depth
        self.trees = len(trees)

    def leaves(self, features: np.ndarray) -> np.ndarray:
        """The leaf each row reaches in each tree: (rows, trees) node ids."""
        x = features.astype(np.float32).astype(np.float64)  # the trees' own precision
        rows = np.arange(x.shape[0])[:, None]
        node = np.broadcast_to(self.roots, (x.shape[0], self.trees)).copy()
        for _ in range(self.depth):
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        return node

    def mean(self, features: np.ndarray) -> np.ndarray:
        values = self.value[self.leaves(features)]
        # summed tree after tree from zero (a cumulative sum keeps that order), then divided
        return np.cumsum(values, axis=1)[:, -1] / self.trees


class CompiledFeatures:
    """A fitted ColumnTransformer's blocks: a batch to the model's float64 feature matrix."""

    def __init__(self, blocks: list[Block], width: int) -> None:
        self.blocks = blocks
        self.width = width

    def transform(self, batch: Batch) -> np.ndarray:
        n = batch_rows(batch)
        parts = [block.transform(batch, n) for block in self.blocks]
        return np.hstack(parts) if len(parts) > 1 else parts[0]


class CompiledPipeline:
    """The engine: blocks of preprocessing, then the forest. Regressors only (classifiers have ONNX)."""

    name = "compiled"

    def __init__(self, features: CompiledFeatures, forest: CompiledForest) -> None:
        self.features = features
        self.forest = forest

    def transform(self, batch: Batch) -> np.ndarray:
        return self.features.transform(batch)

    def predict(self, batch: Batch) -> tuple[np.ndarray, np.ndarray | None]:
        return self.forest.mean(self.transform(batch)), None


def compile_features(preprocess: Any, width: int) -> CompiledFeatures:
    """The compiled preprocessing of a fitted ColumnTransformer whose estimator takes ``width`` features."""
    from sklearn.compose import ColumnTransformer

    if not isinstance(preprocess, ColumnTransformer):
        raise UnsupportedModelError(f"{type(preprocess).__name__} is not a ColumnTransformer")
    if getattr(preprocess, "sparse_output_", False):
        raise UnsupportedModelError("sparse preprocessing output")
    blocks: list[Block] = []
    for name, transformer, columns in preprocess.transformers_:
        if transformer == "drop" or len(columns) == 0:
            continue
        if not all(isinstance(c, str) for c in columns):
            raise UnsupportedModelError(f"transformer {name} selects columns by position")
        blocks.append(_block(name, transformer, list(columns)))
    found = sum(len(b.columns) if isinstance(b, NumericBlock) else b.width for b in blocks)
    if found != width:
        raise UnsupportedModelError(f"preprocessing gives {found} features, the estimator takes {width}")
    return CompiledFeatures(blocks, found)


def compile_pipeline(model: Any) -> CompiledPipeline:
    """The compiled engine for a fitted ``Pipeline([ColumnTransformer, tree regressor])``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
    from sklearn.tree import DecisionTreeRegressor, ExtraTreeRegressor

    steps = getattr(model, "steps", None)
    if not steps or len(steps) != 2 or not isinstance(steps[0][1], ColumnTransformer):
        raise UnsupportedModelError("not a Pipeline of a ColumnTransformer and an estimator")
    preprocess, estimator = steps[0][1], steps[1][1]
    if isinstance(estimator, (RandomForestRegressor, ExtraTreesRegressor)):
        trees = list(estimator.estimators_)
    elif isinstance(estimator, (DecisionTreeRegressor, ExtraTreeRegressor)):
        trees = [estimator]
    else:
        raise UnsupportedModelError(f"{type(estimator).__name__} is not a tree regressor")
    return CompiledPipeline(compile_features(preprocess, estimator.n_features_in_), CompiledForest(trees))


def _block(name: str, transformer: Any, columns: list[str]) -> Block:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    parts = (
        []
        if transformer == "passthrough"
        else ([s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer])
    )
    parts = [p for p in parts if p is not None and not (isinstance(p, str) and p == "passthrough")]
    encoder = parts[-1] if parts and isinstance(parts[-1], OneHotEncoder) else None
    if encoder is None:
        return NumericBlock(columns, [_numeric_step(name, p) for p in parts])
    fill = None
    for part in parts[:-1]:
        if (
            not isinstance(part, SimpleImputer)
            or part.strategy != "constant"
            or not _nan(part.missing_values)
        ):
            raise UnsupportedModelError(f"{name}: {type(part).__name__} before a one-hot encoder")
        if getattr(part, "add_indicator", False):
            raise UnsupportedModelError(f"{name}: an imputer with a missing indicator")
        fill = part.statistics_[0] if len(set(part.statistics_.tolist())) == 1 else None
        if fill is None:
            raise UnsupportedModelError(f"{name}: different fill values per column")
    return _one_hot(name, encoder, columns, fill)


def _one_hot(name: str, encoder: Any, columns: list[str], fill: Any) -> CategoricalBlock:
    if encoder.handle_unknown != "ignore" or encoder.drop is not None:
        raise UnsupportedModelError(
            f"{name}: one-hot encoding with handle_unknown={encoder.handle_unknown!r}"
        )
    if getattr(encoder, "_infrequent_enabled", False):
        raise UnsupportedModelError(f"{name}: one-hot encoding with infrequent categories")
    if encoder.dtype not in (np.float64, float):
        raise UnsupportedModelError(f"{name}: one-hot encoding to {encoder.dtype}")
    codes, position = [], 0
    for categories in encoder.categories_:
        lookup = {}
        for category in categories:
            key = category.item() if isinstance(category, np.generic) else category
            if isinstance(key, float) and math.isnan(key):
                raise UnsupportedModelError(f"{name}: NaN as a category")
            lookup[key] = position
            position += 1
        codes.append(lookup)
    return CategoricalBlock(columns, fill, codes, position)


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _numeric_step(name: str, part: Any) -> Step:
    """One numeric transformer as a function on a float64 block, in scikit-learn's arithmetic."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    if isinstance(part, SimpleImputer):
        statistics = np.asarray(part.statistics_, dtype=np.float64)
        if (
            not _nan(part.missing_values)
            or getattr(part, "add_indicator", False)
            or np.isnan(statistics).any()
        ):
            raise UnsupportedModelError(f"{name}: an imputer this path does not reproduce")

        def impute(block: np.ndarray) -> np.ndarray:
            gaps = np.isnan(block)
            if gaps.any():
                block = np.where(gaps, statistics, block)
            return block

        return impute
    if isinstance(part, StandardScaler):
        mean = part.mean_ if part.with_mean else None
        scale = part.scale_ if part.with_std else None
        return lambda block: _shift_scale(block, mean, scale)
    if isinstance(part, RobustScaler):
        center = part.center_ if part.with_centering else None
        scale = part.scale_ if part.with_scaling else None
        return lambda block: _shift_scale(block, center, scale)
    if isinstance(part, MinMaxScaler):
        low, high = part.feature_range

        def minmax(block: np.ndarray) -> np.ndarray:
            block = block * part.scale_ + part.min_
            return np.clip(block, low, high) if part.clip else block

        return minmax
    raise UnsupportedModelError(f"{name}: {type(part).__name__} is not compiled")


def _shift_scale(block: np.ndarray, shift: np.ndarray | None, scale: np.ndarray | None) -> np.ndarray:
    if shift is not None:
        block = block - shift
    if scale is not None:
        block = block / scale
    return block
