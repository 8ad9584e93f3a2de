"""The promotion gate moves the aliases (``pipeline.steps.promote_model``). ``PromotionDecision`` is a
plain dataclass: ZenML stores it as JSON with its built-in dataclass materializer."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import step

from shipyard.data.splits import Split
from shipyard.orchestration.zenml.params import config_from_param, settings_from_param
from shipyard.pipeline.gate import PromotionDecision
from shipyard.pipeline.steps import Evaluation, Registration, promote_model


@step
def promote(
    config: dict[str, Any],
    settings: dict[str, Any],
    registration: Registration,
    split: Split,
    evaluation: Evaluation,
) -> Annotated[PromotionDecision, "decision"]:
    return promote_model(
        config_from_param(config), settings_from_param(settings), registration, split, evaluation.metrics
    )
