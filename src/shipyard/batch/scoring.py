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
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shipyard.batch.chunks import ChunkResult, ChunkScorer, ChunkTask
from shipyard.batch.parallel import ScoringPool, WorkerJob
from shipyard.config.settings import Settings
from shipyard.errors import DataError, PredictionInputError
from shipyard.inference import ReadyModel
from shipyard.inference.frames import missing_columns
from shipyard.registry.models import InputColumn, LoadedModel, ModelRegistry

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]
OnError = Literal["fail", "skip"]
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
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
    load_seconds: float = 0.0  # loading and checking the model (in every worker), before the first row
    workers: int = 1  # processes that scored the chunks (1: this one)
    max_chunks_in_flight: int = 1  # most chunks read and not yet written at once (at most workers + 1)
    workers_peak_rss_mb: float = 0.0  # the worker processes' peak memory, summed (0 with one process)

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


def _csv_types(inputs: Sequence[InputColumn]) -> dict[str, pa.DataType]:
    """Feature columns read as text, so every block parses the same way (no per-block type guess) and a
    bad value becomes a rejected row with its reason instead of a failed read of the whole file."""
    return {column.name: pa.string() for column in inputs}


def _bytes_per_row(path: Path) -> int:
    """A CSV's bytes per row, from its first 64 KiB (to size read blocks and estimate chunks)."""
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    return max(16, len(head) // max(1, head.count(b"\n")))


def _batches(
    path: Path, columns: list[str], inputs: Sequence[InputColumn], chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    """The file's rows as Arrow batches of at most ``chunk_rows`` rows (the features of a CSV as text)."""
    try:
        if SUFFIXES[path.suffix.lower()] == "parquet":
            parquet = pq.ParquetFile(path)
            present = [c for c in columns if c in parquet.schema_arrow.names]
            yield from parquet.iter_batches(batch_size=chunk_rows, columns=present)
            return
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=max(1 << 20, _bytes_per_row(path) * chunk_rows)),
            convert_options=pacsv.ConvertOptions(
                column_types=_csv_types(inputs),
                include_columns=columns,
                include_missing_columns=True,
                null_values=list(CSV_NULLS),
                strings_can_be_null=True,
            ),
        )
        for batch in reader:
            for start in range(0, batch.num_rows, chunk_rows):
                yield batch.slice(start, chunk_rows)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"could not read {path}: {str(exc).splitlines()[0]}") from None


def _chunks(path: Path, columns: list[str], loaded: LoadedModel, chunk_rows: int) -> Iterator[pd.DataFrame]:
    for batch in _batches(path, columns, loaded.inputs, chunk_rows):
        yield batch.to_pandas()


def _tasks(
    files: Sequence[Path], columns: list[str], inputs: Sequence[InputColumn], chunk_rows: int
) -> Iterator[tuple[ChunkTask, pa.RecordBatch]]:
    """Every chunk of the run in order, with its place: its index, its file and the file's rows before it."""
    index = 0
    for path in files:
        row_base = 0
        for batch in _batches(path, columns, inputs, chunk_rows):
            yield ChunkTask(index, path.name, row_base, batch.num_rows), batch
            index += 1
            row_base += batch.num_rows


def _estimated_chunks(files: Sequence[Path], chunk_rows: int) -> int:
    """Chunks the run will have: exact for Parquet, from the file size for CSV."""
    count = 0
    for path in files:
        try:
            if SUFFIXES[path.suffix.lower()] == "parquet":
                rows = int(pq.ParquetFile(path).metadata.num_rows)
            else:
                rows = path.stat().st_size // _bytes_per_row(path)
        except (pa.ArrowInvalid, OSError):
            rows = chunk_rows  # unreadable: the reading itself will say why
        count += max(1, math.ceil(rows / chunk_rows))
    return count


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
    _check_columns(files, loaded.inputs, keep)


def _check_columns(files: Sequence[Path], inputs: Sequence[InputColumn], keep: Sequence[str]) -> None:
    for path in files:
        present = set(columns_of(path))
        lacking = [c for c in keep if c not in present]
        if lacking:
            raise DataError(f"--keep column(s) not in {path}: {', '.join(lacking)}")
        absent = missing_columns(inputs, list(present))
        if absent:
            raise PredictionInputError(
                f"missing feature column(s) in {path}: {', '.join(absent)} "
                f"(the model needs: {', '.join(c.name for c in inputs)})"
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

    def write(self, table: pa.Table) -> None:
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


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity set, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(settings: Settings, workers: int | None = None) -> int:
    """Scoring processes for a run: ``workers``, else SHIPYARD_BATCH_WORKERS, else every usable CPU."""
    count = workers if workers is not None else settings.batch_workers
    count = usable_cpus() if count is None else count
    if count < 1:
        raise DataError(f"workers: expected at least 1, got {count}")
    return count


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
    workers: int | None = None,
) -> ScoreSummary:
    """Score ``source`` with ``model`` (alias or version ``ref``; the champion by default) into
    ``destination``: the ``keep`` columns, ``prediction``, ``proba_<class>`` for classifiers and
    ``model_version``. Bad rows fail the run naming them, or with ``on_error="skip"`` go to
    ``<output>.rejects.csv`` with their row number and reason.

    ``workers`` processes score the chunks (default: SHIPYARD_BATCH_WORKERS, else every usable CPU);
    with 1, or an input of one chunk, everything runs in this process. The output is the same either way."""
    if chunk_rows < 1:
        raise DataError("chunk rows must be at least 1")
    files = input_files(source)
    kind = _output_kind(destination)
    processes = min(resolve_workers(settings, workers), _estimated_chunks(files, chunk_rows))
    keep = tuple(keep)
    multi_file = len(files) > 1
    started = time.perf_counter()
    if processes <= 1:
        loaded = ModelRegistry(settings).load(model, ref)
        ready = ReadyModel(
            loaded, fast_path=settings.fast_path, regression_rtol=settings.onnx_regression_rtol, bulk=True
        )
        loaded_at = time.perf_counter()
        check_columns(files, loaded, keep)
        scorer = ChunkScorer(ready, keep, on_error, multi_file)
        wanted = list(dict.fromkeys([*keep, *ready.columns]))
        results = (
            (task, scorer.score(task, batch))
            for task, batch in _tasks(files, wanted, loaded.inputs, chunk_rows)
        )
        counts = _write_all(results, source, destination, kind, _total_rows(files), progress)
        version, engine, in_flight, worker_peaks = loaded.version, ready.engine.name, 1, 0.0
    else:
        _check_columns(files, [], keep)  # the kept columns, before starting workers; the features after
        job = WorkerJob(settings, model, ref, keep, on_error, multi_file)
        with ScoringPool(job, processes) as pool:
            facts = pool.facts
            assert facts is not None
            loaded_at = time.perf_counter()
            _check_columns(files, facts.inputs, keep)
            wanted = list(dict.fromkeys([*keep, *(c.name for c in facts.inputs)]))
            chunks = _tasks(files, wanted, facts.inputs, chunk_rows)
            counts = _write_all(pool.ordered(chunks), source, destination, kind, _total_rows(files), progress)
        version, engine = facts.version, facts.engine
        in_flight, worker_peaks = pool.max_in_flight, sum(facts.peak_rss_mb)
    finished = time.perf_counter()
    seconds, scoring = finished - started, finished - loaded_at
    rows_in, rows_out, rows_rejected, chunk_count = counts
    return ScoreSummary(
        model=model,
        version=version,
        input=str(source),
        output=str(destination),
        rows_in=rows_in,
        rows_out=rows_out,
        rows_rejected=rows_rejected,
        rejects=str(_rejects_path(destination)) if rows_rejected else None,
        seconds=round(seconds, 3),
        rows_per_second=round(rows_in / scoring, 1) if scoring > 0 else 0.0,
        chunks=chunk_count,
        engine=engine,
        load_seconds=round(loaded_at - started, 3),
        workers=processes,
        max_chunks_in_flight=in_flight,
        workers_peak_rss_mb=round(worker_peaks, 1),
    )


def _rejects_path(destination: Path) -> Path:
    return destination.with_name(destination.name + ".rejects.csv")


def _write_all(
    results: Iterable[tuple[ChunkTask, ChunkResult]],
    source: Path,
    destination: Path,
    kind: str,
    total: int | None,
    progress: Progress | None,
) -> tuple[int, int, int, int]:
    """Append the chunks' results in order under temporary names, renamed at the end; the first chunk
    with an error (``--on-error fail``) stops the run and nothing is written. (rows in, out, rejected,
    chunks)."""
    writer, rejects = _Writer(destination, kind), _Writer(_rejects_path(destination), "csv")
    rows_in = rows_out = rows_rejected = chunks = 0
    try:
        for task, result in results:
            chunks += 1
            if result.error is not None:
                raise PredictionInputError(result.error)
            if result.rejected is not None:
                rejects.write(result.rejected)
                rows_rejected += result.rejected_count
            if result.out is not None:
                writer.write(result.out)
                rows_out += result.out.num_rows
            rows_in += task.rows
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
    return rows_in, rows_out, rows_rejected, chunks
