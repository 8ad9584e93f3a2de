"""Where batch jobs may read and write: only under one root folder (``SHIPYARD_BATCH_ROOT``, default home).

A job names its input and output as a path (absolute, or relative to the root) or a ``file://`` URI. Both
are resolved (symbolic links followed, ``..`` folded) before they are compared with the resolved root,
so neither a ``../`` nor a link can lead a client outside it. The service checks when a job is submitted
and the worker checks again before it touches a file (its root is the one in force where it runs).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from shipyard.config.settings import Settings
from shipyard.errors import ShipyardError

SUFFIXES = (".csv", ".parquet", ".pq")


class BatchPathError(ShipyardError):
    """A job's input or output path is malformed or missing (``invalid``), outside the root (``outside``:
    a permission matter) or an output that exists already (``exists``); ``field`` names which."""

    exit_code = 3

    def __init__(
        self, field: str, message: str, kind: Literal["invalid", "outside", "exists"] = "invalid"
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message
        self.kind = kind


def batch_root(settings: Settings) -> Path:
    """The resolved folder batch jobs are confined to."""
    return (settings.batch_root or settings.home).expanduser().resolve()


def _as_path(field: str, value: str, root: Path) -> Path:
    text = value.strip()
    if not text:
        raise BatchPathError(field, "is empty")
    if "\x00" in text:
        raise BatchPathError(field, "contains a NUL character")
    if "://" in text or text.lower().startswith("file:"):
        parts = urlsplit(text)
        if parts.scheme.lower() != "file":
            raise BatchPathError(
                field, f"unsupported URI scheme '{parts.scheme}' (use a path or a file:// URI)"
            )
        if parts.netloc not in ("", "localhost"):
            raise BatchPathError(field, f"file URI names host '{parts.netloc}'; only local files are read")
        text = unquote(parts.path)
        if "\x00" in text or not text:
            raise BatchPathError(field, "is not a usable file URI")
    path = Path(text)
    return path if path.is_absolute() else root / path


def resolve_inside(field: str, value: str, root: Path) -> Path:
    """``value`` as an absolute, resolved path inside ``root``; BatchPathError otherwise."""
    try:
        path = _as_path(field, value, root).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, an unreadable folder
        raise BatchPathError(field, f"cannot be resolved ({exc})") from None
    if not path.is_relative_to(root):
        raise BatchPathError(
            field,
            f"'{_shown(value)}' is outside the batch root {root} (SHIPYARD_BATCH_ROOT); jobs read and "
            "write only under it",
            "outside",
        )
    return path


@dataclass(frozen=True)
class JobPaths:
    input: Path
    output: Path


def _shown(value: str) -> str:
    return value if len(value) <= 200 else value[:200] + "..."


def _kind(field: str, path: Path) -> Literal["missing", "file", "folder", "other"]:
    """What is at ``path``, with any error other than "not there" as a BatchPathError for ``field``."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as exc:  # a name too long, a permission, a symlink loop
        raise BatchPathError(field, f"cannot be checked ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        return "folder"
    return "file" if stat.S_ISREG(mode) else "other"


def check_paths(settings: Settings, input: str, output: str, *, overwrite: bool) -> JobPaths:
    """The job's input (an existing CSV/Parquet file or folder of them) and output (a .csv or .parquet
    file name whose folder may not exist yet) inside the root; BatchPathError naming the field if not."""
    root = batch_root(settings)
    source = resolve_inside("input", input, root)
    destination = resolve_inside("output", output, root)
    source_kind = _kind("input", source)
    if source_kind == "missing":
        raise BatchPathError("input", f"'{_shown(input)}' not found under the batch root")
    if source_kind == "other" or (source_kind == "file" and source.suffix.lower() not in SUFFIXES):
        raise BatchPathError(
            "input", f"'{_shown(input)}' is not a .csv or .parquet file (or a folder of them)"
        )
    if destination.suffix.lower() not in SUFFIXES:
        raise BatchPathError("output", f"'{_shown(output)}' must end in .csv or .parquet")
    if destination == source or (source_kind == "folder" and destination.is_relative_to(source)):
        raise BatchPathError("output", "must not be the input or inside the input folder")
    destination_kind = _kind("output", destination)
    if destination_kind in ("folder", "other"):
        raise BatchPathError("output", f"'{_shown(output)}' is not a file name")
    if destination_kind == "file" and not overwrite:
        raise BatchPathError(
            "output", f"'{_shown(output)}' exists (send \"overwrite\": true to replace it)", "exists"
        )
    for parent in destination.parents:
        parent_kind = _kind("output", parent)
        if parent_kind == "folder":
            break
        if parent_kind != "missing":
            raise BatchPathError("output", f"'{parent}' is a file, not a folder")
    return JobPaths(source, destination)
