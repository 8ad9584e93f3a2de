"""Live quality: predictions graded by the ground truth that arrives later (POST /feedback).

The grading itself is ``quality_metrics``: accuracy and macro F1 for a classifier, MAE and RMSE for a
regressor, over the latest (prediction, truth) pairs the monitoring store joined. ``RecentAnswers`` is
what one api replica remembers of the requests it answered, only to check feedback before storing it
(a label count that does not match, or text for a regressor, is refused at once when the replica knows).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple

from sklearn.metrics import f1_score


class Served(NamedTuple):
    """One answer to remember; kept as a plain tuple of atomic values (predictions too), which the
    cyclic garbage collector stops tracking. 100,000 remembered requests as tracked objects (dataclasses
    holding lists, or NamedTuples: only exact tuples are untracked) made its full collections pause
    every request for 50-200 ms under load."""

    model: str
    version: str
    variant: str
    classifier: bool
    predictions: tuple[Any, ...]


class RecentAnswers:
    """The answers this process gave lately, by request id (bounded, oldest forgotten first)."""

    def __init__(self, remember: int = 100_000) -> None:
        self.remember = remember
        # request id -> the answers given, each as tuple(Served): no object here is tracked by the GC
        self._recent: OrderedDict[str, tuple[tuple[Any, ...], ...]] = OrderedDict()
        self._lock = threading.Lock()

    def remember_prediction(self, request_id: str, *served: Served) -> None:
        with self._lock:
            self._recent[request_id] = tuple(tuple(s) for s in served)
            if len(self._recent) > self.remember:
                self._recent.popitem(last=False)

    def answered(self, request_id: str) -> Served | None:
        """The (first) answer given to that request, or None when it is not remembered."""
        with self._lock:
            served = self._recent.get(request_id)
        return Served._make(served[0]) if served else None


def quality_metrics(predicted: Sequence[Any], truth: Sequence[Any], classifier: bool) -> dict[str, float]:
    """Accuracy and macro F1 (classifier; labels compared as text) or MAE and RMSE, plus ``n``."""
    if not predicted:
        return {}
    n = float(len(predicted))
    if classifier:
        predicted_text, truth_text = [str(p) for p in predicted], [str(t) for t in truth]
        accuracy = sum(p == t for p, t in zip(predicted_text, truth_text, strict=True)) / n
        f1 = float(f1_score(truth_text, predicted_text, average="macro", zero_division=0))
        return {"accuracy": accuracy, "f1_macro": f1, "n": n}
    errors = [float(p) - float(t) for p, t in zip(predicted, truth, strict=True)]
    return {
        "mae": sum(abs(e) for e in errors) / n,
        "rmse": math.sqrt(sum(e * e for e in errors) / n),
        "n": n,
    }
