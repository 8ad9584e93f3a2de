"""Lineage: what exactly produced a model (code commit, data hash, config hash, package version)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard import __version__

TAG_PREFIX = "shipyard."


@dataclass(frozen=True)
class Lineage:
    git_commit: str
    git_dirty: bool | None
    data_uri: str
    data_hash: str
    config_hash: str
    package_version: str

    def tags(self) -> dict[str, str]:
        """As MLflow tags, the same on the run and on the registered version."""
        return {
            f"{TAG_PREFIX}git_commit": self.git_commit,
            f"{TAG_PREFIX}git_dirty": "unknown" if self.git_dirty is None else str(self.git_dirty).lower(),
            f"{TAG_PREFIX}data_uri": self.data_uri,
            f"{TAG_PREFIX}data_hash": self.data_hash,
            f"{TAG_PREFIX}config_hash": self.config_hash,
            f"{TAG_PREFIX}package_version": self.package_version,
        }


def config_hash(resolved: dict[str, Any]) -> str:
    """SHA-256 of the resolved config as canonical JSON: equal configs hash equal, whatever the YAML."""
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()


def git_state(cwd: Path | None = None) -> tuple[str, bool | None]:
    """(commit, dirty) of the working tree, or ("unknown", None) outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return commit, bool(status.strip())


def collect_lineage(data_uri: str, data_hash: str, resolved_config: dict[str, Any]) -> Lineage:
    commit, dirty = git_state()
    return Lineage(commit, dirty, data_uri, data_hash, config_hash(resolved_config), __version__)
