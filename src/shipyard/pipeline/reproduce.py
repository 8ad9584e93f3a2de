"""Reproduce a registered version: retrain from the config and data it recorded, without registering,
and compare the metrics with the recorded ones. Checks out nothing: it refuses when the data's hash is
not the recorded one, and says when the code's commit differs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shipyard.config.loading import parse_config
from shipyard.config.settings import Settings
from shipyard.data.sources import DataLoader
from shipyard.errors import DataError, RegistryError
from shipyard.pipeline.steps import (
    FEEDBACK_ARTIFACT,
    FEEDBACK_ROWS_TAG,
    evaluate_model,
    fit_model,
    prepare_data,
    split_data,
)
from shipyard.registry.artifacts import CONFIG_ARTIFACT
from shipyard.registry.lineage import TAG_PREFIX, config_hash, git_state
from shipyard.registry.models import ModelRegistry


@dataclass
class MetricCheck:
    metric: str
    recorded: float
    reproduced: float
    difference: float
    matches: bool


@dataclass
class Reproduction:
    name: str
    version: str
    data_uri: str
    data_hash: str
    recorded_commit: str
    current_commit: str
    tolerance: float
    checks: list[MetricCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return bool(self.checks) and all(c.matches for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "matches": self.matches}


def reproduce(
    settings: Settings, name: str, ref: str, tolerance: float = 1e-9, base_dir: Path | None = None
) -> Reproduction:
    registry = ModelRegistry(settings)
    info = registry.resolve(name, ref)
    if not info.run_id:
        raise RegistryError(f"{name} v{info.version} has no run: nothing records how it was trained")
    resolved = registry.run_document(info.run_id, CONFIG_ARTIFACT)
    config = parse_config(resolved, source=f"config recorded with {name} v{info.version}")
    tags = info.tags
    recorded_hash = tags.get(f"{TAG_PREFIX}data_hash", "")
    loaded = DataLoader(config.dataset.source, base_dir).load()
    if loaded.digest != recorded_hash:
        raise DataError(
            f"the data of {name} v{info.version} changed: {loaded.uri} has sha256 {loaded.digest[:12]}…, "
            f"the version was trained on {recorded_hash[:12] or 'an unrecorded hash'}…; restore that data "
            f"(e.g. `git checkout {tags.get(f'{TAG_PREFIX}git_commit', '<commit>')[:12]} -- <file>` or "
            "`dvc checkout`) and run this again"
        )
    commit, _ = git_state()
    result = Reproduction(
        name,
        info.version,
        loaded.uri,
        loaded.digest,
        tags.get(f"{TAG_PREFIX}git_commit", "unknown"),
        commit,
        tolerance,
    )
    if config_hash(resolved) != tags.get(f"{TAG_PREFIX}config_hash"):
        result.notes.append("the recorded config does not hash to the recorded config hash")
    if result.recorded_commit != commit:
        result.notes.append(
            f"the code is at commit {commit[:12]}, the version was trained at {result.recorded_commit[:12]}: "
            "a difference may come from the code"
        )
    extra = None
    if int(tags.get(FEEDBACK_ROWS_TAG, "0") or 0):
        extra = registry.run_frame(info.run_id, FEEDBACK_ARTIFACT)
        result.notes.append(f"with the {len(extra)} feedback rows recorded by its retrain")
    data = prepare_data(config, base_dir, extra)
    split = split_data(config, data)
    evaluation = evaluate_model(config, fit_model(config, split), split)
    for metric, value in evaluation.metrics.items():
        recorded = info.metrics.get(f"test_{metric}")
        if recorded is None:
            continue
        difference = value - recorded
        matches = math.isclose(value, recorded, rel_tol=tolerance, abs_tol=tolerance)
        result.checks.append(MetricCheck(metric, recorded, value, difference, matches))
    return result
