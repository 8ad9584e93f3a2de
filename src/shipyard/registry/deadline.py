"""Registry calls the service can wait for: a deadline on each, MLflow's HTTP client bounded too, and
store URIs named without their credentials."""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from shipyard.errors import RegistryError

T = TypeVar("T")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact_uri(text: str) -> str:
    """``text`` with the credentials of any URI in it removed (``http://user:token@host`` -> ``http://host``),
    so a store can be named in errors, logs and answers."""
    return _USERINFO.sub("", text)


def bound_mlflow_http(seconds: float) -> None:
    """Make MLflow's own HTTP client give up within about ``seconds`` per request, with no retries.

    Its defaults (120 s per request, 7 retries with backoff) keep one call busy for minutes when a
    tracking server stops answering. For the service's process only, and only where the environment
    does not set them already: an explicit MLFLOW_HTTP_REQUEST_TIMEOUT / _MAX_RETRIES wins (the
    service's own deadline, ``RegistryDeadline``, holds either way)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, math.ceil(seconds))))  # an int
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


class RegistryDeadline:
    """Runs registry calls, each in a thread of its own, and waits at most ``seconds`` for one.

    Waiting in a thread of its own, a call past its deadline holds neither the caller nor a pool's
    worker. While a call is still running past its deadline (the registry hangs), the next one fails at
    once instead of starting another thread that would hang too."""

    def __init__(self, where: str, seconds: float) -> None:
        self.where = where
        self.seconds = seconds
        self._guard = threading.Lock()
        self._overdue: tuple[str, float] | None = None  # what, started (monotonic)

    def call(self, what: str, fn: Callable[[], T]) -> T:
        with self._guard:
            overdue = self._overdue
        if overdue is not None:
            raise RegistryError(
                f"{what}: the registry at {self.where} has not answered an earlier call ({overdue[0]}) "
                f"for {time.monotonic() - overdue[1]:.0f} s"
            )
        started = time.monotonic()
        done = threading.Event()
        result: list[T] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                result.append(fn())
            except BaseException as exc:  # handed to the caller, whatever it is
                failure.append(exc)
            finally:
                done.set()
                with self._guard:
                    if self._overdue is not None and self._overdue[1] == started:
                        self._overdue = None

        threading.Thread(target=run, name=f"registry call: {what}", daemon=True).start()
        if not done.wait(self.seconds):
            with self._guard:
                if not done.is_set():
                    self._overdue = (what, started)
                    raise RegistryError(
                        f"{what}: no answer from the registry at {self.where} within {self.seconds:g} s"
                    )
        if failure:
            raise failure[0]
        return result[0]
