"""The monitor: drift per served version and live quality, computed from the shared monitoring store.

One per deployment: ``shipyard monitor`` runs it in its own process while the api replicas only write;
with no monitor configured the api runs this same code in-process (``SHIPYARD_MONITOR_IN_PROCESS``,
the default), so a single ``shipyard serve`` still closes the loop. Each round: for every model, the
versions that answered lately (not in shadow) are compared with their training reference over the
latest ``drift_window`` logged rows; feedback is joined to the answers in the store and graded per
version and variant; results go to the gauges and to the store (where any api replica's
``GET /models/{name}/drift`` reads them); rows older than the retention are deleted in batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shipyard.config.settings import Settings
from shipyard.monitoring.drift import DriftReport
from shipyard.monitoring.gauges import MonitorGauges
from shipyard.monitoring.quality import quality_metrics
from shipyard.monitoring.reports import DriftReference, drift_against
from shipyard.monitoring.store import MonitoringStore
from shipyard.registry.deadline import RegistryDeadline, redact_uri

log = logging.getLogger(__name__)

ReferenceLoader = Callable[[str, str], DriftReference]
RETENTION_EVERY_SECONDS = 3600.0  # old rows are deleted at most this often


@dataclass
class RoundOutcome:
    """What one monitoring round computed (for ``shipyard monitor --once`` and the logs)."""

    drift: dict[str, list[DriftReport]] = field(default_factory=dict)
    quality: dict[str, dict[tuple[str, str], dict[str, float]]] = field(default_factory=dict)
    purged: int = 0
    errors: list[str] = field(default_factory=list)


class Monitor:
    def __init__(
        self,
        settings: Settings,
        store: MonitoringStore,
        gauges: MonitorGauges,
        load_reference: ReferenceLoader | None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.gauges = gauges
        self._load_reference = load_reference
        self._references: dict[tuple[str, str], DriftReference] = {}
        # fetching a reference is a registry call: bounded like the api's model loads
        self._deadline = RegistryDeadline(
            redact_uri(settings.registry_uri or settings.store_uri), settings.registry_load_timeout_seconds
        )
        self.reports: dict[str, DriftReport] = {}  # the latest report per model (the gauges' version)
        self._purged_at = 0.0

    @property
    def watches_drift(self) -> bool:
        return self._load_reference is not None

    def reference(self, name: str, version: str) -> DriftReference:
        key = (name, version)
        if key not in self._references:
            assert self._load_reference is not None
            loader = self._load_reference
            self._references[key] = self._deadline.call(
                f"drift reference of {name} version {version}", lambda: loader(name, version)
            )
        return self._references[key]

    def drift(self, model: str, version: str | None = None) -> list[DriftReport]:
        """Drift of each version of ``model`` that answered lately (or of ``version``) over its latest
        ``drift_window`` logged rows; the gauges show the version that answered most rows."""
        if self._load_reference is None:
            return []
        started = time.perf_counter()
        versions = [version] if version is not None else self.store.served_versions(model)
        reports = []
        for v in versions:
            rows = self.store.read_log(model, window=self.settings.drift_window, version=v)
            if rows.empty:
                continue
            report = drift_against(self.reference(model, v), rows)
            self.store.save_result("drift", model, v, "", report.to_dict())
            reports.append(report)
        shown = self.reports.get(model)
        if reports and (version is None or shown is None or shown.version == reports[0].version):
            self.reports[model] = reports[0]
            self.gauges.export_drift(reports[0])
        # references of versions no longer answering are let go
        keep = {(model, v) for v in versions} | {k for k in self._references if k[0] != model}
        self._references = {k: r for k, r in self._references.items() if k in keep}
        self.gauges.run_seconds.labels("drift").observe(time.perf_counter() - started)
        return reports

    def quality(self, model: str) -> dict[tuple[str, str], dict[str, float]]:
        """Live quality per (version, variant) of ``model``, from feedback joined in the store."""
        started = time.perf_counter()
        out = {}
        for (version, variant), pairs in self.store.labelled_pairs(
            model, self.settings.quality_window
        ).items():
            values = quality_metrics(pairs.predicted, pairs.truth, pairs.classifier)
            if not values:
                continue
            out[(version, variant)] = values
            self.gauges.export_quality(model, version, variant, values)
        self.gauges.run_seconds.labels("quality").observe(time.perf_counter() - started)
        return out

    def save_quality(self, model: str, results: dict[tuple[str, str], dict[str, float]]) -> None:
        for (version, variant), values in results.items():
            body = {"model": model, "version": version, "variant": variant, "metrics": values}
            self.store.save_result("quality", model, version, variant, body)

    def retention(self, now: float | None = None) -> int:
        """Delete rows older than the retention (at most once an hour); how many went."""
        days = self.settings.monitoring_retention_days
        now = time.time() if now is None else now
        if days <= 0 or now - self._purged_at < RETENTION_EVERY_SECONDS:
            return 0
        started = time.perf_counter()
        gone = self.store.purge(now - days * 86400)
        self._purged_at = now
        self.gauges.purged.inc(gone)
        self.gauges.run_seconds.labels("retention").observe(time.perf_counter() - started)
        if gone:
            log.info("retention: %d rows older than %g days deleted", gone, days)
        return gone

    def run_once(self, models: list[str] | None = None) -> RoundOutcome:
        """One round over ``models`` (default: the served ones); a failing step is counted and logged,
        never fatal (the next round tries again)."""
        outcome = RoundOutcome()
        for model in models or self.settings.models:
            for step, run in (("drift", self._drift_step), ("quality", self._quality_step)):
                try:
                    run(model, outcome)
                except Exception as exc:  # one model's failure must not stop the others
                    self.gauges.errors.labels(step).inc()
                    outcome.errors.append(f"{step} of {model}: {exc}")
                    log.warning("%s of %s failed: %s", step, model, exc)
        try:
            outcome.purged = self.retention()
        except Exception as exc:
            self.gauges.errors.labels("retention").inc()
            outcome.errors.append(f"retention: {exc}")
            log.warning("retention failed: %s", exc)
        self.gauges.runs.inc()
        self.gauges.last_run.set(time.time())
        return outcome

    def _drift_step(self, model: str, outcome: RoundOutcome) -> None:
        outcome.drift[model] = self.drift(model)

    def _quality_step(self, model: str, outcome: RoundOutcome) -> None:
        results = self.quality(model)
        self.save_quality(model, results)
        outcome.quality[model] = results
