"""Tune (when the config says so) and fit (``pipeline.steps.fit_model``)."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import step

from shipyard.data.splits import Split
from shipyard.orchestration.zenml.materializers import FittedModelMaterializer
from shipyard.orchestration.zenml.params import config_from_param
from shipyard.pipeline.steps import FittedModel, fit_model


@step(output_materializers=FittedModelMaterializer)
def fit(config: dict[str, Any], split: Split) -> Annotated[FittedModel, "fitted_model"]:
    return fit_model(config_from_param(config), split)
