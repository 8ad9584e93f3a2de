"""POST /feedback: ground truth by request id, stored in the monitoring store before the answer.

Any replica takes feedback for any request: the label is stored whichever replica answered, and the
monitor joins it to the answer in the store. The replica that answered checks the label count (and
numbers for a regressor) at once; with the in-process monitor the answer carries the live quality."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from shipyard.errors import InvalidRequestError, StoreUnavailableError
from shipyard.monitoring.quality import RecentAnswers
from shipyard.serving.dataplane import DataPlane
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


def _check_against_predictions(recent: RecentAnswers, items: list[tuple[str, list[Any]]]) -> None:
    """Counts must match what was predicted, and a regressor's truth must be a number, before anything is
    recorded (a text label joined to a regressor would break its error metrics for every later call)."""
    for request_id, labels in items:
        served = recent.answered(request_id)
        if served is None:
            continue  # answered elsewhere or long ago: the store's join skips counts that do not match
        rows = len(served.predictions)
        if rows != len(labels):
            msg = f"{len(labels)} label(s) for request {request_id[:64]}, which predicted {rows} row(s)"
            raise InvalidRequestError(
                f"invalid feedback: {msg}", [{"loc": ["feedback"], "msg": msg, "type": "length"}]
            )
        if not served.classifier:
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
    responses={**ok(FeedbackResponse), **problems(400, 401, 403, 413, 415, 422, 503)},
)
async def feedback(request: Request) -> dict[str, Any]:
    svc = services(request)
    authorize(request.headers.get("authorization"), svc, "predict")  # before the body is read
    require_media_type(request.headers.get("content-type", ""), JSON_TYPES)
    items = _items(parse_json(await request.body()))
    plane = svc.plane
    _check_against_predictions(plane.recent, items)
    if plane.store is None:
        raise StoreUnavailableError("the monitoring store is not open yet")
    await run_in_threadpool(plane.store.write_feedback, items)  # stored before the answer
    metrics = svc.metrics
    matched, unmatched, models = 0, [], set()
    for request_id, labels in items:
        served = plane.recent.answered(request_id)
        if served is None:
            unmatched.append(request_id)
            metrics.feedback_unmatched.inc()
            continue
        matched += len(labels)
        models.add(served.model)
        metrics.feedback_rows.labels(served.model).inc(len(labels))
    live = await _live_quality(plane, models, everything=bool(unmatched))
    return {
        "stored_rows": sum(len(labels) for _, labels in items),
        "matched_rows": matched,
        "unmatched": unmatched[:50],
        "live_quality": live,
    }


async def _live_quality(plane: DataPlane, models: set[str], everything: bool) -> dict[str, dict[str, float]]:
    """With the in-process monitor: quality of the models touched, recomputed from the store now
    (``everything``: of every served model, since a label for a request this process does not remember
    may grade any of them). With a separate monitor: empty (its /models/{name}/quality has it)."""
    monitor = plane.monitor
    if monitor is None:
        return {}
    if everything and plane.holder is not None:
        models |= {m.name for m in plane.holder.loaded()}
    if plane.prediction_log is not None:
        await run_in_threadpool(plane.prediction_log.flush)  # answers still buffered join too
    live = {}
    for model in sorted(models):
        for (version, variant), values in (await run_in_threadpool(monitor.quality, model)).items():
            live[f"{model} v{version} ({variant})"] = values
    return live
