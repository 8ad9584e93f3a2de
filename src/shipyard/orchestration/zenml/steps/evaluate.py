"""Test and train metrics, reference profile and sample (``pipeline.steps.evaluate_model``)."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import step

from shipyard.data.splits import Split
from shipyard.orchestration.zenml.materializers import StepDataMaterializer
from shipyard.orchestration.zenml.params import config_from_param
from shipyard.pipeline.steps import Evaluation, FittedModel, evaluate_model


@step(output_materializers=StepDataMaterializer)
def evaluate(
    config: dict[str, Any], fitted: FittedModel, split: Split
) -> Annotated[Evaluation, "evaluation"]:
    return evaluate_model(config_from_param(config), fitted, split)
