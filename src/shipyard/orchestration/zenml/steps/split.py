"""Train/test split (``pipeline.steps.split_data``)."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import step

from shipyard.data.splits import Split
from shipyard.orchestration.zenml.materializers import StepDataMaterializer
from shipyard.orchestration.zenml.params import config_from_param
from shipyard.pipeline.steps import PreparedData, split_data


@step(output_materializers=StepDataMaterializer)
def split(config: dict[str, Any], data: PreparedData) -> Annotated[Split, "split"]:
    return split_data(config_from_param(config), data)
