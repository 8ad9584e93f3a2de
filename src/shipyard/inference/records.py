"""Validate JSON-style input (records or columns) against a model's inputs, then build its batch.

Every problem is collected with its location (record index and feature name), capped so a huge bad
request does not produce a huge answer, and the input itself is never echoed back beyond the one
offending value (shortened).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import PredictionInputError
from shipyard.registry.models import InputColumn

MAX_ERRORS = 20

# One validated request: feature name -> a 1-D array in the model's types (float64, int64, object, bool).
Batch = dict[str, np.ndarray]


def batch_rows(batch: Batch) -> int:
    return len(next(iter(batch.values()))) if batch else 0


def batch_frame(batch: Batch) -> pd.DataFrame:
    """The batch as the DataFrame a scikit-learn Pipeline takes (only the fallback path needs it)."""
    return pd.DataFrame(batch, copy=False)


_SHOWN_CHOICES = 10


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _choices(values: Iterable[Any]) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:_SHOWN_CHOICES])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _SHOWN_CHOICES else "")


class InputSchema:
    """Built once per loaded model; checks rows and returns a frame the model's Pipeline accepts."""

    def __init__(self, inputs: Sequence[InputColumn]) -> None:
        self.inputs = list(inputs)
        self.names = [c.name for c in self.inputs]
        self.by_name = {c.name: c for c in self.inputs}
        self.allowed = {c.name: set(c.allowed) for c in self.inputs if c.allowed}

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

    def _check(self, column: InputColumn, value: Any, loc: list[Any], errors: list[dict[str, Any]]) -> Any:
        """The value as the model wants it, or None after recording an error."""
        name = column.name
        if value is None:
            if column.required:
                errors.append(
                    {"loc": loc, "msg": "missing value; this feature is required", "type": "missing"}
                )
            return None
        kind = column.type
        if kind in ("double", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                errors.append(
                    {"loc": loc, "msg": f"expected a number, got {_short(value)}", "type": "float_type"}
                )
                return None
            if not math.isfinite(value):
                errors.append(
                    {
                        "loc": loc,
                        "msg": "expected a finite number, got NaN or infinity",
                        "type": "finite_number",
                    }
                )
                return None
            return float(value)
        if kind in ("long", "integer"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                errors.append(
                    {"loc": loc, "msg": f"expected an integer, got {_short(value)}", "type": "int_type"}
                )
                return None
            if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
                errors.append(
                    {"loc": loc, "msg": f"expected an integer, got {_short(value)}", "type": "int_type"}
                )
                return None
            return int(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                errors.append(
                    {"loc": loc, "msg": f"expected true or false, got {_short(value)}", "type": "bool_type"}
                )
                return None
            return value
        # string
        if not isinstance(value, str):
            errors.append(
                {"loc": loc, "msg": f"expected a string, got {_short(value)}", "type": "string_type"}
            )
            return None
        allowed = self.allowed.get(name)
        if allowed is not None and value not in allowed:
            expected = _choices(sorted(map(str, allowed)))
            msg = f"unknown category {_short(value)} (expected one of: {expected})"
            errors.append({"loc": loc, "msg": msg, "type": "enum"})
            return None
        return value

    def _fast_columns(self, columns: dict[str, list[Any]]) -> Batch | None:
        """The common case checked in bulk: every value already of its column's type (no nulls, no
        text in number columns, allowed categories). None sends the caller to the per-value path,
        which finds and names each problem."""
        batch: Batch = {}
        for column in self.inputs:
            values = columns[column.name]
            kinds = set(map(type, values))
            if column.type in ("double", "float"):
                if not kinds <= {float, int}:
                    return None
                array = np.array(values, dtype=np.float64)
                if not np.isfinite(array).all():
                    return None
            elif column.type in ("long", "integer"):
                if kinds != {int}:
                    return None
                array = np.array(values, dtype=np.int64)
            elif column.type == "string":
                if kinds != {str}:
                    return None
                allowed = self.allowed.get(column.name)
                if allowed is not None and not allowed.issuperset(values):
                    return None
                array = np.array(values, dtype=object)
            else:
                return None
            batch[column.name] = array
        return batch

    def batch_from_rows(self, names: Sequence[Any], rows: Sequence[Any], prefix: Sequence[Any]) -> Batch:
        """``dataframe_split``-style input: column names and rows of values."""
        if (
            rows
            and list(names) == self.names
            and all(isinstance(r, list) and len(r) == len(self.names) for r in rows)
        ):
            fast = self._fast_columns(dict(zip(self.names, map(list, zip(*rows, strict=True)), strict=True)))
            if fast is not None:
                return fast
        records = []
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(names):
                msg = f"expected a list of {len(names)} values"
                loc = [*prefix, i]
                raise PredictionInputError(
                    f"invalid input: {'.'.join(map(str, loc))}: {msg}",
                    [{"loc": loc, "msg": msg, "type": "list_type"}],
                )
            records.append(dict(zip(names, row, strict=True)))
        return self.batch_from_records(records, prefix)

    def batch_from_records(self, records: Sequence[Any], prefix: Sequence[Any] = ("records",)) -> Batch:
        """Records (one dict per row) to a batch; raise PredictionInputError naming every bad field."""
        if records and all(isinstance(r, dict) and len(r) == len(self.names) for r in records):
            try:
                fast = self._fast_columns({n: [r[n] for r in records] for n in self.names})
            except KeyError:
                fast = None
            if fast is not None:
                return fast
        errors: list[dict[str, Any]] = []
        columns: dict[str, list[Any]] = {name: [] for name in self.names}
        known = self.by_name
        for i, record in enumerate(records):
            if len(errors) >= MAX_ERRORS:
                break
            if not isinstance(record, Mapping):
                errors.append(
                    {
                        "loc": [*prefix, i],
                        "msg": "expected an object of feature names to values",
                        "type": "dict_type",
                    }
                )
                continue
            for key in record:
                if key not in known:
                    errors.append(
                        {
                            "loc": [*prefix, i, key],
                            "msg": f"unknown feature (expected: {_choices(self.names)})",
                            "type": "extra_forbidden",
                        }
                    )
            for column in self.inputs:
                value = record.get(column.name)
                if column.name not in record and column.required:
                    errors.append(
                        {"loc": [*prefix, i, column.name], "msg": "field required", "type": "missing"}
                    )
                    continue
                columns[column.name].append(self._check(column, value, [*prefix, i, column.name], errors))
        return self._finish(columns, len(records), errors)

    def batch_from_columns(
        self, data: Mapping[str, Sequence[Any]], prefix: Sequence[Any] = ("inputs",)
    ) -> Batch:
        """Columns (feature name -> values) to a frame, with the same checks as records."""
        errors: list[dict[str, Any]] = []
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
        columns: dict[str, list[Any]] = {name: [] for name in self.names}
        for key, values in data.items():
            if key not in self.by_name:
                errors.append(
                    {
                        "loc": [*prefix, key],
                        "msg": f"unknown feature (expected: {_choices(self.names)})",
                        "type": "extra_forbidden",
                    }
                )
            elif not isinstance(values, (list, tuple)):
                errors.append(
                    {"loc": [*prefix, key], "msg": "expected a list of values", "type": "list_type"}
                )
        for column in self.inputs:
            given = data.get(column.name)
            if not isinstance(given, (list, tuple)):
                if column.name not in data:
                    if column.required:
                        errors.append(
                            {"loc": [*prefix, column.name], "msg": "field required", "type": "missing"}
                        )
                    else:
                        columns[column.name] = [None] * rows
                continue
            for i, value in enumerate(given):
                if len(errors) >= MAX_ERRORS:
                    break
                columns[column.name].append(self._check(column, value, [*prefix, column.name, i], errors))
        return self._finish(columns, rows, errors)

    def _finish(self, columns: dict[str, list[Any]], rows: int, errors: list[dict[str, Any]]) -> Batch:
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
        frame: Batch = {}
        for column in self.inputs:
            values = columns[column.name]
            if not values:
                values = [None] * rows
            if column.type in ("double", "float"):
                frame[column.name] = np.array([np.nan if v is None else v for v in values], dtype="float64")
            elif column.type in ("long", "integer"):
                frame[column.name] = np.array(values, dtype="int64")
            elif column.type == "boolean":
                frame[column.name] = np.array(values, dtype=bool)
            else:
                frame[column.name] = np.array([np.nan if v is None else v for v in values], dtype=object)
        return frame
