"""How the pipeline reports progress: a small protocol the CLI renders and tests can record."""

from __future__ import annotations

from typing import Protocol

from shipyard.training.trainer import TrialResult


class Reporter(Protocol):
    def step(self, name: str, detail: str = "") -> None:
        """A step starts."""

    def done(self, name: str, detail: str = "") -> None:
        """A step ended; ``detail`` says what it produced."""

    def trial(self, result: TrialResult, total: int) -> None:
        """One tuning trial ended."""


class NullReporter:
    def step(self, name: str, detail: str = "") -> None:
        pass

    def done(self, name: str, detail: str = "") -> None:
        pass

    def trial(self, result: TrialResult, total: int) -> None:
        pass
