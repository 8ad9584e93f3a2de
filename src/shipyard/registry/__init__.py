"""Registry: the one seam to MLflow (tracking, model registry, aliases, promotion, lineage, loading).

``mlflow`` is imported here and nowhere else in the package, so a change of tracking backend touches
only this layer.
"""

from shipyard.registry.lineage import Lineage, collect_lineage
from shipyard.registry.models import LoadedModel, ModelRegistry, ModelVersionInfo
from shipyard.registry.tracking import ExperimentTracker, InputSpec, LoggedModel

__all__ = [
    "ExperimentTracker",
    "InputSpec",
    "Lineage",
    "LoadedModel",
    "LoggedModel",
    "ModelRegistry",
    "ModelVersionInfo",
    "collect_lineage",
]
