"""How many scoring processes a batch run uses: --workers, else SHIPYARD_BATCH_WORKERS, else every CPU
this process may run on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from shipyard.batch.scoring import resolve_workers, usable_cpus
from shipyard.config import Settings
from shipyard.errors import DataError


def test_every_usable_cpu_by_default(tmp_path: Path) -> None:
    assert resolve_workers(Settings(home=tmp_path)) == usable_cpus() == len(os.sched_getaffinity(0))


def test_the_setting_then_the_option_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_BATCH_WORKERS", "1")
    settings = Settings(home=tmp_path)
    assert settings.batch_workers == 1 and resolve_workers(settings) == 1
    assert resolve_workers(settings, 3) == 3
    with pytest.raises(DataError, match="at least 1"):
        resolve_workers(settings, 0)


def test_zero_workers_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_BATCH_WORKERS", "0")
    with pytest.raises(ValidationError, match="batch_workers"):
        Settings(home=tmp_path)
