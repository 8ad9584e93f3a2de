"""What every prediction route does once it has a validated batch: predict (the routed variant, and the
shadow on the side), remember for feedback, log and count."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter

from starlette.concurrency import run_in_threadpool

from shipyard.inference import Prediction
from shipyard.inference.records import Batch, batch_rows
from shipyard.monitoring.quality import Served
from shipyard.serving.ab import SHADOW, Route
from shipyard.serving.calls import Call
from shipyard.serving.deps import Services
from shipyard.serving.holder import ServedModel

log = logging.getLogger(__name__)

# Small batches predict inline (a thread hop costs more than the work); large ones in the threadpool so
# health checks and other requests keep moving.
INLINE_ROWS = 64
VARIANT_HEADER = "X-Shipyard-Variant"

_background: set[asyncio.Task[None]] = set()  # shadow scorings in flight (kept from the GC)


def route_for(call: Call, name: str, key_container: object = None) -> Route:
    """The variant that answers this call; the A/B key comes from the header or ``key_container``."""
    svc = call.svc
    assert svc.holder is not None
    route = svc.router.route(svc.holder, name, call.routing_key(key_container))
    call.response_headers[VARIANT_HEADER] = route.variant
    return route


async def score(route: Route, batch: Batch, call: Call, probabilities: bool = True) -> Prediction:
    svc, model = call.svc, route.model
    started = time.perf_counter()
    if batch_rows(batch) <= INLINE_ROWS:
        result = model.predict(batch, probabilities)
    else:
        result = await run_in_threadpool(model.predict, batch, probabilities)
    seconds = time.perf_counter() - started
    served = Served(
        model.name, model.version, route.variant, result.classes is not None, tuple(result.values)
    )
    # one sampling draw per request, so a logged request has both its variants' answers
    logged = svc.log_everything or random.random() < svc.settings.prediction_log_sample_rate
    if route.shadow is None:
        svc.quality.remember_prediction(call.request_id, served)
    _record(svc, model, route.variant, batch, result, call.request_id, seconds, logged)
    if route.shadow is not None:
        args = (svc, route.shadow, batch, call.request_id, served, logged)
        if batch_rows(batch) <= INLINE_ROWS:
            _shadow(*args)
        else:  # a large batch: score the shadow after the answer, off the event loop
            task = asyncio.create_task(run_in_threadpool(_shadow, *args))
            _background.add(task)
            task.add_done_callback(_background.discard)
    return result


def _shadow(
    svc: Services, model: ServedModel, batch: Batch, request_id: str, primary: Served, logged: bool
) -> None:
    """The challenger scores the same rows; its answer is logged and remembered, never returned, and
    its failure never touches the request."""
    started = time.perf_counter()
    try:
        result = model.predict(batch, probabilities=False)
    except Exception as exc:  # anything the challenger does wrong stays on the side
        svc.metrics.shadow_errors.labels(model.name).inc()
        log.warning("shadow %s v%s failed: %s", model.name, model.version, exc)
        svc.quality.remember_prediction(request_id, primary)
        return
    seconds = time.perf_counter() - started
    shadow = Served(model.name, model.version, SHADOW, result.classes is not None, tuple(result.values))
    svc.quality.remember_prediction(request_id, primary, shadow)
    _record(svc, model, SHADOW, batch, result, request_id, seconds, logged)


def _record(
    svc: Services,
    model: ServedModel,
    variant: str,
    batch: Batch,
    result: Prediction,
    request_id: str,
    seconds: float,
    logged: bool,
) -> None:
    metrics = svc.metrics
    metrics.model_latency(model.name, variant, seconds)
    log = svc.prediction_log
    if log is not None and logged:
        entry = (
            request_id,
            time.time(),
            model.name,
            model.version,
            variant,
            batch,
            result.values,
            seconds * 1e3,
        )
        if not log.submit(entry):
            metrics.log_dropped.inc(len(result.values))
    if result.classes is not None:
        if len(result.values) == 1:  # the common case, without building a Counter
            metrics.predicted(model.name, model.version, variant, str(result.values[0]), 1)
            return
        for label, count in Counter(result.values).items():
            metrics.predicted(model.name, model.version, variant, str(label), count)
    else:
        metrics.predicted(model.name, model.version, variant, "", len(result.values))
        histogram = metrics.prediction_values.labels(model.name, model.version)
        for value in result.values:
            histogram.observe(value)
