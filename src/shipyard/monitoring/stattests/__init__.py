"""Statistical tests for drift, one small module each, and the registry of named tests.

Like Evidently's ``calculations/stattests``: every test takes the reference and current values of one
feature and returns a score; the registry knows whether a low score (a p-value) or a high score (a
distance) means drift, and the default threshold.
"""

from shipyard.monitoring.stattests.registry import STATTESTS, StatTest, get_stattest

__all__ = ["STATTESTS", "StatTest", "get_stattest"]
