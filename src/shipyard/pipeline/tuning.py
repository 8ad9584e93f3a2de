"""Distributed tuning: several workers (processes, or machines sharing a database) add trials to one
Optuna study through a shared storage; the best trial is then trained and registered through the
normal pipeline and gate.

Storage: an Optuna journal file by default (``<home>/optuna/<study>.journal``: safe for processes on
one machine, appends under a file lock), any ``sqlite:///``, ``postgresql://`` or ``mysql://`` URL
(PostgreSQL for workers on many machines), or ``journal:PATH``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from shipyard.config.pipeline import PipelineConfig
from shipyard.config.settings import Settings
from shipyard.errors import ConfigError, TrainingError
from shipyard.pipeline.progress import Reporter
from shipyard.pipeline.steps import RunExtras, prepare_data, split_data
from shipyard.pipeline.training_run import TrainingSummary, run_training
from shipyard.registry.lineage import TAG_PREFIX
from shipyard.training.trainer import ModelTrainer, TrialCallback, TuningResult

STUDY_TAG = f"{TAG_PREFIX}tuning.study"
TRIALS_TAG = f"{TAG_PREFIX}tuning.trials"


def default_storage(settings: Settings, study: str) -> str:
    return f"journal:{(settings.home / 'optuna' / f'{study}.journal').resolve()}"


def open_study(config: PipelineConfig, study: str, storage: str) -> Any:
    """The shared study (created by the first worker, loaded by the others)."""
    import optuna

    if not config.tuning.search_space:
        raise ConfigError(f"{config.name}: tuning needs tuning.search_space in the config")
    if storage.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(storage.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        backend: Any = JournalStorage(JournalFileBackend(str(path)))
    elif storage.startswith(("sqlite:///", "postgresql", "mysql")):
        kwargs = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {}
        backend = optuna.storages.RDBStorage(storage, engine_kwargs=kwargs)
    else:
        raise ConfigError(
            f"--storage '{storage}': expected journal:PATH, sqlite:///PATH, postgresql://... or mysql://..."
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # each worker samples with its own seed, or workers started together would propose the same params
    sampler = optuna.samplers.TPESampler(seed=config.tuning.seed + os.getpid())
    direction = ModelTrainer(config).direction
    try:
        found = optuna.create_study(
            study_name=study, storage=backend, sampler=sampler, direction=direction, load_if_exists=True
        )
    except ValueError as exc:
        raise ConfigError(f"study '{study}': {exc}") from None
    if found.direction.name.lower() != direction:
        raise ConfigError(
            f"study '{study}' optimises in the other direction ({found.direction.name.lower()})"
        )
    return found


def tune_worker(
    config: PipelineConfig,
    study_name: str,
    storage: str,
    n_trials: int,
    on_trial: TrialCallback | None = None,
) -> TuningResult:
    """Add ``n_trials`` trials to the shared study, cross-validated on the config's training split."""
    study = open_study(config, study_name, storage)
    data = prepare_data(config)
    split = split_data(config, data)
    return ModelTrainer(config).tune(split.X_train, split.y_train, on_trial, study=study, n_trials=n_trials)


def register_best(
    config: PipelineConfig,
    settings: Settings,
    study_name: str,
    storage: str,
    reporter: Reporter | None = None,
) -> TrainingSummary:
    """Train the study's best params on the config's data and register through the gate."""
    study = open_study(config, study_name, storage)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        raise TrainingError(f"study '{study_name}' has no completed trial yet")
    best = study.best_trial
    model = config.model.model_copy(update={"params": {**config.model.params, **best.params}})
    tuned = config.model_copy(
        update={"model": model, "tuning": config.tuning.model_copy(update={"enabled": False})}
    )
    tags = {STUDY_TAG: study_name, TRIALS_TAG: str(len(complete))}
    return run_training(tuned, settings, reporter, extras=RunExtras(tags=tags))
