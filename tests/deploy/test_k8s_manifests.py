"""deploy/k8s: both overlays render, pass kubernetes-validate (strict) and keep the deployment's promises.

Rendered by tests/deploy/k8s_render.py (kustomize is not installed here). The promises: probes, requests and
limits, non-root and read-only containers, auth on with the key from a Secret, no secret values in git,
default-deny network policy with only the intended paths open, retraining only on drift, production
larger than staging, stateless api pods writing to the shared monitoring store (its URL from the Secret)
and one monitor computing over it. A deliberately broken copy (tests/deploy/fixtures/k8s-broken) shows
each check bites.
"""

from __future__ import annotations

import functools
import inspect
import ipaddress
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from shipyard.config import Settings
from tests.conftest import missing_external
from tests.deploy.k8s_render import (
    Obj,
    RenderError,
    UnsupportedError,
    containers,
    load_documents,
    pod_templates,
    render,
    split_image,
    strategic_merge,
)

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy/k8s"
OVERLAYS = ("staging", "production")
BROKEN = REPO / "tests/deploy/fixtures/k8s-broken"
SECRET_TEMPLATE = K8S / "base/secrets.template.yaml"
# the oldest Kubernetes the manifests are meant for, and the newest the validator knows
K8S_VERSIONS = ("1.30", "latest")
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|TOKEN|PRIVATE|_KEY$|DATABASE_URL|DATABASE_URI|BACKEND_STORE_URI|MONITORING_URL"
)
MONITORING_URL_REF = {"name": "shipyard-secrets", "key": "monitoring-url"}


@pytest.fixture(scope="module")
def validator() -> ModuleType:
    """kubernetes-validate (a test dependency); under CI a missing validator fails instead of skipping."""
    try:
        import kubernetes_validate
    except ImportError:
        message = "kubernetes-validate (pip package, in the test extras) is not installed"
        missing_external(message)
    return kubernetes_validate


@functools.cache
def rendered(overlay: str) -> tuple[Obj, ...]:
    return tuple(render(K8S / "overlays" / overlay))


@functools.cache
def rendered_broken() -> tuple[Obj, ...]:
    return tuple(render(BROKEN))


def one(objects: tuple[Obj, ...], kind: str, name: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def kind_name(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env") or []}


def command_line(container: Obj) -> str:
    return " ".join([*(container.get("command") or []), *(container.get("args") or [])])


# --- kubernetes-validate ---------------------------------------------------------------------------


def validation_errors(kv: ModuleType, objects: tuple[Obj, ...] | list[Obj], version: str) -> list[str]:
    """Strict schema errors; a kind the validator has no schema for is an error too (not a warning)."""
    version = kv.latest_version() if version == "latest" else version
    errors = []
    for obj in objects:
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            errors.append(f"{kind_name(obj)}: {where}: {exc.message}")
        except kv.SchemaNotFoundError as exc:
            errors.append(f"{kind_name(obj)}: {exc.message}")
    return errors


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_passes_strict_validation(
    validator: ModuleType, overlay: str, version: str
) -> None:
    objects = rendered(overlay)
    assert len(objects) >= 25
    assert validation_errors(validator, objects, version) == []


def test_the_secret_template_is_valid(validator: ModuleType) -> None:
    assert validation_errors(validator, load_documents(SECRET_TEMPLATE), "1.30") == []


def test_no_secret_holds_a_value() -> None:
    """The template is empty, and `apply -k` carries no Secret (it would overwrite the real one)."""
    secrets = load_documents(SECRET_TEMPLATE)
    assert {s["metadata"]["name"] for s in secrets} == {"shipyard-secrets", "shipyard-tls"}
    assert [p for s in secrets for p in secret_problems(s)] == []
    for overlay in OVERLAYS:
        assert [o for o in rendered(overlay) if o["kind"] == "Secret"] == []


def test_the_broken_copy_fails_strict_validation(validator: ModuleType) -> None:
    errors = validation_errors(validator, rendered_broken(), "1.30")
    assert len(errors) == 1, errors
    assert "Deployment/shipyard-debug" in errors[0]
    assert "'imagePulPolicy' was unexpected" in errors[0]


# --- invariants ------------------------------------------------------------------------------------


def effective(container: Obj, pod_spec: Obj, key: str) -> Any:
    """A security setting as the kubelet applies it: the container's, else the pod's."""
    own = (container.get("securityContext") or {}).get(key)
    return own if own is not None else (pod_spec.get("securityContext") or {}).get(key)


def secret_problems(secret: Obj) -> list[str]:
    values = {**(secret.get("data") or {}), **(secret.get("stringData") or {})}
    return [f"{kind_name(secret)}: key {k!r} holds a value" for k, v in values.items() if v not in ("", None)]


def container_problems(obj: Obj) -> Iterator[str]:
    for template in pod_templates(obj):
        spec = template["spec"]
        service_account = spec.get("serviceAccountName", "default")
        if spec.get("automountServiceAccountToken") is not False:
            yield f"{kind_name(obj)}: mounts the token of service account {service_account}"
        for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
            where = f"{kind_name(obj)} container {container['name']}"
            resources = container.get("resources") or {}
            for bound in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in (resources.get(bound) or {}):
                        yield f"{where}: no resources.{bound}.{resource}"
            if effective(container, spec, "runAsNonRoot") is not True:
                yield f"{where}: runAsNonRoot is not true"
            if (container.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
                yield f"{where}: readOnlyRootFilesystem is not true"
            if (container.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False:
                yield f"{where}: allowPrivilegeEscalation is not false"
            if "ALL" not in ((container.get("securityContext") or {}).get("capabilities") or {}).get(
                "drop", []
            ):
                yield f"{where}: capabilities are not dropped (drop: [ALL])"
            if (effective(container, spec, "seccompProfile") or {}).get("type") != "RuntimeDefault":
                yield f"{where}: no RuntimeDefault seccomp profile"
            # probes are for the containers that keep running (Kubernetes refuses them on init containers)
            if obj["kind"] in LONG_RUNNING and any(container is c for c in spec["containers"]):
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe not in container:
                        yield f"{where}: no {probe}"
            if "--no-auth" in command_line(container):
                yield f"{where}: runs with --no-auth"
            for name, entry in env_of(container).items():
                if SECRET_NAME.search(name) and "value" in entry:
                    yield f"{where}: {name} is written in the manifest, not taken from a Secret"
            name, tag, digest = split_image(container["image"])
            if digest is None and tag in (None, "latest"):
                yield f"{where}: image {container['image']} is not pinned to a tag or digest"


def auth_problems(objects: tuple[Obj, ...]) -> Iterator[str]:
    """The api and the worker run with auth on and the JWT key from a Secret."""
    for name, container_name in (("shipyard-api", "api"), ("shipyard-worker", "worker")):
        deployments = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name]
        if not deployments:
            yield f"Deployment/{name} is missing"
            continue
        container = next(c for c in containers(deployments[0]) if c["name"] == container_name)
        env = env_of(container)
        if env.get("SHIPYARD_AUTH_ENABLED", {}).get("value") != "true":
            yield f'Deployment/{name}: SHIPYARD_AUTH_ENABLED is not "true"'
        reference = env.get("SHIPYARD_JWT_SECRET", {}).get("valueFrom", {}).get("secretKeyRef")
        if not reference:
            yield f"Deployment/{name}: SHIPYARD_JWT_SECRET does not come from a secretKeyRef"


def default_deny_problems(objects: tuple[Obj, ...]) -> Iterator[str]:
    for obj in objects:
        spec = obj.get("spec") or {}
        if (
            obj["kind"] == "NetworkPolicy"
            and spec.get("podSelector") == {}
            and set(spec.get("policyTypes") or []) == {"Ingress", "Egress"}
            and not spec.get("ingress")
            and not spec.get("egress")
        ):
            return
    yield "no default-deny NetworkPolicy (all pods, Ingress and Egress, no rules)"


def violations(objects: tuple[Obj, ...]) -> list[str]:
    problems: list[str] = []
    for obj in objects:
        problems.extend(container_problems(obj))
        if obj["kind"] == "Secret":
            problems.extend(secret_problems(obj))
    problems.extend(auth_problems(objects))
    problems.extend(default_deny_problems(objects))
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_invariant_holds(overlay: str) -> None:
    assert violations(rendered(overlay)) == []


def test_the_broken_copy_breaks_the_invariants() -> None:
    found = violations(rendered_broken())
    expected = [
        "Deployment/shipyard-api container api: no resources.limits.cpu",
        "Deployment/shipyard-api container api: no resources.limits.memory",
        "Deployment/shipyard-debug container debug: no resources.requests.cpu",
        "Deployment/shipyard-debug container debug: no resources.requests.memory",
        "Deployment/shipyard-debug container debug: no resources.limits.cpu",
        "Deployment/shipyard-debug container debug: no resources.limits.memory",
        "Deployment/shipyard-debug container debug: runAsNonRoot is not true",
        "Deployment/shipyard-debug container debug: readOnlyRootFilesystem is not true",
        "Deployment/shipyard-debug container debug: allowPrivilegeEscalation is not false",
        "Deployment/shipyard-debug container debug: capabilities are not dropped (drop: [ALL])",
        "Deployment/shipyard-debug container debug: no RuntimeDefault seccomp profile",
        "Deployment/shipyard-debug container debug: no livenessProbe",
        "Deployment/shipyard-debug container debug: no readinessProbe",
        "Deployment/shipyard-debug container debug: runs with --no-auth",
        "Deployment/shipyard-debug container debug: SHIPYARD_JWT_SECRET is written in the manifest, "
        "not taken from a Secret",
        "Deployment/shipyard-debug container debug: image ghcr.io/shipyard-mlops/shipyard:latest is not "
        "pinned to a tag or digest",
        "Deployment/shipyard-debug: mounts the token of service account default",
        "Secret/shipyard-secrets: key 'jwt-secret' holds a value",
        "Deployment/shipyard-monitor container monitor: SHIPYARD_MONITORING_URL is written in the manifest, "
        "not taken from a Secret",
        'Deployment/shipyard-worker: SHIPYARD_AUTH_ENABLED is not "true"',
        "no default-deny NetworkPolicy (all pods, Ingress and Egress, no rules)",
    ]
    assert sorted(found) == sorted(expected)


# --- what each object promises ---------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_api_deployment(overlay: str) -> None:
    objects = rendered(overlay)
    deployment = one(objects, "Deployment", "shipyard-api")
    (container,) = containers(deployment)
    assert container["command"][:4] == ["shipyard", "serve", "--host", "0.0.0.0"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"])
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns the replica count"
    hpa = one(objects, "HorizontalPodAutoscaler", "shipyard-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "shipyard-api",
    }
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = one(objects, "PodDisruptionBudget", "shipyard-api")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # stateless: predictions and feedback go to the shared store, no pod keeps a log of its own
    env = env_of(container)
    assert env["SHIPYARD_MONITORING_URL"]["valueFrom"]["secretKeyRef"] == MONITORING_URL_REF
    assert env["SHIPYARD_MONITOR_IN_PROCESS"]["value"] == "false"
    assert "SHIPYARD_PREDICTION_LOG_PATH" not in env
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        assert "emptyDir" not in volume or mount["mountPath"] == "/tmp", f"{mount}: pod-local state"
        assert "persistentVolumeClaim" not in volume or mount.get("readOnly") is True, mount


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_monitor_deployment(overlay: str) -> None:
    """One monitor, replaced (not rolled) on update, with the api's pod security, probes on /health and
    /ready, scraped like the api, and the store's schema upgraded before it starts."""
    from tests.deploy.test_container_files import parse_shipyard

    objects = rendered(overlay)
    deployment = one(objects, "Deployment", "shipyard-monitor")
    api = one(objects, "Deployment", "shipyard-api")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"] == api["spec"]["template"]["spec"]["securityContext"]
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    assert ("ServiceAccount", pod["serviceAccountName"]) in {
        (o["kind"], o["metadata"]["name"]) for o in objects
    }
    (container,) = pod["containers"]
    (api_container,) = containers(api)
    assert container["securityContext"] == api_container["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert parse_shipyard(container["command"][1:]).name == "monitor"
    assert container["command"][:4] == ["shipyard", "monitor", "--host", "0.0.0.0"]
    (port,) = container["ports"]
    assert port["containerPort"] == 8100
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert env_of(container)["SHIPYARD_MONITORING_URL"]["valueFrom"]["secretKeyRef"] == MONITORING_URL_REF
    assert "SHIPYARD_MONITOR_IN_PROCESS" not in env_of(container)
    (init,) = pod["initContainers"]
    assert init["command"] == ["shipyard", "monitor", "--upgrade"]
    parse_shipyard(init["command"][1:])
    assert env_of(init)["SHIPYARD_MONITORING_URL"]["valueFrom"]["secretKeyRef"] == MONITORING_URL_REF
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port["containerPort"]),
        "prometheus.io/path": "/metrics",
    }
    service = one(objects, "Service", "shipyard-monitor")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8100, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    assert not any(
        o["kind"] == "HorizontalPodAutoscaler" and o["spec"]["scaleTargetRef"]["name"] == "shipyard-monitor"
        for o in objects
    )
    ingress = one(objects, "Ingress", "shipyard-api")
    assert "shipyard-monitor" not in str(ingress), "the monitor stays inside the cluster"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_monitoring_store_url_comes_only_from_the_secret(overlay: str) -> None:
    """Every pod that reads or writes the store names the same Secret key; nothing keeps a SQLite log."""
    objects = rendered(overlay)
    using = set()
    for obj in objects:
        for template in pod_templates(obj):
            for container in [
                *(template["spec"].get("initContainers") or []),
                *template["spec"]["containers"],
            ]:
                env = env_of(container)
                assert "SHIPYARD_PREDICTION_LOG_PATH" not in env
                if "SHIPYARD_MONITORING_URL" in env:
                    assert env["SHIPYARD_MONITORING_URL"] == {
                        "name": "SHIPYARD_MONITORING_URL",
                        "valueFrom": {"secretKeyRef": MONITORING_URL_REF},
                    }
                    using.add(obj["metadata"]["name"])
    assert using == {"shipyard-api", "shipyard-monitor", "shipyard-retrain-iris", "shipyard-retrain-housing"}
    config = one(objects, "ConfigMap", "shipyard-config")["data"]
    assert "SHIPYARD_MONITORING_URL" not in config and "SHIPYARD_PREDICTION_LOG_PATH" not in config


def test_the_service_monitors_select_the_api_and_the_monitor_services() -> None:
    """One ServiceMonitor per scraped Service, each selecting exactly its own (the operator names the job
    after the Service: shipyard-monitor is the job the ShipyardMonitorDown alert watches)."""
    objects = rendered("production")
    services = [o for o in objects if o["kind"] == "Service"]
    found = {}
    for monitor in load_documents(K8S / "extras/servicemonitor.yaml"):
        selector = monitor["spec"]["selector"]["matchLabels"].items()
        (service,) = [s for s in services if selector <= s["metadata"]["labels"].items()]
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        found[monitor["metadata"]["name"]] = service["metadata"]["name"]
    assert found == {"shipyard-api": "shipyard-api", "shipyard-monitor": "shipyard-monitor"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_routes_public_paths_only(overlay: str) -> None:
    ingress = one(rendered(overlay), "Ingress", "shipyard-api")
    (rule,) = ingress["spec"]["rules"]
    assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]
    paths = {p["path"] for p in rule["http"]["paths"]}
    assert {"/predict", "/invocations", "/v2", "/health", "/ready"} <= paths
    assert not any(p.startswith(("/metrics", "/admin")) or p == "/" for p in paths)
    assert {p["backend"]["service"]["name"] for p in rule["http"]["paths"]} == {"shipyard-api"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_server_uses_the_secret_database_and_allows_its_service_name(overlay: str) -> None:
    from tests.deploy.test_container_files import mlflow_server_argv

    objects = rendered(overlay)
    (container,) = containers(one(objects, "Deployment", "mlflow"))
    line = " ".join(mlflow_server_argv([*container["command"], *container["args"]]))
    assert line.startswith("mlflow server")
    allowed = re.search(r"--allowed-hosts[= ](\S+)", line)
    assert allowed is not None
    assert "mlflow:5000" in allowed.group(1).split(",")
    store = env_of(container)["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]
    assert store == {"name": "shipyard-secrets", "key": "database-url"}
    assert "--artifacts-destination=/var/lib/mlflow/artifacts" in container["args"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {
        v["name"]: v for v in one(objects, "Deployment", "mlflow")["spec"]["template"]["spec"]["volumes"]
    }
    assert (
        volumes[mounts["/var/lib/mlflow/artifacts"]]["persistentVolumeClaim"]["claimName"]
        == "mlflow-artifacts"
    )
    service = one(objects, "Service", "mlflow")
    config = one(objects, "ConfigMap", "shipyard-config")["data"]
    assert config["SHIPYARD_TRACKING_URI"] == f"http://mlflow:{service['spec']['ports'][0]['port']}"


# --- MLflow behind its basic auth ------------------------------------------------------------------

DATABASE_URL_REF = {"name": "shipyard-secrets", "key": "database-url"}
# Every container that talks to MLflow, with the user it logs in as (the Secret key holding its password);
# the monitor's init container only upgrades the monitoring store.
MLFLOW_CLIENTS = {
    ("Deployment", "shipyard-api", "api"): "shipyard-reader",
    ("Deployment", "shipyard-monitor", "monitor"): "shipyard-reader",
    ("Deployment", "shipyard-worker", "worker"): "shipyard-reader",
    ("CronJob", "shipyard-batch-score-housing", "batch-score"): "shipyard-reader",
    ("CronJob", "shipyard-retrain-iris", "retrain"): "shipyard-trainer",
    ("CronJob", "shipyard-retrain-housing", "retrain"): "shipyard-trainer",
}
NOT_MLFLOW_CLIENTS = {("Deployment", "shipyard-monitor", "upgrade-store")}
ROLE_SECRET_KEYS = {
    "shipyard-trainer": "mlflow-trainer-password",
    "shipyard-reader": "mlflow-reader-password",
}
MLFLOW_SERVER = ("Deployment", "mlflow", "mlflow")
USERS_JOB = ("Job", "shipyard-mlflow-users", "mlflow-users")


def every_container(objects: tuple[Obj, ...]) -> Iterator[tuple[tuple[str, str, str], Obj]]:
    for obj in objects:
        for container in containers(obj):
            yield (obj["kind"], obj["metadata"]["name"], container["name"]), container


def secret_ref(container: Obj, variable: str) -> Obj | None:
    entry = env_of(container).get(variable) or {}
    reference: Obj | None = (entry.get("valueFrom") or {}).get("secretKeyRef")
    return reference


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_server_runs_behind_basic_auth(overlay: str, tmp_path: Path) -> None:
    """The container writes the auth config (the backend store's database, from the same Secret key) to
    its tmp volume, then becomes `mlflow server --app-name=basic-auth` with the manifest's args: run as the
    kubelet runs it (args after the command, $(VAR) expanded), MLflow faked. The admin password and the
    CSRF key come from the Secret."""
    from mlflow.cli import cli as mlflow_cli

    from shipyard.orchestration.mlflow_users import auth_config
    from tests.deploy.test_container_files import mlflow_server_argv, run_mlflow_wrapper

    deployment = one(rendered(overlay), "Deployment", "mlflow")
    (container,) = containers(deployment)
    env = env_of(container)
    assert secret_ref(container, "MLFLOW_BACKEND_STORE_URI") == DATABASE_URL_REF
    assert secret_ref(container, "MLFLOW_AUTH_DATABASE_URI") == DATABASE_URL_REF
    assert secret_ref(container, "MLFLOW_AUTH_ADMIN_PASSWORD") == {
        "name": "shipyard-secrets",
        "key": "mlflow-admin-password",
    }
    assert secret_ref(container, "MLFLOW_FLASK_SERVER_SECRET_KEY") == {
        "name": "shipyard-secrets",
        "key": "mlflow-secret-key",
    }
    config_path = env["MLFLOW_AUTH_CONFIG_PATH"]["value"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert config_path.startswith("/tmp/") and "emptyDir" in volumes[tmp["name"]]

    namespace = deployment["metadata"]["namespace"]
    argv = [a.replace("$(POD_NAMESPACE)", namespace) for a in [*container["command"], *container["args"]]]
    exec_argv = mlflow_server_argv(argv)
    assert exec_argv[:3] == ["mlflow", "server", "--app-name=basic-auth"]
    store = "postgresql+psycopg://mlflow:0123456789abcdef@db.example.internal:5432/mlflow"
    written = tmp_path / "basic_auth.ini"
    done, calls = run_mlflow_wrapper(
        argv, tmp_path, MLFLOW_AUTH_CONFIG_PATH=str(written), MLFLOW_AUTH_DATABASE_URI=store
    )
    assert done.returncode == 0, done.stderr
    ran = calls.read_text().splitlines()
    assert ran == exec_argv[1:]
    context = mlflow_cli.commands["server"].make_context("server", ran[1:])
    assert context.params["app_name"] == "basic-auth"
    assert f"mlflow.{namespace}.svc:5000" in context.params["allowed_hosts"].split(",")
    assert written.read_text() == auth_config(store)
    assert written.stat().st_mode & 0o777 == 0o600
    calls.unlink()
    refused, _ = run_mlflow_wrapper(argv, tmp_path, MLFLOW_AUTH_CONFIG_PATH=str(written))
    assert refused.returncode != 0 and not calls.exists(), "MLflow started without its users' database"
    # the probes ask /health, which the auth app leaves open
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_mlflow_client_logs_in_as_its_role(overlay: str) -> None:
    """Every container that gets the tracking server's address is a known client with the user of its
    role and that role's password from the Secret (or is known not to talk to MLflow); the admin password
    and the CSRF key reach only the server (and the users job, the admin's)."""
    from shipyard.orchestration.mlflow_users import READER_USER, TRAINER_USER

    objects = rendered(overlay)
    config = one(objects, "ConfigMap", "shipyard-config")["data"]
    server = config["SHIPYARD_TRACKING_URI"]
    assert set(MLFLOW_CLIENTS.values()) == {TRAINER_USER, READER_USER} == set(ROLE_SECRET_KEYS)
    found = {}
    admin_holders, key_holders = set(), set()
    for where, container in every_container(objects):
        env = env_of(container)
        told = any(s["configMapRef"]["name"] == "shipyard-config" for s in container.get("envFrom") or [])
        if told or env.get("MLFLOW_TRACKING_URI", {}).get("value") == server:
            assert where in {*MLFLOW_CLIENTS, *NOT_MLFLOW_CLIENTS, MLFLOW_SERVER, USERS_JOB}, (
                f"{where} can reach MLflow: add it to MLFLOW_CLIENTS with its role"
            )
        if "MLFLOW_TRACKING_USERNAME" in env:
            user = env["MLFLOW_TRACKING_USERNAME"]["value"]
            assert secret_ref(container, "MLFLOW_TRACKING_PASSWORD") == {
                "name": "shipyard-secrets",
                "key": ROLE_SECRET_KEYS[user],
            }, where
            found[where] = user
        references = [
            (e.get("valueFrom") or {}).get("secretKeyRef", {}).get("key") for e in container.get("env") or []
        ]
        if "mlflow-admin-password" in references or "MLFLOW_AUTH_ADMIN_PASSWORD" in env:
            admin_holders.add(where)
        if "mlflow-secret-key" in references or "MLFLOW_FLASK_SERVER_SECRET_KEY" in env:
            key_holders.add(where)
    assert found == MLFLOW_CLIENTS
    assert admin_holders == {MLFLOW_SERVER, USERS_JOB}
    assert key_holders == {MLFLOW_SERVER}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_users_job_creates_the_roles_once_mlflow_answers(overlay: str) -> None:
    """A Job runs the users job as the admin, against the Service the clients use, with every password
    from the Secret. It waits for /health itself and is retried for longer than MLflow's first start may
    take (its startup probe's allowance); once finished it is removed, so the next apply runs it again."""
    from shipyard.orchestration import mlflow_users

    objects = rendered(overlay)
    job = one(objects, "Job", "shipyard-mlflow-users")
    (container,) = containers(job)
    assert container["command"] == ["python", "-m", "shipyard.orchestration.mlflow_users"]
    env = env_of(container)
    config = one(objects, "ConfigMap", "shipyard-config")["data"]
    assert env["MLFLOW_TRACKING_URI"]["value"] == config["SHIPYARD_TRACKING_URI"]
    keys = {
        mlflow_users.ADMIN_USER: "mlflow-admin-password",
        mlflow_users.TRAINER_USER: "mlflow-trainer-password",
        mlflow_users.READER_USER: "mlflow-reader-password",
    }
    for user, variable in mlflow_users.PASSWORD_ENV.items():
        assert secret_ref(container, variable) == {"name": "shipyard-secrets", "key": keys[user]}, variable
    assert "MLFLOW_TRACKING_PASSWORD" not in env
    spec = job["spec"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["ttlSecondsAfterFinished"] > 0
    (server,) = containers(one(objects, "Deployment", "mlflow"))
    startup = server["startupProbe"]["periodSeconds"] * server["startupProbe"]["failureThreshold"]
    waits = inspect.signature(mlflow_users.wait_for).parameters["timeout"].default
    attempts = spec["backoffLimit"] + 1
    backoff = sum(min(10 * 2**n, 360) for n in range(spec["backoffLimit"]))  # the Job controller's delays
    assert attempts * waits + backoff > startup
    assert spec["activeDeadlineSeconds"] >= attempts * waits + backoff
    labels = spec["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "mlflow-users"  # the label the NetworkPolicies admit


def test_the_secret_template_names_every_mlflow_key() -> None:
    (secret,) = (s for s in load_documents(SECRET_TEMPLATE) if s["metadata"]["name"] == "shipyard-secrets")
    keys = {"mlflow-admin-password", "mlflow-secret-key", "mlflow-trainer-password", "mlflow-reader-password"}
    assert keys <= set(secret["stringData"])
    text = SECRET_TEMPLATE.read_text()
    for key in keys:
        assert f'--from-literal={key}="$(openssl rand -hex 32)"' in text, key


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_cronjobs_retrain_only_on_drift_and_score_batches(overlay: str) -> None:
    cronjobs = {o["metadata"]["name"]: o for o in rendered(overlay) if o["kind"] == "CronJob"}
    for model in ("iris", "housing"):
        (container,) = containers(cronjobs[f"shipyard-retrain-{model}"])
        assert re.search(rf"\bshipyard retrain {model} --if-drift\b", command_line(container))
    (container,) = containers(cronjobs["shipyard-batch-score-housing"])
    assert re.search(r"\bshipyard batch score housing@champion\b", command_line(container))
    for cronjob in cronjobs.values():
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
        assert cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        assert "SHIPYARD_JWT_SECRET" not in env_of(next(containers(cronjob)))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_reference_resolves(overlay: str) -> None:
    """ConfigMaps, Secret keys, claims and service accounts a pod names exist; Services select pods."""
    objects = rendered(overlay)
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    secret_keys = {
        s["metadata"]["name"]: set(s.get("stringData") or s.get("data") or {})
        for s in load_documents(SECRET_TEMPLATE)
    }
    templates = [t for o in objects for t in pod_templates(o)]
    for template in templates:
        spec = template["spec"]
        assert ("ServiceAccount", spec["serviceAccountName"]) in names
        for volume in spec.get("volumes") or []:
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names
        for container in spec["containers"]:
            mounts = {m["name"] for m in container.get("volumeMounts") or []}
            assert mounts <= {v["name"] for v in spec.get("volumes") or []}
            for source in container.get("envFrom") or []:
                assert ("ConfigMap", source["configMapRef"]["name"]) in names
            defined: set[str] = set()
            for entry in container.get("env") or []:
                reference = entry.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    assert reference["key"] in secret_keys[reference["name"]], reference
                for used in re.findall(r"\$\((\w+)\)", entry.get("value", "")):
                    assert used in defined, f"{entry['name']} uses $({used}) before it is defined"
                defined.add(entry["name"])
    for ingress in (o for o in objects if o["kind"] == "Ingress"):
        assert ingress["spec"]["tls"][0]["secretName"] in secret_keys
    for service in (o for o in objects if o["kind"] == "Service"):
        selector = service["spec"]["selector"].items()
        selected = [t for t in templates if selector <= t["metadata"]["labels"].items()]
        assert selected, f"Service/{service['metadata']['name']} selects no pod"
        ports = {p["name"] for t in selected for c in t["spec"]["containers"] for p in c.get("ports") or []}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_configmap_is_settings_the_service_accepts(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SHIPYARD_* key is a real setting (pydantic would silently ignore a misspelled one), and the
    api's environment builds valid Settings with auth on and the tracking server."""
    config = one(rendered(overlay), "ConfigMap", "shipyard-config")["data"]
    known = {f"SHIPYARD_{name.upper()}" for name in Settings.model_fields}
    assert sorted(k for k in config if k.startswith("SHIPYARD_") and k not in known) == []
    (container,) = containers(one(rendered(overlay), "Deployment", "shipyard-api"))
    environment = dict(config)
    store = "postgresql+psycopg://shipyard:" + "x" * 40 + "@db.example.internal:5432/shipyard"
    for name, entry in env_of(container).items():
        if "valueFrom" in entry:
            value = store if name == "SHIPYARD_MONITORING_URL" else "x" * 40
        else:
            value = entry["value"]
        environment[name] = re.sub(r"\$\((\w+)\)", lambda m: environment[m.group(1)], value)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    settings.check_auth()
    assert settings.auth_enabled is True
    assert settings.store_uri == "http://mlflow:5000"
    assert settings.models == ["iris", "housing"]
    assert settings.monitoring_store_url == store  # the Secret's URL, not a SQLite file in the pod
    assert settings.monitor_in_process is False
    assert settings.prediction_log is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(settings.batch_root) in mounts


def test_production_is_larger_than_staging() -> None:
    staging, production = rendered("staging"), rendered("production")

    def hpa(objects: tuple[Obj, ...]) -> Obj:
        return one(objects, "HorizontalPodAutoscaler", "shipyard-api")["spec"]

    def workers(objects: tuple[Obj, ...]) -> int:
        return int(one(objects, "Deployment", "shipyard-worker")["spec"]["replicas"])

    def api_limits(objects: tuple[Obj, ...]) -> Obj:
        (container,) = containers(one(objects, "Deployment", "shipyard-api"))
        return dict(container["resources"]["limits"])

    assert hpa(staging)["minReplicas"] == 1 == workers(staging)
    assert hpa(production)["minReplicas"] >= 3
    assert hpa(production)["maxReplicas"] > hpa(staging)["maxReplicas"]
    assert workers(production) > workers(staging)
    assert api_limits(production) != api_limits(staging)
    assert one(production, "PodDisruptionBudget", "shipyard-api")["spec"] == {
        "minAvailable": 2,
        "selector": one(staging, "PodDisruptionBudget", "shipyard-api")["spec"]["selector"],
    }
    hosts = {o: one(rendered(o), "Ingress", "shipyard-api")["spec"]["rules"][0]["host"] for o in OVERLAYS}
    assert hosts == {"staging": "shipyard.staging.example.com", "production": "shipyard.example.com"}
    namespaces = {o: {x["metadata"].get("namespace") for x in rendered(o)} - {None} for o in OVERLAYS}
    assert namespaces == {"staging": {"shipyard-staging"}, "production": {"shipyard-production"}}
    for objects in (staging, production):
        (namespace,) = (o for o in objects if o["kind"] == "Namespace")
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    images = {c["image"] for o in production for c in containers(o) if "shipyard" in c["image"]}
    assert len(images) == 1
    assert re.fullmatch(r"[\w./-]+(:\d+\.\d+\.\d+|@sha256:[0-9a-f]{64})", images.pop())


# --- network policy: who may talk to whom ---------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    name: str
    namespace: str | None  # None: outside the cluster
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    ports: tuple[tuple[str, int], ...] = ()
    ip: str = "10.0.0.1"


def selects(selector: Obj | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if not {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]:
            return False
    return True


def peer_matches(rule_peers: list[Obj] | None, peer: Peer, policy_namespace: str) -> bool:
    if not rule_peers:
        return True
    for item in rule_peers:
        if "ipBlock" in item:
            block = item["ipBlock"]
            address = ipaddress.ip_address(peer.ip)
            if (
                peer.namespace is None
                and address in ipaddress.ip_network(block["cidr"])
                and not any(address in ipaddress.ip_network(e) for e in block.get("except", []))
            ):
                return True
        elif peer.namespace is not None:
            if "namespaceSelector" in item:
                namespace_ok = selects(
                    item["namespaceSelector"], {"kubernetes.io/metadata.name": peer.namespace}
                )
            else:
                namespace_ok = peer.namespace == policy_namespace
            if namespace_ok and selects(item.get("podSelector"), peer.labels):
                return True
    return False


def port_matches(rule_ports: list[Obj] | None, protocol: str, port: int) -> bool:
    if not rule_ports:
        return True
    for item in rule_ports:
        if item.get("protocol", "TCP") != protocol:
            continue
        if "port" not in item:
            return True
        assert isinstance(item["port"], int), (
            "use port numbers in NetworkPolicies (names are not checked here)"
        )
        if item["port"] <= port <= item.get("endPort", item["port"]):
            return True
    return False


def direction_allows(
    policies: list[Obj], pod: Peer, other: Peer, protocol: str, port: int, direction: str
) -> bool:
    """Whether the policies on ``pod`` let it reach (egress) or be reached by (ingress) ``other``."""
    kind = "Ingress" if direction == "ingress" else "Egress"
    applying = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and kind in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], pod.labels)
    ]
    if not applying:
        return True  # not isolated in this direction
    peers_key = "from" if direction == "ingress" else "to"
    return any(
        peer_matches(rule.get(peers_key), other, policy["metadata"]["namespace"])
        and port_matches(rule.get("ports"), protocol, port)
        for policy in applying
        for rule in policy["spec"].get(direction) or []
    )


def reachable(objects: tuple[Obj, ...], extra: list[Peer]) -> set[tuple[str, str, str]]:
    """Every (client, server, protocol/port) the policies allow where one end is in the namespace."""
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    (namespace,) = {p["metadata"]["namespace"] for p in policies}
    peers: dict[str, Peer] = {}
    for obj in objects:
        for template in pod_templates(obj):
            labels = template["metadata"]["labels"]
            ports = tuple(
                (p.get("protocol", "TCP"), p["containerPort"])
                for c in template["spec"]["containers"]
                for p in c.get("ports") or []
            )
            peers[labels["app.kubernetes.io/component"]] = Peer(
                labels["app.kubernetes.io/component"], namespace, labels, ports
            )
    everyone = [*peers.values(), *extra]
    allowed = set()
    for client in everyone:
        for server in everyone:
            if client is server or namespace not in (client.namespace, server.namespace):
                continue
            for protocol, port in server.ports:
                if direction_allows(policies, client, server, protocol, port, "egress") and direction_allows(
                    policies, server, client, protocol, port, "ingress"
                ):
                    allowed.add((client.name, server.name, f"{protocol}/{port}"))
    return allowed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_open_only_the_intended_paths(overlay: str) -> None:
    outside = [
        Peer(
            "ingress-controller",
            "ingress-nginx",
            {"app.kubernetes.io/name": "ingress-nginx"},
            (("TCP", 443),),
        ),
        Peer("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}, (("TCP", 9090),)),
        Peer("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, (("UDP", 53), ("TCP", 53))),
        Peer("other-pod", "default", {"app": "other"}, (("TCP", 8080),)),
        Peer("postgres", None, {}, (("TCP", 5432),), ip="203.0.113.10"),
        Peer("internet", None, {}, (("TCP", 443),), ip="198.51.100.7"),
    ]
    allowed = reachable(rendered(overlay), outside)
    in_namespace = ("api", "monitor", "worker", "mlflow", "redis", "retrain", "batch-score", "mlflow-users")
    expected = {
        ("ingress-controller", "api", "TCP/8000"),
        ("prometheus", "api", "TCP/8000"),
        ("prometheus", "monitor", "TCP/8100"),
        ("api", "mlflow", "TCP/5000"),
        ("monitor", "mlflow", "TCP/5000"),
        ("worker", "mlflow", "TCP/5000"),
        ("retrain", "mlflow", "TCP/5000"),
        ("batch-score", "mlflow", "TCP/5000"),
        ("mlflow-users", "mlflow", "TCP/5000"),  # the users job, as the admin
        ("api", "redis", "TCP/6379"),
        ("worker", "redis", "TCP/6379"),
        # the databases: MLflow's backend store, and the monitoring store the api writes, the monitor
        # and the retrain jobs read
        ("mlflow", "postgres", "TCP/5432"),
        ("api", "postgres", "TCP/5432"),
        ("monitor", "postgres", "TCP/5432"),
        ("retrain", "postgres", "TCP/5432"),
        *((pod, "kube-dns", f"{protocol}/53") for pod in in_namespace for protocol in ("UDP", "TCP")),
    }
    assert sorted(allowed) == sorted(expected)


# --- the CronJobs' scripts, run as the CronJob runs them ------------------------------------------


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A bin folder with `python` (this interpreter) and a `shipyard` that records its arguments."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "python").symlink_to(sys.executable)
    shipyard = folder / "shipyard"
    shipyard.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {shlex.quote(str(tmp_path / "calls.txt"))}\n'
        # batch score: write the output file it was asked for
        'if [ "$1 $2" = "batch score" ]; then\n'
        '  while [ $# -gt 0 ]; do [ "$1" = --output ] && : > "$2"; shift; done\n'
        "fi\n"
    )
    shipyard.chmod(0o755)
    return folder


def run_cronjob(name: str, tmp_path: Path, bin_folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The CronJob's container command, with its paths moved under tmp_path."""
    (container,) = containers(one(rendered("staging"), "CronJob", name))
    assert container["command"] == ["/bin/sh", "-c"]
    script = (
        container["args"][0].replace("/tmp/", f"{tmp_path}/").replace("/var/lib/shipyard/", f"{tmp_path}/")
    )
    environment = {"PATH": f"{bin_folder}:/usr/bin:/bin", **env}
    return subprocess.run(
        ["/bin/sh", "-c", script], env=environment, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("model", ["iris", "housing"])
def test_retrain_cronjob_decides_on_the_shared_store(tmp_path: Path, fake_bin: Path, model: str) -> None:
    """The job asks no service: `shipyard retrain --if-drift` reads the drift window and the feedback
    labels from the monitoring store itself, over the window the monitor uses."""
    from tests.deploy.test_container_files import parse_shipyard

    cronjob = one(rendered("staging"), "CronJob", f"shipyard-retrain-{model}")
    (container,) = containers(cronjob)
    assert "SHIPYARD_API_URL" not in env_of(container)
    config = one(rendered("staging"), "ConfigMap", "shipyard-config")["data"]
    ran = run_cronjob(
        f"shipyard-retrain-{model}", tmp_path, fake_bin, SHIPYARD_DRIFT_WINDOW=config["SHIPYARD_DRIFT_WINDOW"]
    )
    assert ran.returncode == 0, ran.stderr
    (call,) = (tmp_path / "calls.txt").read_text().splitlines()
    window = config["SHIPYARD_DRIFT_WINDOW"]
    assert call == f"retrain {model} --if-drift --window {window} -o {tmp_path}/retrain-{model}.json"
    parse_shipyard(["retrain", model, "--if-drift", "--window", window, "-o", f"/tmp/retrain-{model}.json"])
    # without the setting the job fails instead of deciding on nothing (set -u)
    failed = run_cronjob(f"shipyard-retrain-{model}", tmp_path, fake_bin)
    assert failed.returncode != 0
    assert len((tmp_path / "calls.txt").read_text().splitlines()) == 1


def test_batch_cronjob_scores_each_new_file_once(tmp_path: Path, fake_bin: Path) -> None:
    incoming = tmp_path / "batch/incoming/housing"
    incoming.mkdir(parents=True)
    (incoming / "sales-1.csv").write_text("a\n1\n")
    (incoming / "sales-2.parquet").write_bytes(b"PAR1")
    first = run_cronjob("shipyard-batch-score-housing", tmp_path, fake_bin)
    assert first.returncode == 0, first.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert len(calls) == 2
    assert calls[0].startswith(f"batch score housing@champion --input {incoming}/sales-1.csv --output ")
    assert sorted(p.name for p in (tmp_path / "batch/scored/housing").iterdir()) == [
        "sales-1.parquet",
        "sales-2.parquet",
    ]
    assert sorted(p.name for p in (tmp_path / "batch/done/housing").iterdir()) == [
        "sales-1.csv",
        "sales-2.parquet",
    ]
    again = run_cronjob("shipyard-batch-score-housing", tmp_path, fake_bin)
    assert again.returncode == 0, again.stderr
    assert len((tmp_path / "calls.txt").read_text().splitlines()) == 2


# --- the loader ------------------------------------------------------------------------------------


def test_strategic_merge_follows_kubernetes_list_rules() -> None:
    base = {
        "spec": {
            "replicas": 1,
            "maxUnavailable": 1,
            "containers": [{"name": "a", "args": ["x"], "env": [{"name": "K", "value": "1"}]}, {"name": "b"}],
        }
    }
    patch = {
        "spec": {
            "maxUnavailable": None,
            "containers": [{"name": "a", "args": ["y"], "env": [{"name": "L", "value": "2"}]}, {"name": "c"}],
        }
    }
    assert strategic_merge(base, patch) == {
        "spec": {
            "replicas": 1,
            "containers": [
                {
                    "name": "a",
                    "args": ["y"],
                    "env": [{"name": "K", "value": "1"}, {"name": "L", "value": "2"}],
                },
                {"name": "b"},
                {"name": "c"},
            ],
        }
    }
    with pytest.raises(UnsupportedError):
        strategic_merge({"ports": [{"containerPort": 1}]}, {"ports": [{"containerPort": 2}]})
    with pytest.raises(UnsupportedError):
        strategic_merge({"a": 1}, {"$patch": "delete"})


def test_split_image_keeps_registry_ports_apart_from_tags() -> None:
    assert split_image("registry:5000/team/shipyard:1.2.3") == ("registry:5000/team/shipyard", "1.2.3", None)
    assert split_image("shipyard@sha256:abc") == ("shipyard", None, "sha256:abc")
    assert split_image("redis") == ("redis", None, None)


def test_the_loader_refuses_what_it_cannot_render(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    )
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": ["cm.yaml"], "configMapGenerator": [{"name": "x"}]})
    )
    with pytest.raises(UnsupportedError, match="configMapGenerator"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {"resources": ["cm.yaml"], "labels": [{"pairs": {"a": "b"}, "includeSelectors": True}]}
        )
    )
    with pytest.raises(UnsupportedError, match="includeSelectors"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({"resources": ["cm.yaml", "cm.yaml"]}))
    with pytest.raises(RenderError, match="the same object twice"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": ["cm.yaml"], "patches": [{"path": "two.yaml"}]})
    )
    (tmp_path / "two.yaml").write_text("kind: ConfigMap\nmetadata: {name: c}\n---\nkind: ConfigMap\n")
    with pytest.raises(UnsupportedError, match="one strategic-merge patch per entry"):
        render(tmp_path)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_batch_workers_follow_the_worker_containers_cpu_limit(overlay: str) -> None:
    """A scoring process per CPU of the container's limit, not of the node: the downward API reads the
    limit the overlay sets, and the setting it feeds is one Shipyard reads."""
    worker = one(rendered(overlay), "Deployment", "shipyard-worker")
    container = next(c for c in worker["spec"]["template"]["spec"]["containers"] if c["name"] == "worker")
    source = env_of(container)["SHIPYARD_BATCH_WORKERS"]["valueFrom"]["resourceFieldRef"]
    assert source == {"containerName": "worker", "resource": "limits.cpu", "divisor": "1"}
    assert container["resources"]["limits"]["cpu"]  # there is a limit to follow
    assert "batch_workers" in Settings.model_fields
