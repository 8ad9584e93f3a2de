"""Read a pipeline config from YAML with errors that name the file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from shipyard.config.pipeline import PipelineConfig
from shipyard.errors import ConfigError


def load_config(path: str | Path) -> PipelineConfig:
    """Parse ``path`` into a :class:`PipelineConfig`; raise :class:`ConfigError` on any problem."""
    path = Path(path)
    if not path.is_file():
        hint = ""
        if path.parent.is_dir():
            found = sorted(p.name for p in path.parent.glob("*.yaml"))
            if found:
                hint = f" (configs there: {', '.join(found)})"
        raise ConfigError(f"{path}: config file not found{hint}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    return parse_config(raw, source=str(path))


def parse_config(raw: Any, source: str = "<config>") -> PipelineConfig:
    """Validate an already-parsed mapping; ``source`` names it in error messages."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [describe_error(err) for err in exc.errors()]
        raise ConfigError(f"{source}: " + "; ".join(lines)) from None


def describe_error(err: Any) -> str:
    """One readable clause for one pydantic error: key path, then what was wrong or expected."""
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        expected = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        return f"{key}: unknown key{expected}"
    if kind == "missing":
        return f"{key}: required key is missing"
    if kind == "literal_error":
        return f"{key}: {err['msg'].replace('Input should be', 'expected')}, got {err['input']!r}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{key}: {msg.replace('Input should be', 'expected')}, got {err['input']!r}"
    return f"{key}: {msg}"


def _allowed_keys(loc: list[str]) -> list[str]:
    """The keys the model at ``loc`` accepts, by walking PipelineConfig's field annotations."""
    model: type[BaseModel] | None = PipelineConfig
    for part in loc:
        if model is None:
            return []
        field = model.model_fields.get(part)
        if field is None:
            # a dict value (e.g. dataset.columns.<name>): keep the value's model
            continue
        model = _model_of(field.annotation)
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
