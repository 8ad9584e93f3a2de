"""What a planned stack is made of: services (servers and one-shot jobs) with their commands,
environment, ports and health checks. Plain data, shared by the plan and the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServiceSpec:
    """One service: a long-running ``server`` (healthy when ``health_url`` answers 200) or a one-shot
    ``job`` (done when each of its commands exits 0, in order)."""

    name: str
    kind: Literal["server", "job"]
    commands: tuple[tuple[str, ...], ...]
    env: dict[str, str] = field(repr=False)
    timeout: float
    port: int | None = None
    url: str | None = None
    health_url: str | None = None
    files: dict[Path, str] = field(default_factory=dict, repr=False)  # written just before it starts
    steps: tuple[JobStep, ...] = ()  # a job's commands, described
    ran_text: str = "ran"  # "<ran_text> a, b; <skipped_text> c" sums up a finished job
    skipped_text: str = "skipped (already done)"
    port_setting: str | None = None  # what moves its port, for "port in use" errors


@dataclass(frozen=True)
class JobStep:
    """What one command of a job is about (``label``, e.g. the model) and when it is not needed: when
    ``skip_if_ok`` answers 200 (e.g. the model already has a champion)."""

    label: str
    skip_if_ok: str | None = None
    login: tuple[str, str] | None = field(default=None, repr=False)  # basic auth for skip_if_ok


@dataclass(frozen=True)
class StackPlan:
    cwd: Path
    state_dir: Path
    services: tuple[ServiceSpec, ...]
    notes: tuple[str, ...]

    def log(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"
