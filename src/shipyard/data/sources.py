"""DataLoader: read a dataset from scikit-learn's bundled copies, a CSV file or a Parquet file.

Raw data is never modified: the loader only reads, and it fingerprints what it read (SHA-256 of the
file's bytes, or of a canonical CSV rendering for bundled data) so a model can name its exact data.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from shipyard.config.pipeline import SourceConfig
from shipyard.errors import DataError


@dataclass(frozen=True)
class LoadedData:
    """A loaded frame with where it came from and its content hash."""

    frame: pd.DataFrame
    uri: str
    digest: str
    name: str


def snake_case(name: str) -> str:
    """``'sepal length (cm)'`` -> ``'sepal_length_cm'``: valid identifiers for ONNX, SQL and JSON."""
    out = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    return f"c_{out}" if out[:1].isdigit() else out


def _bundled(
    loader_name: str, target: str, rename: dict[str, str] | None = None
) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from sklearn import datasets

        bunch = getattr(datasets, loader_name)(as_frame=True)
        frame: pd.DataFrame = bunch.frame.copy()
        frame.columns = [snake_case(c) for c in frame.columns]
        frame = frame.rename(columns={"target": target, **(rename or {})})
        names = getattr(bunch, "target_names", None)
        if names is not None and loader_name != "load_diabetes":
            frame[target] = pd.Series([str(names[i]) for i in frame[target]], index=frame.index, dtype=object)
        return frame

    return load


_IRIS_NAMES = {
    "sepal_length_cm": "sepal_length",
    "sepal_width_cm": "sepal_width",
    "petal_length_cm": "petal_length",
    "petal_width_cm": "petal_width",
}

BUNDLED: dict[str, Callable[[], pd.DataFrame]] = {
    "iris": _bundled("load_iris", "species", _IRIS_NAMES),
    "wine": _bundled("load_wine", "cultivar"),
    "breast_cancer": _bundled("load_breast_cancer", "diagnosis"),
    "diabetes": _bundled("load_diabetes", "progression"),
}


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def frame_sha256(frame: pd.DataFrame) -> str:
    """Hash of a frame's canonical CSV rendering: stable across runs and machines."""
    return hashlib.sha256(frame.to_csv(index=False, lineterminator="\n").encode()).hexdigest()


class DataLoader:
    """Loads the raw data a config names. Relative paths are taken from the working directory."""

    def __init__(self, source: SourceConfig, base_dir: Path | None = None) -> None:
        self.source = source
        self.base_dir = base_dir or Path.cwd()

    def load(self) -> LoadedData:
        src = self.source
        if src.kind == "bundled":
            assert src.name is not None
            loader = BUNDLED.get(src.name)
            if loader is None:
                raise DataError(
                    f"unknown bundled dataset '{src.name}' (expected one of: {', '.join(sorted(BUNDLED))})"
                )
            frame = loader()
            return LoadedData(frame, f"sklearn:{src.name}", frame_sha256(frame), src.name)
        assert src.path is not None
        path = src.path if src.path.is_absolute() else self.base_dir / src.path
        if not path.is_file():
            raise DataError(f"data file not found: {path}")
        try:
            frame = self._read_csv(path) if src.kind == "csv" else pd.read_parquet(path)
        except (ValueError, OSError, pd.errors.ParserError) as exc:
            raise DataError(f"could not read {src.kind} file {path}: {exc}") from None
        if frame.empty:
            raise DataError(f"{path} holds no rows")
        return LoadedData(frame, str(path), file_sha256(path), path.stem)

    def _read_csv(self, path: Path) -> pd.DataFrame:
        na = self.source.na_values
        if na is None:
            return pd.read_csv(path)
        return pd.read_csv(path, keep_default_na=False, na_values=na)
