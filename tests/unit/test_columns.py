"""The one input rule set: ``coerce_value`` is the definition, and the bulk paths of ``check_column``
(lists from JSON, typed and text columns from files) must agree with it value for value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.inference.columns import MISSING_MESSAGE, Refusal, check_column, coerce_value
from shipyard.registry.models import InputColumn

COLUMNS = [
    InputColumn("x", "double"),
    InputColumn("x", "double", required=False),
    InputColumn("n", "long"),
    InputColumn("n", "long", required=False),
    InputColumn("b", "boolean"),
    InputColumn("s", "string"),
    InputColumn("s", "string", required=False, allowed=("a", "b", "c")),
]

values = st.one_of(
    st.none(),
    st.just(pd.NA),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["a", "b", "zz", "", " ", "1", "2.5", "-3", "1e3", "nan", "inf", "true", "False", "no"]),
    st.text(max_size=5),
)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def expected(column: InputColumn, items: list[Any], text: bool) -> tuple[list[Any], dict[int, str]]:
    out, refused = [], {}
    for i, value in enumerate(items):
        result, refusal = coerce_value(column, value, text)
        if refusal is not None:
            refused[i] = refusal.message
        out.append(np.nan if result is None else result)
    return out, refused


@pytest.mark.parametrize("column", COLUMNS, ids=lambda c: f"{c.type}{'' if c.required else '?'}")
@pytest.mark.parametrize("text", [False, True], ids=["json", "text"])
@settings(max_examples=150, deadline=None, derandomize=True)
@given(items=st.lists(values, min_size=1, max_size=12))
def test_bulk_check_agrees_with_the_rule_on_every_value(
    column: InputColumn, text: bool, items: list[Any]
) -> None:
    want, refused = expected(column, items, text)
    for given_as in (items, np.array(items, dtype=object), pd.Series(items, dtype=object)):
        check = check_column(column, given_as, text=text)
        assert {i: r.message for i, r in check.refused.items()} == refused, (items, type(given_as))
        for i, value in enumerate(want):
            if i not in refused:
                assert same(check.values[i], value) or same(float(check.values[i]), value), (items, i)


@pytest.mark.parametrize("text", [False, True], ids=["json", "text"])
@settings(max_examples=100, deadline=None, derandomize=True)
@given(numbers=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=20))
def test_typed_number_columns_agree_with_the_rule(text: bool, numbers: list[float]) -> None:
    """A float64 column from a Parquet file or a DataFrame takes the numpy path."""
    for column in (InputColumn("x", "double", required=False), InputColumn("n", "long")):
        array = np.array(numbers, dtype=np.float64)
        check = check_column(column, array, text=True)
        _, refused = expected(column, numbers, True)
        assert {i: r.message for i, r in check.refused.items()} == refused


@pytest.mark.parametrize(
    ("column", "value", "text", "message"),
    [
        (InputColumn("x", "double"), "5.1", False, "expected a number, got '5.1'"),
        (InputColumn("x", "double"), True, True, "expected a number, got True"),
        (InputColumn("x", "double"), float("inf"), False, "expected a finite number, got inf"),
        (InputColumn("x", "double"), float("nan"), False, MISSING_MESSAGE),
        (InputColumn("x", "double"), None, False, MISSING_MESSAGE),
        (InputColumn("x", "double"), "", True, MISSING_MESSAGE),
        (InputColumn("n", "long"), "2.5", True, "expected an integer, got 2.5"),
        (InputColumn("n", "long"), 2**64, False, "expected a 64-bit integer, got 18446744073709551616"),
        (InputColumn("b", "boolean"), "no", True, "expected true or false, got 'no'"),
        (InputColumn("b", "boolean"), 1, False, "expected true or false, got 1"),
        (InputColumn("s", "string", allowed=("a",)), "b", False, "unknown category 'b' (expected one of: a)"),
        (InputColumn("s", "string"), 7, False, "expected a string, got 7"),
    ],
)
def test_refusals_name_what_was_expected_and_what_came(
    column: InputColumn, value: Any, text: bool, message: str
) -> None:
    result, refusal = coerce_value(column, value, text)
    assert result is None and refusal is not None and refusal.message == message


def test_text_is_parsed_only_where_the_format_is_text() -> None:
    """A JSON string in a number field is refused; the same text read from a CSV file is a number."""
    number, boolean = InputColumn("x", "double"), InputColumn("b", "boolean")
    assert coerce_value(number, " 5.5 ", text=True) == (5.5, None)
    assert coerce_value(boolean, "TRUE", text=True) == (True, None)
    assert coerce_value(boolean, "false", text=True) == (False, None)
    assert coerce_value(number, "5.5")[1] is not None
    assert coerce_value(boolean, "true")[1] is not None
    # the usual missing markers are missing in a number or boolean column, values in a category column
    optional = InputColumn("x", "double", required=False)
    assert coerce_value(optional, "NA", text=True) == (None, None)
    assert coerce_value(InputColumn("b", "boolean", required=False), "null", text=True) == (None, None)
    assert coerce_value(InputColumn("s", "string"), "NA", text=True) == ("NA", None)
    assert coerce_value(InputColumn("x", "double"), "NA", text=True)[1] == Refusal(MISSING_MESSAGE, "missing")
    # a typed file column of codes is text to a category feature
    assert coerce_value(InputColumn("s", "string"), 20, text=True) == ("20", None)


def test_pandas_string_columns_with_gaps() -> None:
    series = pd.Series(["a", None, "", "b"], dtype="string")
    check = check_column(InputColumn("s", "string", required=False), series, text=True)
    assert not check.refused and pd.isna(check.values[1]) and pd.isna(check.values[2])
    refused = check_column(InputColumn("s", "string"), series, text=True).refused
    assert {i: r.message for i, r in refused.items()} == {1: MISSING_MESSAGE, 2: MISSING_MESSAGE}


def test_an_integer_column_with_gaps_reaches_the_model_as_float_with_nan() -> None:
    check = check_column(InputColumn("n", "long", required=False), [1, None, 3])
    assert check.values.dtype == np.float64 and np.isnan(check.values[1]) and not check.refused
    assert check_column(InputColumn("n", "long"), [1, 2, 3]).values.dtype == np.int64


def test_a_huge_bad_column_stops_at_the_limit() -> None:
    check = check_column(InputColumn("x", "double"), ["bad"] * 10_000, limit=20)
    assert len(check.refused) == 20


def test_numbers_past_every_64_bit_type_are_refused_by_the_rule() -> None:
    """JSON integers of any size reach the rule: refused by name, never an overflow inside numpy."""
    huge = 10**400
    number = check_column(InputColumn("x", "double"), [1.0, huge])
    assert {i: r.type for i, r in number.refused.items()} == {1: "finite_number"}
    integer = check_column(InputColumn("n", "long"), [1, 2**64])
    assert {i: r.type for i, r in integer.refused.items()} == {1: "int_type"}


@pytest.mark.parametrize("column", COLUMNS, ids=lambda c: f"{c.type}{'' if c.required else '?'}")
@settings(max_examples=60, deadline=None, derandomize=True)
@given(items=st.lists(values, min_size=1, max_size=4))
def test_one_row_and_many_rows_give_the_same_column_type(column: InputColumn, items: list[Any]) -> None:
    """A single-row request takes the one-by-one path, a big one the bulk path: the engine must see
    the same dtype either way (an integer column with a gap is float in both)."""
    few, many = check_column(column, items), check_column(column, items * 10)
    if not few.refused and not many.refused:
        assert few.values.dtype == many.values.dtype, items
