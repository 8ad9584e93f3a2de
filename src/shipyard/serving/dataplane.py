"""DataPlane: the one object that owns what a prediction touches, whichever protocol it came in by.

Like MLServer's ``DataPlane``: the holder (which versions are served), the A/B router, the service's
metrics, the monitoring store, the prediction log and the in-process monitor live here, and ``infer``
is the one prediction path. The
FastAPI routes and the fast lane are thin dispatchers over it: they check the token, parse their
protocol's body into a validated batch, call ``route`` and ``infer``, and render the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter

from starlette.concurrency import run_in_threadpool

from shipyard.config.settings import Settings
from shipyard.inference import Prediction
from shipyard.inference.records import Batch, batch_rows
from shipyard.monitoring.monitor import Monitor
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.quality import RecentAnswers, Served
from shipyard.monitoring.store import MonitoringStore
from shipyard.serving.ab import SHADOW, Route, Router
from shipyard.serving.holder import ModelHolder, ServedModel
from shipyard.serving.metrics import ServiceMetrics

log = logging.getLogger(__name__)

# Small batches predict inline (a thread hop costs more than the work); large ones in the threadpool so
# health checks and other requests keep moving.
INLINE_ROWS = 64


class DataPlane:
    """The request path's state and its one prediction path. The holder is set by the lifespan once
    models are loaded (or handed in); the store, the prediction log and the monitor when enabled."""

    def __init__(
        self, settings: Settings, metrics: ServiceMetrics, holder: ModelHolder | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.holder = holder
        self.router = Router(settings)
        self.recent = RecentAnswers()  # to check feedback against what this process answered
        self.store: MonitoringStore | None = None
        self.prediction_log: PredictionLog | None = None
        self.monitor: Monitor | None = None  # in-process (no `shipyard monitor` configured)
        self._background: set[asyncio.Task[None]] = set()  # shadow scorings in flight

    @property
    def ready(self) -> bool:
        return self.holder is not None and self.holder.ready

    def route(self, name: str, key: str | None) -> Route:
        """The variant that answers a request for ``name`` (A/B split by ``key`` when one is on)."""
        assert self.holder is not None, "the lifespan sets the holder before requests are taken"
        return self.router.route(self.holder, name, key)

    async def infer(
        self, route: Route, batch: Batch, request_id: str, probabilities: bool = True
    ) -> Prediction:
        """Predict with the routed variant (the shadow scores on the side), remember the answer for
        feedback, log and count it."""
        model = route.model
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
        rate = self.settings.prediction_log_sample_rate
        logged = rate >= 1.0 or random.random() < rate
        if route.shadow is None:
            self.recent.remember_prediction(request_id, served)
        self._record(model, route.variant, batch, result, request_id, seconds, logged)
        if route.shadow is not None:
            args = (route.shadow, batch, request_id, served, logged)
            if batch_rows(batch) <= INLINE_ROWS:
                self._shadow(*args)
            else:  # a large batch: score the shadow after the answer, off the event loop
                task = asyncio.create_task(run_in_threadpool(self._shadow, *args))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        return result

    async def drain(self, timeout: float) -> int:
        """Wait (at most ``timeout`` seconds) for the shadow scorings still running, so their answers
        reach the log before it closes; returns how many were cut short."""
        pending = set(self._background)
        if not pending:
            return 0
        _, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if late:
            log.warning("shutdown: %d shadow scorings did not finish within %.0f s", len(late), timeout)
        return len(late)

    def _shadow(
        self, model: ServedModel, batch: Batch, request_id: str, primary: Served, logged: bool
    ) -> None:
        """The challenger scores the same rows; its answer is logged and remembered, never returned, and
        its failure never touches the request."""
        started = time.perf_counter()
        try:
            result = model.predict(batch, probabilities=False)
        except Exception as exc:  # anything the challenger does wrong stays on the side
            self.metrics.shadow_errors.labels(model.name).inc()
            log.warning("shadow %s v%s failed: %s", model.name, model.version, exc)
            self.recent.remember_prediction(request_id, primary)
            return
        seconds = time.perf_counter() - started
        shadow = Served(model.name, model.version, SHADOW, result.classes is not None, tuple(result.values))
        self.recent.remember_prediction(request_id, primary, shadow)
        self._record(model, SHADOW, batch, result, request_id, seconds, logged)

    def _record(
        self,
        model: ServedModel,
        variant: str,
        batch: Batch,
        result: Prediction,
        request_id: str,
        seconds: float,
        logged: bool,
    ) -> None:
        metrics = self.metrics
        metrics.model_latency(model.name, variant, seconds)
        prediction_log = self.prediction_log
        if prediction_log is not None and logged:
            entry = (
                request_id,
                time.time(),
                model.name,
                model.version,
                variant,
                batch,
                result.values,
                seconds * 1e3,
                result.classes is not None,
            )
            if not prediction_log.submit(entry):
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
