"""Training: estimator catalogue, fitting and tuning, evaluation metrics and plots. Pure: no tracking."""

from shipyard.training.catalogue import ESTIMATORS, make_estimator
from shipyard.training.metrics import METRICS, evaluate, is_better
from shipyard.training.trainer import ModelTrainer, TrialResult

__all__ = ["ESTIMATORS", "METRICS", "ModelTrainer", "TrialResult", "evaluate", "is_better", "make_estimator"]
