"""Pydantic models for a pipeline config: what data, which checks, which model, how to promote it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Task = Literal["classification", "regression"]
DType = Literal["int", "float", "str", "bool"]
FeatureKind = Literal["numeric", "categorical"]
Scalar = str | int | float | bool

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(StrictModel):
    """Where the raw data comes from. Raw data is read, never modified."""

    kind: Literal["bundled", "csv", "parquet"]
    name: str | None = Field(None, description="Bundled dataset name (kind: bundled).")
    path: Path | None = Field(None, description="File path, relative to the working directory.")
    na_values: list[str] | None = Field(
        None, description="Strings read as missing in CSV files (default: pandas' list)."
    )

    @model_validator(mode="after")
    def _needs_name_or_path(self) -> SourceConfig:
        if self.kind == "bundled" and not self.name:
            raise ValueError("a bundled source needs 'name' (for example: iris)")
        if self.kind in ("csv", "parquet") and self.path is None:
            raise ValueError(f"a {self.kind} source needs 'path'")
        return self


class ColumnSpec(StrictModel):
    """The contract for one column: type, null policy, range and allowed values."""

    dtype: DType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[Scalar] | None = Field(None, description="The only values the column may hold.")
    kind: FeatureKind | None = Field(
        None, description="How the model treats it (default: numeric for int/float, else categorical)."
    )

    @property
    def feature_kind(self) -> FeatureKind:
        if self.kind is not None:
            return self.kind
        return "numeric" if self.dtype in ("int", "float") else "categorical"

    @model_validator(mode="after")
    def _range_makes_sense(self) -> ColumnSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if (self.min is not None or self.max is not None) and self.dtype not in ("int", "float"):
            raise ValueError(f"min/max apply to int or float columns, not {self.dtype}")
        return self


class DatasetConfig(StrictModel):
    """The data section: source, target, task and the schema every load is validated against."""

    source: SourceConfig
    target: str
    task: Task
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    min_rows: int = Field(1, ge=1)
    max_rows: int | None = Field(None, ge=1)
    extra_columns: Literal["forbid", "ignore"] = Field(
        "forbid", description="Columns in the data but not in 'columns': fail, or drop them."
    )

    @model_validator(mode="after")
    def _target_is_a_column(self) -> DatasetConfig:
        if self.target not in self.columns:
            raise ValueError(f"target '{self.target}' is not one of the declared columns")
        if self.max_rows is not None and self.max_rows < self.min_rows:
            raise ValueError("max_rows is smaller than min_rows")
        return self


class FeaturesConfig(StrictModel):
    """How raw columns become model inputs; fitted inside the model's Pipeline."""

    exclude: list[str] = Field(default_factory=list, description="Declared columns that are not features.")
    numeric_imputer: Literal["mean", "median", "most_frequent"] = "median"
    scaler: Literal["standard", "minmax", "robust", "none"] = "standard"
    categorical_fill: str = "missing"
    min_frequency: int | float | None = Field(
        None, description="Categories rarer than this are grouped (OneHotEncoder min_frequency)."
    )
    profile_bins: int = Field(10, ge=2, le=100, description="Histogram bins in the reference profile.")


class SplitConfig(StrictModel):
    test_size: float = Field(0.2, gt=0, lt=1)
    random_state: int = 42
    stratify: bool = Field(True, description="Stratify on the target (classification only).")


class ModelConfig(StrictModel):
    estimator: str = Field(description="A name from the estimator catalogue, e.g. random_forest.")
    params: dict[str, Any] = Field(default_factory=dict)


class ParamSpace(StrictModel):
    """One hyper-parameter's search space for Optuna."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Scalar | None] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> ParamSpace:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical space needs 'choices'")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"an {self.type} space needs 'low' <= 'high'")
        return self


class TuningConfig(StrictModel):
    enabled: bool = False
    n_trials: int = Field(20, ge=1)
    cv_folds: int = Field(3, ge=2)
    timeout_seconds: float | None = Field(None, gt=0)
    metric: str | None = Field(None, description="Metric to optimise (default: the primary metric).")
    seed: int = 42
    search_space: dict[str, ParamSpace] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _space_when_enabled(self) -> TuningConfig:
        if self.enabled and not self.search_space:
            raise ValueError("tuning is enabled but search_space is empty")
        return self


class EvaluationConfig(StrictModel):
    primary_metric: str


class PromotionConfig(StrictModel):
    """The gate between challenger and champion.

    ``thresholds`` are minimums for metrics where higher is better (accuracy, r2) and maximums where
    lower is better (mae, rmse). With ``compare_with_champion`` the new version must also score at least
    as well as the current champion on the new test split, by ``min_improvement`` or more.
    """

    thresholds: dict[str, float] = Field(default_factory=dict)
    compare_with_champion: bool = True
    min_improvement: float = 0.0


DriftMethod = Literal["ks", "chisquare", "z", "wasserstein", "jensenshannon", "psi"]
# The feature kinds each drift test is valid for: the one table that both a config's per-feature
# choices and the test registry (monitoring.stattests) are checked against.
DRIFT_METHOD_KINDS: dict[str, tuple[FeatureKind, ...]] = {
    "ks": ("numeric",),
    "chisquare": ("categorical", "numeric"),
    "z": ("categorical",),
    "wasserstein": ("numeric",),
    "jensenshannon": ("categorical", "numeric"),
    "psi": ("numeric", "categorical"),
}


def drift_method_misfit(feature: str, kind: str, method: str) -> str | None:
    """Why ``method`` cannot test ``feature`` (of ``kind``), naming the tests that can; None when it fits."""
    fits = DRIFT_METHOD_KINDS.get(method, ())
    if kind in fits:
        return None
    usable = [name for name, kinds in DRIFT_METHOD_KINDS.items() if kind in kinds]
    return (
        f"drift test '{method}' does not apply to '{feature}', a {kind} feature ('{method}' is for "
        f"{' or '.join(fits) or 'no'} features); tests for {kind} features: {', '.join(usable)}"
    )


class DriftOverrideConfig(StrictModel):
    method: DriftMethod | None = None
    threshold: float | None = Field(None, ge=0)


class DomainClassifierConfig(StrictModel):
    """The multivariate drift score: a classifier trained to tell reference rows from current ones."""

    enabled: bool = Field(True, description="Compute it with every drift report.")
    threshold: float = Field(
        0.6,
        gt=0.5,
        lt=1,
        description="Cross-validated AUROC above which (and significant) the data drifted.",
    )
    max_rows: int = Field(2000, ge=100, description="Rows sampled from each side (bounds the cost).")


class EstimatedPerformanceConfig(StrictModel):
    """Performance estimated without labels: CBPE for classifiers, DLE for regressors."""

    enabled: bool = Field(
        True,
        description="Fit the estimator on the held-out split at training time and estimate every window.",
    )
    max_drop: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="The estimate of the watched metric (the primary metric when it is estimated, else "
        "accuracy or MAE) may be this much worse than on the held-out split, as a share of that value, "
        "before the window counts as degraded (an alert, and a reason to retrain).",
    )


class MonitoringConfig(StrictModel):
    """Drift settings: the dataset drifts when ``drift_share`` of its features drift."""

    drift_share: float = Field(0.5, gt=0, le=1)
    correction: Literal["bh", "bonferroni", "none"] = Field(
        "bh",
        description="Correction of the features' p-values for their number before a feature counts as "
        "drifted: bh (Benjamini-Hochberg, the false discovery rate), bonferroni (the family-wise error "
        "rate) or none (Evidently's default: every test at its own threshold).",
    )
    domain_classifier: DomainClassifierConfig = Field(default_factory=DomainClassifierConfig)
    estimated_performance: EstimatedPerformanceConfig = Field(default_factory=EstimatedPerformanceConfig)
    retrain_on: Literal["drift", "estimated_drop", "either"] = Field(
        "either",
        description="What makes `shipyard retrain --if-drift` run: dataset drift, a degraded estimated "
        "performance, or either.",
    )
    drift: dict[str, DriftOverrideConfig] = Field(
        default_factory=dict, description="Per-feature test and threshold (default: chosen like Evidently)."
    )
    reference_rows: int = Field(
        5000, ge=100, description="Training rows kept with the model as the reference."
    )


class RegistryConfig(StrictModel):
    model_name: str | None = Field(None, description="Registered model name (default: the config name).")
    experiment: str | None = Field(None, description="MLflow experiment (default: the config name).")


class PipelineConfig(StrictModel):
    """A whole pipeline: one YAML file per model under configs/."""

    name: str
    description: str = ""
    dataset: DatasetConfig
    features: FeaturesConfig = FeaturesConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig
    tuning: TuningConfig = TuningConfig()
    evaluation: EvaluationConfig
    promotion: PromotionConfig = PromotionConfig()
    registry: RegistryConfig = RegistryConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must start with a letter and hold only letters, digits, '_', '.', '-'")
        return value

    @model_validator(mode="after")
    def _features_exist(self) -> PipelineConfig:
        unknown = [c for c in self.features.exclude if c not in self.dataset.columns]
        if unknown:
            raise ValueError(f"features.exclude names undeclared columns: {', '.join(unknown)}")
        if not self.feature_columns:
            raise ValueError("no feature columns left after removing the target and features.exclude")
        strays = [c for c in self.monitoring.drift if c not in self.feature_columns]
        if strays:
            raise ValueError(f"monitoring.drift names columns that are not features: {', '.join(strays)}")
        return self

    @model_validator(mode="after")
    def _drift_tests_fit_their_features(self) -> PipelineConfig:
        for column, override in self.monitoring.drift.items():
            if override.method is None or column not in self.dataset.columns:
                continue
            problem = drift_method_misfit(column, self.dataset.columns[column].feature_kind, override.method)
            if problem:
                raise ValueError(f"monitoring.drift.{column}: {problem}")
        return self

    @property
    def feature_columns(self) -> list[str]:
        """Declared columns the model sees, in declaration order."""
        skip = {self.dataset.target, *self.features.exclude}
        return [c for c in self.dataset.columns if c not in skip]

    @property
    def model_name(self) -> str:
        return self.registry.model_name or self.name

    @property
    def experiment_name(self) -> str:
        return self.registry.experiment or self.name
