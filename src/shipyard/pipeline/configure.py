"""Load a pipeline config and check what only the layers above config know: estimators and metrics."""

from __future__ import annotations

from pathlib import Path

from shipyard.config.loading import load_config
from shipyard.config.pipeline import PipelineConfig
from shipyard.errors import ConfigError
from shipyard.training.catalogue import check_params, estimator_class
from shipyard.training.metrics import METRICS, metrics_for


def check_config(config: PipelineConfig) -> None:
    """Raise ConfigError naming the key when an estimator, parameter or metric does not fit the task."""
    task = config.dataset.task
    estimator_class(config.model.estimator, task)
    check_params(config.model.estimator, task, config.model.params)
    check_params(
        config.model.estimator, task, dict.fromkeys(config.tuning.search_space), "tuning.search_space"
    )
    allowed = metrics_for(task)

    def known(metric: str, key: str) -> None:
        if metric not in METRICS or METRICS[metric].task != task:
            raise ConfigError(
                f"{key}: unknown {task} metric '{metric}' (expected one of: {', '.join(allowed)})"
            )

    known(config.evaluation.primary_metric, "evaluation.primary_metric")
    if config.tuning.metric:
        known(config.tuning.metric, "tuning.metric")
    for metric in config.promotion.thresholds:
        known(metric, f"promotion.thresholds.{metric}")


def load_pipeline_config(path: str | Path) -> PipelineConfig:
    """Parse and fully check a config file; every error names the file."""
    config = load_config(path)
    try:
        check_config(config)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config
