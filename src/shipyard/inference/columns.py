"""The one table of column types and the one rule set for input values, used by every way in.

A model's inputs come from its MLflow signature (``InputColumn``: an MLflow type name, whether it may be
missing, the allowed categories). Every path that feeds a model (the API's JSON records, columns and
tensors, CSV bodies, ``shipyard predict``, batch files, Spark partitions, drift scoring) checks values
here, so the same value is accepted or refused everywhere with the same message.

``coerce_value`` is the definition: one value in, the value in the model's type or the reason it is
refused. ``check_column`` applies it to a whole column; it accepts in bulk what is plainly valid (an
all-float column, text that parses as numbers) and sends every other value through ``coerce_value``,
so the bulk path can only ever agree with the definition.

Values from text formats (CSV, text columns of a file) carry numbers and booleans as text: with
``text=True`` a string is parsed first (``"5.1"`` is a number, ``"true"``/``"false"`` a boolean). A
JSON body has real types, so there a string in a number field is refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shipyard.registry.models import InputColumn


@dataclass(frozen=True)
class ColumnKind:
    """What one family of MLflow types means everywhere: numpy dtype, V2 tensor type, wording."""

    name: str  # number | integer | boolean | string
    dtype: Any  # numpy dtype of a column with no missing values
    v2: str  # Open Inference Protocol V2 datatype
    expected: str  # used in messages: "expected a number"
    error_type: str  # the machine-readable error kind in a 422's detail


NUMBER = ColumnKind("number", np.float64, "FP64", "a number", "float_type")
INTEGER = ColumnKind("integer", np.int64, "INT64", "an integer", "int_type")
BOOLEAN = ColumnKind("boolean", np.bool_, "BOOL", "true or false", "bool_type")
STRING = ColumnKind("string", object, "BYTES", "a string", "string_type")

# MLflow signature type name -> kind. Unknown type names are read as text.
KINDS: dict[str, ColumnKind] = {
    "double": NUMBER,
    "float": NUMBER,
    "long": INTEGER,
    "integer": INTEGER,
    "boolean": BOOLEAN,
    "string": STRING,
}

MISSING_MESSAGE = "missing value; this feature is required"
# In text, a number or boolean written as one of these (pandas' and R's markers) is missing. A category's
# text is always a value: "NA" or "None" can be a real category (they are in the Ames data).
TEXT_NULLS = frozenset(
    {"NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "null", "NULL", "None", "#N/A", "<NA>", "#NA"}
)
_TRUE, _FALSE = frozenset({"true"}), frozenset({"false"})
_SHOWN_CHOICES = 10


def kind_of(column: InputColumn) -> ColumnKind:
    return KINDS.get(column.type, STRING)


def short(value: Any, limit: int = 40) -> str:
    """A value as shown in an error: its repr, cut to ``limit`` characters (inputs are never echoed)."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def choices(values: Iterable[Any]) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:_SHOWN_CHOICES])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _SHOWN_CHOICES else "")


def is_missing(value: Any) -> bool:
    """None, NaN, pandas' NA/NaT: the ways a file or a frame says "no value"."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


@dataclass(frozen=True)
class Refusal:
    """Why one value was refused: the message and the error kind, as a 422 reports them."""

    message: str
    type: str


def _refuse(kind: ColumnKind, value: Any) -> Refusal:
    return Refusal(f"expected {kind.expected}, got {short(value)}", kind.error_type)


def coerce_value(column: InputColumn, value: Any, text: bool = False) -> tuple[Any, Refusal | None]:
    """THE rule: ``value`` in the column's type (None for an allowed missing value), or a refusal."""
    # null and NaN mean "no value" (MLflow's own client writes a gap as a JSON NaN); a text format also
    # says it with an empty field. Infinity is never missing: it is refused as a number.
    kind = kind_of(column)
    if is_missing(value) or (
        text
        and isinstance(value, str)
        and (value == "" or (kind is not STRING and value.strip() in TEXT_NULLS))
    ):
        if column.required:
            return None, Refusal(MISSING_MESSAGE, "missing")
        return None, None
    if isinstance(value, np.generic):
        value = value.item()
    if kind is STRING:
        if isinstance(value, str):
            result: Any = value
        elif text and isinstance(value, (int, float)) and not isinstance(value, bool):
            result = str(value)  # a typed file column of codes, e.g. Parquet int64 for a category
        else:
            return None, _refuse(kind, value)
        allowed = column.allowed
        if allowed is not None and result not in allowed:
            return None, Refusal(
                f"unknown category {short(result)} (expected one of: {choices(sorted(map(str, allowed)))})",
                "enum",
            )
        return result, None
    if kind is BOOLEAN:
        if isinstance(value, bool):
            return value, None
        if text and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE, None
        return None, _refuse(kind, value)
    number = value
    if text and isinstance(value, str):
        try:
            number = int(value.strip())  # exact, however long
        except ValueError:
            try:
                number = float(value.strip())
            except ValueError:
                return None, _refuse(kind, value)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return None, _refuse(kind, value)
    if isinstance(number, float) and not math.isfinite(number):
        return None, Refusal(f"expected a finite number, got {short(value)}", "finite_number")
    if kind is INTEGER:
        if isinstance(number, float) and not number.is_integer():
            return None, _refuse(kind, number)  # the number, however it was written
        if not -(2**63) <= number < 2**63:
            return None, Refusal(f"expected a 64-bit integer, got {short(value)}", "int_type")
        return int(number), None
    if isinstance(number, int) and abs(number) > 2**1023:
        return None, Refusal(
            f"number out of range (no 64-bit float holds it), got {short(value)}", "finite_number"
        )
    return float(number), None


@dataclass
class ColumnCheck:
    """One checked column: the values in the model's type (placeholders where refused) and the
    refusals by row position."""

    values: np.ndarray
    refused: dict[int, Refusal] = field(default_factory=dict)

    @property
    def bad(self) -> np.ndarray:
        mask = np.zeros(len(self.values), dtype=bool)
        if self.refused:
            mask[list(self.refused)] = True
        return mask


def _as_objects(values: Sequence[Any] | np.ndarray | pd.Series) -> np.ndarray:
    if isinstance(values, pd.Series):
        array: np.ndarray = values.astype(object).to_numpy()
        return array
    if isinstance(values, np.ndarray):
        return values if values.dtype == object else values.astype(object)
    objects = np.empty(len(values), dtype=object)
    objects[:] = list(values)
    return objects


def _bulk(column: InputColumn, values: Any, text: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """The plainly valid part of a column at numpy speed: (typed values, mask of positions that still
    need ``coerce_value``), or None to check every value one by one."""
    kind = kind_of(column)
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    if isinstance(values, list):
        types = set(map(type, values))
        if kind is NUMBER and types <= {float, int}:
            try:
                values = np.array(values, dtype=np.float64)
            except OverflowError:  # an integer past float64's range: the rule refuses it by name
                return None
        elif kind is INTEGER and types == {int}:
            try:
                values = np.array(values, dtype=np.int64)
            except OverflowError:
                return None
        elif kind is STRING and types == {str}:
            typed = np.empty(len(values), dtype=object)
            typed[:] = values
            return typed, _not_allowed(column, typed) | (_empty(typed) if text else False)
        elif kind is BOOLEAN and types == {bool}:
            return np.array(values, dtype=bool), np.zeros(len(values), dtype=bool)
        else:
            return None
    if not isinstance(values, np.ndarray):
        return None
    if kind in (NUMBER, INTEGER) and values.dtype.kind in "fiu":
        numbers = values.astype(np.float64)
        unsure = ~np.isfinite(numbers)  # NaN is missing, inf refused: both decided one by one
        if kind is INTEGER:
            finite = np.where(unsure, 0.0, numbers)
            unsure |= np.mod(finite, 1) != 0
            if values.dtype.kind == "f":
                unsure |= np.abs(finite) >= 2**53  # a float this large is no longer an exact integer
            if values.dtype.kind in "iu" and not unsure.any():
                return values.astype(np.int64), unsure
            if unsure.any():
                return numbers, unsure  # an integer column with gaps stays float (NaN = missing)
            return numbers.astype(np.int64), unsure
        return numbers, unsure
    if kind in (NUMBER, INTEGER) and values.dtype == object and text:
        parsed = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        unsure = ~np.isfinite(parsed)
        if kind is INTEGER:
            # fractions are refused, and past 2**53 a float is no longer the exact integer written
            finite = np.where(unsure, 0.0, parsed)
            unsure |= (np.mod(finite, 1) != 0) | (np.abs(finite) >= 2**53)
        if pd.api.types.infer_dtype(values, skipna=True) not in _NO_BOOLEANS:
            # pandas parses booleans as numbers: leave those to the rule, which refuses them
            unsure |= np.array([isinstance(v, (bool, np.bool_)) for v in values], dtype=bool)
        if kind is INTEGER and not unsure.any():
            return parsed.astype(np.int64), unsure
        return parsed, unsure
    if kind is BOOLEAN and values.dtype == bool:
        return values, np.zeros(len(values), dtype=bool)
    if kind is STRING and values.dtype == object:
        if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
            unsure = pd.isna(values)  # missing: decided one by one (required or not)
        else:
            unsure = np.array([not isinstance(v, str) for v in values], dtype=bool)
        if text:
            unsure |= _empty(values)
        return values.copy(), unsure | _not_allowed(column, values)
    return None


def _empty(values: np.ndarray) -> np.ndarray:
    """Positions holding the empty string (a missing value in a text format)."""
    equal: np.ndarray = pd.Series(values, dtype=object).eq("").to_numpy(dtype=bool, na_value=False)
    return equal


_NO_BOOLEANS = frozenset({"string", "floating", "integer", "mixed-integer-float", "empty", "decimal"})
_BULK_ISIN = 1000  # above this many values, pandas' hashed isin beats a Python loop


def _not_allowed(column: InputColumn, values: np.ndarray) -> np.ndarray:
    """Positions holding a value outside the allowed categories (missing ones included; the rule then
    decides whether missing is allowed)."""
    if column.allowed is None:
        return np.zeros(len(values), dtype=bool)
    if len(values) > _BULK_ISIN:
        return ~pd.Series(values, dtype=object).isin(list(column.allowed)).to_numpy()
    allowed = set(column.allowed)
    return np.array([v not in allowed for v in values], dtype=bool)


SMALL_COLUMN = 8  # at most this many values are checked one by one, without the numpy bulk pass
_FLOAT_LIMIT = 2**1023  # an int beyond this has no float64 (the rule refuses it)


def _plainly_valid(column: InputColumn, kind: ColumnKind, values: list[Any], text: bool) -> np.ndarray | None:
    """The typed column when every value is plainly valid by the rule (a finite float or an int in
    range for numbers, an int in 64 bits for integers, an allowed non-empty string for text, JSON null
    in an optional column: missing, NaN as ``_place`` writes it); None when any value needs
    ``coerce_value`` (refused, or of another type)."""
    optional = not column.required
    gaps = False
    if kind is NUMBER:
        for v in values:
            t = type(v)
            if (t is float and math.isfinite(v)) or (t is int and -_FLOAT_LIMIT <= v <= _FLOAT_LIMIT):
                continue
            if v is None and optional:
                gaps = True
                continue
            return None
        return np.array([np.nan if v is None else v for v in values] if gaps else values, dtype=np.float64)
    if kind is INTEGER:
        for v in values:
            if type(v) is int and -(2**63) <= v < 2**63:
                continue
            if v is None and optional:
                gaps = True
                continue
            return None
        if gaps:  # an integer column with a gap is float, as _place makes it
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        return np.array(values, dtype=np.int64)
    if kind is STRING:
        allowed = column.allowed
        for v in values:
            if type(v) is str and (allowed is None or v in allowed) and not (text and v == ""):
                continue
            if v is None and optional:
                gaps = True
                continue
            return None
        typed = np.empty(len(values), dtype=object)
        typed[:] = [np.nan if v is None else v for v in values] if gaps else values
        return typed
    return None


def check_column(
    column: InputColumn, values: Sequence[Any] | np.ndarray | pd.Series, text: bool = False, limit: int = 0
) -> ColumnCheck:
    """Apply the rule to every value of a column. ``limit`` > 0 stops after that many refusals (a huge
    bad request gets a bounded answer). Missing values become NaN (an integer column with gaps becomes
    float; text and booleans are object columns); refused positions hold a placeholder, never scored."""
    kind = kind_of(column)
    # a few values (a single-row request): plainly valid ones are typed at once, the others go one by
    # one; numpy's bulk set-up per column costs more than the rule itself there (profiled)
    if len(values) <= SMALL_COLUMN and type(values) is list:
        plain = _plainly_valid(column, kind, values, text)
        if plain is not None:
            return ColumnCheck(plain)
    bulk = _bulk(column, values, text) if len(values) > SMALL_COLUMN else None
    if bulk is not None:
        typed, unsure = bulk
        unsure_at = np.flatnonzero(unsure)
        if not unsure_at.size:
            return ColumnCheck(typed)
        raw = _as_objects(values)
        positions: list[int] = unsure_at.tolist()
    else:
        raw = _as_objects(values)
        typed = np.empty(len(raw), dtype=kind.dtype)  # widened by _place where a value needs it
        positions = list(range(len(raw)))
    refused: dict[int, Refusal] = {}
    results: dict[int, Any] = {}
    for i in positions:
        value, refusal = coerce_value(column, raw[i], text)
        if refusal is not None:
            refused[i] = refusal
            if limit and len(refused) >= limit:
                break
        else:
            results[i] = value
    return ColumnCheck(_place(kind, typed, results, refused), refused)


def _place(
    kind: ColumnKind, typed: np.ndarray, results: dict[int, Any], refused: dict[int, Any]
) -> np.ndarray:
    """Write the one-by-one results into the typed column, widening it where a value needs it (an
    integer column with a missing value becomes float, a boolean one object)."""
    gaps = any(v is None for v in results.values())
    if not typed.flags.writeable:
        typed = typed.copy()  # pandas hands out read-only views (copy-on-write)
    if kind is INTEGER and (gaps or typed.dtype != np.int64):
        typed = typed.astype(np.float64)
    elif kind is BOOLEAN and gaps:
        typed = typed.astype(object)
    for i, value in results.items():
        typed[i] = np.nan if value is None else value  # NaN is "missing" to scikit-learn's imputers
    for i in refused:
        typed[i] = 0 if typed.dtype != object else None
    return typed
