"""The service's lifespan: what starts before the first request and stops after the last one.

Start: load the models (or take the holder handed in), tell the metrics what is served, open the
monitoring store (upgrading its schema) and the prediction log, and, unless a separate ``shipyard
monitor`` is configured, the in-process monitor; start the background loops (alias following,
monitoring, access-log flushing). Stop: cancel the loops, wait for shadow scorings still running
(bounded), flush the access log and close the prediction log, which writes everything still queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from shipyard.config.settings import Settings
from shipyard.errors import ShipyardError
from shipyard.monitoring.monitor import Monitor, ReferenceLoader
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.reports import DriftReference, reference_for
from shipyard.monitoring.store import MonitoringStore
from shipyard.registry.models import ModelRegistry
from shipyard.serving.accesslog import AccessLog
from shipyard.serving.dataplane import DataPlane
from shipyard.serving.holder import HolderObserver, ModelHolder, ServedModel
from shipyard.serving.memory import settle as settle_memory
from shipyard.serving.metrics import ServiceMetrics

log = logging.getLogger("shipyard.serving")

SHADOW_DRAIN_SECONDS = 10.0  # shutdown waits at most this long for shadow scorings still running


class MetricsObserver(HolderObserver):
    """The holder's events as the service's Prometheus metrics."""

    def __init__(self, metrics: ServiceMetrics, champion_alias: str) -> None:
        self.metrics = metrics
        self.champion_alias = champion_alias

    def load_failed(self, name: str) -> None:
        self.metrics.load_failures.labels(name).inc()

    def check_failed(self) -> None:
        self.metrics.registry_check_failures.inc()

    def swapped(self, new: ServedModel, old: ServedModel | None) -> None:
        if old is not None:
            self.retired(old)
        self.metrics.model_info.labels(new.name, new.version, new.alias, new.loaded.run_id or "").set(1)
        if new.alias == self.champion_alias:
            self.metrics.model_loaded_at.labels(new.name).set(new.loaded_at.timestamp())

    def retired(self, old: ServedModel) -> None:
        with contextlib.suppress(KeyError):
            self.metrics.model_info.remove(old.name, old.version, old.alias, old.loaded.run_id or "")


async def _flush_every_second(access_log: AccessLog) -> None:
    while True:
        await asyncio.sleep(1.0)
        access_log.flush()


async def _monitor(monitor: Monitor, holder: ModelHolder, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:  # a round never raises: failing steps are counted and logged, the next round retries
            await asyncio.to_thread(monitor.run_once, [m.name for m in holder.loaded()])
        except Exception:  # the loop must survive anything
            log.exception("monitoring round failed")


async def _follow_aliases(holder: ModelHolder, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            changes = await holder.refresh()
        except Exception:  # the loop must survive anything; the next round tries again
            log.exception("alias check failed")
            continue
        moved = {k: v for k, v in changes.items() if v.startswith("loaded")}
        if moved:
            log.info("swapped models: %s", moved)
            settle_memory()  # lets the old version's objects go, freezes the new one


def _references(settings: Settings, handed_in: bool, given: ReferenceLoader | None) -> ReferenceLoader | None:
    """Where drift references come from: the loader given, else the registry (unless the models were
    handed in, which means: no registry)."""
    if given is not None or handed_in:
        return given
    registry = ModelRegistry(settings)

    def references(name: str, version: str) -> DriftReference:
        return reference_for(registry, name, version)

    return references


def make_lifespan(
    plane: DataPlane,
    access_log: AccessLog | None,
    holder: ModelHolder | None = None,
    drift_references: ReferenceLoader | None = None,
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """The lifespan of an app around ``plane``; ``holder`` given means: serve exactly those models."""
    settings, metrics = plane.settings, plane.metrics

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        served = holder if holder is not None else ModelHolder.from_settings(settings)
        observer = MetricsObserver(metrics, settings.champion_alias)
        served.observe(observer)
        for model in [*served.loaded(), *served.challengers()]:  # handed in already loaded
            observer.swapped(model, None)
        if holder is None:
            log.info("start-up: %s", await served.refresh())
        settle_memory()
        plane.holder = served
        tasks: list[asyncio.Task[None]] = []
        store = plane.store = MonitoringStore(settings.monitoring_store_url)
        try:
            await asyncio.to_thread(store.upgrade)
            log.info("monitoring store: %s", store.where)
        except ShipyardError as exc:  # predictions are the product: serve them, log what can be logged
            log.error("%s; serving anyway: predictions are logged once it answers (drops counted)", exc)
        if settings.prediction_log:
            plane.prediction_log = PredictionLog(
                store,
                queue_size=settings.prediction_log_queue,
                on_drop=metrics.log_dropped.inc,
                on_write=metrics.log_written.inc,
            )
            plane.prediction_log.start()
        if settings.monitor_in_process:
            references = _references(settings, holder is not None, drift_references)
            plane.monitor = Monitor(settings, store, metrics.monitor, references)
            if settings.drift_interval_seconds > 0:
                loop = _monitor(plane.monitor, served, settings.drift_interval_seconds)
                tasks.append(asyncio.create_task(loop))
        if settings.reload_interval_seconds > 0:
            tasks.append(asyncio.create_task(_follow_aliases(served, settings.reload_interval_seconds)))
        if access_log is not None:
            tasks.append(asyncio.create_task(_flush_every_second(access_log)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await plane.drain(SHADOW_DRAIN_SECONDS)  # shadow answers reach the log before it closes
            if access_log is not None:
                access_log.flush()
            if plane.prediction_log is not None:
                plane.prediction_log.close()  # writes everything still queued
            store.close()
            log.info("shutdown complete")  # uvicorn runs this after in-flight requests have finished

    return lifespan
