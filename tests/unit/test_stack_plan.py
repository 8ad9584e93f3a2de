"""`shipyard stack up`'s plan: which processes it starts (MLflow, trainer, monitor, N api processes,
Prometheus), on which ports, sharing which monitoring store, and what it refuses before starting any.

The plan starts and writes nothing, so these run in milliseconds; tests/e2e/test_stack.py runs it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from shipyard.errors import ConfigError
from shipyard.orchestration.stack import StackError, StackOptions, up
from shipyard.orchestration.stack.plan import build_plan
from shipyard.orchestration.stack.prometheus import prometheus_config
from shipyard.orchestration.stack.specs import ServiceSpec, StackPlan
from tests.conftest import missing_external

SECRET = "plan-" + "s" * 40


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo_root: Path) -> Path:
    """A workspace with the repo's configs; the process runs in it, so its .env is the one read."""
    (tmp_path / "configs").symlink_to(repo_root / "configs")
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_PORT", "API_PORT", "API_REPLICAS", "MONITOR_PORT", "PROMETHEUS_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("MLFLOW_BACKEND_STORE_URI", raising=False)
    monkeypatch.delenv("SHIPYARD_PREDICTION_LOG_PATH", raising=False)  # the root conftest sets it
    monkeypatch.setenv("SHIPYARD_JWT_SECRET", SECRET)
    for name in (
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "SHIPYARD_MLFLOW_TRAINER_PASSWORD",
        "SHIPYARD_MLFLOW_READER_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def plan(cwd: Path, **options: object) -> StackPlan:
    options.setdefault("prometheus", False)
    return build_plan(StackOptions(**options), cwd)  # type: ignore[arg-type]


def by_name(p: StackPlan) -> dict[str, ServiceSpec]:
    return {s.name: s for s in p.services}


def test_the_default_stack_runs_the_monitor_after_the_trainer_and_before_the_api(cwd: Path) -> None:
    p = plan(cwd)
    assert [s.name for s in p.services] == ["mlflow", "mlflow-users", "trainer", "monitor", "api"]
    services = by_name(p)
    store = f"sqlite:///{cwd / '.stack' / 'monitoring.db'}"

    monitor = services["monitor"]
    assert monitor.kind == "server"
    assert monitor.commands[0][1:] == ("-m", "shipyard", "monitor", "--host", "127.0.0.1", "--port", "8100")
    assert (monitor.port, monitor.health_url) == (8100, "http://127.0.0.1:8100/ready")
    api = services["api"]
    assert (api.port, api.health_url) == (8000, "http://127.0.0.1:8000/ready")
    mlflow = "http://127.0.0.1:5000"
    for spec in (monitor, api):
        assert spec.env["SHIPYARD_MONITORING_URL"] == store
        assert spec.env["SHIPYARD_TRACKING_URI"] == spec.env["SHIPYARD_REGISTRY_URI"] == mlflow
    # the api only answers and writes: the monitor computes drift and quality
    assert api.env["SHIPYARD_MONITOR_IN_PROCESS"] == "false"
    assert api.env["SHIPYARD_AUTH_ENABLED"] == "true"
    assert (api.env["SHIPYARD_HOST"], api.env["SHIPYARD_PORT"]) == ("127.0.0.1", "8000")
    assert p.log("monitor") == cwd / ".stack" / "logs" / "monitor.log"


def test_replicas_take_consecutive_ports_and_share_one_store(cwd: Path) -> None:
    p = plan(cwd, api_replicas=3, api_port=8200, monitor_port=8300)
    services = by_name(p)
    assert [s.name for s in p.services][-3:] == ["api-1", "api-2", "api-3"]
    apis = [services[f"api-{i}"] for i in (1, 2, 3)]
    assert [a.port for a in apis] == [8200, 8201, 8202]
    assert [a.env["SHIPYARD_PORT"] for a in apis] == ["8200", "8201", "8202"]
    assert [a.health_url for a in apis] == [f"http://127.0.0.1:{port}/ready" for port in (8200, 8201, 8202)]
    urls = {a.env["SHIPYARD_MONITORING_URL"] for a in apis} | {
        services["monitor"].env["SHIPYARD_MONITORING_URL"]
    }
    assert urls == {f"sqlite:///{cwd / '.stack' / 'monitoring.db'}"}
    assert {a.env["SHIPYARD_MONITOR_IN_PROCESS"] for a in apis} == {"false"}
    # each process its own log
    assert len({p.log(a.name) for a in apis}) == 3


def test_no_monitor_is_the_single_process_stack_of_before(cwd: Path) -> None:
    p = plan(cwd, monitor=False)
    assert [s.name for s in p.services] == ["mlflow", "mlflow-users", "trainer", "api"]
    api = by_name(p)["api"]
    assert api.env["SHIPYARD_MONITOR_IN_PROCESS"] == "true"  # drift and quality in the api, as before
    assert api.env["SHIPYARD_MONITORING_URL"] == f"sqlite:///{cwd / '.stack' / 'monitoring.db'}"
    assert p.notes == ()


def test_no_monitor_with_replicas_each_computes_drift_itself(cwd: Path) -> None:
    p = plan(cwd, monitor=False, api_replicas=2, train=False)
    assert [s.name for s in p.services] == ["mlflow", "mlflow-users", "api-1", "api-2"]
    assert {by_name(p)[n].env["SHIPYARD_MONITOR_IN_PROCESS"] for n in ("api-1", "api-2")} == {"true"}
    assert any("no monitor" in note and "2 api processes" in note for note in p.notes)


def test_settings_come_from_the_environment_and_dotenv_like_compose(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (cwd / ".env").write_text("API_REPLICAS=2\nMONITOR_PORT=8500\nAPI_PORT=8400\n")
    monkeypatch.setenv("SHIPYARD_MONITORING_URL", f"sqlite:///{cwd / 'shared.db'}")
    services = by_name(plan(cwd))
    assert (services["api-1"].port, services["api-2"].port, services["monitor"].port) == (8400, 8401, 8500)
    assert services["api-2"].env["SHIPYARD_MONITORING_URL"] == f"sqlite:///{cwd / 'shared.db'}"
    # options win over the environment
    services = by_name(plan(cwd, api_replicas=1, monitor_port=8600, monitoring_url="sqlite:///other.db"))
    assert "api" in services and services["monitor"].port == 8600
    assert services["api"].env["SHIPYARD_MONITORING_URL"] == "sqlite:///other.db"


def test_the_prediction_log_path_of_before_still_names_the_store(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_PREDICTION_LOG_PATH", "logs/predictions.db")
    api = by_name(plan(cwd))["api"]
    assert api.env["SHIPYARD_MONITORING_URL"] == f"sqlite:///{cwd / 'logs' / 'predictions.db'}"


def test_a_postgresql_store_is_passed_by_environment_never_on_a_command_line(cwd: Path) -> None:
    url = "postgresql+psycopg://monitor:hunter2-secret@127.0.0.1:5432/monitoring"
    p = plan(cwd, monitoring_url=url, api_replicas=2)
    for spec in p.services:
        assert not any("hunter2" in part for command in spec.commands for part in command), spec.name
        assert "hunter2" not in repr(spec)
    assert {by_name(p)[n].env["SHIPYARD_MONITORING_URL"] for n in ("monitor", "api-1", "api-2")} == {url}


@pytest.mark.parametrize(
    ("url", "scheme"),
    [("mysql://root:hunter2-secret@db/monitoring", "mysql"), ("monitoring.db", "(none)")],
)
def test_a_store_url_of_another_kind_is_refused_without_showing_it(cwd: Path, url: str, scheme: str) -> None:
    with pytest.raises(ConfigError) as caught:
        plan(cwd, monitoring_url=url)
    message = str(caught.value)
    assert f"scheme '{scheme}'" in message and "postgresql+psycopg://" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"api_replicas": 2, "api_port": 8000, "monitor_port": 8001}, "monitor and api-2 on 8001"),
        ({"mlflow_port": 8100}, "mlflow and monitor on 8100"),
        ({"api_replicas": 3, "api_port": 4998}, "mlflow and api-3 on 5000"),
        ({"prometheus": None, "prometheus_port": 8000}, "api and prometheus on 8000"),
    ],
)
def test_two_services_on_one_port_are_refused_naming_both(
    cwd: Path, options: dict[str, object], expected: str
) -> None:
    if options.get("prometheus", False) is None and not _prometheus_installed():
        missing_external("prometheus is not installed (Debian: apt-get install prometheus)")
    with pytest.raises(ConfigError) as caught:
        plan(cwd, **options)
    assert expected in str(caught.value)
    if options.get("api_replicas", 1) != 1:
        assert "API_PORT..API_PORT+" in str(caught.value)


def test_ports_only_services_that_run_can_collide(cwd: Path) -> None:
    # no monitor: its port is free for the api processes
    p = plan(cwd, monitor=False, api_replicas=2, api_port=8099)
    assert [s.port for s in p.services if s.name.startswith("api")] == [8099, 8100]


def test_replicas_past_the_last_port_are_refused(cwd: Path) -> None:
    with pytest.raises(ConfigError, match=r"65534\.\.65536: past 65535"):
        plan(cwd, api_replicas=3, api_port=65534)


def test_prometheus_scrapes_every_api_process_and_the_monitor(tmp_path: Path) -> None:
    config = yaml.safe_load(prometheus_config(tmp_path, [8000, 8001, 8002], "5s", monitor_port=8100))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["shipyard"]["static_configs"][0]["targets"] == [
        "127.0.0.1:8000",
        "127.0.0.1:8001",
        "127.0.0.1:8002",
    ]
    assert jobs["shipyard-monitor"]["static_configs"][0]["targets"] == ["127.0.0.1:8100"]
    assert jobs["shipyard-monitor"]["metrics_path"] == "/metrics"
    without = yaml.safe_load(prometheus_config(tmp_path, [8000], "5s"))
    assert [job["job_name"] for job in without["scrape_configs"]] == ["shipyard"]


def test_the_planned_prometheus_config_lists_the_planned_ports(cwd: Path) -> None:
    if not _prometheus_installed():
        missing_external("prometheus is not installed (Debian: apt-get install prometheus)")
    prometheus = by_name(plan(cwd, prometheus=True, api_replicas=2, api_port=8700, monitor_port=8800))[
        "prometheus"
    ]
    (text,) = prometheus.files.values()
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in yaml.safe_load(text)["scrape_configs"]
    }
    assert targets == {
        "shipyard": ["127.0.0.1:8700", "127.0.0.1:8701"],
        "shipyard-monitor": ["127.0.0.1:8800"],
    }


def test_a_taken_monitor_or_replica_port_stops_up_before_anything_starts(cwd: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StackError) as caught:
            up(
                StackOptions(prometheus=False, api_replicas=2, api_port=port - 1, monitor_port=port + 10),
                cwd=cwd,
            )
        assert (
            f"{port} (api-2; set API_PORT or --api-port; the api processes take API_PORT..API_PORT+1)"
            in str(caught.value)
        )
        with pytest.raises(StackError) as caught:
            up(StackOptions(prometheus=False, monitor_port=port, api_port=port + 1), cwd=cwd)
        assert f"port in use on 127.0.0.1: {port} (monitor; set MONITOR_PORT or --monitor-port)" in str(
            caught.value
        )
        assert "nothing was started" in str(caught.value)
    assert not (cwd / ".stack" / "state.json").exists()


def _prometheus_installed() -> bool:
    import shutil

    return shutil.which("prometheus") is not None


def test_mlflow_runs_behind_basic_auth_and_each_role_logs_in_as_itself(cwd: Path) -> None:
    p = plan(cwd)
    services = by_name(p)
    mlflow = services["mlflow"]
    command = mlflow.commands[0]
    assert command[command.index("--app-name") + 1] == "basic-auth"
    ini = cwd / ".stack" / "mlflow" / "basic_auth.ini"
    assert mlflow.env["MLFLOW_AUTH_CONFIG_PATH"] == str(ini)
    assert "default_permission = READ" in mlflow.files[ini] and "admin_password" not in mlflow.files[ini]
    credentials = mlflow.files[cwd / ".stack" / "mlflow" / "credentials.env"]
    generated = dict(line.split("=", 1) for line in credentials.splitlines()[1:])
    assert set(generated) == {
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "SHIPYARD_MLFLOW_TRAINER_PASSWORD",
        "SHIPYARD_MLFLOW_READER_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    }
    assert len(set(generated.values())) == 4 and all(len(v) >= 24 for v in generated.values())
    assert mlflow.env["MLFLOW_AUTH_ADMIN_PASSWORD"] == generated["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert not any(v in " ".join(command) for v in generated.values())  # never on a command line
    users = services["mlflow-users"]
    assert users.kind == "job" and users.commands[0][1:] == ("-m", "shipyard.orchestration.mlflow_users")
    trainer = services["trainer"]
    assert trainer.env["MLFLOW_TRACKING_USERNAME"] == "shipyard-trainer"
    assert trainer.env["MLFLOW_TRACKING_PASSWORD"] == generated["SHIPYARD_MLFLOW_TRAINER_PASSWORD"]
    assert all(
        step.login == ("shipyard-trainer", generated["SHIPYARD_MLFLOW_TRAINER_PASSWORD"])
        for step in trainer.steps
    )
    for name in ("monitor", "api"):
        assert services[name].env["MLFLOW_TRACKING_USERNAME"] == "shipyard-reader"
        assert services[name].env["MLFLOW_TRACKING_PASSWORD"] == generated["SHIPYARD_MLFLOW_READER_PASSWORD"]
        assert "MLFLOW_AUTH_ADMIN_PASSWORD" not in services[name].env  # only the server and the users job


def test_mlflow_credentials_are_kept_and_the_environment_wins(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = by_name(plan(cwd))["mlflow"]
    path = cwd / ".stack" / "mlflow" / "credentials.env"
    path.parent.mkdir(parents=True)
    path.write_text(first.files[path])
    again = by_name(plan(cwd))["mlflow"]
    assert path not in again.files  # nothing new to write: the same passwords as the first up
    assert again.env["MLFLOW_AUTH_ADMIN_PASSWORD"] == first.env["MLFLOW_AUTH_ADMIN_PASSWORD"]

    monkeypatch.setenv("SHIPYARD_MLFLOW_READER_PASSWORD", "reader-from-the-environment")
    chosen = by_name(plan(cwd))
    assert chosen["api"].env["MLFLOW_TRACKING_PASSWORD"] == "reader-from-the-environment"
    assert "SHIPYARD_MLFLOW_READER_PASSWORD=reader-from-the-environment" in chosen["mlflow"].files[path]
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "short")
    with pytest.raises(ConfigError, match="MLFLOW_AUTH_ADMIN_PASSWORD: at least 12 characters"):
        plan(cwd)
