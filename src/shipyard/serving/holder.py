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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shipyard.config.settings import Settings
from shipyard.errors import ModelNotFoundError, RegistryError, ShipyardError
from shipyard.inference.ready import ReadyModel
from shipyard.registry.deadline import RegistryDeadline, bound_mlflow_http
from shipyard.registry.lineage import TAG_PREFIX
from shipyard.registry.models import LoadedModel, ModelRegistry, ModelVersionInfo

log = logging.getLogger(__name__)


class ServedModel(ReadyModel):
    """A ReadyModel as the service holds it: which alias it answers for, since when, and what the API
    reports about it."""

    def __init__(
        self,
        loaded: LoadedModel,
        alias: str,
        loaded_at: datetime,
        fast_path: bool = True,
        regression_rtol: float = 0.0,
    ) -> None:
        super().__init__(loaded, fast_path=fast_path, regression_rtol=regression_rtol)
        self.alias = alias
        self.loaded_at = loaded_at

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
            "classes": self.class_names or None,
            "metrics": {
                k.removeprefix("test_"): v for k, v in self.loaded.metrics.items() if k.startswith("test_")
            },
            "inputs": self.schema.describe(),
            "lineage": lineage,
            "loaded_at": self.loaded_at.isoformat(timespec="seconds"),
            "engine": {"name": self.engine.name, "reason": self.engine_reason},
        }


@dataclass
class RegistryStatus:
    reachable: bool = True
    error: str | None = None
    checked_at: datetime | None = None


Loader = Callable[[str, str], LoadedModel]
Resolver = Callable[[str, str], ModelVersionInfo | None]
UNREACHABLE = "registry unreachable"
RELOAD_SLACK_SECONDS = 1.0  # what /admin/reload may take beyond one alias check's deadline


class HolderObserver:
    """What a ModelHolder tells the outside. Override the events you care about; the rest do nothing."""

    def load_failed(self, name: str) -> None:
        """Loading a version of ``name`` failed; what was served stays served."""

    def check_failed(self) -> None:
        """An alias check could not reach the registry."""

    def swapped(self, new: ServedModel, old: ServedModel | None) -> None:
        """``new`` now answers for its name and alias (``old`` answered before, if anything did)."""

    def retired(self, old: ServedModel) -> None:
        """A challenger stopped being served (its alias moved away)."""


class ModelHolder:
    """Holds one ServedModel per configured name; ``refresh`` follows the alias. Names under A/B test
    (``challenger_names``) also hold the version the challenger alias points at, while there is one.

    With ``check_seconds`` / ``load_seconds``, every alias check / load waits at most that long for the
    registry (``RegistryDeadline``): an outage shows within one check and never holds a refresh for
    longer. Loading, engine selection (the ONNX conversion and its parity check) and warm-up all run in
    a worker thread, never on the event loop."""

    def __init__(
        self,
        names: list[str],
        alias: str,
        loader: Loader,
        resolver: Resolver,
        fast_path: bool = True,
        regression_rtol: float = 0.0,
        challenger_alias: str = "challenger",
        challenger_names: list[str] | None = None,
        where: str = "",
        check_seconds: float | None = None,
        load_seconds: float | None = None,
    ) -> None:
        self.fast_path = fast_path
        self.regression_rtol = regression_rtol
        self.names = list(names)
        self.alias = alias
        self.challenger_alias = challenger_alias
        self.challenger_names = [n for n in challenger_names or [] if n in self.names]
        self._challengers: dict[str, ServedModel] = {}
        self._loader = loader
        self._resolver = resolver
        self._observers: list[HolderObserver] = []
        self._models: dict[str, ServedModel] = {}
        self.errors: dict[str, str] = {}
        self.registry = RegistryStatus()
        self.where = where  # the registry, named without credentials
        self._checks = RegistryDeadline(where or "?", check_seconds) if check_seconds else None
        self._answered = False  # has the registry answered an alias check yet
        self._loads = RegistryDeadline(where or "?", load_seconds) if load_seconds else None
        # /admin/reload answers within this: one alias check's deadline, plus a little
        self.reload_seconds = (check_seconds or 5.0) + RELOAD_SLACK_SECONDS
        self._loading: str | None = None  # what a refresh is loading right now, for /admin/reload
        self._background: set[asyncio.Task[dict[str, str]]] = set()
        self._lock = asyncio.Lock()

    def observe(self, observer: HolderObserver) -> None:
        """The one way to hear what the holder does (the service's metrics, tests): ``observer``'s
        methods are called on every load failure, failed registry check, swap and retirement."""
        self._observers.append(observer)

    def _tell_load_failed(self, name: str) -> None:
        for observer in self._observers:
            observer.load_failed(name)

    def _tell_check_failed(self) -> None:
        for observer in self._observers:
            observer.check_failed()

    def _tell_swapped(self, new: ServedModel, old: ServedModel | None) -> None:
        for observer in self._observers:
            observer.swapped(new, old)

    def _tell_retired(self, old: ServedModel) -> None:
        for observer in self._observers:
            observer.retired(old)

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelHolder:
        registry = ModelRegistry(settings)
        if any(not uri.startswith(("sqlite:", "file:", "/")) for uri in (registry.where, registry.store)):
            bound_mlflow_http(settings.registry_timeout_seconds)  # over HTTP: MLflow's retries, bounded
        return cls(
            settings.models,
            settings.champion_alias,
            loader=lambda name, alias: registry.load(name, alias),
            resolver=registry.version_by_alias,
            fast_path=settings.fast_path,
            regression_rtol=settings.onnx_regression_rtol,
            challenger_alias=settings.challenger_alias,
            challenger_names=[n for n in settings.models if settings.ab_enabled(n)],
            where=registry.where,
            check_seconds=settings.registry_timeout_seconds,
            load_seconds=settings.registry_load_timeout_seconds,
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

    def _registry(self) -> str:
        return f"the registry at {self.where}" if self.where else "the registry"

    def _serving(self) -> str:
        served = ", ".join(f"{m.name} v{m.version}" for m in self.loaded())
        return f"still serving {served}" if served else "no model is loaded"

    # --- changing --------------------------------------------------------------------------------
    def _resolve(self, name: str, alias: str) -> ModelVersionInfo | None:
        """The version ``alias`` points at, within the check deadline. Until the registry has answered
        once, the load deadline applies instead: the first call imports MLflow's client and opens (or
        migrates) the store, which takes seconds on a busy machine and is no sign of an outage."""
        deadline = self._checks if self._answered else self._loads or self._checks
        if deadline is None:
            return self._resolver(name, alias)
        found = deadline.call(f"model '{name}' alias '{alias}'", lambda: self._resolver(name, alias))
        self._answered = True
        return found

    def _load(self, name: str, ref: str, alias: str) -> ServedModel:
        """Load, select the engine (ONNX conversion and parity check) and warm up: the caller's thread,
        never the event loop."""
        self._loading = f"{name} version {ref}"
        try:
            if self._loads is None:
                loaded = self._loader(name, ref)
            else:
                loaded = self._loads.call(f"load {name} version {ref}", lambda: self._loader(name, ref))
            served = ServedModel(loaded, alias, datetime.now(tz=UTC), self.fast_path, self.regression_rtol)
            started = time.perf_counter()
            served.warm_up()
        finally:
            self._loading = None
        log.info(
            "loaded %s v%s on %s (%s; warm-up %.1f ms)",
            name,
            served.version,
            served.engine.name,
            served.engine_reason,
            (time.perf_counter() - started) * 1e3,
        )
        return served

    async def refresh(self, outcome: dict[str, str] | None = None) -> dict[str, str]:
        """Check every alias; load, warm and swap what moved. Returns name -> what happened (also
        written into ``outcome`` as it goes). Once the registry fails a check, the rest of the round is
        not asked again: the round ends within one check's deadline."""
        outcome = {} if outcome is None else outcome
        async with self._lock:
            for name in self.names:
                if UNREACHABLE in outcome.values():
                    outcome[name] = self._skipped(name)
                else:
                    outcome[name] = await asyncio.to_thread(self._refresh_one, name)
            for name in self.challenger_names:
                key = f"{name}@{self.challenger_alias}"
                if UNREACHABLE in outcome.values():
                    outcome[key] = UNREACHABLE
                else:
                    outcome[key] = await asyncio.to_thread(self._refresh_challenger, name)
            return outcome

    def _skipped(self, name: str) -> str:
        if name not in self._models:
            self.errors[name] = f"{UNREACHABLE}: {self.registry.error}"
        return UNREACHABLE

    async def reload(self) -> dict[str, str]:
        """``refresh`` now, for ``POST /admin/reload``. While the registry does not answer, this raises
        ``RegistryError`` (503, naming it) within ``reload_seconds``, and what is served stays served.
        A version the registry did hand over is waited for: the answer comes once it is loaded and
        swapped (a load is bounded by ``load_seconds`` on the registry's side)."""
        outcome: dict[str, str] = {}
        task = asyncio.ensure_future(self.refresh(outcome))
        self._background.add(task)  # it may outlive this request: keep it referenced until done
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_settled)
        progress = time.monotonic()  # the last moment the registry was known to be handing a model over
        while not task.done():
            await asyncio.wait({task}, timeout=0.1)
            if self._loading is not None:
                progress = time.monotonic()
            elif not task.done() and time.monotonic() - progress > self.reload_seconds:
                raise RegistryError(
                    f"no answer from {self._registry()} within {self.reload_seconds:g} s; {self._serving()}"
                )
        task.result()  # an unexpected failure of the refresh is this request's too
        if UNREACHABLE in outcome.values():
            raise RegistryError(
                f"{self._registry()} is unreachable ({self.registry.error}); {self._serving()}"
            )
        return dict(outcome)

    def _check_failed(self, exc: RegistryError) -> None:
        self.registry = RegistryStatus(False, str(exc), datetime.now(tz=UTC))
        self._tell_check_failed()

    def _refresh_challenger(self, name: str) -> str:
        """Like the champion, except that a challenger whose alias went away stops being served (the
        gate clears the alias when it promotes, which ends the test)."""
        current = self._challengers.get(name)
        try:
            target = self._resolve(name, self.challenger_alias)
        except RegistryError as exc:
            self._check_failed(exc)
            log.warning("registry check failed, keeping the challenger loaded: %s", exc)
            return UNREACHABLE
        if target is None:
            if current is None:
                return "no challenger"
            del self._challengers[name]
            self._tell_retired(current)
            return f"challenger version {current.version} retired (alias gone)"
        if current is not None and current.version == target.version:
            return "unchanged"
        champion = self._models.get(name)
        if champion is not None and champion.version == target.version:
            if current is not None:
                del self._challengers[name]
                self._tell_retired(current)
            return "challenger is the champion; nothing to test"
        try:
            fresh = self._load(name, target.version, self.challenger_alias)
        except (ShipyardError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            self._tell_load_failed(name)
            log.error("loading challenger %s v%s failed: %s", name, target.version, exc)
            return "load failed"
        self._challengers[name] = fresh
        self._tell_swapped(fresh, current)
        return f"loaded version {fresh.version}" + (f" (was {current.version})" if current else "")

    def _refresh_one(self, name: str) -> str:
        current = self._models.get(name)
        try:
            target = self._resolve(name, self.alias)
            self.registry = RegistryStatus(True, None, datetime.now(tz=UTC))
        except RegistryError as exc:
            self._check_failed(exc)
            if current is None:
                self.errors[name] = f"{UNREACHABLE}: {exc}"
            log.warning("registry check failed, keeping what is loaded: %s", exc)
            return UNREACHABLE
        if target is None:
            self.errors[name] = f"no version has alias '{self.alias}'"
            return "no such alias" if current is None else "alias gone; keeping loaded version"
        if current is not None and current.version == target.version:
            return "unchanged"
        try:
            fresh = self._load(name, target.version, self.alias)
        except (ShipyardError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            self.errors[name] = f"loading version {target.version} failed: {exc}"
            self._tell_load_failed(name)
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
        self._tell_swapped(fresh, current)
        return f"loaded version {fresh.version}" + (f" (was {current.version})" if current else "")


def _settled(task: asyncio.Task[dict[str, str]]) -> None:
    """A reload's refresh that outlived its request: its failure is logged, not left unretrieved."""
    if not task.cancelled() and task.exception() is not None:
        log.error("a refresh started by /admin/reload failed", exc_info=task.exception())


def _no_loader(name: str, ref: str) -> LoadedModel:
    raise ModelNotFoundError(f"no registry behind this holder; cannot load {name}@{ref}")


def _no_resolver(name: str, alias: str) -> ModelVersionInfo | None:
    return None
