"""Prometheus metrics of one service instance, in its own registry (no global state)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from shipyard.monitoring.gauges import MonitorGauges

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """Every metric the service exports; the names are what dashboards and alert rules query."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "shipyard_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "shipyard_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("shipyard_http_requests_in_flight", "Requests being served now.", registry=r)
        self.predictions = Counter(
            "shipyard_predictions",
            "Predicted rows by model, version, A/B variant (champion, challenger, shadow) and (for "
            "classifiers) class.",
            ["model", "version", "variant", "label"],
            registry=r,
        )
        self.model_seconds = Histogram(
            "shipyard_model_latency_seconds",
            "Time the model took to predict a request, by model and A/B variant.",
            ["model", "variant"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.shadow_errors = Counter(
            "shipyard_shadow_errors",
            "Shadow (challenger) predictions that failed; the champion's answer went out regardless.",
            ["model"],
            registry=r,
        )
        self.prediction_values = Histogram(
            "shipyard_prediction_value",
            "Regression outputs by model and version.",
            ["model", "version"],
            buckets=(0, 1, 10, 100, 1e3, 1e4, 5e4, 1e5, 2e5, 3e5, 5e5, 1e6, 1e7),
            registry=r,
        )
        self.model_info = Gauge(
            "shipyard_model_info",
            "The model version being served (value 1).",
            ["model", "version", "alias", "run_id"],
            registry=r,
        )
        self.model_loaded_at = Gauge(
            "shipyard_model_loaded_timestamp_seconds",
            "When the served version was loaded.",
            ["model"],
            registry=r,
        )
        self.load_failures = Counter(
            "shipyard_model_load_failures",
            "Model versions that failed to load (the old one kept serving).",
            ["model"],
            registry=r,
        )
        self.log_dropped = Counter(
            "shipyard_prediction_log_dropped",
            "Predicted rows not logged (queue full or write failed).",
            registry=r,
        )
        self.log_written = Counter("shipyard_prediction_log_written", "Predicted rows logged.", registry=r)
        self.monitor = MonitorGauges(r)  # drift and live quality, when this process monitors
        self.feedback_rows = Counter(
            "shipyard_feedback_rows",
            "Ground-truth labels stored for requests this instance answered.",
            ["model"],
            registry=r,
        )
        self.feedback_unmatched = Counter(
            "shipyard_feedback_unmatched",
            "Feedback for request ids this instance does not remember (stored; the store joins it).",
            registry=r,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._prediction_children: dict[tuple[str, str, str, str], Any] = {}
        self._latency_children: dict[tuple[str, str], Any] = {}
        self.registry_check_failures = Counter(
            "shipyard_registry_check_failures", "Alias checks that could not reach the registry.", registry=r
        )

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count and time one request; label children are cached (``labels()`` costs microseconds)."""
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(route, method, str(status)), self.latency.labels(route, method))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def predicted(self, model: str, version: str, variant: str, label: str, count: int) -> None:
        key = (model, version, variant, label)
        child = self._prediction_children.get(key)
        if child is None:
            child = self._prediction_children[key] = self.predictions.labels(*key)
        child.inc(count)

    def model_latency(self, model: str, variant: str, seconds: float) -> None:
        key = (model, variant)
        child = self._latency_children.get(key)
        if child is None:
            child = self._latency_children[key] = self.model_seconds.labels(*key)
        child.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
