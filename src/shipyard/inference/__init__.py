"""Inference: a loaded model ready to predict, with input checked and coerced from its signature."""

from shipyard.inference.predictor import Predictor

__all__ = ["Predictor"]
