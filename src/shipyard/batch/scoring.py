"""Streaming batch scoring: CSV or Parquet in (a file or a folder of files), the same format out, read
and written chunk by chunk with pyarrow so memory stays bounded whatever the input size.

It scores through the same ``ReadyModel`` as the service (its engine in bulk mode, the same input
rules), so a batch job and the API give the same answer for the same row.
The output is written to a temporary name and renamed at the end: an interrupted run leaves no
half-written file.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shipyard.config.settings import Settings
from shipyard.errors import DataError, PredictionInputError
from shipyard.inference import ReadyModel
from shipyard.inference.frames import missing_columns
from shipyard.registry.models import LoadedModel, ModelRegistry

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]
OnError = Literal["fail", "skip"]
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
SHOWN_ERRORS = 5
# In a CSV, only an empty field is a missing value (as pandas writes one); any other text, "NA" too, is
# a value for the input rules to parse or refuse. The API's CSV bodies and Spark read the same way.
CSV_NULLS = ("",)


@dataclass
class ScoreSummary:
    model: str
    version: str
    input: str
    output: str
    rows_in: int
    rows_out: int
    rows_rejected: int
    rejects: str | None
    seconds: float
    rows_per_second: float
    chunks: int
    engine: str = ""
    load_seconds: float = 0.0  # loading and checking the model, before the first row

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_model_ref(text: str) -> tuple[str, str | None]:
    """NAME, NAME@ALIAS or NAME:VERSION -> (name, alias or version or None for the champion)."""
    for separator in ("@", ":"):
        if separator in text:
            name, _, ref = text.partition(separator)
            if not name or not ref:
                break
            return name, ref
    else:
        return text, None
    raise DataError(f"model '{text}': expected NAME, NAME@ALIAS or NAME:VERSION")


def input_files(source: Path) -> list[Path]:
    """The file, or the CSV/Parquet files of a folder (sorted; one format per folder)."""
    if source.is_file():
        if source.suffix.lower() not in SUFFIXES:
            raise DataError(f"{source}: expected a .csv or .parquet file")
        return [source]
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise DataError(f"{source}: no .csv or .parquet files in this folder")
        kinds = {SUFFIXES[p.suffix.lower()] for p in files}
        if len(kinds) > 1:
            raise DataError(f"{source}: mixes CSV and Parquet files; score each format on its own")
        return files
    raise DataError(f"input not found: {source}")


def _csv_types(loaded: LoadedModel) -> dict[str, pa.DataType]:
    """Feature columns read as text, so every block parses the same way (no per-block type guess) and a
    bad value becomes a rejected row with its reason instead of a failed read of the whole file."""
    return {column.name: pa.string() for column in loaded.inputs}


def _chunks(path: Path, columns: list[str], loaded: LoadedModel, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        if SUFFIXES[path.suffix.lower()] == "parquet":
            parquet = pq.ParquetFile(path)
            present = [c for c in columns if c in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=present):
                yield batch.to_pandas()
            return
        with path.open("rb") as handle:
            head = handle.read(1 << 16)
        per_row = max(16, len(head) // max(1, head.count(b"\n")))
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=max(1 << 20, per_row * chunk_rows)),
            convert_options=pacsv.ConvertOptions(
                column_types=_csv_types(loaded),
                include_columns=columns,
                include_missing_columns=True,
                null_values=list(CSV_NULLS),
                strings_can_be_null=True,
            ),
        )
        for batch in reader:
            frame = batch.to_pandas()
            for start in range(0, len(frame), chunk_rows):
                yield frame.iloc[start : start + chunk_rows].reset_index(drop=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"could not read {path}: {str(exc).splitlines()[0]}") from None


def columns_of(path: Path) -> list[str]:
    try:
        if SUFFIXES[path.suffix.lower()] == "parquet":
            return list(pq.ParquetFile(path).schema_arrow.names)
        with path.open("rb") as handle:
            header = handle.readline().decode("utf-8-sig").strip()
        return [c.strip().strip('"') for c in header.split(",")] if header else []
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"could not read {path}: {exc}") from None


def check_columns(files: Sequence[Path], loaded: LoadedModel, keep: Sequence[str]) -> None:
    """Fail before any scoring when a file lacks a kept column or a required feature."""
    for path in files:
        present = set(columns_of(path))
        lacking = [c for c in keep if c not in present]
        if lacking:
            raise DataError(f"--keep column(s) not in {path}: {', '.join(lacking)}")
        absent = missing_columns(loaded.inputs, list(present))
        if absent:
            raise PredictionInputError(
                f"missing feature column(s) in {path}: {', '.join(absent)} "
                f"(the model needs: {', '.join(c.name for c in loaded.inputs)})"
            )


def read_file(path: Path, loaded: LoadedModel, keep: Sequence[str] = ()) -> pd.DataFrame:
    """A whole CSV or Parquet file read exactly as batch scoring reads it (the features of a CSV as
    text, for the input rules to parse), after the same column checks."""
    files = input_files(path)
    check_columns(files, loaded, keep)
    wanted = list(dict.fromkeys([*keep, *(c.name for c in loaded.inputs)]))
    frames = list(_chunks(files[0], wanted, loaded, 100_000))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=wanted)


def _total_rows(files: Sequence[Path]) -> int | None:
    if all(SUFFIXES[p.suffix.lower()] == "parquet" for p in files):
        return sum(int(pq.ParquetFile(p).metadata.num_rows) for p in files)
    return None


class _Writer:
    """Appends frames to a CSV or Parquet file under a temporary name; ``commit`` renames it."""

    def __init__(self, destination: Path, kind: str) -> None:
        self.destination = destination
        self.kind = kind
        destination.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = destination.with_name(f".{destination.name}.partial")
        self._writer: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            if self.kind == "parquet":
                self._writer = pq.ParquetWriter(self.tmp, table.schema)
            else:
                self._writer = pacsv.CSVWriter(self.tmp, table.schema)
        self._writer.write_table(table.cast(self._writer.schema) if self.kind == "parquet" else table)

    def commit(self) -> bool:
        if self._writer is None:
            return False
        self._writer.close()
        self.tmp.replace(self.destination)
        return True

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self.tmp.unlink(missing_ok=True)


def _output_kind(destination: Path) -> str:
    kind = SUFFIXES.get(destination.suffix.lower())
    if kind is None:
        raise DataError(f"--output {destination}: expected a .csv or .parquet file name")
    return kind


def score_file(
    settings: Settings,
    model: str,
    ref: str | None,
    source: Path,
    destination: Path,
    *,
    chunk_rows: int = 100_000,
    keep: Sequence[str] = (),
    on_error: OnError = "fail",
    progress: Progress | None = None,
) -> ScoreSummary:
    """Score ``source`` with ``model`` (alias or version ``ref``; the champion by default) into
    ``destination``: the ``keep`` columns, ``prediction``, ``proba_<class>`` for classifiers and
    ``model_version``. Bad rows fail the run naming them, or with ``on_error="skip"`` go to
    ``<output>.rejects.csv`` with their row number and reason."""
    if chunk_rows < 1:
        raise DataError("chunk rows must be at least 1")
    files = input_files(source)
    kind = _output_kind(destination)
    started = time.perf_counter()
    loaded = ModelRegistry(settings).load(model, ref)
    ready = ReadyModel(
        loaded, fast_path=settings.fast_path, regression_rtol=settings.onnx_regression_rtol, bulk=True
    )
    loaded_at = time.perf_counter()
    check_columns(files, loaded, keep)
    wanted = list(dict.fromkeys([*keep, *ready.columns]))
    rejects_path = destination.with_name(destination.name + ".rejects.csv")
    writer, rejects = _Writer(destination, kind), _Writer(rejects_path, "csv")
    total = _total_rows(files)
    rows_in = rows_out = rows_rejected = chunks = 0
    try:
        for path in files:
            row_base = 0
            for frame in _chunks(path, wanted, loaded, chunk_rows):
                chunks += 1
                check = ready.check(frame)
                numbers = np.arange(row_base + 1, row_base + len(frame) + 1)  # 1-based data rows
                if check.rejected:
                    bad = ~check.good
                    if on_error == "fail":
                        shown = check.first_rows(SHOWN_ERRORS, numbers)
                        where = f"{path.name}: " if len(files) > 1 else ""
                        raise PredictionInputError(
                            f"invalid input in {where}{shown}; nothing was written "
                            "(use --on-error skip to write the bad rows to a side file instead)"
                        )
                    rejected = frame[bad].copy()
                    rejected.insert(0, "_error", check.reasons[bad])
                    rejected.insert(0, "_row", numbers[bad])
                    if len(files) > 1:
                        rejected.insert(0, "_file", path.name)
                    rejects.write(rejected.astype({c: str for c in rejected.columns if c not in ("_row",)}))
                    rows_rejected += check.rejected
                if check.rejected < len(frame):
                    out = pd.DataFrame({c: frame[c].to_numpy()[check.good] for c in keep})
                    scored = ready.score(check.batch)
                    for column in scored.columns:
                        out[column] = scored[column].to_numpy()
                    out["model_version"] = loaded.version
                    writer.write(out)
                    rows_out += len(out)
                rows_in += len(frame)
                row_base += len(frame)
                if progress is not None:
                    progress(rows_in, total)
        if not writer.commit():
            raise DataError(
                f"{source}: no rows to score" + (" (every row was rejected)" if rows_rejected else "")
            )
        rejects.commit()
    except BaseException:
        writer.abort()
        rejects.abort()
        raise
    finished = time.perf_counter()
    seconds, scoring = finished - started, finished - loaded_at
    return ScoreSummary(
        model=model,
        version=loaded.version,
        input=str(source),
        output=str(destination),
        rows_in=rows_in,
        rows_out=rows_out,
        rows_rejected=rows_rejected,
        rejects=str(rejects_path) if rows_rejected else None,
        seconds=round(seconds, 3),
        rows_per_second=round(rows_in / scoring, 1) if scoring > 0 else 0.0,
        chunks=chunks,
        engine=ready.engine.name,
        load_seconds=round(loaded_at - started, 3),
    )
