"""How the step dataclasses are stored between steps: cloudpickle, through ZenML's own
``CloudpickleMaterializer`` (it records the Python version and a content hash), subclassed for two
reasons. ZenML warns on every save when the base class itself is used, even when chosen explicitly; and
a subclass can record a few readable facts (rows, digest, metrics) as artifact metadata.

Why pickle: these values hold frames, a fitted scikit-learn Pipeline and nested dicts, and live only
from one step to the next in the same environment. MLflow, not ZenML, is the system of record for the
model. Pickles load only with the same Python and library versions, which holds for one run.
"""

from __future__ import annotations

from typing import Any, ClassVar

from zenml.enums import ArtifactType
from zenml.materializers.cloudpickle_materializer import CloudpickleMaterializer
from zenml.metadata.metadata_types import MetadataType

from shipyard.data.splits import Split
from shipyard.pipeline.steps import Evaluation, FittedModel, PreparedData


class StepDataMaterializer(CloudpickleMaterializer):
    """Prepared data, the split and the evaluation."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (PreparedData, Split, Evaluation)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA
    SKIP_REGISTRATION: ClassVar[bool] = False

    def extract_metadata(self, data: Any) -> dict[str, MetadataType]:
        if isinstance(data, PreparedData):
            return {"rows": len(data.frame), "data_uri": data.uri, "data_hash": data.digest}
        if isinstance(data, Split):
            return {"rows_train": len(data.X_train), "rows_test": len(data.X_test)}
        if isinstance(data, Evaluation):
            return {f"test_{k}": float(v) for k, v in data.metrics.items()}
        return {}


class FittedModelMaterializer(CloudpickleMaterializer):
    """The fitted Pipeline with its tuning results."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (FittedModel,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL
    SKIP_REGISTRATION: ClassVar[bool] = False

    def extract_metadata(self, data: Any) -> dict[str, MetadataType]:
        out: dict[str, MetadataType] = {"estimator": type(data.pipeline[-1]).__name__}
        if data.trials:
            out["trials"] = len(data.trials)
            out["best_params"] = {str(k): str(v) for k, v in data.best_params.items()}
        return out
