"""Pipeline: the training steps chained (load, validate, featurize, train, evaluate, register, gate)."""

from shipyard.pipeline.configure import load_pipeline_config
from shipyard.pipeline.gate import PromotionDecision, decide
from shipyard.pipeline.progress import NullReporter, Reporter
from shipyard.pipeline.training_run import TrainingSummary, run_training

__all__ = [
    "NullReporter",
    "PromotionDecision",
    "Reporter",
    "TrainingSummary",
    "decide",
    "load_pipeline_config",
    "run_training",
]
