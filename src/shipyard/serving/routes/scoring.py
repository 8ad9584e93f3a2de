"""What every prediction route does once it has a validated batch: predict and count."""

from __future__ import annotations

from collections import Counter

from starlette.concurrency import run_in_threadpool

from shipyard.inference.records import Batch, batch_rows
from shipyard.serving.holder import Prediction, ServedModel
from shipyard.serving.metrics import ServiceMetrics

# Small batches predict inline (a thread hop costs more than the work); large ones in the threadpool so
# health checks and other requests keep moving.
INLINE_ROWS = 64


async def score(
    model: ServedModel, batch: Batch, metrics: ServiceMetrics, probabilities: bool = True
) -> Prediction:
    if batch_rows(batch) <= INLINE_ROWS:
        result = model.predict(batch, probabilities)
    else:
        result = await run_in_threadpool(model.predict, batch, probabilities)
    if result.classes is not None:
        for label, count in Counter(result.values).items():
            metrics.predicted(model.name, model.version, str(label), count)
    else:
        metrics.predicted(model.name, model.version, "", len(result.values))
        histogram = metrics.prediction_values.labels(model.name, model.version)
        for value in result.values:
            histogram.observe(value)
    return result
