"""The monitoring loop's Prometheus gauges (drift and live quality), on a registry given to them: the
api's own when it monitors in-process, the monitor role's when one runs. Names and labels are what the
dashboards and alert rules query, whichever process exports them."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shipyard.monitoring.drift import DriftReport


class MonitorGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.feature_drift_score = Gauge(
            "shipyard_feature_drift_score",
            "Latest drift score per feature (a p-value or a distance; see the test label).",
            ["model", "feature", "test"],
            registry=r,
        )
        self.feature_drifted = Gauge(
            "shipyard_feature_drifted",
            "1 when the feature drifted in the latest window.",
            ["model", "feature"],
            registry=r,
        )
        self.dataset_drift_share = Gauge(
            "shipyard_dataset_drift_share",
            "Share of features drifted in the latest window.",
            ["model"],
            registry=r,
        )
        self.dataset_drift = Gauge(
            "shipyard_dataset_drift",
            "1 when the dataset drifted in the latest window.",
            ["model"],
            registry=r,
        )
        self.domain_auroc = Gauge(
            "shipyard_domain_classifier_auroc",
            "Cross-validated AUROC of the domain classifier (reference vs the latest window; 0.5: alike).",
            ["model"],
            registry=r,
        )
        self.drift_version = Gauge(
            "shipyard_drift_version_info",
            "The version whose drift the shipyard_*drift* gauges show (the one that answered most rows).",
            ["model", "version"],
            registry=r,
        )
        self.feature_quality = Gauge(
            "shipyard_feature_quality",
            "Data quality of the latest window per feature: check=missing (share of rows), out_of_range "
            "(share of values outside the training range), unseen_categories (share of values training "
            "never had), type_violations (values the model's rules refuse; 0 for logged traffic, which "
            "was validated).",
            ["model", "feature", "check"],
            registry=r,
        )
        self.live_quality = Gauge(
            "shipyard_live_quality",
            "Rolling quality on ground truth received through /feedback (accuracy, f1_macro, mae, rmse, n).",
            ["model", "version", "variant", "metric"],
            registry=r,
        )
        self.estimated_quality = Gauge(
            "shipyard_estimated_quality",
            "Quality estimated without labels on the latest window (CBPE for classifiers: accuracy, "
            "f1_macro; DLE for regressors: mae, rmse), next to shipyard_live_quality.",
            ["model", "version", "metric"],
            registry=r,
        )
        self.estimated_drop = Gauge(
            "shipyard_estimated_quality_drop",
            "How much worse the watched metric's estimate is than on the held-out split (a share of it; "
            "0 or less: not worse).",
            ["model", "metric"],
            registry=r,
        )
        self.estimated_degraded = Gauge(
            "shipyard_estimated_quality_degraded",
            "1 when the estimated drop exceeds monitoring.estimated_performance.max_drop.",
            ["model"],
            registry=r,
        )
        self.runs = Counter("shipyard_monitor_runs", "Monitoring rounds completed.", registry=r)
        self.errors = Counter(
            "shipyard_monitor_errors",
            "Monitoring steps that failed (the next round retries).",
            ["step"],
            registry=r,
        )
        self.run_seconds = Histogram(
            "shipyard_monitor_run_seconds",
            "Time one monitoring step took, by step (drift, quality, retention).",
            ["step"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.last_run = Gauge(
            "shipyard_monitor_last_run_timestamp_seconds", "When the last monitoring round ended.", registry=r
        )
        self.purged = Counter(
            "shipyard_monitor_purged_rows", "Rows deleted by the retention setting.", registry=r
        )

    def export_drift(self, report: DriftReport) -> None:
        for feature in [*report.features, *([report.prediction] if report.prediction else [])]:
            if not math.isnan(feature.score):
                self.feature_drift_score.labels(report.model, feature.name, feature.test).set(feature.score)
            self.feature_drifted.labels(report.model, feature.name).set(1 if feature.drifted else 0)
        for feature in report.features:
            self.feature_quality.labels(report.model, feature.name, "missing").set(feature.current_missing)
            range_check = "out_of_range" if feature.kind == "numeric" else "unseen_categories"
            share = feature.out_of_range if feature.kind == "numeric" else feature.unseen_categories
            self.feature_quality.labels(report.model, feature.name, range_check).set(share or 0.0)
            self.feature_quality.labels(report.model, feature.name, "type_violations").set(
                feature.type_violations
            )
        if report.multivariate is not None:
            self.domain_auroc.labels(report.model).set(report.multivariate.auroc)
        if (estimate := report.performance) is not None:
            for metric, value in estimate.estimated.items():
                if not math.isnan(value):
                    self.estimated_quality.labels(report.model, report.version or "", metric).set(value)
            self.estimated_drop.labels(report.model, estimate.metric).set(estimate.drop)
            self.estimated_degraded.labels(report.model).set(1 if estimate.degraded else 0)
        self.dataset_drift_share.labels(report.model).set(report.drifted_share)
        self.dataset_drift.labels(report.model).set(1 if report.dataset_drift else 0)
        for sample in [s for metric in self.drift_version.collect() for s in metric.samples]:
            if sample.labels["model"] == report.model and sample.labels["version"] != (report.version or ""):
                self.drift_version.remove(report.model, sample.labels["version"])
        self.drift_version.labels(report.model, report.version or "").set(1)

    def export_quality(self, model: str, version: str, variant: str, values: dict[str, float]) -> None:
        for metric, value in values.items():
            self.live_quality.labels(model, version, variant, metric).set(value)
