"""A/B routing: which variant of a model answers a request.

Sticky by a request key through a stable hash (BLAKE2b of model name and key), so one key gets the same
variant in every worker process, on every replica and after restarts; without a key the draw is
random. In shadow mode the champion always answers and the challenger scores the same rows on the side.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from shipyard.config.settings import Settings
from shipyard.monitoring.store import SHADOW_VARIANT
from shipyard.serving.holder import ModelHolder, ServedModel

CHAMPION = "champion"
CHALLENGER = "challenger"
SHADOW = SHADOW_VARIANT  # the variant name of the challenger's logged, unreturned answers

_SCALE = float(2**64)


def bucket(name: str, key: str) -> float:
    """A number in [0, 1) fixed by (model, key): the same on every process and machine."""
    digest = hashlib.blake2b(f"{name}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True, slots=True)
class Route:
    model: ServedModel
    variant: str
    shadow: ServedModel | None = None


class Router:
    """Chooses the variant per request from the holder's champion and challenger of a model."""

    def __init__(self, settings: Settings) -> None:
        self.mode = settings.ab_mode
        self.split = settings.ab_split
        self.header = settings.ab_key_header.lower().encode("latin-1")
        self.field = settings.ab_key_field
        self._champion_routes: dict[str, Route] = {}  # one Route per served champion, not one per request

    def _to_champion(self, champion: ServedModel) -> Route:
        route = self._champion_routes.get(champion.name)
        if route is None or route.model is not champion:
            route = self._champion_routes[champion.name] = Route(champion, CHAMPION)
        return route

    def route(self, holder: ModelHolder, name: str, key: str | None) -> Route:
        champion = holder.get(name)
        if self.mode == "off":
            return self._to_champion(champion)
        challenger = holder.challenger(name)
        if challenger is None:
            return self._to_champion(champion)
        if self.mode == "shadow":
            return Route(champion, CHAMPION, shadow=challenger)
        draw = bucket(name, key) if key else random.random()
        return Route(challenger, CHALLENGER) if draw < self.split else self._to_champion(champion)
