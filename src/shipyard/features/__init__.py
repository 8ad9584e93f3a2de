"""Features: the preprocessing builder and the reference profile. Pure: frames in, objects out."""

from shipyard.features.engineering import FeatureEngineer
from shipyard.features.profile import build_reference_profile

__all__ = ["FeatureEngineer", "build_reference_profile"]
