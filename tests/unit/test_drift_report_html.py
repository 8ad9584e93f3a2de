"""The HTML drift report: one embedded PNG per feature, nothing fetched from the network, names escaped."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest

from shipyard.monitoring.drift import DriftReport, compute_drift
from shipyard.monitoring.report_html import render_html

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ESCAPED_NAME = "size <m²> & more"
KINDS = {
    "stable_num": "numeric",
    "shifted_num": "numeric",
    "colour": "categorical",
    ESCAPED_NAME: "categorical",
}
IMG = re.compile(r"<img\b[^>]*>")
IMG_SRC = re.compile(r'<img\b[^>]*\bsrc="([^"]*)"')


def _frame(rng: np.random.Generator, rows: int, shift: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "stable_num": rng.normal(10.0, 2.0, rows),
            "shifted_num": rng.normal(0.0 + shift, 1.0, rows),
            "colour": rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2]),
            ESCAPED_NAME: rng.choice(["<s>", "m&m", "l"], rows),
            "prediction": rng.normal(100.0, 5.0, rows),
        }
    )


@pytest.fixture(scope="module")
def reports() -> dict[str, DriftReport]:
    """The same frames with and without the prediction column; only ``shifted_num`` moves (by 3 sd)."""
    rng = np.random.default_rng(7)
    reference, current = _frame(rng, 400, 0.0), _frame(rng, 600, 3.0)
    return {
        "features": compute_drift(reference, current, KINDS, model="housing<x>", version="2"),
        "with_prediction": compute_drift(
            reference,
            current,
            KINDS,
            model="housing<x>",
            version="2",
            prediction_column="prediction",
            prediction_kind="numeric",
        ),
    }


@pytest.fixture(scope="module")
def pages(reports: dict[str, DriftReport]) -> dict[str, str]:
    return {name: render_html(report) for name, report in reports.items()}


@pytest.mark.parametrize(("name", "extra"), [("features", 0), ("with_prediction", 1)])
def test_one_image_per_feature_and_prediction(
    reports: dict[str, DriftReport], pages: dict[str, str], name: str, extra: int
) -> None:
    assert (reports[name].prediction is not None) == bool(extra)
    assert pages[name].count("<img") == len(KINDS) + extra
    assert len(IMG.findall(pages[name])) == len(KINDS) + extra


@pytest.mark.parametrize("name", ["features", "with_prediction"])
def test_images_are_embedded_pngs(pages: dict[str, str], name: str) -> None:
    sources = IMG_SRC.findall(pages[name])
    assert len(sources) == pages[name].count("<img")
    prefix = "data:image/png;base64,"
    for src in sources:
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix) :], validate=True).startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("name", ["features", "with_prediction"])
def test_nothing_is_fetched_from_the_network(pages: dict[str, str], name: str) -> None:
    page = pages[name].lower()
    for forbidden in ("http://", "https://", 'src="//', "<script", "<link", "@import", "url("):
        assert forbidden not in page


def test_drifted_feature_row_is_marked(reports: dict[str, DriftReport], pages: dict[str, str]) -> None:
    assert reports["features"].drifted_features == ["shifted_num"]
    rows = {
        match.group(1): match.group(0)
        for match in re.finditer(r'<tr\b[^>]*><td><a href="#[^"]*">([^<]*)</a>.*?</tr>', pages["features"])
    }
    assert set(rows) == {"stable_num", "shifted_num", "colour", "size &lt;m²&gt; &amp; more"}
    assert rows["shifted_num"].startswith('<tr class="drifted">')
    assert rows["shifted_num"].endswith("<td>yes</td></tr>")
    for stable in ("stable_num", "colour"):
        assert 'class="drifted"' not in rows[stable]
        assert rows[stable].endswith("<td>no</td></tr>")
    assert "Dataset drift: no — 1 of 4 features drifted" in pages["features"]


def test_names_are_escaped(pages: dict[str, str]) -> None:
    page = pages["with_prediction"]
    assert ESCAPED_NAME not in page
    assert "size &lt;m²&gt; &amp; more" in page
    assert 'alt="size &lt;m²&gt; &amp; more distribution"' in page
    assert "housing&lt;x&gt;" in page
    assert "housing<x>" not in page
