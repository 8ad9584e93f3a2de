"""The two steps every prediction handler shares once it has parsed its body: pick the variant that
answers (and say which in a header), then hand the batch to the data plane."""

from __future__ import annotations

from shipyard.inference import Prediction
from shipyard.inference.records import Batch
from shipyard.serving.ab import Route
from shipyard.serving.calls import Call

VARIANT_HEADER = "X-Shipyard-Variant"


def route_for(call: Call, name: str, key_container: object = None) -> Route:
    """The variant that answers this call; the A/B key comes from the header or ``key_container``."""
    route = call.svc.plane.route(name, call.routing_key(key_container))
    call.response_headers[VARIANT_HEADER] = route.variant
    return route


async def score(route: Route, batch: Batch, call: Call, probabilities: bool = True) -> Prediction:
    return await call.svc.plane.infer(route, batch, call.request_id, probabilities)
