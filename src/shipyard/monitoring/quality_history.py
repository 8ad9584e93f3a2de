"""Data quality per monitoring window, over time: the history of the drift reports the monitor stored.

Every monitoring round stores one drift report per served version (``monitor_results``, kind ``drift``),
and each report carries the data quality of its window, feature by feature: the share of missing
values, the share of values outside the training range (numeric) or of categories training never saw
(categorical), and how many values the model's input rules refused; plus the report's findings
(``quality_issues``). This module reads those reports back, newest first, and lays them out as one row
per window and feature, filtered by feature or by check. Pure but for ``read_quality_history``, which
reads the store; ``shipyard data-quality`` and ``GET /models/{name}/quality/history`` both use it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from shipyard.errors import DataError
from shipyard.monitoring.store import MonitoringStore

DRIFT_KIND = "drift"
Check = Literal["missing", "out_of_range", "unseen_categories", "type_violations"]
CHECKS: tuple[str, ...] = get_args(Check)
MAX_LIMIT = 1000
# a check -> its key in a feature of a stored report (and in the report's quality_issues)
_FEATURE_KEY = {
    "missing": "current_missing",
    "out_of_range": "out_of_range",
    "unseen_categories": "unseen_categories",
    "type_violations": "type_violations",
}


class HistoryQueryError(DataError):
    """A filter of the history that cannot be met (an unknown feature or check, a bad time or limit);
    names the filter. A client's fault over HTTP (422)."""

    http_status = 422

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class QualityRow:
    """One feature in one window: shares of the window's values (``None``: not that feature's kind, or
    no values to judge); ``type_violations`` is a count of refused values."""

    stored_at: float
    version: str | None
    report_id: str | None
    window_rows: int
    feature: str
    missing: float
    out_of_range: float | None
    unseen_categories: float | None
    type_violations: int


@dataclass(frozen=True)
class QualityWindow:
    """One stored drift report: when, which version, how many rows, and its data-quality findings
    (feature -> the checks it failed, as ``DriftReport.quality_issues`` names them)."""

    stored_at: float
    version: str | None
    report_id: str | None
    rows: int
    rows_not_scored: int
    findings: dict[str, dict[str, float]]


@dataclass
class QualityHistory:
    model: str
    windows: list[QualityWindow]  # newest first
    rows: list[QualityRow]  # newest window first, features in the report's order
    features: list[str]  # every feature the windows report on
    feature: str | None = None
    check: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)  # since, until, version, limit as asked

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quality_history(
    results: Iterable[Mapping[str, Any]],
    model: str,
    *,
    feature: str | None = None,
    check: str | None = None,
) -> QualityHistory:
    """Per-window, per-feature data quality from stored drift results (bodies of
    ``DriftReport.to_dict()`` with ``stored_at``, newest first as the store hands them). ``feature``
    keeps that feature's rows (one the windows do not have: a ``DataError`` naming those they have);
    ``check`` keeps only rows where that check is above zero. Findings are narrowed the same way."""
    if check is not None and check not in CHECKS:
        raise HistoryQueryError("check", f"unknown check '{check}' (expected one of: {', '.join(CHECKS)})")
    bodies = list(results)
    features: list[str] = []
    for body in bodies:
        for item in body.get("features") or ():
            if item["name"] not in features:
                features.append(item["name"])
    if feature is not None and bodies and feature not in features:
        raise HistoryQueryError(
            "feature",
            f"unknown feature '{feature}' for '{model}' (the windows read have: {', '.join(features)})",
        )
    windows: list[QualityWindow] = []
    rows: list[QualityRow] = []
    for body in bodies:
        stored_at = float(body["stored_at"])
        version = None if body.get("version") is None else str(body["version"])
        report_id = body.get("report_id")
        window_rows = int(body.get("current_rows") or 0)
        windows.append(
            QualityWindow(
                stored_at,
                version,
                report_id,
                window_rows,
                int(body.get("rows_not_scored") or 0),
                _findings(body.get("quality_issues") or {}, feature, check),
            )
        )
        for item in body.get("features") or ():
            if feature is not None and item["name"] != feature:
                continue
            row = QualityRow(
                stored_at=stored_at,
                version=version,
                report_id=report_id,
                window_rows=window_rows,
                feature=item["name"],
                missing=_share(item.get("current_missing")) or 0.0,
                out_of_range=_share(item.get("out_of_range")),
                unseen_categories=_share(item.get("unseen_categories")),
                type_violations=int(item.get("type_violations") or 0),
            )
            if check is None or (getattr(row, check) or 0) > 0:
                rows.append(row)
    return QualityHistory(model, windows, rows, features, feature, check)


def read_quality_history(
    store: MonitoringStore,
    model: str,
    *,
    version: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
    feature: str | None = None,
    check: str | None = None,
) -> QualityHistory:
    """The latest ``limit`` windows of ``model`` stored between ``since`` and ``until`` (epoch seconds),
    as ``quality_history`` lays them out."""
    if not 1 <= limit <= MAX_LIMIT:
        raise HistoryQueryError("limit", f"expected 1 to {MAX_LIMIT}, got {limit}")
    if since is not None and until is not None and since > until:
        raise HistoryQueryError("since", f"{_iso(since)} is after until ({_iso(until)})")
    results = store.result_history(DRIFT_KIND, model, version=version, since=since, until=until, limit=limit)
    history = quality_history(results, model, feature=feature, check=check)
    history.filters = {"since": since, "until": until, "version": version, "limit": limit}
    return history


def parse_moment(text: str, parameter: str, *, relative: bool = False, now: float | None = None) -> float:
    """Epoch seconds from epoch seconds ('1767225600'), an ISO-8601 time ('2026-01-01T00:00:00Z'; UTC
    when it names no zone) or, with ``relative``, a time ago ('30m', '24h', '7d'); a
    ``HistoryQueryError`` naming ``parameter`` otherwise."""
    value = text.strip()
    ago = _AGO.match(value.lower()) if relative else None
    if ago:
        return (time.time() if now is None else now) - float(ago.group(1)) * _UNIT[ago.group(2)]
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        expected = "epoch seconds, an ISO-8601 time" + (" or a time ago (30m, 24h, 7d)" if relative else "")
        raise HistoryQueryError(parameter, f"expected {expected}; got '{text}'") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _findings(
    issues: Mapping[str, Mapping[str, Any]], feature: str | None, check: str | None
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, found in issues.items():
        if feature is not None and name != feature:
            continue
        kept = {k: v for k, v in found.items() if check is None or k == _FEATURE_KEY[check]}
        if kept:
            out[name] = dict(kept)
    return out


def _share(value: Any) -> float | None:
    """A stored share; ``None`` when absent or not a number (NaN is stored as null)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):  # beyond the years a datetime holds
        return f"{seconds:g}"
