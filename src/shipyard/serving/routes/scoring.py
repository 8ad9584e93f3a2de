"""What every prediction route does once it has a frame: predict, count, time."""

from __future__ import annotations

import pandas as pd
from starlette.concurrency import run_in_threadpool

from shipyard.serving.holder import Prediction, ServedModel
from shipyard.serving.metrics import ServiceMetrics

# Small frames predict inline (a thread hop costs more than the work); large ones in the threadpool so
# health checks and other requests keep moving.
INLINE_ROWS = 64


async def score(model: ServedModel, frame: pd.DataFrame, metrics: ServiceMetrics) -> Prediction:
    if len(frame) <= INLINE_ROWS:
        result = model.predict(frame)
    else:
        result = await run_in_threadpool(model.predict, frame)
    if result.classes is not None:
        for value in result.values:
            metrics.predictions.labels(model.name, model.version, str(value)).inc()
    else:
        metrics.predictions.labels(model.name, model.version, "").inc(len(result.values))
        histogram = metrics.prediction_values.labels(model.name, model.version)
        for value in result.values:
            histogram.observe(value)
    return result
