"""Inference: THE model ready to predict, with its input rules and its engine (see ``ready``)."""

from shipyard.inference.ready import Prediction, ReadyModel

__all__ = ["Prediction", "ReadyModel"]
