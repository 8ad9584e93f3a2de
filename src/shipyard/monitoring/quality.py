"""Live quality: predictions joined with the ground truth that arrives later, by request id.

Recent predictions are kept in memory (bounded, oldest forgotten first) so feedback joins without a
database read; each (model, version, variant) keeps a rolling window of (prediction, truth) pairs whose
accuracy and macro F1 (classification) or MAE and RMSE (regression) are recomputed on arrival. A request
scored in shadow mode is remembered with both answers, so one label grades both variants.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from typing import Any, NamedTuple

from sklearn.metrics import f1_score

Key = tuple[str, str, str]  # model, version, variant


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


class LiveQuality:
    def __init__(self, remember: int = 100_000, window: int = 1000) -> None:
        self.remember = remember
        self.window = window
        # request id -> the answers given, each as tuple(Served): no object here is tracked by the GC
        self._recent: OrderedDict[str, tuple[tuple[Any, ...], ...]] = OrderedDict()
        self._pairs: dict[Key, deque[tuple[Any, Any]]] = {}
        self._classifier: dict[Key, bool] = {}
        self._lock = threading.Lock()

    def remember_prediction(self, request_id: str, *served: Served) -> None:
        with self._lock:
            self._recent[request_id] = tuple(tuple(s) for s in served)
            if len(self._recent) > self.remember:
                self._recent.popitem(last=False)

    def predicted_rows(self, request_id: str) -> int | None:
        """How many rows that request predicted, or None when it is not remembered."""
        with self._lock:
            served = self._recent.get(request_id)
            return None if not served else len(Served._make(served[0]).predictions)

    def predicted_by_classifier(self, request_id: str) -> bool | None:
        """Whether that request was answered by a classifier (labels) or a regressor (numbers)."""
        with self._lock:
            served = self._recent.get(request_id)
            return None if not served else bool(Served._make(served[0]).classifier)

    def add_feedback(self, request_id: str, labels: list[Any]) -> list[Key]:
        """Join ``labels`` (one per predicted row) with each answer given to that request; the keys it
        touched (none when the id is unknown)."""
        with self._lock:
            answers = [Served._make(a) for a in self._recent.get(request_id, ())]
            if answers and len(labels) != len(answers[0].predictions):
                raise ValueError(f"{len(labels)} label(s) for {len(answers[0].predictions)} predicted row(s)")
            keys = []
            for served in answers:
                key = (served.model, served.version, served.variant)
                pairs = self._pairs.setdefault(key, deque(maxlen=self.window))
                pairs.extend(zip(served.predictions, labels, strict=True))
                self._classifier[key] = served.classifier
                keys.append(key)
            return keys

    def metrics(self, key: Key) -> dict[str, float]:
        with self._lock:
            pairs = list(self._pairs.get(key, ()))
            classifier = self._classifier.get(key, True)
        if not pairs:
            return {}
        predicted = [p for p, _ in pairs]
        truth = [t for _, t in pairs]
        if classifier:
            predicted_text, truth_text = [str(p) for p in predicted], [str(t) for t in truth]
            accuracy = sum(p == t for p, t in zip(predicted_text, truth_text, strict=True)) / len(pairs)
            f1 = float(f1_score(truth_text, predicted_text, average="macro", zero_division=0))
            return {"accuracy": accuracy, "f1_macro": f1, "n": float(len(pairs))}
        errors = [float(p) - float(t) for p, t in pairs]
        return {
            "mae": sum(abs(e) for e in errors) / len(errors),
            "rmse": math.sqrt(sum(e * e for e in errors) / len(errors)),
            "n": float(len(pairs)),
        }
