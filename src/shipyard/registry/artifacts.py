"""Names of the artifacts every training run logs next to its model, shared by writers and readers."""

PROFILE_ARTIFACT = "reference_profile.json"
REFERENCE_ARTIFACT = "reference/reference.parquet"
CONFIG_ARTIFACT = "config.json"
PREDICTION_COLUMN = "_prediction"
TARGET_COLUMN = "_target"
PERFORMANCE_ARTIFACT = "monitoring/performance_estimator.joblib"
