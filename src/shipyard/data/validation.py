"""DataValidator: a pandera schema built from the config's dataset section, and a readable report.

Validation is lazy: every failing check is collected (column, check, how many rows fail, a few examples)
so one run shows everything that is wrong, and the pipeline stops before any training or registration.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from shipyard.config.pipeline import ColumnSpec, DatasetConfig
from shipyard.errors import DataValidationError

_DTYPES: dict[str, Any] = {"int": "int64", "float": "float64", "str": str, "bool": bool}
_EXAMPLES = 5

_CHECK_NAMES = {
    "column_in_schema": "unexpected column",
    "column_in_dataframe": "missing column",
    "not_nullable": "null values",
}


@dataclass(frozen=True)
class FailedCheck:
    """One check that failed: on which column, how many rows, and a few failing values."""

    column: str | None
    check: str
    failing: int
    examples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ValidationReport:
    rows: int
    columns: int
    failures: list[FailedCheck]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "columns": self.columns,
            "failures": [asdict(f) for f in self.failures],
        }

    def summary(self) -> str:
        if self.ok:
            return f"{self.rows} rows x {self.columns} columns passed every check"
        return f"{len(self.failures)} failing check(s) on {self.rows} rows x {self.columns} columns"


def _column_checks(name: str, spec: ColumnSpec) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if spec.min is not None and spec.max is not None:
        checks.append(pa.Check.in_range(spec.min, spec.max))
    elif spec.min is not None:
        checks.append(pa.Check.ge(spec.min))
    elif spec.max is not None:
        checks.append(pa.Check.le(spec.max))
    if spec.allowed is not None:
        checks.append(pa.Check.isin(spec.allowed))
    if spec.dtype == "float":
        checks.append(pa.Check(lambda s: ~s.isin([math.inf, -math.inf]), element_wise=False, name="finite"))
    return checks


class DataValidator:
    """Validates a frame against the dataset contract in the config."""

    def __init__(self, dataset: DatasetConfig) -> None:
        self.dataset = dataset

    def schema(self) -> pa.DataFrameSchema:
        ds = self.dataset
        columns = {
            name: pa.Column(
                _DTYPES[spec.dtype],
                checks=_column_checks(name, spec),
                nullable=spec.nullable,
                coerce=True,
                required=True,
            )
            for name, spec in ds.columns.items()
        }
        frame_checks = [pa.Check(lambda df: len(df) >= ds.min_rows, name=f"at least {ds.min_rows} rows")]
        max_rows = ds.max_rows
        if max_rows is not None:
            frame_checks.append(pa.Check(lambda df: len(df) <= max_rows, name=f"at most {max_rows} rows"))
        return pa.DataFrameSchema(
            columns,
            checks=frame_checks,
            strict="filter" if ds.extra_columns == "ignore" else True,
            name="dataset",
        )

    def validate(self, frame: pd.DataFrame) -> tuple[pd.DataFrame | None, ValidationReport]:
        """Validate; return the coerced frame (None when invalid) and the report."""
        try:
            valid = self.schema().validate(frame, lazy=True)
        except SchemaErrors as exc:
            return None, ValidationReport(len(frame), frame.shape[1], _failures(exc.failure_cases))
        except SchemaError as exc:  # pragma: no cover - lazy mode raises SchemaErrors
            return None, ValidationReport(len(frame), frame.shape[1], [FailedCheck(None, str(exc), 1)])
        return valid, ValidationReport(len(frame), frame.shape[1], [])

    def check(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Validate or raise :class:`DataValidationError` carrying the full report."""
        valid, report = self.validate(frame)
        if valid is None:
            raise DataValidationError(f"data validation failed: {report.summary()}", report)
        return valid


def _failures(cases: pd.DataFrame) -> list[FailedCheck]:
    cases = cases.copy()
    coerce_failed = set(cases.loc[cases["check"].astype(str).str.startswith("coerce_dtype"), "column"])
    out: list[FailedCheck] = []
    for (context, column, check), group in cases.groupby(
        ["schema_context", cases["column"].fillna(""), "check"], sort=False, dropna=False
    ):
        check = str(check)
        col: str | None = str(column) or None
        if check in ("column_in_schema", "column_in_dataframe"):
            # one row per column: report each column on its own line
            for value in group["failure_case"]:
                out.append(FailedCheck(str(value), _CHECK_NAMES[check], 1))
            continue
        if col in coerce_failed and not check.startswith("coerce_dtype"):
            # a value check cannot run on a column of the wrong type; the dtype line says why
            continue
        if context == "DataFrameSchema":
            col = None
        examples = [_example(v, i) for v, i in zip(group["failure_case"], group["index"], strict=False)]
        out.append(
            FailedCheck(
                col, _CHECK_NAMES.get(check, check), len(group), list(dict.fromkeys(examples))[:_EXAMPLES]
            )
        )
    return sorted(out, key=lambda f: (f.column or "", f.check))


def _example(value: Any, index: Any) -> str:
    where = "" if index is None or (isinstance(index, float) and math.isnan(index)) else f"row {index}: "
    return f"{where}{value!r}"
