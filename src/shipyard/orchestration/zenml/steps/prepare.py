"""Load and validate the config's data (``pipeline.steps.prepare_data``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from zenml import step

from shipyard.orchestration.zenml.materializers import StepDataMaterializer
from shipyard.orchestration.zenml.params import config_from_param
from shipyard.pipeline.steps import PreparedData, prepare_data


@step(output_materializers=StepDataMaterializer)
def prepare(config: dict[str, Any], base_dir: str | None = None) -> Annotated[PreparedData, "prepared_data"]:
    return prepare_data(config_from_param(config), Path(base_dir) if base_dir else None)
