"""Drift of each served model over the latest logged predictions, recomputed on a schedule and exported
as Prometheus gauges; the latest report is what ``GET /models/{name}/drift`` answers."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from shipyard.config.settings import Settings
from shipyard.monitoring.drift import DriftReport
from shipyard.monitoring.prediction_log import read_log
from shipyard.monitoring.reports import DriftReference, drift_against
from shipyard.registry.deadline import RegistryDeadline, redact_uri
from shipyard.serving.holder import ServedModel
from shipyard.serving.metrics import ServiceMetrics

log = logging.getLogger(__name__)

ReferenceLoader = Callable[[str, str], DriftReference]


class DriftWatch:
    def __init__(self, settings: Settings, metrics: ServiceMetrics, load_reference: ReferenceLoader) -> None:
        self.settings = settings
        self.metrics = metrics
        self._load_reference = load_reference
        self._references: dict[tuple[str, str], DriftReference] = {}
        # fetching a reference is a registry call: bounded like the holder's loads
        self._deadline = RegistryDeadline(
            redact_uri(settings.registry_uri or settings.store_uri), settings.registry_load_timeout_seconds
        )
        self.reports: dict[str, DriftReport] = {}

    def compute(self, model: ServedModel) -> DriftReport | None:
        """Drift of ``model``'s version over the latest ``drift_window`` logged rows (None: no rows yet)."""
        key = (model.name, model.version)
        if key not in self._references:
            reference = self._deadline.call(
                f"drift reference of {model.name} version {model.version}",
                lambda: self._load_reference(model.name, model.version),
            )
            # one reference per served name: the version it replaces is not served any more
            self._references = {k: v for k, v in self._references.items() if k[0] != model.name}
            self._references[key] = reference
        rows = read_log(
            self.settings.prediction_log_file,
            model.name,
            window=self.settings.drift_window,
            version=model.version,
        )
        if rows.empty:
            return None
        report = drift_against(self._references[key], rows)
        self.reports[model.name] = report
        self._export(report)
        return report

    def _export(self, report: DriftReport) -> None:
        m = self.metrics
        for feature in [*report.features, *([report.prediction] if report.prediction else [])]:
            if not math.isnan(feature.score):
                m.feature_drift_score.labels(report.model, feature.name, feature.test).set(feature.score)
            m.feature_drifted.labels(report.model, feature.name).set(1 if feature.drifted else 0)
        m.dataset_drift_share.labels(report.model).set(report.drifted_share)
        m.dataset_drift.labels(report.model).set(1 if report.dataset_drift else 0)
