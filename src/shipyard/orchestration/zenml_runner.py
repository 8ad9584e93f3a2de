"""``run_zenml(config, settings)``: the training steps as a ZenML pipeline, run here and now.

The pipeline (``orchestration/zenml/``) wraps the functions of ``shipyard.pipeline.steps`` one step each,
so a ZenML run registers the same model, with the same lineage, as ``run_training``; only the runner tag
differs (``shipyard.runner=zenml``). ZenML runs offline with its local orchestrator: no server, no login,
analytics off, and all of its state inside the project:

    <home>/.zen/           the ZenML repository (ZENML_REPOSITORY_PATH=<home>: no search from the cwd)
    <home>/.zen/global/    ZENML_CONFIG_PATH: global config, SQLite store, local artifact store

ZenML is imported only inside ``run_zenml`` (``pip install -e '.[zenml]'`` adds it), and only after the
environment above is set, because ZenML reads part of it at import time.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.config.pipeline import PipelineConfig
from shipyard.config.settings import Settings
from shipyard.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.pipeline.training_run import TrainingSummary

INSTALL_HINT = "pip install -e '.[zenml]'"
RUNNER = "zenml"
REPOSITORY_DIR = ".zen"
GLOBAL_CONFIG_DIR = "global"

# The plain runner's timer names, by ZenML step name.
_TIMED_STEPS = {
    "prepare": "load+validate",
    "fit": "fit",
    "evaluate": "evaluate",
    "register": "track+register",
    "promote": "gate",
}

# Where ZenML logs a step's failure (with its traceback) before the orchestrator re-raises it.
_FAILURE_LOGGERS = ["zenml.orchestrators.step_launcher", "zenml.orchestrators.local.local_orchestrator"]

_active_home: Path | None = None  # the project whose ZenML store the ZenML singletons point at


def zenml_home(settings: Settings) -> Path:
    """Where ZenML keeps its repository marker and, under ``global/``, its config and stores."""
    return settings.home.resolve() / REPOSITORY_DIR


def zenml_environment(home: Path) -> dict[str, str]:
    """The variables that keep ZenML inside ``home`` (the project folder), offline and quiet."""
    zen = home / REPOSITORY_DIR
    return {
        "ZENML_CONFIG_PATH": str(zen / GLOBAL_CONFIG_DIR),  # global config + stores, not ~/.config/zenml
        "ZENML_REPOSITORY_PATH": str(home),  # no search up from the working directory
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_ENABLE_RICH_TRACEBACK": "false",  # else `import zenml` replaces sys.excepthook
        "ZENML_ENABLE_REPO_INIT_WARNINGS": "false",
        "ZENML_LOGGING_COLORS_DISABLED": "true",
        "ZENML_AUTO_OPEN_DASHBOARD": "false",
    }


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block, then restore what was there."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _import_zenml() -> None:
    """Import ZenML, or say how to install it. Keep the process's logging as Shipyard set it: on import
    ZenML sets the root logger's level and adds a handler printing to stdout; its records go to the
    root logger's own handlers instead (stderr in the CLI), at the level the user chose."""
    if importlib.util.find_spec("zenml") is None:
        raise ConfigError(f"--runner zenml needs ZenML: {INSTALL_HINT}")
    if importlib.util.find_spec("sqlalchemy_utils") is None:
        # plain `zenml` imports but cannot create its local store; `zenml[local]` can
        raise ConfigError(f"ZenML is installed without its local extras: {INSTALL_HINT}")
    root = logging.getLogger()
    level = root.level
    first_import = "zenml" not in sys.modules
    import zenml.logger

    if first_import:
        root.setLevel(level)
    for handler in list(root.handlers):
        if isinstance(handler, zenml.logger.ZenMLConsoleHandler):
            root.removeHandler(handler)


def _prepare_store(home: Path) -> None:
    """Create ZenML's folders and, on first use, its store and default stack (idempotent)."""
    global _active_home
    from zenml.client import Client
    from zenml.config.global_config import GlobalConfiguration

    zen = home / REPOSITORY_DIR
    config_dir = zen / GLOBAL_CONFIG_DIR
    config_dir.mkdir(parents=True, exist_ok=True)
    config_file = config_dir / "config.yaml"
    if not config_file.exists():
        # persisted too, so a `zenml` CLI pointed at this folder stays opted out without the variable
        config_file.write_text("analytics_opt_in: false\n", encoding="utf-8")
    if _active_home != home:
        # ZenML keeps its config and store connection in process-wide singletons; another project's
        # (e.g. an earlier test's) must not be reused
        GlobalConfiguration._reset_instance()
        Client._reset_instance()
        _active_home = home
    # on first use this creates the store and the default stack, and says so in warnings
    with _muted(["zenml.zen_stores.base_zen_store"], logging.WARNING):
        Client().active_stack_model  # noqa: B018


class _DropLevel(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != self.level


@contextmanager
def _muted(names: list[str], level: int) -> Iterator[None]:
    """Drop the records at ``level`` (only that level) that the loggers ``names`` emit, for the block."""
    drop = _DropLevel(level)
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


def run_zenml(config: PipelineConfig, settings: Settings) -> TrainingSummary:
    """Run prepare -> split -> fit -> evaluate -> register -> promote as a ZenML pipeline; return what
    ``run_training`` returns, with ``runner="zenml"``."""
    from shipyard.orchestration.zenml.params import config_param, settings_param, uri_environment
    from shipyard.registry.tracking import ExperimentTracker

    home = settings.home.resolve()
    with _environment({**zenml_environment(home), **uri_environment(settings)}):
        _import_zenml()
        # reach the tracking store before ZenML starts, so a store that is down fails fast
        ExperimentTracker(settings).ensure_experiment(settings.experiment or config.experiment_name)
        _prepare_store(home)
        with _package_source_root():
            # imported only now: decorating the steps resolves their sources (see _package_source_root)
            from shipyard.orchestration.zenml.pipeline import training_pipeline

            started = time.perf_counter()
            # A failing step's exception reaches the caller (the pipeline fails fast), which reports it;
            # ZenML's own log of it, traceback included, would say it twice.
            with _muted(_FAILURE_LOGGERS, logging.ERROR):
                run = training_pipeline(config_param(config), settings_param(settings), runner=RUNNER)
            elapsed = time.perf_counter() - started
            if run is None:  # only when the run was scheduled, which run_zenml never asks for
                raise ConfigError("the ZenML pipeline did not run in this process")
            return _result(run, config, settings, elapsed)


@contextmanager
def _package_source_root() -> Iterator[None]:
    """ZenML records steps, output types and materializers by module path under its source root, by
    default the repository root (``home``). When ``home`` holds the code (a checkout: home ".", the
    package in ./src) that path is ``src.shipyard...``: a second copy of the package gets imported and
    loaded outputs are not instances of our classes. Rooting it at the folder that holds the
    ``shipyard`` package gives ``shipyard...`` wherever home is."""
    from zenml.utils import source_utils

    import shipyard

    previous = source_utils._CUSTOM_SOURCE_ROOT
    source_utils.set_custom_source_root(str(Path(shipyard.__file__).resolve().parent.parent))
    try:
        yield
    finally:
        source_utils.set_custom_source_root(previous)


def _result(run: Any, config: PipelineConfig, settings: Settings, elapsed: float) -> TrainingSummary:
    """Build the plain runner's TrainingSummary from the run's step outputs."""
    from shipyard.data.splits import Split
    from shipyard.pipeline.gate import PromotionDecision
    from shipyard.pipeline.steps import Evaluation, FittedModel, PreparedData, Registration
    from shipyard.pipeline.training_run import training_summary

    steps = run.steps

    def output(step: str, name: str, kind: type[Any]) -> Any:
        value = steps[step].regular_outputs[name].load()
        if not isinstance(value, kind):
            raise TypeError(f"ZenML step '{step}' output '{name}' is {type(value).__name__}, not {kind}")
        return value

    data: PreparedData = output("prepare", "prepared_data", PreparedData)
    split: Split = output("split", "split", Split)
    fitted: FittedModel = output("fit", "fitted_model", FittedModel)
    evaluation: Evaluation = output("evaluate", "evaluation", Evaluation)
    registration: Registration = output("register", "registration", Registration)
    decision: PromotionDecision = output("promote", "decision", PromotionDecision)

    seconds = {
        label: round(duration.total_seconds(), 3)
        for name, label in _TIMED_STEPS.items()
        if (duration := steps[name].duration) is not None
    }
    seconds["pipeline"] = round(elapsed, 3)  # the whole ZenML run, its own overhead included
    return training_summary(
        config, settings, data, split, fitted, evaluation, registration, decision, seconds, RUNNER
    )


__all__ = ["INSTALL_HINT", "run_zenml", "zenml_environment", "zenml_home"]
