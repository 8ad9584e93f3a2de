"""FeatureEngineer: the ColumnTransformer fitted inside each model's Pipeline.

Because preprocessing lives in the Pipeline, the registered model takes raw features: serving, batch
scoring and the training evaluation all run exactly the same transformation.
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

from shipyard.config.pipeline import PipelineConfig

_SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}


class FeatureEngineer:
    """Splits features into numeric and categorical and builds their preprocessing.

    Imputers are fitted only for columns the data contract lets be missing: a required column never
    holds a null (validation refuses it at training, the service and the CLI refuse it at prediction),
    so it needs none — and a graph without them converts exactly to ONNX for the fast serving path.
    """

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        cols = config.dataset.columns
        self.numeric = [c for c in config.feature_columns if cols[c].feature_kind == "numeric"]
        self.categorical = [c for c in config.feature_columns if cols[c].feature_kind == "categorical"]
        self.nullable = {c for c in config.feature_columns if cols[c].nullable}

    def _numeric(self, impute: bool) -> Pipeline | str:
        fc = self.config.features
        steps: list[tuple[str, object]] = []
        if impute:
            steps.append(("impute", SimpleImputer(strategy=fc.numeric_imputer)))
        if fc.scaler != "none":
            steps.append(("scale", _SCALERS[fc.scaler]()))
        return Pipeline(steps) if steps else "passthrough"

    def _categorical(self, impute: bool) -> Pipeline:
        fc = self.config.features
        steps: list[tuple[str, object]] = []
        if impute:
            steps.append(("impute", SimpleImputer(strategy="constant", fill_value=fc.categorical_fill)))
        steps.append(
            (
                "onehot",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist" if fc.min_frequency else "ignore",
                    min_frequency=fc.min_frequency,
                    sparse_output=False,
                ),
            )
        )
        return Pipeline(steps)

    def build(self) -> ColumnTransformer:
        """An unfitted ColumnTransformer: (impute +) scale numerics, (impute +) one-hot categoricals."""
        groups = [
            ("numeric", [c for c in self.numeric if c not in self.nullable], self._numeric(False)),
            ("numeric_nullable", [c for c in self.numeric if c in self.nullable], self._numeric(True)),
            (
                "categorical",
                [c for c in self.categorical if c not in self.nullable],
                self._categorical(False),
            ),
            (
                "categorical_nullable",
                [c for c in self.categorical if c in self.nullable],
                self._categorical(True),
            ),
        ]
        transformers = [(name, step, columns) for name, columns, step in groups if columns]
        return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)

    def raw_feature_of(self, transformed_name: str) -> str:
        """Map an output name (``categorical__neighborhood_NAmes``) back to its raw column."""
        prefix, _, rest = transformed_name.partition("__")
        if prefix.startswith("numeric"):
            return rest
        # one-hot names are <column>_<category>; take the longest declared column that prefixes it
        candidates = [c for c in self.categorical if rest == c or rest.startswith(c + "_")]
        return max(candidates, key=len) if candidates else rest
