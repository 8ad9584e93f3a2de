"""One chunk of a batch file, checked and scored into the Arrow tables the writer appends.

Both ways of running a batch job use this one function, the single-process loop and the worker
processes of ``batch.parallel``, so a file gives the same output, the same rejected rows and the same
error whatever the number of workers. Chunks travel between processes as Arrow IPC streams (no pickled
DataFrames): cheap to make and to read back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from shipyard.inference import ReadyModel

SHOWN_ERRORS = 5


@dataclass(frozen=True)
class ChunkTask:
    """Where a chunk comes from: its place in the run, its file, and the file's rows before it."""

    index: int  # 0-based, across every file of the run: results are written in this order
    file: str  # the file's name, shown in errors and in the rejects of a multi-file run
    row_base: int  # data rows of this file before the chunk (the chunk's first row is row_base + 1)
    rows: int


@dataclass
class ChunkResult:
    """What the writer appends for a chunk, or the error that stops the run (``--on-error fail``)."""

    rows: int
    out: pa.Table | None = None  # the scored good rows
    rejected: pa.Table | None = None  # the bad rows with _row and _error (``--on-error skip``)
    rejected_count: int = 0
    error: str | None = None


class ChunkScorer:
    """Checks and scores chunks with one ``ReadyModel`` (its engine in bulk mode)."""

    def __init__(self, ready: ReadyModel, keep: tuple[str, ...], on_error: str, multi_file: bool) -> None:
        self.ready = ready
        self.keep = keep
        self.on_error = on_error
        self.multi_file = multi_file

    def score(self, task: ChunkTask, batch: pa.RecordBatch) -> ChunkResult:
        frame = batch.to_pandas()
        check = self.ready.check(frame)
        numbers = np.arange(task.row_base + 1, task.row_base + len(frame) + 1)  # 1-based data rows
        result = ChunkResult(rows=len(frame))
        if check.rejected:
            bad = ~check.good
            if self.on_error == "fail":
                shown = check.first_rows(SHOWN_ERRORS, numbers)
                where = f"{task.file}: " if self.multi_file else ""
                result.error = (
                    f"invalid input in {where}{shown}; nothing was written "
                    "(use --on-error skip to write the bad rows to a side file instead)"
                )
                return result
            rejected = frame[bad].copy()
            rejected.insert(0, "_error", check.reasons[bad])
            rejected.insert(0, "_row", numbers[bad])
            if self.multi_file:
                rejected.insert(0, "_file", task.file)
            rejected = rejected.astype({c: str for c in rejected.columns if c not in ("_row",)})
            result.rejected = pa.Table.from_pandas(rejected, preserve_index=False)
            result.rejected_count = check.rejected
        if check.rejected < len(frame):
            out = pd.DataFrame({c: frame[c].to_numpy()[check.good] for c in self.keep})
            scored = self.ready.score(check.batch)
            for column in scored.columns:
                out[column] = scored[column].to_numpy()
            out["model_version"] = self.ready.version
            result.out = pa.Table.from_pandas(out, preserve_index=False)
        return result


def to_ipc(data: pa.Table | pa.RecordBatch) -> pa.Buffer:
    """An Arrow IPC stream of ``data`` (schema and rows; a slice carries only its own rows)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema) as stream:
        stream.write(data)
    return sink.getvalue()


def table_from_ipc(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()


def batch_from_ipc(payload: bytes) -> pa.RecordBatch:
    """The one record batch ``to_ipc`` wrote."""
    return pa.ipc.open_stream(pa.py_buffer(payload)).read_next_batch()
