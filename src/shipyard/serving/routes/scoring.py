"""What every prediction route does once it has a validated batch: predict and count."""

from __future__ import annotations

import random
import time
from collections import Counter

from starlette.concurrency import run_in_threadpool

from shipyard.inference.records import Batch, batch_rows
from shipyard.monitoring.quality import Served
from shipyard.serving.deps import Services
from shipyard.serving.holder import Prediction, ServedModel

# Small batches predict inline (a thread hop costs more than the work); large ones in the threadpool so
# health checks and other requests keep moving.
INLINE_ROWS = 64


async def score(
    model: ServedModel,
    batch: Batch,
    svc: Services,
    request_id: str,
    probabilities: bool = True,
) -> Prediction:
    metrics = svc.metrics
    started = time.perf_counter()
    if batch_rows(batch) <= INLINE_ROWS:
        result = model.predict(batch, probabilities)
    else:
        result = await run_in_threadpool(model.predict, batch, probabilities)
    svc.quality.remember_prediction(
        request_id, Served(model.name, model.version, model.alias, result.classes is not None, result.values)
    )
    log = svc.prediction_log
    if log is not None and (svc.log_everything or random.random() < svc.settings.prediction_log_sample_rate):
        latency = (time.perf_counter() - started) * 1e3
        entry = (
            request_id,
            time.time(),
            model.name,
            model.version,
            model.alias,
            batch,
            result.values,
            latency,
        )
        if not log.submit(entry):
            metrics.log_dropped.inc(len(result.values))
    if result.classes is not None:
        for label, count in Counter(result.values).items():
            metrics.predicted(model.name, model.version, str(label), count)
    else:
        metrics.predicted(model.name, model.version, "", len(result.values))
        histogram = metrics.prediction_values.labels(model.name, model.version)
        for value in result.values:
            histogram.observe(value)
    return result
