"""ExperimentTracker: runs, parameters, metrics, artifacts, datasets and model logging in MLflow."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from shipyard.config.settings import Settings
from shipyard.errors import RegistryError
from shipyard.registry.deadline import redact_uri

log = logging.getLogger(__name__)

# Keep MLflow quiet and offline unless the user says otherwise.
_MLFLOW_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # a bar per artifact download is noise in service logs
}


def configure_mlflow(settings: Settings) -> None:
    """Point MLflow's fluent API at the settings' store. Called at run time, never at import."""
    import mlflow

    for key, value in _MLFLOW_DEFAULTS.items():
        os.environ.setdefault(key, value)
    mlflow.set_tracking_uri(settings.store_uri)
    mlflow.set_registry_uri(settings.registry_uri or settings.store_uri)


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


@contextmanager
def _drop_log(logger: str, prefix: str) -> Iterator[None]:
    """Silence one known MLflow notice (e.g. the pickle caution for a choice made deliberately)."""
    target = logging.getLogger(logger)
    dropper = _DropMessage(prefix)
    target.addFilter(dropper)
    try:
        yield
    finally:
        target.removeFilter(dropper)


@contextmanager
def _quiet_schema_hints() -> Iterator[None]:
    """MLflow hints that int columns cannot hold NaN whenever it infers a schema; our signature already
    makes nullable ints doubles, so the hint is noise for users."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Hint: Inferred schema contains integer", category=UserWarning
        )
        yield


@dataclass(frozen=True)
class InputSpec:
    """One model input as the data contract declares it."""

    name: str
    dtype: str  # int, float, str, bool
    nullable: bool
    allowed: list[Any] | None = None


_SIGNATURE_TYPES = {"int": "long", "float": "double", "str": "string", "bool": "boolean"}


@dataclass(frozen=True)
class LoggedModel:
    """A model logged in a run (``models:/m-<id>``), not yet a registered version."""

    model_uri: str
    model_id: str
    run_id: str


# What a logged Pipeline needs to load and predict. Naming it skips MLflow's requirement inference,
# which re-imports the model in a subprocess and costs seconds per model.
_MODEL_REQUIREMENTS = ("mlflow", "scikit-learn", "numpy", "pandas", "scipy", "cloudpickle")


def model_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for package in _MODEL_REQUIREMENTS:
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            out.append(package)
    return out


def flatten(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    """Nested dicts to dotted MLflow params (``model.params.max_depth``)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = str(value)[:6000]
    return out


def refusal(exc: Exception) -> str | None:
    """What to say when an MLflow server behind its basic-auth app turned the request away (401/403):
    who was logged in and what to check; None for any other error."""
    message = str(getattr(exc, "message", exc))
    code = str(getattr(exc, "error_code", ""))
    if code == "PERMISSION_DENIED" or "403" in message.split("Response body")[0]:
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        who = (
            f"user '{user}' (MLFLOW_TRACKING_USERNAME)"
            if user
            else "no user (MLFLOW_TRACKING_USERNAME unset)"
        )
        return f"permission denied to {who}: this login may read but not write here (403)"
    if code == "UNAUTHENTICATED" or "401" in message.split("Response body")[0]:
        return "the server asks for a login (401): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    return None


class ExperimentTracker:
    """One tracking session against the configured store: set up an experiment, log a run into it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        configure_mlflow(settings)

    def ensure_experiment(self, name: str) -> str:
        """Create the experiment (with the configured artifact root) if needed; make it active."""
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            experiment = mlflow.get_experiment_by_name(name)
            if experiment is None:
                location = None
                if self.settings.artifact_root:
                    location = f"{self.settings.artifact_root.rstrip('/')}/{name}"
                experiment_id = mlflow.create_experiment(name, artifact_location=location)
            else:
                if experiment.lifecycle_stage == "deleted":
                    raise RegistryError(
                        f"experiment '{name}' is deleted; restore it (mlflow experiments restore) or "
                        "set another name in registry.experiment"
                    )
                experiment_id = experiment.experiment_id
            mlflow.set_experiment(experiment_id=experiment_id)
        except MlflowException as exc:
            raise RegistryError(
                f"cannot use experiment '{name}' at {redact_uri(self.settings.store_uri)}: "
                f"{refusal(exc) or exc.message}"
            ) from None
        return str(experiment_id)

    @contextmanager
    def run(self, run_name: str, tags: dict[str, str] | None = None, nested: bool = False) -> Iterator[str]:
        """A run that ends FINISHED on success and FAILED on any exception."""
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            active = mlflow.start_run(run_name=run_name, tags=tags, nested=nested)
        except MlflowException as exc:
            raise RegistryError(
                f"cannot start a run at {redact_uri(self.settings.store_uri)}: {refusal(exc) or exc.message}"
            ) from None
        with active:
            yield str(active.info.run_id)

    @contextmanager
    def resume(self, run_id: str) -> Iterator[str]:
        """Reopen a finished run to add to it (a later step of the same pipeline run)."""
        import mlflow

        with mlflow.start_run(run_id=run_id) as active:
            yield str(active.info.run_id)

    def log_params(self, params: dict[str, Any]) -> None:
        import mlflow

        mlflow.log_params(flatten("", params, {}))

    def log_metrics(self, metrics: dict[str, float], prefix: str = "", step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics({f"{prefix}{k}": v for k, v in metrics.items()}, step=step)

    def set_tags(self, tags: dict[str, str]) -> None:
        import mlflow

        mlflow.set_tags(tags)

    def log_dict(self, data: dict[str, Any], artifact_file: str) -> None:
        import mlflow

        mlflow.log_dict(data, artifact_file)

    def log_frame(self, frame: pd.DataFrame, artifact_file: str) -> None:
        """A DataFrame as a Parquet artifact (the reference sample drift detection compares against)."""
        import tempfile

        import mlflow

        folder, _, name = artifact_file.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            frame.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), artifact_path=folder or None)

    def log_object(self, value: Any, artifact_file: str) -> None:
        """A Python object as a joblib artifact (read back with the same trust as the pickled model)."""
        import tempfile

        import joblib
        import mlflow

        folder, _, name = artifact_file.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            joblib.dump(value, path)
            mlflow.log_artifact(str(path), artifact_path=folder or None)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        import mlflow

        mlflow.log_figure(figure, artifact_file)

    def log_dataset(self, frame: pd.DataFrame, source: str, name: str, target: str, context: str) -> None:
        """Record the data as an MLflow dataset input (schema, profile, source, digest)."""
        import mlflow
        from mlflow.data.code_dataset_source import CodeDatasetSource
        from mlflow.data.pandas_dataset import from_pandas

        origin: Any = source
        if not Path(source).is_absolute():
            # bundled data ("sklearn:iris") has no file: record where the code got it
            origin = CodeDatasetSource(tags={"uri": source})
        with _quiet_schema_hints():
            # a local path also matches two equivalent MLflow source types; either is right
            warnings.filterwarnings("ignore", message="The specified dataset source", category=UserWarning)
            dataset = from_pandas(frame, source=origin, name=name, targets=target)
            mlflow.log_input(dataset, context=context)

    def log_model(
        self,
        pipeline: Any,
        inputs: list[InputSpec],
        input_example: pd.DataFrame,
        predictions: Any,
        tags: dict[str, str],
    ) -> LoggedModel:
        """Log the fitted Pipeline with its signature, input example and pinned requirements."""
        import mlflow
        from mlflow.models import ModelSignature, infer_signature
        from mlflow.types.schema import ColSpec, Schema

        # inputs come from the data contract, not from a few example rows: exact types and nullability
        # (an int column that may be missing is a double, since int columns cannot hold NaN)
        schema = Schema(
            [
                ColSpec(
                    _SIGNATURE_TYPES["float" if i.nullable and i.dtype == "int" else i.dtype],
                    i.name,
                    required=not i.nullable,
                )
                for i in inputs
            ]
        )
        with _quiet_schema_hints(), _drop_log("mlflow.sklearn", "Saving scikit-learn models in the pickle"):
            outputs = infer_signature(input_example, predictions).outputs
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                signature=ModelSignature(inputs=schema, outputs=outputs),
                input_example=input_example,
                # skops would not protect loading (MLflow 3 reads its allow-list from the artifact
                # itself) and costs ~1 s per save and load; cloudpickle is MLflow's own fallback
                serialization_format="cloudpickle",
                pip_requirements=model_requirements(),
                tags=tags,
                # the parts of the data contract the signature cannot hold (allowed categories)
                metadata={"shipyard": {"allowed": {i.name: i.allowed for i in inputs if i.allowed}}},
            )
        return LoggedModel(str(info.model_uri), str(info.model_id), str(info.run_id))
