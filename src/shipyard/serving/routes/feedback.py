"""POST /feedback: ground truth by request id, joined with what was predicted; live quality metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request

from shipyard.errors import InvalidRequestError
from shipyard.monitoring.quality import LiveQuality
from shipyard.serving.deps import authorize, services
from shipyard.serving.parsing import JSON_TYPES, parse_json, require_media_type
from shipyard.serving.schemas import FeedbackRequest, FeedbackResponse, ok, problems, request_body

router = APIRouter(tags=["monitoring"])

_BODY = request_body(
    FeedbackRequest,
    examples={
        "one": {"request_id": "6f0c...", "label": "setosa"},
        "many": {
            "feedback": [
                {"request_id": "6f0c...", "labels": ["setosa", "virginica"]},
                {"request_id": "91ab...", "label": "versicolor"},
            ]
        },
    },
)


_SHAPE = 'expected {"request_id": ..., "label": ...} or {"feedback": [{"request_id": ..., "labels": [...]}]}'
_SCALARS = (str, int, float, bool)


def _bad(errors: list[dict[str, Any]]) -> InvalidRequestError:
    return InvalidRequestError("invalid feedback: " + "; ".join(e["msg"] for e in errors[:3]), errors[:20])


def _label_error(label: Any, loc: list[Any]) -> dict[str, Any] | None:
    if label is None or not isinstance(label, _SCALARS):
        return {"loc": loc, "msg": "a label is a string, a number or a boolean", "type": "label_type"}
    if isinstance(label, float) and not math.isfinite(label):
        return {"loc": loc, "msg": "a label must be a finite number", "type": "finite_number"}
    if isinstance(label, int) and not -(2**63) <= label < 2**63:
        return {
            "loc": loc,
            "msg": "number out of range (integers must fit in 64 bits)",
            "type": "number_range",
        }
    if isinstance(label, str) and len(label) > 1000:
        return {"loc": loc, "msg": "a label is at most 1,000 characters", "type": "string_too_long"}
    return None


def _items(body: Any) -> list[tuple[str, list[Any]]]:
    """Validate every item before any is applied, so a bad item changes nothing."""
    if not isinstance(body, Mapping):
        raise _bad([{"loc": [], "msg": _SHAPE, "type": "dict_type"}])
    many = "feedback" in body
    raw = body["feedback"] if many else [body]
    if not isinstance(raw, list) or not raw:
        raise _bad([{"loc": ["feedback"], "msg": "expected a non-empty list", "type": "list_type"}])
    errors: list[dict[str, Any]] = []
    items: list[tuple[str, list[Any]]] = []
    for i, item in enumerate(raw):
        if len(errors) >= 20:
            break
        loc: list[Any] = ["feedback", i] if many else []
        if not isinstance(item, Mapping) or not isinstance(item.get("request_id"), str):
            errors.append(
                {"loc": [*loc, "request_id"], "msg": "expected a request id (string)", "type": "missing"}
            )
            continue
        if not 0 < len(item["request_id"]) <= 128:
            msg = "a request id is 1 to 128 characters (the X-Request-Id a prediction answered)"
            errors.append({"loc": [*loc, "request_id"], "msg": msg, "type": "string_too_long"})
            continue
        if "labels" in item and isinstance(item["labels"], list) and item["labels"]:
            labels, where = list(item["labels"]), [[*loc, "labels", j] for j in range(len(item["labels"]))]
        elif "label" in item and item["label"] is not None:
            labels, where = [item["label"]], [[*loc, "label"]]
        else:
            errors.append(
                {
                    "loc": [*loc, "label"],
                    "msg": "expected 'label' (one row) or 'labels' (a list)",
                    "type": "missing",
                }
            )
            continue
        found = [e for e in map(_label_error, labels, where) if e is not None]
        if found:
            errors.extend(found)
            continue
        items.append((item["request_id"], labels))
    if errors:
        raise _bad(errors)
    return items


def _check_against_predictions(quality: LiveQuality, items: list[tuple[str, list[Any]]]) -> None:
    """Counts must match what was predicted, and a regressor's truth must be a number, before anything is
    recorded (a text label joined to a regressor would break its error metrics for every later call)."""
    for request_id, labels in items:
        rows = quality.predicted_rows(request_id)
        if rows is not None and rows != len(labels):
            msg = f"{len(labels)} label(s) for request {request_id[:64]}, which predicted {rows} row(s)"
            raise InvalidRequestError(
                f"invalid feedback: {msg}", [{"loc": ["feedback"], "msg": msg, "type": "length"}]
            )
        if quality.predicted_by_classifier(request_id) is False:
            for label in labels:
                if isinstance(label, bool) or not isinstance(label, (int, float)):
                    msg = f"request {request_id[:64]} was answered by a regressor: its labels are numbers"
                    raise InvalidRequestError(
                        f"invalid feedback: {msg}", [{"loc": ["feedback"], "msg": msg, "type": "float_type"}]
                    )


@router.post(
    "/feedback",
    summary="Ground truth for earlier predictions, by request id (scope: predict)",
    openapi_extra=_BODY,
    response_model=None,
    responses={**ok(FeedbackResponse), **problems(400, 401, 403, 413, 415, 422)},
)
async def feedback(request: Request) -> dict[str, Any]:
    svc = services(request)
    authorize(request.headers.get("authorization"), svc, "predict")  # before the body is read
    require_media_type(request.headers.get("content-type", ""), JSON_TYPES)
    items = _items(parse_json(await request.body()))
    _check_against_predictions(svc.plane.quality, items)
    quality, metrics = svc.plane.quality, svc.metrics
    matched, unmatched, touched = 0, [], set()
    for request_id, labels in items:
        keys = quality.add_feedback(request_id, labels)
        if not keys:
            unmatched.append(request_id)
            metrics.feedback_unmatched.inc()
            continue
        matched += len(labels)
        touched.update(keys)
        metrics.feedback_rows.labels(keys[0][0]).inc(len(labels))
        if svc.plane.prediction_log is not None:
            svc.plane.prediction_log.submit_feedback(request_id, labels)
    live = {}
    for key in touched:
        values = quality.metrics(key)
        for metric, value in values.items():
            metrics.live_quality.labels(*key, metric).set(value)
        live[f"{key[0]} v{key[1]} ({key[2]})"] = values
    return {"matched_rows": matched, "unmatched": unmatched[:50], "live_quality": live}
