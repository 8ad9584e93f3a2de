"""The training pipeline: only the wiring. prepare -> split -> fit -> evaluate -> register -> promote.

Caching is off: register and promote write to the registry, so they must run every time, and every
upstream step is cheap next to them or (fit) exactly what a new run is for. Fail fast: the local
orchestrator then re-raises the failed step's own exception (e.g. DataValidationError with its report,
which the CLI prints), where the other modes raise a bare RuntimeError naming the step.
"""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.enums import ExecutionMode

from shipyard.orchestration.zenml.steps.evaluate import evaluate
from shipyard.orchestration.zenml.steps.fit import fit
from shipyard.orchestration.zenml.steps.prepare import prepare
from shipyard.orchestration.zenml.steps.promote import promote
from shipyard.orchestration.zenml.steps.register import register
from shipyard.orchestration.zenml.steps.split import split

PIPELINE_NAME = "shipyard_training"
STEP_NAMES = ("prepare", "split", "fit", "evaluate", "register", "promote")


@pipeline(name=PIPELINE_NAME, enable_cache=False, execution_mode=ExecutionMode.FAIL_FAST)
def training_pipeline(
    config: dict[str, Any], settings: dict[str, Any], base_dir: str | None = None, runner: str = "zenml"
) -> None:
    data = prepare(config, base_dir)
    parts = split(config, data)
    fitted = fit(config, parts)
    evaluation = evaluate(config, fitted, parts)
    registration = register(config, settings, data, parts, fitted, evaluation, runner)
    promote(config, settings, registration, parts, evaluation)
