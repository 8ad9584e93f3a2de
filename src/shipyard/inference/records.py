"""Validate JSON-style input (records, rows or columns) against a model's inputs, then build its batch.

The shape of a request (objects, lists, unknown or absent features) is checked here; every value is
checked by the one rule set in ``inference.columns``, which files and frames use too.

Every problem is collected with its location (record index and feature name), capped so a huge bad
request does not produce a huge answer, and the input itself is never echoed back beyond the one
offending value (shortened).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import PredictionInputError
from shipyard.inference.columns import check_column, choices
from shipyard.registry.models import InputColumn

MAX_ERRORS = 20

# One validated request: feature name -> a 1-D array in the model's types (float64, int64, object, bool).
Batch = dict[str, np.ndarray]


def batch_rows(batch: Batch) -> int:
    return len(next(iter(batch.values()))) if batch else 0


def batch_frame(batch: Batch) -> pd.DataFrame:
    """The batch as the DataFrame a scikit-learn Pipeline takes (only the fallback path needs it)."""
    return pd.DataFrame(batch, copy=False)


Error = dict[str, Any]


class InputSchema:
    """Built once per loaded model; checks rows and returns the batch the model's engine takes."""

    def __init__(self, inputs: Sequence[InputColumn]) -> None:
        self.inputs = list(inputs)
        self.names = [c.name for c in self.inputs]
        self.by_name = {c.name: c for c in self.inputs}

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "name": c.name,
                "type": c.type,
                "required": c.required,
                **({"allowed": list(c.allowed)} if c.allowed else {}),
            }
            for c in self.inputs
        ]

    def _unknown(self, loc: list[Any]) -> Error:
        return {
            "loc": loc,
            "msg": f"unknown feature (expected: {choices(self.names)})",
            "type": "extra_forbidden",
        }

    def batch_from_rows(self, names: Sequence[Any], rows: Sequence[Any], prefix: Sequence[Any]) -> Batch:
        """``dataframe_split``-style input: column names and rows of values."""
        width = len(names)
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != width:
                msg = f"expected a list of {width} values"
                loc = [*prefix, i]
                raise PredictionInputError(
                    f"invalid input: {'.'.join(map(str, loc))}: {msg}",
                    [{"loc": loc, "msg": msg, "type": "list_type"}],
                )
        if list(names) == self.names:
            columns = dict(zip(self.names, map(list, zip(*rows, strict=True)), strict=True)) if rows else {}
            return self._finish(columns, len(rows), [], lambda i, name: [*prefix, i, name])
        return self.batch_from_records([dict(zip(names, row, strict=True)) for row in rows], prefix)

    def batch_from_records(
        self, records: Sequence[Any], prefix: Sequence[Any] = ("records",), text: bool = False
    ) -> Batch:
        """Records (one dict per row) to a batch; raise PredictionInputError naming every bad field.
        ``text``: the values were read from text (a CSV body), so numbers and booleans are parsed."""
        names = self.names

        def where(i: int, name: str) -> list[Any]:
            return [*prefix, i, name]

        if records and all(type(r) is dict and len(r) == len(names) for r in records):
            try:
                columns = {n: [r[n] for r in records] for n in names}
            except KeyError:
                pass
            else:
                return self._finish(columns, len(records), [], where, text=text)
        errors: list[Error] = []
        reported: set[tuple[int, str]] = set()  # shape errors already said; their values are not checked
        columns = {name: [] for name in names}
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                msg = "expected an object of feature names to values"
                errors.append({"loc": [*prefix, i], "msg": msg, "type": "dict_type"})
                reported.update((i, name) for name in names)
                record = {}
            errors.extend(self._unknown([*prefix, i, key]) for key in record if key not in self.by_name)
            for column in self.inputs:
                if column.name not in record and (i, column.name) not in reported and column.required:
                    errors.append({"loc": where(i, column.name), "msg": "field required", "type": "missing"})
                    reported.add((i, column.name))
                columns[column.name].append(record.get(column.name))
        return self._finish(columns, len(records), errors, where, reported, text)

    def batch_from_columns(
        self, data: Mapping[str, Sequence[Any]], prefix: Sequence[Any] = ("inputs",)
    ) -> Batch:
        """Columns (feature name -> values) to a batch, with the same checks as records."""
        errors: list[Error] = []
        lengths = {len(v) for v in data.values() if isinstance(v, (list, tuple))}
        if len(lengths) > 1:
            raise PredictionInputError(
                "invalid input: every column must have the same number of values",
                [
                    {
                        "loc": list(prefix),
                        "msg": f"columns have different lengths: {sorted(lengths)}",
                        "type": "shape",
                    }
                ],
            )
        rows = lengths.pop() if lengths else 0
        for key, values in data.items():
            if key not in self.by_name:
                errors.append(self._unknown([*prefix, key]))
            elif not isinstance(values, (list, tuple)):
                errors.append(
                    {"loc": [*prefix, key], "msg": "expected a list of values", "type": "list_type"}
                )
        columns: dict[str, list[Any]] = {}
        reported: set[tuple[int, str]] = set()
        for column in self.inputs:
            given = data.get(column.name)
            if isinstance(given, (list, tuple)):
                columns[column.name] = list(given)
            elif column.name not in data and column.required:
                errors.append({"loc": [*prefix, column.name], "msg": "field required", "type": "missing"})
                reported.update((i, column.name) for i in range(rows))
            elif column.name in data:
                reported.update((i, column.name) for i in range(rows))  # not a list: said above
        return self._finish(columns, rows, errors, lambda i, name: [*prefix, name, i], reported)

    def _finish(
        self,
        columns: dict[str, list[Any]],
        rows: int,
        errors: list[Error],
        where: Callable[[int, str], list[Any]],
        reported: set[tuple[int, str]] | frozenset[tuple[int, str]] = frozenset(),
        text: bool = False,
    ) -> Batch:
        """Check every value by the shared rule; raise with every problem (capped) or return the batch.
        A column absent from ``columns`` is all missing (allowed only for optional features)."""
        batch: Batch = {}
        for column in self.inputs:
            if len(errors) >= MAX_ERRORS:
                break
            values = columns.get(column.name)
            check = check_column(column, [None] * rows if values is None else values, text, MAX_ERRORS)
            errors.extend(
                {"loc": where(i, column.name), "msg": r.message, "type": r.type}
                for i, r in check.refused.items()
                if (i, column.name) not in reported
            )
            batch[column.name] = check.values
        if errors:
            shown = errors[:MAX_ERRORS]
            first = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in shown[:3])
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            raise PredictionInputError(f"invalid input: {first}{more}", shown)
        if rows == 0:
            raise PredictionInputError(
                "invalid input: no rows",
                [{"loc": [], "msg": "at least one row is required", "type": "too_short"}],
            )
        return batch
