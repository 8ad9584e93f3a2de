"""ModelRegistry: versions, aliases (champion/challenger), promotion records and loading models back."""

from __future__ import annotations

import getpass
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.config.settings import Settings
from shipyard.errors import ModelNotFoundError, RegistryError
from shipyard.registry.artifacts import (
    CONFIG_ARTIFACT,
    PERFORMANCE_ARTIFACT,
    PROFILE_ARTIFACT,
    REFERENCE_ARTIFACT,
)
from shipyard.registry.deadline import redact_uri
from shipyard.registry.lineage import TAG_PREFIX
from shipyard.registry.tracking import configure_mlflow, refusal

log = logging.getLogger(__name__)

DECISION_TAG = f"{TAG_PREFIX}promotion.decision"
REASON_TAG = f"{TAG_PREFIX}promotion.reason"
BY_TAG = f"{TAG_PREFIX}promotion.by"
AT_TAG = f"{TAG_PREFIX}promotion.at"


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: str
    aliases: list[str]
    run_id: str | None
    created_at: datetime
    tags: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class InputColumn:
    """One model input from the signature: MLflow type name, whether it may be absent or null, and
    the allowed values when the data contract fixes them."""

    name: str
    type: str
    required: bool = True
    allowed: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A registered model loaded for scoring, with what a caller needs to feed it."""

    model: Any
    name: str
    version: str
    run_id: str | None
    inputs: list[InputColumn]
    tags: dict[str, str]
    input_example: Any = None  # a DataFrame of a few training rows, for warm-up
    metrics: dict[str, float] = field(default_factory=dict)
    profile: dict[str, Any] | None = None  # the reference profile saved with the run

    @property
    def classes(self) -> list[Any] | None:
        classes = getattr(self.model, "classes_", None)
        return None if classes is None else list(classes)

    @property
    def is_classifier(self) -> bool:
        """A model with class labels and probabilities: the one test every scoring path uses."""
        return self.classes is not None and hasattr(self.model, "predict_proba")


@contextmanager
def _mlflow_errors(what: str, store: str) -> Iterator[None]:
    """Translate MLflow's exceptions into ours, with what we were doing and where."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:  # RestException (server) is a subclass
        # a missing alias is RESOURCE_DOES_NOT_EXIST in a local store but INVALID_PARAMETER_VALUE
        # ("... alias champion not found") from a server
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in exc.message.lower():
            raise ModelNotFoundError(f"{what}: not found in {store}") from None
        refused = refusal(exc)
        raise RegistryError(f"{what}: {refused or redact_uri(exc.message.splitlines()[0])}") from None
    except OSError as exc:
        raise RegistryError(f"{what}: cannot reach {store}: {redact_uri(str(exc))}") from None


class ModelRegistry:
    """Reads and changes the model registry of the configured store."""

    def __init__(self, settings: Settings) -> None:
        from mlflow import MlflowClient

        configure_mlflow(settings)
        self.settings = settings
        self.store = redact_uri(settings.store_uri)
        self.where = redact_uri(settings.registry_uri or settings.store_uri)  # the registry, fit to show
        self.client = MlflowClient(
            tracking_uri=settings.store_uri, registry_uri=settings.registry_uri or settings.store_uri
        )

    def _info(self, mv: Any, with_metrics: bool = True) -> ModelVersionInfo:
        metrics: dict[str, float] = {}
        if with_metrics and mv.run_id:
            try:
                metrics = dict(self.client.get_run(mv.run_id).data.metrics)
            except Exception as exc:  # a deleted run must not hide the version
                log.warning("run %s of %s v%s is unreadable: %s", mv.run_id, mv.name, mv.version, exc)
        return ModelVersionInfo(
            name=mv.name,
            version=str(mv.version),
            aliases=list(mv.aliases or []),
            run_id=mv.run_id,
            created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC),
            tags=dict(mv.tags or {}),
            metrics=metrics,
        )

    def get_version(self, name: str, version: str | int) -> ModelVersionInfo:
        with _mlflow_errors(f"model '{name}' version {version}", self.store):
            return self._info(self.client.get_model_version(name, str(version)))

    def version_by_alias(self, name: str, alias: str) -> ModelVersionInfo | None:
        """The version an alias points at, or None when the model or alias does not exist."""
        try:
            with _mlflow_errors(f"model '{name}' alias '{alias}'", self.store):
                return self._info(self.client.get_model_version_by_alias(name, alias))
        except ModelNotFoundError:
            return None

    def resolve(self, name: str, ref: str | None = None) -> ModelVersionInfo:
        """A version from ``ref``: an alias name, a version number, or None for the champion."""
        ref = ref or self.settings.champion_alias
        if ref.isdigit():
            return self.get_version(name, ref)
        found = self.version_by_alias(name, ref)
        if found is None:
            self._require_model(name)
            raise ModelNotFoundError(f"model '{name}' has no version with alias '{ref}'")
        return found

    def _require_model(self, name: str) -> None:
        with _mlflow_errors(f"registered model '{name}'", self.store):
            self.client.get_registered_model(name)

    def versions(self, name: str) -> list[ModelVersionInfo]:
        with _mlflow_errors(f"versions of '{name}'", self.store):
            found = self.client.search_model_versions(f"name = '{_quote(name)}'")
            # search results carry no aliases; the registered model has them all
            aliases: dict[str, list[str]] = {}
            for alias, version in (self.client.get_registered_model(name).aliases or {}).items():
                aliases.setdefault(str(version), []).append(alias)
            infos = [
                replace(self._info(mv), aliases=sorted(aliases.get(str(mv.version), []))) for mv in found
            ]
            return sorted(infos, key=lambda v: int(v.version), reverse=True)

    def model_names(self) -> list[str]:
        with _mlflow_errors("registered models", self.store):
            return sorted(m.name for m in self.client.search_registered_models())

    def set_alias(self, name: str, alias: str, version: str) -> None:
        with _mlflow_errors(f"set alias '{alias}' on '{name}' version {version}", self.store):
            self.client.set_registered_model_alias(name, alias, str(version))

    def register(
        self, name: str, model_uri: str, model_id: str, run_id: str, tags: dict[str, str]
    ) -> ModelVersionInfo:
        """Register a logged model as a new version of ``name`` (creating the model on first use)."""
        from mlflow.exceptions import MlflowException

        with _mlflow_errors(f"register '{name}'", self.store):
            try:
                self.client.create_registered_model(name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            mv = self.client.create_model_version(
                name, model_uri, run_id=run_id, tags=tags, model_id=model_id
            )
            return self._info(mv, with_metrics=False)

    def remove_alias(self, name: str, alias: str) -> None:
        with _mlflow_errors(f"remove alias '{alias}' from '{name}'", self.store):
            self.client.delete_registered_model_alias(name, alias)

    def tag_version(self, name: str, version: str, tags: dict[str, str]) -> None:
        with _mlflow_errors(f"tag '{name}' version {version}", self.store):
            for key, value in tags.items():
                self.client.set_model_version_tag(name, str(version), key, value)

    def record_decision(self, name: str, version: str, decision: str, reason: str, by: str) -> None:
        self.tag_version(
            name,
            version,
            {
                DECISION_TAG: decision,
                REASON_TAG: reason[:5000],
                BY_TAG: by,
                AT_TAG: datetime.now(tz=UTC).isoformat(timespec="seconds"),
            },
        )

    def promote(self, name: str, version: str, reason: str, by: str | None = None) -> ModelVersionInfo:
        """Manual override: make ``version`` the champion and record who did it and why."""
        target = self.get_version(name, version)
        who = by or _current_user()
        self.set_alias(name, self.settings.champion_alias, target.version)
        self.record_decision(name, target.version, "promoted (manual)", reason, who)
        return self.get_version(name, target.version)

    def run_document(self, run_id: str, artifact: str) -> dict[str, Any]:
        """A JSON artifact of a run (e.g. the resolved config it trained with)."""
        import mlflow

        with _mlflow_errors(f"artifact '{artifact}' of run {run_id}", self.store):
            document: dict[str, Any] = mlflow.artifacts.load_dict(f"runs:/{run_id}/{artifact}")
        return document

    def run_frame(self, run_id: str, artifact: str) -> Any:
        """A Parquet artifact of a run as a DataFrame."""
        import tempfile

        import mlflow
        import pandas as pd

        where = f"artifact '{artifact}' of run {run_id}"
        with _mlflow_errors(where, self.store), tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{artifact}", dst_path=tmp)
            return pd.read_parquet(path)

    def export(self, name: str, ref: str | None, destination: Path) -> ModelVersionInfo:
        """Copy a version's model folder (MLmodel, model.pkl, requirements) to ``destination``, replacing
        it whole: a failed download leaves the old folder as it was."""
        import shutil
        import tempfile

        import mlflow

        info = self.resolve(name, ref)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=destination.parent) as tmp:
            with _mlflow_errors(f"model '{name}' version {info.version}", self.store):
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{name}/{info.version}", dst_path=tmp
                )
            if destination.exists():
                shutil.rmtree(destination)
            Path(tmp).rename(destination)
            Path(tmp).mkdir()  # TemporaryDirectory removes it again
        return info

    def load(self, name: str, ref: str | None = None) -> LoadedModel:
        """Load a registered version back as the scikit-learn Pipeline that was logged, with its
        signature, the allowed categories of its data contract and its input example."""
        import tempfile

        import mlflow
        from mlflow.models import Model

        info = self.resolve(name, ref)
        uri = f"models:/{name}/{info.version}"
        with _mlflow_errors(f"load {uri}", self.store), tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
            model = mlflow.sklearn.load_model(local)
            mlmodel = Model.load(local)
            try:
                example = mlmodel.load_input_example(local)
            except Exception as exc:  # an example is a convenience, never a reason to refuse a model
                log.warning("input example of %s is unreadable: %s", uri, exc)
                example = None
        allowed = ((mlmodel.metadata or {}).get("shipyard") or {}).get("allowed") or {}
        inputs: list[InputColumn] = []
        if mlmodel.signature is not None and mlmodel.signature.inputs is not None:
            for col in mlmodel.signature.inputs.inputs:
                values = allowed.get(col.name)
                inputs.append(
                    InputColumn(
                        col.name,
                        _type_name(col.type),
                        bool(getattr(col, "required", True)),
                        tuple(values) if values else None,
                    )
                )
        profile = None
        if info.run_id:
            try:
                profile = mlflow.artifacts.load_dict(f"runs:/{info.run_id}/{PROFILE_ARTIFACT}")
            except Exception as exc:  # older runs, or artifacts moved: the model still serves
                log.info("no reference profile for %s: %s", uri, exc)
        return LoadedModel(
            model, name, info.version, info.run_id, inputs, info.tags, example, info.metrics, profile
        )


@dataclass(frozen=True)
class ReferenceData:
    """What a version was trained against: the reference sample and the resolved config it ran."""

    name: str
    version: str
    frame: Any  # pandas DataFrame: features, _target, _prediction
    config: dict[str, Any]
    # CBPE / DLE fitted on the held-out split (shipyard.training.performance); None for versions
    # trained before it existed or with monitoring.estimated_performance off
    estimator: Any = None


def load_reference(registry: ModelRegistry, name: str, ref: str | None = None) -> ReferenceData:
    import mlflow
    import pandas as pd

    info = registry.resolve(name, ref)
    if not info.run_id:
        raise ModelNotFoundError(f"model '{name}' version {info.version} has no run to read a reference from")
    with _mlflow_errors(f"reference data of '{name}' version {info.version}", registry.store):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(
                f"runs:/{info.run_id}/{REFERENCE_ARTIFACT}", dst_path=tmp
            )
            frame = pd.read_parquet(path)
            estimator = _load_estimator(info.run_id, tmp)
        config = mlflow.artifacts.load_dict(f"runs:/{info.run_id}/{CONFIG_ARTIFACT}")
    return ReferenceData(name, info.version, frame, config, estimator)


def _load_estimator(run_id: str, folder: str) -> Any:
    """The run's performance estimator, or None when it logged none (listed first: a missing artifact
    is a normal case, not an error to catch)."""
    import joblib
    import mlflow

    parent, _, name = PERFORMANCE_ARTIFACT.rpartition("/")
    listed = {Path(a.path).name for a in mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path=parent)}
    if name not in listed:
        return None
    path = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{PERFORMANCE_ARTIFACT}", dst_path=folder)
    return joblib.load(path)


def _type_name(dtype: Any) -> str:
    return str(getattr(dtype, "name", dtype))


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
