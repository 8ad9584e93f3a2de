"""Spark batch scoring: the answers of ``score_file``, computed by Spark (``local[N]`` or a cluster).

Not ``mlflow.pyfunc.spark_udf``: the registered model's pyfunc ``predict`` is the Pipeline's ``predict``
(labels only), so it cannot give the ``proba_<class>`` columns, and it would bypass the service's input
checks and engine choice. Instead the driver loads the version through the registry once and
broadcasts it; each Python worker makes the same ``ReadyModel`` from it once (the engine in bulk mode,
the same input rules) and scores Arrow batches with ``mapInPandas``, so the output equals
``score_file``'s row for row, and executors need neither MLflow nor the model store.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.batch.scoring import CSV_NULLS, SUFFIXES, Progress, ScoreSummary, check_columns, input_files
from shipyard.batch.spark_session import PANDAS_WARNING, require_pyspark, spark_session
from shipyard.config.settings import Settings
from shipyard.errors import DataError, PredictionInputError
from shipyard.inference import ReadyModel
from shipyard.inference.ready import PROBA_PREFIX
from shipyard.registry.models import LoadedModel, ModelRegistry

log = logging.getLogger(__name__)

ORDER = "__shipyard_row"  # input order, carried through the shuffle that gathers one output file
SHOWN_ERRORS = 5


@dataclass(frozen=True)
class _Plan:
    """What each Python worker needs to score a partition; pickled with the task."""

    model: Any  # Broadcast[LoadedModel]
    fast_path: bool
    regression_rtol: float
    keep: tuple[str, ...]
    classes: tuple[str, ...] | None
    rows: Any  # Accumulator[int]: rows scored, for progress only


_READY: dict[tuple[str, str, str | None, bool, float], ReadyModel] = {}


def _ready(loaded: LoadedModel, plan: _Plan) -> ReadyModel:
    """One ReadyModel per model version per worker process (Spark reuses Python workers across tasks)."""
    key = (loaded.name, loaded.version, loaded.run_id, plan.fast_path, plan.regression_rtol)
    if key not in _READY:
        _READY[key] = ReadyModel(
            loaded, fast_path=plan.fast_path, regression_rtol=plan.regression_rtol, bulk=True
        )
    return _READY[key]


def _score_partition(frames: Iterator[pd.DataFrame], plan: _Plan) -> Iterator[pd.DataFrame]:
    """Runs on the executors: check, predict and shape each batch exactly as ``score_file`` does."""
    loaded: LoadedModel = plan.model.value
    ready = _ready(loaded, plan)
    for frame in frames:
        if frame.empty:
            continue
        check = ready.check(frame)
        if check.rejected:
            raise PredictionInputError(_rejected(frame, check.good, check.reasons, plan.keep))
        out = pd.DataFrame({c: frame[c].to_numpy() for c in plan.keep})
        scored = ready.score(check.batch)
        for column in scored.columns:
            out[column] = scored[column].to_numpy()
        out["model_version"] = loaded.version
        out[ORDER] = frame[ORDER].to_numpy()
        plan.rows.add(len(frame))
        yield out


def _rejected(frame: pd.DataFrame, good: np.ndarray, reasons: np.ndarray, keep: Sequence[str]) -> str:
    """The first bad rows of a batch, named by their kept columns (Spark has no cheap row numbers)."""
    bad = np.flatnonzero(~good)
    shown = []
    for index in bad[:SHOWN_ERRORS]:
        where = ", ".join(f"{c}={_shown(frame[c].iloc[index])}" for c in keep) or "a row"
        shown.append(f"{where}: {reasons[index]}")
    more = f" (and {len(bad) - SHOWN_ERRORS} more in this batch)" if len(bad) > SHOWN_ERRORS else ""
    return f"invalid input: {'; '.join(shown)}{more}"


def _shown(value: Any) -> str:
    value = value.item() if isinstance(value, np.generic) else value
    return repr(value) if isinstance(value, str) else str(value)


def _spark_type(arrow_type: Any) -> Any:
    import pyarrow as pa
    from pyspark.sql import types as st

    if pa.types.is_integer(arrow_type):
        return st.LongType()
    if pa.types.is_floating(arrow_type):
        return st.DoubleType()
    if pa.types.is_boolean(arrow_type):
        return st.BooleanType()
    if pa.types.is_timestamp(arrow_type):
        return st.TimestampType()
    if pa.types.is_date(arrow_type):
        return st.DateType()
    return st.StringType()


def _read(spark: Any, files: list[Path], loaded: LoadedModel, keep: Sequence[str]) -> Any:
    """The input as a DataFrame of the kept and feature columns present, read as ``score_file`` reads
    it. From CSV, features come as text with empty fields as nulls (``CSV_NULLS``), so a bad value
    becomes a named bad row in the input check; kept columns get the types Arrow infers; a malformed
    file (wrong number of fields) fails the read."""
    from pyspark.sql import functions as sf
    from pyspark.sql import types as st

    paths = [str(p) for p in files]
    features = [c.name for c in loaded.inputs]
    if SUFFIXES[files[0].suffix.lower()] == "parquet":
        frame = spark.read.parquet(*paths)
    else:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        with files[0].open("rb") as handle:
            header = handle.readline().decode("utf-8-sig").strip()
        names = [c.strip().strip('"') for c in header.split(",")] if header else []
        inferred: dict[str, Any] = {}
        others = [c for c in keep if c not in features and c in names]
        if others:
            try:
                options = pacsv.ConvertOptions(include_columns=others, strings_can_be_null=True)
                reader = pacsv.open_csv(files[0], convert_options=options)
                inferred = {field.name: field.type for field in reader.schema}
                reader.close()
            except (pa.ArrowInvalid, OSError) as exc:
                raise DataError(f"could not read {files[0]}: {str(exc).splitlines()[0]}") from None
        schema = st.StructType(
            [
                st.StructField(name, _spark_type(inferred[name]) if name in inferred else st.StringType())
                for name in names
            ]
        )
        frame = (
            spark.read.schema(schema)
            .option("header", "true")
            .option("mode", "FAILFAST")
            .option("escape", '"')
            .csv(paths)
        )
        nulls = list(CSV_NULLS)  # the markers score_file's reader uses
        frame = frame.select(
            *(
                sf.when(_col(n).isin(nulls), sf.lit(None)).otherwise(_col(n)).alias(n)
                if n in features
                else _col(n)
                for n in frame.columns
            )
        )
    present = set(frame.columns)
    wanted = list(dict.fromkeys([*keep, *(c for c in features if c in present)]))
    return frame.select(*(_col(c) for c in wanted))


def _col(name: str) -> Any:
    """A column by its exact name (a dot in a CSV header is not a struct field)."""
    from pyspark.sql import functions as sf

    return sf.col("`" + name.replace("`", "``") + "`")


def _output_schema(source: Any, keep: Sequence[str], loaded: LoadedModel, classes: list[str] | None) -> Any:
    from pyspark.sql import types as st

    fields = [source[c] for c in keep]
    if classes is None:
        fields.append(st.StructField("prediction", st.DoubleType()))
    else:
        kind = np.asarray(loaded.classes).dtype.kind
        label = {"i": st.LongType(), "u": st.LongType(), "f": st.DoubleType(), "b": st.BooleanType()}
        fields.append(st.StructField("prediction", label.get(kind, st.StringType())))
        fields += [st.StructField(f"{PROBA_PREFIX}{c}", st.DoubleType()) for c in classes]
    fields.append(st.StructField("model_version", st.StringType()))
    fields.append(st.StructField(ORDER, st.LongType()))
    return st.StructType(fields)


def _translate(exc: Exception, source: Path) -> Exception | None:
    """Our own errors raised in a task, and malformed input, as the errors ``score_file`` raises."""
    text = str(exc)
    found = re.search(r"PredictionInputError: (.+)", text)
    if found:
        return PredictionInputError(
            f"{found.group(1).strip()}; nothing was written (fix the rows, or score them with --engine local "
            "--on-error skip to set them aside)"
        )
    if "MALFORMED_RECORD" in text or "Malformed records" in text:
        detail = next((line.strip() for line in text.splitlines() if "Malformed" in line), text[:200])
        return DataError(f"could not read {source}: {detail}")
    return None


def _parquet_layout(files: Sequence[Path]) -> tuple[int, int] | None:
    """(rows, row groups) of Parquet input, from the footers; None for CSV."""
    if not all(SUFFIXES[p.suffix.lower()] == "parquet" for p in files):
        return None
    import pyarrow.parquet as pq

    metas = [pq.ParquetFile(p).metadata for p in files]
    return sum(int(m.num_rows) for m in metas), sum(int(m.num_row_groups) for m in metas)


@contextmanager
def _polling(rows: Any, total: int | None, progress: Progress | None) -> Iterator[None]:
    """Report rows scored (as tasks finish) from a side thread while Spark works."""
    if progress is None:
        yield
        return
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.5):
            progress(int(rows.value), total)

    thread = threading.Thread(target=poll, name="spark-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def _scratch(destination: Path) -> Iterator[Path]:
    """A scratch folder beside ``destination`` (same filesystem, so the final rename is atomic),
    removed afterwards whatever happens."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_part(frame: Any, scratch: Path, kind: str) -> Path:
    """The scored rows as one part file, in input order: one shuffle gathers them into a single task
    that sorts by the row index taken at read time (Spark's file splits are not in file order)."""
    gathered = frame.repartition(1).sortWithinPartitions(ORDER).drop(ORDER)
    writer = gathered.write.mode("overwrite")
    if kind == "csv":
        writer.option("header", "true").option("escape", '"').csv(str(scratch / "out"))
    else:
        writer.parquet(str(scratch / "out"))
    parts = sorted((scratch / "out").glob("part-*"))
    if len(parts) != 1:
        raise DataError(f"Spark wrote {len(parts)} part files where one was expected")
    return parts[0]


def score_with_spark(
    settings: Settings,
    model: str,
    ref: str | None,
    source: Path,
    destination: Path,
    *,
    keep: Sequence[str] = (),
    master: str = "local[2]",
    progress: Progress | None = None,
) -> ScoreSummary:
    """Score ``source`` (CSV or Parquet file, or a folder of them) with ``model`` on Spark into one
    ``destination`` file of the same columns and values as ``score_file``: the ``keep`` columns,
    ``prediction``, ``proba_<class>`` for classifiers and ``model_version``, in input order. Any bad
    row fails the run (nothing is written). ``load_seconds`` covers loading the model and starting
    Spark; ``chunks`` counts the partitions scored in parallel."""
    files = input_files(source)
    kind = SUFFIXES.get(destination.suffix.lower())
    if kind is None:
        raise DataError(f"--output {destination}: expected a .csv or .parquet file name")
    keep = tuple(dict.fromkeys(keep))
    require_pyspark()
    started = time.perf_counter()
    loaded = ModelRegistry(settings).load(model, ref)
    # the ReadyModel score_file makes (bulk mode); the workers make the same one from the same inputs
    ready = ReadyModel(
        loaded, fast_path=settings.fast_path, regression_rtol=settings.onnx_regression_rtol, bulk=True
    )
    classes = ready.class_names if ready.is_classifier else None
    check_columns(files, loaded, keep)
    layout = _parquet_layout(files)
    total = layout[0] if layout else None
    from pyspark.sql import Observation
    from pyspark.sql import functions as sf

    with warnings.catch_warnings(), spark_session(master) as spark, _scratch(destination) as scratch:
        warnings.filterwarnings("ignore", message=PANDAS_WARNING, category=FutureWarning)
        spark_ready = time.perf_counter()
        context = spark.sparkContext
        frame = _read(spark, files, loaded, keep)
        frame = frame.withColumn(ORDER, sf.monotonically_increasing_id())
        # Spark splits Parquet by bytes but reads a row group in one task: a file of one row group
        # would be scored by one core, so spread the work when there are fewer pieces than cores
        partitions = int(frame.rdd.getNumPartitions())
        pieces = min(partitions, layout[1]) if layout else partitions
        parallelism = int(context.defaultParallelism)
        if pieces < parallelism:
            frame, partitions = frame.repartition(parallelism), parallelism
        plan = _Plan(
            model=context.broadcast(loaded),
            fast_path=settings.fast_path,
            regression_rtol=settings.onnx_regression_rtol,
            keep=keep,
            classes=tuple(classes) if classes is not None else None,
            rows=context.accumulator(0),
        )
        log.info(
            "scoring %s v%s on Spark %s: %d partitions, engine %s",
            model,
            loaded.version,
            context.master,
            partitions,
            ready.engine.name,
        )
        schema = _output_schema(frame.schema, keep, loaded, classes)
        scored = frame.mapInPandas(functools.partial(_score_partition, plan=plan), schema)
        observed = Observation("shipyard")
        scored = scored.observe(observed, sf.count(sf.lit(1)).alias("rows"))
        try:
            with _polling(plan.rows, total, progress):
                part = _write_part(scored, scratch, kind)
        except Exception as exc:
            translated = _translate(exc, source)
            if translated is None:
                raise
            raise translated from None
        finally:
            plan.model.destroy()
        rows = int(observed.get["rows"])
        if rows == 0:
            raise DataError(f"{source}: no rows to score")
        part.replace(destination)
    if progress is not None:
        progress(rows, total if total is not None else rows)
    seconds = time.perf_counter() - started
    return ScoreSummary(
        model=model,
        version=loaded.version,
        input=str(source),
        output=str(destination),
        rows_in=rows,
        rows_out=rows,
        rows_rejected=0,
        rejects=None,
        seconds=round(seconds, 3),
        rows_per_second=round(rows / seconds, 1) if seconds > 0 else 0.0,
        chunks=partitions,
        engine=f"spark+{ready.engine.name}",
        load_seconds=round(spark_ready - started, 3),
    )
