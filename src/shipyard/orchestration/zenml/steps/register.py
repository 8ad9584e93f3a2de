"""One MLflow run and a new registered version as challenger (``pipeline.steps.register_model``).
``Registration`` holds only strings: ZenML stores it as JSON with its built-in dataclass materializer."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import step

from shipyard.data.splits import Split
from shipyard.orchestration.zenml.params import config_from_param, settings_from_param
from shipyard.pipeline.steps import Evaluation, FittedModel, PreparedData, Registration, register_model


@step
def register(
    config: dict[str, Any],
    settings: dict[str, Any],
    data: PreparedData,
    split: Split,
    fitted: FittedModel,
    evaluation: Evaluation,
    runner: str = "zenml",
) -> Annotated[Registration, "registration"]:
    return register_model(
        config_from_param(config),
        settings_from_param(settings),
        data,
        split,
        fitted,
        evaluation,
        runner=runner,
    )
