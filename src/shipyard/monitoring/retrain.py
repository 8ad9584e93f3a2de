"""Automated retraining: the training pipeline rerun on the config's data plus the labelled rows that
came back through /feedback, registered as challenger through the same promotion gate.

``if_drift`` makes it run only when the latest report given (a JSON file from ``shipyard drift -o``) or
one computed now from the prediction log says so: dataset drift, a degraded estimated performance
(CBPE / DLE: worse than on the held-out split by more than ``monitoring.estimated_performance.max_drop``),
or either, as ``monitoring.retrain_on`` (or ``on``) chooses. Why it ran (trigger, drift report id,
feedback rows) is recorded as tags on the run and the version, and the drift report is kept with the
run.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from shipyard.config.loading import parse_config
from shipyard.config.pipeline import PipelineConfig
from shipyard.config.settings import Settings
from shipyard.errors import DataError
from shipyard.monitoring.reports import drift_for_model
from shipyard.monitoring.store import MonitoringStore
from shipyard.pipeline.progress import Reporter
from shipyard.pipeline.steps import FEEDBACK_ROWS_TAG, RunExtras
from shipyard.pipeline.training_run import TrainingSummary, run_training
from shipyard.registry.lineage import TAG_PREFIX
from shipyard.registry.models import ModelRegistry, load_reference

log = logging.getLogger(__name__)

TRIGGER_TAG = f"{TAG_PREFIX}retrain.trigger"
DRIFT_REPORT_TAG = f"{TAG_PREFIX}retrain.drift_report"
FEEDBACK_HASH_TAG = f"{TAG_PREFIX}retrain.feedback_hash"
DRIFT_ARTIFACT = "retrain/drift_report.json"


@dataclass
class RetrainOutcome:
    model: str
    ran: bool
    reason: str
    trigger: str  # manual | drift | estimated_drop
    drift_report_id: str | None = None
    drift_share: float | None = None
    feedback_rows: int = 0
    feedback_rejected: int = 0
    summary: TrainingSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "summary"}
        out["training"] = self.summary.to_dict() if self.summary else None
        return out


def feedback_rows(store: MonitoringStore, name: str, config: PipelineConfig) -> tuple[pd.DataFrame, int]:
    """Logged rows of ``name`` that got ground truth (posted to any replica), as training rows
    (features + target), and how many were left out because their label does not fit the target's
    contract."""
    labelled = store.labelled(name)
    if labelled.empty:
        return pd.DataFrame(), 0
    target = config.dataset.target
    spec = config.dataset.columns[target]
    features = [c for c in config.feature_columns if c in labelled.columns]
    frame = labelled[features].copy()
    labels = labelled["_label"]
    if config.dataset.task == "regression" or spec.dtype in ("int", "float"):
        values = pd.to_numeric(labels, errors="coerce")
        keep = values.notna()
        if spec.min is not None:
            keep &= values >= spec.min
        if spec.max is not None:
            keep &= values <= spec.max
        frame[target] = values
    else:
        frame[target] = labels.astype(str)
        keep = frame[target].isin([str(a) for a in spec.allowed]) if spec.allowed else labels.notna()
    rejected = int((~keep).sum())
    if rejected:
        log.warning("%d feedback label(s) of %s do not fit the target contract; left out", rejected, name)
    return frame[keep.to_numpy()].reset_index(drop=True), rejected


def retrain(
    settings: Settings,
    name: str,
    config: PipelineConfig | None = None,
    if_drift: bool = False,
    drift_report: dict[str, Any] | None = None,
    window: int = 10_000,
    reporter: Reporter | None = None,
    on: str | None = None,
) -> RetrainOutcome:
    """Retrain ``name`` (with its champion's recorded config unless ``config`` is given). ``on``:
    drift | estimated_drop | either, what ``if_drift`` waits for (default: the config's
    ``monitoring.retrain_on``)."""
    registry = ModelRegistry(settings)
    outcome = RetrainOutcome(name, False, "", "drift" if if_drift else "manual")
    documents: dict[str, Any] = {}
    try:
        store: MonitoringStore | None = MonitoringStore.for_reading(settings.monitoring_store_url)
    except DataError as exc:  # nothing logged yet: no drift to see, no feedback to learn from
        store, missing = None, str(exc)
    if if_drift:
        if drift_report is None:
            rows = store.read_log(name, window=window) if store is not None else None
            if rows is None or rows.empty:
                where = store.where if store is not None else missing
                outcome.reason = (
                    f"no logged predictions of '{name}' in the monitoring store ({where}): nothing "
                    "says the data drifted"
                )
                return outcome
            drift_report = drift_for_model(settings, name, rows).to_dict()
        if "dataset_drift" not in drift_report:
            raise DataError("the drift report has no 'dataset_drift' (expected `shipyard drift -o` JSON)")
        outcome.drift_report_id = str(drift_report.get("report_id", "unnamed"))
        outcome.drift_share = drift_report.get("drifted_share")
        if config is None:
            config = recorded_config(registry, name)
        fired = triggers(drift_report, on or config.monitoring.retrain_on)
        if not fired:
            outcome.reason = (
                f"nothing to do: {watching(drift_report, on or config.monitoring.retrain_on)} in "
                f"{outcome.drift_report_id}"
            )
            return outcome
        outcome.trigger = fired[0]
        documents[DRIFT_ARTIFACT] = drift_report
    if config is None:
        config = recorded_config(registry, name)
    extra, outcome.feedback_rejected = (
        feedback_rows(store, name, config) if store is not None else (pd.DataFrame(), 0)
    )
    outcome.feedback_rows = len(extra)
    tags = {TRIGGER_TAG: outcome.trigger, FEEDBACK_ROWS_TAG: str(len(extra))}
    if outcome.drift_report_id:
        tags[DRIFT_REPORT_TAG] = outcome.drift_report_id
    if len(extra):
        digest = pd.util.hash_pandas_object(extra, index=False).to_numpy().tobytes()
        tags[FEEDBACK_HASH_TAG] = hashlib.sha256(digest).hexdigest()
    if settings.model_name is None and config.model_name != name:
        settings = settings.model_copy(update={"model_name": name})
    outcome.summary = run_training(config, settings, reporter, extras=RunExtras(extra, tags, documents))
    outcome.ran = True
    why = {
        "drift": f"dataset drift in {outcome.drift_report_id}",
        "estimated_drop": f"an estimated performance drop in {outcome.drift_report_id}",
    }.get(outcome.trigger, "asked to")
    outcome.reason = f"retrained because of {why} with {len(extra)} feedback row(s)"
    return outcome


def recorded_config(registry: ModelRegistry, name: str) -> PipelineConfig:
    recorded = load_reference(registry, name)
    return parse_config(recorded.config, source=f"config of {name} v{recorded.version}")


def _degraded(report: dict[str, Any]) -> bool:
    return bool((report.get("performance") or {}).get("degraded"))


def triggers(report: dict[str, Any], on: str) -> list[str]:
    """What in ``report`` calls for a retrain under ``on`` (drift | estimated_drop | either)."""
    fired = []
    if on in ("drift", "either") and report["dataset_drift"]:
        fired.append("drift")
    if on in ("estimated_drop", "either") and _degraded(report):
        fired.append("estimated_drop")
    return fired


def watching(report: dict[str, Any], on: str) -> str:
    """What was looked at and found quiet, for the skip reason."""
    said = []
    if on in ("drift", "either"):
        said.append(f"no dataset drift (share {report.get('drifted_share')})")
    if on in ("estimated_drop", "either"):
        estimate = report.get("performance")
        said.append(
            f"estimated {estimate['metric']} {estimate['drop']:+.1%} worse than on the held-out split "
            f"(limit {estimate['max_drop']:.0%})"
            if estimate
            else "no estimated performance (the version keeps no estimator)"
        )
    return " and ".join(said)
