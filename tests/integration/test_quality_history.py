"""Data quality per monitoring window, stored and queryable: drift reports of windows with injected
problems stored in a real SQLite monitoring store, read back through the store, the api's and the
monitor's ``GET /models/{name}/quality/history`` and ``shipyard data-quality``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from shipyard.cli.data_quality import Check as CliCheck
from shipyard.cli.main import app as cli
from shipyard.cli.main import main
from shipyard.config import Settings
from shipyard.config.loading import parse_config
from shipyard.config.settings import get_settings
from shipyard.errors import DataError
from shipyard.monitoring.drift import DriftReport, compute_drift
from shipyard.monitoring.quality_history import (
    CHECKS,
    HistoryQueryError,
    parse_moment,
    quality_history,
    read_quality_history,
)
from shipyard.monitoring.store import MonitoringStore
from shipyard.serving import create_app
from shipyard.serving.holder import ModelHolder
from shipyard.serving.monitor_app import create_monitor_app
from tests.conftest import merge, raw_config
from tests.unit.conftest import loaded_from_config, served

pytestmark = pytest.mark.integration

KINDS = {"x": "numeric", "y": "numeric", "color": "categorical"}
WINDOW = 100


def reference_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(10, 2, 500),
            "y": rng.uniform(0, 1, 500),
            "color": rng.choice(["red", "green", "blue"], 500),
        }
    )


def window(seed: int, problem: str | None) -> pd.DataFrame:
    """``WINDOW`` rows drawn from the reference (so within its range, no new category), with one problem
    injected: 30 missing ``y``, 25 ``x`` beyond the training maximum, or 10 unseen colours."""
    reference = reference_frame()
    rows = reference.sample(WINDOW, random_state=seed).reset_index(drop=True)
    if problem == "missing":
        rows.loc[:29, "y"] = np.nan
    elif problem == "out_of_range":
        rows.loc[:24, "x"] = reference["x"].max() + 5.0
    elif problem == "unseen":
        rows.loc[:9, "color"] = "purple"
    return rows


def store_window(
    store: MonitoringStore, model: str, version: str, current: pd.DataFrame, **extra: Any
) -> DriftReport:
    """What a monitoring round stores: the window's drift report as ``Monitor.drift`` saves it."""
    report = compute_drift(reference_frame(), current, KINDS, model=model, version=version, **extra)
    store.save_result("drift", model, version, "", report.to_dict())
    return report


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """The CLI reads the process-wide settings once: each test's environment must be read anew."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MonitoringStore]:
    opened = MonitoringStore.open(f"sqlite:///{tmp_path / 'monitoring.db'}")
    yield opened
    opened.close()


@pytest.fixture
def windows(store: MonitoringStore) -> list[DriftReport]:
    """Five windows of 'sensor' stored oldest first: clean, missing y, x out of range, unseen colours
    (all version 1), then version 2 with 3 values of x refused by the model's rules; plus noise the
    history must not pick up (another model, another kind)."""
    reports = [
        store_window(store, "sensor", "1", window(1, None)),
        store_window(store, "sensor", "1", window(2, "missing")),
        store_window(store, "sensor", "1", window(3, "out_of_range")),
        store_window(store, "sensor", "1", window(4, "unseen")),
        store_window(
            store,
            "sensor",
            "2",
            window(5, None),
            violations={"x": (3, "expected a number, got 'n/a'")},
            rows_not_scored=3,
        ),
    ]
    store_window(store, "other", "1", window(6, "missing"))
    store.save_result("quality", "sensor", "1", "champion", {"metrics": {"accuracy": 1.0}})
    return reports


def cell(history: Any, stored_at: float, feature: str) -> Any:
    (found,) = [r for r in history.rows if r.stored_at == stored_at and r.feature == feature]
    return found


def test_the_store_hands_back_drift_results_newest_first_with_their_time(
    store: MonitoringStore, windows: list[DriftReport]
) -> None:
    results = store.result_history("drift", "sensor")
    assert [r["report_id"] for r in results] == [w.report_id for w in reversed(windows)]
    stamps = [r["stored_at"] for r in results]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == 5
    assert {r["model"] for r in results} == {"sensor"}  # not the other model's, not the quality result
    assert [r["version"] for r in store.result_history("drift", "sensor", version="2")] == ["2"]
    assert len(store.result_history("drift", "sensor", limit=2)) == 2
    assert store.result_history("quality", "sensor")[0]["metrics"] == {"accuracy": 1.0}
    assert store.result_history("drift", "nobody") == []
    # the latest result is the head of the history
    latest = store.latest_result("drift", "sensor")
    assert latest is not None and latest["report_id"] == results[0]["report_id"]


def test_the_history_lays_out_each_window_and_feature_with_its_shares(
    store: MonitoringStore, windows: list[DriftReport]
) -> None:
    history = read_quality_history(store, "sensor")
    clean, missing, outside, unseen, refused = reversed(history.windows)
    assert [w.report_id for w in history.windows] == [w.report_id for w in reversed(windows)]
    assert history.features == ["x", "y", "color"] and len(history.rows) == 5 * 3
    assert [w.rows for w in history.windows] == [WINDOW] * 5
    assert [w.version for w in history.windows] == ["2", "1", "1", "1", "1"]
    # the injected problems, as shares of the window, in the window that had them and nowhere else
    assert cell(history, missing.stored_at, "y").missing == pytest.approx(0.30)
    assert cell(history, outside.stored_at, "x").out_of_range == pytest.approx(0.25)
    assert cell(history, unseen.stored_at, "color").unseen_categories == pytest.approx(0.10)
    assert cell(history, refused.stored_at, "x").type_violations == 3 and refused.rows_not_scored == 3
    assert cell(history, clean.stored_at, "x").out_of_range == 0.0
    assert cell(history, clean.stored_at, "y").missing == 0.0
    assert cell(history, clean.stored_at, "color").out_of_range is None  # not a numeric feature
    assert cell(history, clean.stored_at, "x").unseen_categories is None
    # the windows' findings are the reports' own quality_issues
    assert clean.findings == {}
    assert missing.findings == {"y": {"current_missing": pytest.approx(0.30)}}
    assert outside.findings == {"x": {"out_of_range": pytest.approx(0.25)}}
    assert unseen.findings == {"color": {"unseen_categories": pytest.approx(0.10)}}
    assert refused.findings == {"x": {"type_violations": 3}}
    # it all serialises to JSON
    assert json.loads(json.dumps(history.to_dict()))["rows"][0]["feature"] == "x"


def test_filters_narrow_the_rows_and_the_findings(store: MonitoringStore, windows: list[DriftReport]) -> None:
    only_y = read_quality_history(store, "sensor", feature="y")
    assert [r.feature for r in only_y.rows] == ["y"] * 5
    assert [w.findings for w in only_y.windows if w.findings] == [
        {"y": {"current_missing": pytest.approx(0.3)}}
    ]
    expected = {
        "missing": ("y", windows[1].report_id),
        "out_of_range": ("x", windows[2].report_id),
        "unseen_categories": ("color", windows[3].report_id),
        "type_violations": ("x", windows[4].report_id),
    }
    for check, found in expected.items():
        history = read_quality_history(store, "sensor", check=check)
        assert [(r.feature, r.report_id) for r in history.rows] == [found], check
        assert len(history.windows) == 5  # the windows examined stay listed
    assert read_quality_history(store, "sensor", feature="y", check="out_of_range").rows == []
    assert [r.version for r in read_quality_history(store, "sensor", version="2").rows] == ["2"] * 3
    assert set(CHECKS) == {c.value for c in CliCheck}  # the CLI takes the checks the history knows


def test_unknown_feature_or_check_is_a_clear_error(
    store: MonitoringStore, windows: list[DriftReport]
) -> None:
    with pytest.raises(
        DataError, match=r"feature: unknown feature 'z' for 'sensor' \(the windows read have: x, y, color\)"
    ):
        read_quality_history(store, "sensor", feature="z")
    with pytest.raises(HistoryQueryError, match="check: unknown check 'typos'"):
        quality_history([], "sensor", check="typos")
    with pytest.raises(HistoryQueryError, match="limit: expected 1 to 1000"):
        read_quality_history(store, "sensor", limit=0)


def test_since_until_and_limit_bound_the_history(store: MonitoringStore, windows: list[DriftReport]) -> None:
    stamps = [w.stored_at for w in read_quality_history(store, "sensor").windows]  # newest first
    since = read_quality_history(store, "sensor", since=stamps[3])
    assert [w.stored_at for w in since.windows] == stamps[:4]
    until = read_quality_history(store, "sensor", until=stamps[1])
    assert [w.stored_at for w in until.windows] == stamps[1:]
    both = read_quality_history(store, "sensor", since=stamps[3], until=stamps[1])
    assert [w.stored_at for w in both.windows] == stamps[1:4]
    assert read_quality_history(store, "sensor", since=stamps[0] + 1).windows == []
    limited = read_quality_history(store, "sensor", limit=2)
    assert [w.stored_at for w in limited.windows] == stamps[:2]
    assert limited.filters == {"since": None, "until": None, "version": None, "limit": 2}
    with pytest.raises(HistoryQueryError, match=r"since: .* is after until"):
        read_quality_history(store, "sensor", since=stamps[0], until=stamps[4])


def test_times_are_epoch_seconds_iso_or_a_time_ago() -> None:
    assert parse_moment("1767225600", "since") == 1767225600.0
    assert parse_moment("1767225600.5", "since") == 1767225600.5
    assert parse_moment("2026-01-01T00:00:00Z", "since") == 1767225600.0
    assert parse_moment("2026-01-01T00:00:00", "since") == 1767225600.0  # no zone: UTC
    assert parse_moment("2026-01-01T01:00:00+01:00", "until") == 1767225600.0
    assert parse_moment("24h", "--since", relative=True, now=1767225600.0) == 1767225600.0 - 86400
    for bad in ("yesterday", "nan", "inf", ""):
        with pytest.raises(HistoryQueryError, match=r"^since: expected epoch seconds"):
            parse_moment(bad, "since")
    with pytest.raises(HistoryQueryError, match="since: expected"):
        parse_moment("24h", "since")  # a time ago only where asked for (the CLI)


def api(store: MonitoringStore, **changes: Any) -> TestClient:
    """The api around an in-memory iris model, on ``store`` (no monitoring rounds of its own)."""
    cfg = parse_config(merge(raw_config("iris"), {"model": {"params": {"n_estimators": 5}}}))
    loaded, _ = loaded_from_config(cfg)
    values: dict[str, Any] = {
        "auth_enabled": False,
        "models": ["iris"],
        "reload_interval_seconds": 0,
        "drift_interval_seconds": 0,
        "prediction_log": False,
        "monitoring_url": store.url,
        "home": Path(str(store.path)).parent,
        **changes,
    }
    return TestClient(
        create_app(Settings(**values), ModelHolder.of(served(loaded))), raise_server_exceptions=False
    )


def test_the_api_serves_the_history(store: MonitoringStore) -> None:
    stored = [
        store_window(store, "iris", "1", window(1, None)),
        store_window(store, "iris", "1", window(2, "out_of_range")),
        store_window(store, "iris", "1", window(3, "missing")),
    ]
    with api(store) as client:
        answer = client.get("/models/iris/quality/history")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [w["report_id"] for w in body["windows"]] == [r.report_id for r in reversed(stored)]
        stamps = [w["stored_at"] for w in body["windows"]]
        outside = client.get("/models/iris/quality/history", params={"check": "out_of_range"}).json()
        assert [(r["feature"], r["out_of_range"]) for r in outside["rows"]] == [("x", pytest.approx(0.25))]
        assert outside["rows"][0]["window_rows"] == WINDOW
        missing = client.get("/models/iris/quality/history?feature=y&check=missing").json()["rows"]
        assert [(r["feature"], r["missing"], r["stored_at"]) for r in missing] == [("y", 0.3, stamps[0])]
        # since/until as epoch seconds or ISO-8601, and the limit
        bounded = client.get(f"/models/iris/quality/history?since={stamps[1]}&until={stamps[1]}").json()
        assert [w["stored_at"] for w in bounded["windows"]] == [stamps[1]]
        assert (
            len(client.get("/models/iris/quality/history?since=2000-01-01T00:00:00Z").json()["windows"]) == 3
        )
        assert client.get("/models/iris/quality/history?until=2000-01-01").json()["windows"] == []
        assert len(client.get("/models/iris/quality/history?limit=2").json()["windows"]) == 2
        # refusals: each names what was wrong
        bad_since = client.get("/models/iris/quality/history?since=yesterday")
        assert bad_since.status_code == 422 and bad_since.json()["detail"].startswith("since: expected")
        bad_until = client.get("/models/iris/quality/history?until=soon")
        assert bad_until.status_code == 422 and "until" in bad_until.json()["detail"]
        backwards = client.get(f"/models/iris/quality/history?since={stamps[0]}&until={stamps[2]}")
        assert backwards.status_code == 422 and "after until" in backwards.text
        unknown_feature = client.get("/models/iris/quality/history?feature=z")
        assert unknown_feature.status_code == 422
        assert "unknown feature 'z'" in unknown_feature.text and "x, y, color" in unknown_feature.text
        for query in ("check=typos", "limit=0", "limit=1001"):
            refused = client.get(f"/models/iris/quality/history?{query}")
            assert refused.status_code == 422, query
            assert refused.json()["detail"][0]["loc"][-1] == query.split("=")[0]
        unknown = client.get("/models/wine/quality/history")
        assert (
            unknown.status_code == 404 and unknown.status_code == client.get("/models/wine/drift").status_code
        )
        # documented with its own schema
        operation = client.get("/openapi.json").json()["paths"]["/models/{name}/quality/history"]["get"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "QualityHistoryBody"
        )
    # open like its neighbour /models/{name}/drift when auth is on
    with api(store, auth_enabled=True, jwt_secret="x" * 40) as secured:
        assert secured.get("/models/iris/quality/history").status_code == 200


def test_the_api_answers_an_empty_history_before_the_first_report(store: MonitoringStore) -> None:
    with api(store) as client:
        body = client.get("/models/iris/quality/history").json()
    assert body["windows"] == [] and body["rows"] == [] and body["model"] == "iris"


def test_the_monitor_serves_the_history(store: MonitoringStore, windows: list[DriftReport]) -> None:
    def no_reference(name: str, version: str) -> Any:
        raise AssertionError("no drift is computed here: nothing was logged")

    settings = Settings(
        home=Path(str(store.path)).parent,
        models=["sensor"],
        monitoring_url=store.url,
        drift_interval_seconds=3600,
    )
    with TestClient(create_monitor_app(settings, no_reference), raise_server_exceptions=False) as client:
        body = client.get("/models/sensor/quality/history?check=unseen_categories").json()
        assert [(r["feature"], r["unseen_categories"]) for r in body["rows"]] == [
            ("color", pytest.approx(0.1))
        ]
        assert len(body["windows"]) == 5
        limited = client.get("/models/sensor/quality/history?limit=1&version=1").json()
        assert [w["report_id"] for w in limited["windows"]] == [windows[3].report_id]
        bad = client.get("/models/sensor/quality/history?since=last-tuesday")
        assert bad.status_code == 422 and bad.json()["detail"].startswith("since: expected")
        assert client.get("/models/sensor/quality/history?feature=z").status_code == 422
        assert client.get("/models/sensor/quality/history?limit=5000").status_code == 422
        unknown = client.get("/models/wine/quality/history")
        assert unknown.status_code == 404 and "not monitored here" in unknown.text


def test_the_cli_prints_the_history(
    store: MonitoringStore, windows: list[DriftReport], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_MONITORING_URL", store.url)
    monkeypatch.setenv("COLUMNS", "200")
    shown = CliRunner().invoke(cli, ["data-quality", "sensor", "--since", "1h"])
    assert shown.exit_code == 0, shown.output
    assert "Data quality of sensor: 5 window(s), newest first" in shown.output
    assert "30.0%" in shown.output and "25.0%" in shown.output and "10.0%" in shown.output
    assert "findings in 4 of 5 window(s)" in shown.output
    narrowed = CliRunner().invoke(cli, ["data-quality", "sensor", "--check", "out_of_range", "--json"])
    assert narrowed.exit_code == 0, narrowed.output
    body = json.loads(narrowed.output)
    assert [(r["feature"], r["report_id"]) for r in body["rows"]] == [("x", windows[2].report_id)]
    limited = json.loads(CliRunner().invoke(cli, ["data-quality", "sensor", "--limit", "2", "--json"]).output)
    assert [w["report_id"] for w in limited["windows"]] == [windows[4].report_id, windows[3].report_id]
    empty = CliRunner().invoke(cli, ["data-quality", "sensor", "--until", "2000-01-01"])
    assert empty.exit_code == 0 and "no drift results for 'sensor' in that period" in empty.output
    assert "--check" in CliRunner().invoke(cli, ["data-quality", "--help"]).output


def test_the_cli_errors_in_one_line(
    store: MonitoringStore,
    windows: list[DriftReport],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("SHIPYARD_MONITORING_URL", store.url)
    assert main(["data-quality", "nobody"]) == 3
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: no drift results for 'nobody' in sqlite:///") and "\n" not in error
    assert main(["data-quality", "sensor", "--feature", "z"]) == 3
    assert "feature: unknown feature 'z' for 'sensor'" in capsys.readouterr().err
    assert main(["data-quality", "sensor", "--since", "last week"]) == 3
    assert "--since: expected epoch seconds, an ISO-8601 time or a time ago" in capsys.readouterr().err
    assert main(["data-quality", "sensor", "--check", "typos"]) == 2
    assert "typos" in capsys.readouterr().err
    monkeypatch.setenv("SHIPYARD_MONITORING_URL", f"sqlite:///{tmp_path / 'none.db'}")
    get_settings.cache_clear()
    assert main(["data-quality", "sensor"]) == 3
    assert "no monitoring store at" in capsys.readouterr().err
