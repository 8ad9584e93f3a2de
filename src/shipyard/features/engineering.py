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
    """Splits features into numeric and categorical and builds their preprocessing."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        cols = config.dataset.columns
        self.numeric = [c for c in config.feature_columns if cols[c].feature_kind == "numeric"]
        self.categorical = [c for c in config.feature_columns if cols[c].feature_kind == "categorical"]

    def build(self) -> ColumnTransformer:
        """An unfitted ColumnTransformer: impute + scale numerics, impute + one-hot categoricals."""
        fc = self.config.features
        numeric_steps: list[tuple[str, object]] = [("impute", SimpleImputer(strategy=fc.numeric_imputer))]
        if fc.scaler != "none":
            numeric_steps.append(("scale", _SCALERS[fc.scaler]()))
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value=fc.categorical_fill)),
                (
                    "onehot",
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist" if fc.min_frequency else "ignore",
                        min_frequency=fc.min_frequency,
                        sparse_output=False,
                    ),
                ),
            ]
        )
        transformers = []
        if self.numeric:
            transformers.append(("numeric", Pipeline(numeric_steps), self.numeric))
        if self.categorical:
            transformers.append(("categorical", categorical, self.categorical))
        return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)

    def raw_feature_of(self, transformed_name: str) -> str:
        """Map an output name (``categorical__neighborhood_NAmes``) back to its raw column."""
        prefix, _, rest = transformed_name.partition("__")
        if prefix == "numeric":
            return rest
        # one-hot names are <column>_<category>; take the longest declared column that prefixes it
        candidates = [c for c in self.categorical if rest == c or rest.startswith(c + "_")]
        return max(candidates, key=len) if candidates else rest
