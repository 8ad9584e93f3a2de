"""POST /feedback: ground truth by request id, joined with what was predicted; live quality metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request

from shipyard.errors import PredictionInputError
from shipyard.serving.calls import call_from_request
from shipyard.serving.deps import authorize
from shipyard.serving.parsing import JSON_TYPES, parse_json, require_media_type

router = APIRouter(tags=["monitoring"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "examples": {
                    "one": {"value": {"request_id": "6f0c...", "label": "setosa"}},
                    "many": {
                        "value": {
                            "feedback": [
                                {"request_id": "6f0c...", "labels": ["setosa", "virginica"]},
                                {"request_id": "91ab...", "label": "versicolor"},
                            ]
                        }
                    },
                },
            }
        },
    }
}


def _items(body: Any) -> list[tuple[str, list[Any]]]:
    """Validate every item before any is applied, so a bad item changes nothing."""
    raw = body.get("feedback") if isinstance(body, Mapping) and "feedback" in body else [body]
    if not isinstance(raw, list) or not raw:
        raise PredictionInputError(
            "invalid feedback",
            [{"loc": ["feedback"], "msg": "expected a non-empty list", "type": "list_type"}],
        )
    errors: list[dict[str, Any]] = []
    items: list[tuple[str, list[Any]]] = []
    for i, item in enumerate(raw):
        loc: list[Any] = ["feedback", i] if len(raw) > 1 or "feedback" in body else []
        if not isinstance(item, Mapping) or not isinstance(item.get("request_id"), str):
            errors.append(
                {"loc": [*loc, "request_id"], "msg": "expected a request id (string)", "type": "missing"}
            )
            continue
        if "labels" in item and isinstance(item["labels"], list) and item["labels"]:
            labels = list(item["labels"])
        elif "label" in item and item["label"] is not None and not isinstance(item["label"], (list, dict)):
            labels = [item["label"]]
        else:
            errors.append(
                {
                    "loc": [*loc, "label"],
                    "msg": "expected 'label' (one row) or 'labels' (a list)",
                    "type": "missing",
                }
            )
            continue
        items.append((item["request_id"], labels))
    if errors:
        raise PredictionInputError(
            "invalid feedback: " + "; ".join(e["msg"] for e in errors[:3]), errors[:20]
        )
    return items


@router.post(
    "/feedback",
    summary="Ground truth for earlier predictions, by request id (scope: predict)",
    openapi_extra=_BODY,
)
async def feedback(request: Request) -> dict[str, Any]:
    call = await call_from_request(request)
    svc = call.svc
    authorize(call.authorization, svc, "predict")
    require_media_type(call.content_type, JSON_TYPES)
    items = _items(parse_json(call.body))
    quality, metrics = svc.quality, svc.metrics
    for request_id, labels in items:  # counts must match before anything is recorded
        rows = quality.predicted_rows(request_id)
        if rows is not None and rows != len(labels):
            msg = f"{len(labels)} label(s) for request {request_id}, which predicted {rows} row(s)"
            raise PredictionInputError(
                f"invalid feedback: {msg}", [{"loc": ["feedback"], "msg": msg, "type": "length"}]
            )
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
        if svc.prediction_log is not None:
            svc.prediction_log.submit_feedback(request_id, labels)
    live = {}
    for key in touched:
        values = quality.metrics(key)
        for metric, value in values.items():
            metrics.live_quality.labels(*key, metric).set(value)
        live[f"{key[0]} v{key[1]} ({key[2]})"] = values
    return {"matched_rows": matched, "unmatched": unmatched[:50], "live_quality": live}
