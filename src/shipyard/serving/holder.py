"""ModelHolder: the loaded models, swapped atomically when an alias moves in the registry.

A request takes a reference to one ``ServedModel`` and keeps it to the end, so a swap never changes the
model under a request in flight. A new version is loaded and warmed beside the old one; only then does
the dict entry change. A failed load keeps the old model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from shipyard.config.settings import Settings
from shipyard.errors import ModelNotFoundError, RegistryError, ShipyardError
from shipyard.inference.engines import Engine, select_engine
from shipyard.inference.records import Batch, InputSchema
from shipyard.registry.lineage import TAG_PREFIX
from shipyard.registry.models import LoadedModel, ModelRegistry, ModelVersionInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    values: list[Any]
    probabilities: list[dict[str, float]] | None
    classes: list[str] | None


@dataclass
class ServedModel:
    """One loaded, warmed model version, the engine that runs it and what the API reports about it."""

    loaded: LoadedModel
    alias: str
    loaded_at: datetime
    fast_path: bool = True
    regression_rtol: float = 0.0
    schema: InputSchema = field(init=False)
    engine: Engine = field(init=False)
    engine_reason: str = field(init=False)

    def __post_init__(self) -> None:
        self.schema = InputSchema(self.loaded.inputs)
        self.engine, self.engine_reason = select_engine(self.loaded, self.fast_path, self.regression_rtol)

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def version(self) -> str:
        return self.loaded.version

    @property
    def is_classifier(self) -> bool:
        return self.loaded.classes is not None and hasattr(self.loaded.model, "predict_proba")

    def predict(self, batch: Batch, probabilities: bool = True) -> Prediction:
        """Predictions for a validated batch; class probabilities only when the route answers them."""
        values, proba = self.engine.predict(batch)
        if not self.is_classifier or proba is None:
            return Prediction(np.asarray(values, dtype=float).tolist(), None, None)
        classes = self.class_names
        labels = values.tolist() if isinstance(values, np.ndarray) else [_plain(v) for v in values]
        if not probabilities:
            return Prediction(labels, None, classes)
        table = [dict(zip(classes, row, strict=True)) for row in np.asarray(proba, dtype=float).tolist()]
        return Prediction(labels, table, classes)

    @property
    def class_names(self) -> list[str]:
        return [str(c) for c in self.loaded.classes or []]

    def warm_up(self) -> None:
        """One prediction on the input example, so the first client request pays no lazy set-up."""
        example = self.loaded.input_example
        if isinstance(example, pd.DataFrame) and not example.empty and self.loaded.inputs:
            records = example.head(1).to_dict("records")
            clean = [
                {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
                for r in records
            ]
            self.predict(self.schema.batch_from_records(clean))

    def describe(self) -> dict[str, Any]:
        lineage = {
            k.removeprefix(TAG_PREFIX): v for k, v in self.loaded.tags.items() if k.startswith(TAG_PREFIX)
        }
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.loaded.run_id,
            "task": "classification" if self.is_classifier else "regression",
            "classes": [str(c) for c in self.loaded.classes]
            if self.is_classifier and self.loaded.classes
            else None,
            "metrics": {
                k.removeprefix("test_"): v for k, v in self.loaded.metrics.items() if k.startswith("test_")
            },
            "inputs": self.schema.describe(),
            "lineage": lineage,
            "loaded_at": self.loaded_at.isoformat(timespec="seconds"),
            "engine": {"name": self.engine.name, "reason": self.engine_reason},
        }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class RegistryStatus:
    reachable: bool = True
    error: str | None = None
    checked_at: datetime | None = None


Loader = Callable[[str, str], LoadedModel]
Resolver = Callable[[str, str], ModelVersionInfo | None]


class ModelHolder:
    """Holds one ServedModel per configured name; ``refresh`` follows the alias. Names under A/B test
    (``challenger_names``) also hold the version the challenger alias points at, while there is one."""

    def __init__(
        self,
        names: list[str],
        alias: str,
        loader: Loader,
        resolver: Resolver,
        on_load_failure: Callable[[str], None] | None = None,
        on_check_failure: Callable[[], None] | None = None,
        on_swap: Callable[[ServedModel, ServedModel | None], None] | None = None,
        fast_path: bool = True,
        regression_rtol: float = 0.0,
        challenger_alias: str = "challenger",
        challenger_names: list[str] | None = None,
    ) -> None:
        self.fast_path = fast_path
        self.regression_rtol = regression_rtol
        self.names = list(names)
        self.alias = alias
        self.challenger_alias = challenger_alias
        self.challenger_names = [n for n in challenger_names or [] if n in self.names]
        self._challengers: dict[str, ServedModel] = {}
        self._on_retire: Callable[[ServedModel], None] = lambda old: None
        self._loader = loader
        self._resolver = resolver
        self._on_load_failure = on_load_failure or (lambda name: None)
        self._on_check_failure = on_check_failure or (lambda: None)
        self._on_swap = on_swap or (lambda new, old: None)
        self._models: dict[str, ServedModel] = {}
        self.errors: dict[str, str] = {}
        self.registry = RegistryStatus()
        self._lock = asyncio.Lock()

    def bind(
        self,
        on_load_failure: Callable[[str], None],
        on_check_failure: Callable[[], None],
        on_swap: Callable[[ServedModel, ServedModel | None], None],
        on_retire: Callable[[ServedModel], None] | None = None,
    ) -> None:
        """Add observers (the service's metrics) next to the ones given at construction; ``on_retire``
        hears of a challenger that stopped being served (its alias moved away)."""
        if on_retire is not None:
            self._on_retire = on_retire
        before_load, before_check, before_swap = self._on_load_failure, self._on_check_failure, self._on_swap

        def load_failed(name: str) -> None:
            before_load(name)
            on_load_failure(name)

        def check_failed() -> None:
            before_check()
            on_check_failure()

        def swapped(new: ServedModel, old: ServedModel | None) -> None:
            before_swap(new, old)
            on_swap(new, old)

        self._on_load_failure, self._on_check_failure, self._on_swap = load_failed, check_failed, swapped

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelHolder:
        registry = ModelRegistry(settings)
        return cls(
            settings.models,
            settings.champion_alias,
            loader=lambda name, alias: registry.load(name, alias),
            resolver=registry.version_by_alias,
            fast_path=settings.fast_path,
            regression_rtol=settings.onnx_regression_rtol,
            challenger_alias=settings.challenger_alias,
            challenger_names=[n for n in settings.models if settings.ab_enabled(n)],
        )

    @classmethod
    def of(cls, *models: ServedModel, challengers: tuple[ServedModel, ...] = ()) -> ModelHolder:
        """A holder around models already loaded (tests, embedding); it never checks a registry."""
        holder = cls(
            [m.name for m in models],
            models[0].alias if models else "champion",
            _no_loader,
            _no_resolver,
            challenger_alias=challengers[0].alias if challengers else "challenger",
            challenger_names=[m.name for m in challengers],
        )
        holder._models = {m.name: m for m in models}
        holder._challengers = {m.name: m for m in challengers}
        return holder

    # --- reading -------------------------------------------------------------------------------
    def get(self, name: str) -> ServedModel:
        model = self._models.get(name)
        if model is None:
            if name in self.names:
                reason = self.errors.get(name, "not loaded yet")
                raise ModelNotFoundError(f"model '{name}' is configured but not loaded: {reason}")
            raise ModelNotFoundError(
                f"model '{name}' is not served here (served: {', '.join(self.names) or 'none'})"
            )
        return model

    def loaded(self) -> list[ServedModel]:
        return [self._models[n] for n in self.names if n in self._models]

    def challenger(self, name: str) -> ServedModel | None:
        """The challenger of ``name`` when it is under A/B test and its challenger alias is set."""
        return self._challengers.get(name)

    def challengers(self) -> list[ServedModel]:
        return [self._challengers[n] for n in self.names if n in self._challengers]

    @property
    def ready(self) -> bool:
        return bool(self.names) and all(n in self._models for n in self.names)

    # --- changing --------------------------------------------------------------------------------
    def _load(self, name: str, ref: str, alias: str) -> ServedModel:
        loaded = self._loader(name, ref)
        served = ServedModel(loaded, alias, datetime.now(tz=UTC), self.fast_path, self.regression_rtol)
        started = time.perf_counter()
        served.warm_up()
        log.info(
            "loaded %s v%s on %s (%s; warm-up %.1f ms)",
            name,
            served.version,
            served.engine.name,
            served.engine_reason,
            (time.perf_counter() - started) * 1e3,
        )
        return served

    async def refresh(self) -> dict[str, str]:
        """Check every alias; load, warm and swap what moved. Returns name -> what happened."""
        async with self._lock:
            outcome: dict[str, str] = {}
            for name in self.names:
                outcome[name] = await asyncio.to_thread(self._refresh_one, name)
            for name in self.challenger_names:
                key = f"{name}@{self.challenger_alias}"
                outcome[key] = await asyncio.to_thread(self._refresh_challenger, name)
            return outcome

    def _refresh_challenger(self, name: str) -> str:
        """Like the champion, except that a challenger whose alias went away stops being served (the
        gate clears the alias when it promotes, which ends the test)."""
        current = self._challengers.get(name)
        try:
            target = self._resolver(name, self.challenger_alias)
        except RegistryError as exc:
            self._on_check_failure()
            log.warning("registry check failed, keeping the challenger loaded: %s", exc)
            return "registry unreachable"
        if target is None:
            if current is None:
                return "no challenger"
            del self._challengers[name]
            self._on_retire(current)
            return f"challenger version {current.version} retired (alias gone)"
        if current is not None and current.version == target.version:
            return "unchanged"
        champion = self._models.get(name)
        if champion is not None and champion.version == target.version:
            if current is not None:
                del self._challengers[name]
                self._on_retire(current)
            return "challenger is the champion; nothing to test"
        try:
            fresh = self._load(name, target.version, self.challenger_alias)
        except (ShipyardError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            self._on_load_failure(name)
            log.error("loading challenger %s v%s failed: %s", name, target.version, exc)
            return "load failed"
        self._challengers[name] = fresh
        self._on_swap(fresh, current)
        return f"loaded version {fresh.version}" + (f" (was {current.version})" if current else "")

    def _refresh_one(self, name: str) -> str:
        current = self._models.get(name)
        try:
            target = self._resolver(name, self.alias)
            self.registry = RegistryStatus(True, None, datetime.now(tz=UTC))
        except RegistryError as exc:
            self.registry = RegistryStatus(False, str(exc), datetime.now(tz=UTC))
            self._on_check_failure()
            log.warning("registry check failed, keeping what is loaded: %s", exc)
            return "registry unreachable"
        if target is None:
            self.errors[name] = f"no version has alias '{self.alias}'"
            return "no such alias" if current is None else "alias gone; keeping loaded version"
        if current is not None and current.version == target.version:
            return "unchanged"
        try:
            fresh = self._load(name, target.version, self.alias)
        except (ShipyardError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            self.errors[name] = f"loading version {target.version} failed: {exc}"
            self._on_load_failure(name)
            log.error(
                "loading %s v%s failed, keeping %s: %s",
                name,
                target.version,
                f"v{current.version}" if current else "nothing",
                exc,
            )
            return "load failed"
        self._models[name] = fresh  # the swap: one reference assignment
        self.errors.pop(name, None)
        self._on_swap(fresh, current)
        return f"loaded version {fresh.version}" + (f" (was {current.version})" if current else "")


def _no_loader(name: str, ref: str) -> LoadedModel:
    raise ModelNotFoundError(f"no registry behind this holder; cannot load {name}@{ref}")


def _no_resolver(name: str, alias: str) -> ModelVersionInfo | None:
    return None
