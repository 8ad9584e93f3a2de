"""scripts/test_clock_skew.sh: pytest with the clock moved forward after collection, the check that no
test depends on when it runs. Shown to bite: a timestamp taken at import fails under it and passes
without it; one taken inside the test passes under it."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import missing_external

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "test_clock_skew.sh"

STALE = """
import time

STAMP = time.time()  # at import, as a parametrised token used to be minted


def test_stamp_is_fresh():
    assert time.time() - STAMP < 600
"""

FRESH = """
import time


def test_stamp_is_fresh():
    stamp = time.time()
    assert time.time() - stamp < 600
"""


def run(folder: Path, *, skewed: bool) -> subprocess.CompletedProcess[str]:
    # the project's own hook, loaded by a conftest beside the probe test (PYTHONPATH finds `tests`)
    (folder / "conftest.py").write_text("from tests.conftest import pytest_collection_finish  # noqa: F401\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKETIME", "SHIPYARD_", "LD_PRELOAD"))}
    env["PYTHONPATH"] = str(REPO)
    env["PYTEST"] = str(Path(sys.executable).parent / "pytest")
    pytest_args = ["-q", "-p", "no:cacheprovider", "--rootdir", str(folder), str(folder)]
    command = [str(SCRIPT), *pytest_args] if skewed else [env["PYTEST"], *pytest_args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def libfaketime() -> None:
    if not glob.glob("/usr/lib/*/faketime/libfaketime.so.1") and not os.environ.get("FAKETIME_LIB"):
        missing_external("libfaketime (Debian package 'faketime') is not installed")


def test_a_timestamp_taken_at_import_fails_under_the_moved_clock(tmp_path: Path, libfaketime: None) -> None:
    (tmp_path / "test_probe.py").write_text(STALE)
    plain = run(tmp_path, skewed=False)
    assert plain.returncode == 0, plain.stdout + plain.stderr  # the probe is only stale with the skew
    moved = run(tmp_path, skewed=True)
    assert moved.returncode == 1, moved.stdout + moved.stderr
    assert "1 failed" in moved.stdout and "assert" in moved.stdout


def test_a_timestamp_taken_in_the_test_passes_under_the_moved_clock(
    tmp_path: Path, libfaketime: None
) -> None:
    (tmp_path / "test_probe.py").write_text(FRESH)
    moved = run(tmp_path, skewed=True)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "1 passed" in moved.stdout
