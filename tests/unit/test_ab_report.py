"""`shipyard ab report`'s statistics: unpaired tests in split mode, paired in shadow mode, each agreeing
with scipy's own, and the verdict that follows; plus the join of logged rows with feedback."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from shipyard.monitoring.ab_report import compare_variants
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.store import MonitoringStore

COLUMNS = ["_request_id", "_variant", "_version", "_prediction", "_label", "_ts"]


def split_frame(acc_a: float, acc_b: float, n: int = 400) -> pd.DataFrame:
    """Each variant right on exactly ``acc * n`` rows."""
    rows = []
    for variant, version, acc in (("champion", "1", acc_a), ("challenger", "2", acc_b)):
        for i in range(n):
            right = i < round(acc * n)
            rows.append((f"{variant}-{i}", variant, version, "a" if right else "b", "a", float(i)))
    return pd.DataFrame(rows, columns=COLUMNS)


def test_split_mode_uses_a_two_proportion_test_that_agrees_with_scipy() -> None:
    frame = split_frame(0.80, 0.90)
    report = compare_variants(frame, "m", "classification")
    assert report.mode == "split" and report.test == "two-proportion Z-test"
    a = frame[frame._variant == "champion"]
    b = frame[frame._variant == "challenger"]
    right_a, right_b = int((a._prediction == a._label).sum()), int((b._prediction == b._label).sum())
    table = [[right_a, len(a) - right_a], [right_b, len(b) - right_b]]
    expected = stats.chi2_contingency(table, correction=False).pvalue  # chi2 (1 df) = z squared
    assert report.p_value == pytest.approx(expected, rel=1e-9)
    assert report.difference == pytest.approx(right_b / len(b) - right_a / len(a))
    assert report.verdict == "promote" and "shipyard models promote m 2" in report.recommendation
    assert [v.variant for v in report.variants] == ["champion", "challenger"]

    worse = compare_variants(split_frame(0.90, 0.80), "m", "classification")
    assert worse.verdict == "keep-champion"
    same = compare_variants(split_frame(0.85, 0.86), "m", "classification")
    assert same.verdict == "keep-collecting" and same.p_value is not None and same.p_value > 0.05


def test_shadow_mode_pairs_rows_and_uses_mcnemar() -> None:
    rng = np.random.default_rng(2)
    rows = []
    for i in range(300):
        right_a = rng.random() < 0.8
        right_b = right_a or rng.random() < 0.5  # the challenger fixes half of the champion's misses
        rows.append((f"r{i}", "champion", "1", "a" if right_a else "b", "a", float(i)))
        rows.append((f"r{i}", "shadow", "2", "a" if right_b else "b", "a", float(i)))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    report = compare_variants(frame, "m", "classification")
    assert report.mode == "shadow" and report.test.startswith("McNemar")
    a = frame[frame._variant == "champion"].reset_index(drop=True)
    b = frame[frame._variant == "shadow"].reset_index(drop=True)
    only_b = int(((b._prediction == "a") & (a._prediction != "a")).sum())
    only_a = int(((a._prediction == "a") & (b._prediction != "a")).sum())
    assert report.p_value == pytest.approx(stats.binomtest(only_b, only_a + only_b, 0.5).pvalue)
    assert report.verdict == "promote"


def test_regression_tests_agree_with_scipy() -> None:
    rng = np.random.default_rng(4)
    truth = rng.normal(100, 10, 200)
    err_a, err_b = rng.normal(0, 5, 200), rng.normal(0, 3, 200)
    shadow = pd.DataFrame(
        [(f"r{i}", "champion", "1", truth[i] + err_a[i], truth[i], float(i)) for i in range(200)]
        + [(f"r{i}", "shadow", "2", truth[i] + err_b[i], truth[i], float(i)) for i in range(200)],
        columns=COLUMNS,
    )
    paired = compare_variants(shadow, "h", "regression")
    assert paired.metric == "mae" and paired.test.startswith("Wilcoxon")
    expected = stats.wilcoxon(np.abs(err_b), np.abs(err_a)).pvalue
    assert paired.p_value == pytest.approx(expected, rel=1e-6)
    assert paired.difference == pytest.approx(np.mean(np.abs(err_b) - np.abs(err_a)), rel=1e-6)
    assert paired.verdict == "promote"  # lower error wins

    split = shadow.replace({"_variant": {"shadow": "challenger"}})
    split.loc[split._variant == "challenger", "_request_id"] += "-b"
    unpaired = compare_variants(split, "h", "regression")
    assert unpaired.test.startswith("Welch")
    welch = stats.ttest_ind(np.abs(err_b), np.abs(err_a), equal_var=False).pvalue
    assert unpaired.p_value == pytest.approx(welch, rel=1e-6)


def test_too_little_feedback_or_no_challenger_gives_no_verdict() -> None:
    few = compare_variants(split_frame(0.5, 1.0, n=10), "m", "classification", min_rows=30)
    assert few.verdict == "keep-collecting" and "need 30 each" in few.recommendation
    alone = split_frame(0.8, 0.8)
    report = compare_variants(alone[alone._variant == "champion"], "m", "classification")
    assert report.verdict == "no-test" and "SHIPYARD_AB_MODE" in report.recommendation
    assert compare_variants(pd.DataFrame(), "m", "classification").verdict == "no-test"


def test_labelled_rows_join_feedback_by_request_and_row(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    store = MonitoringStore.open(f"sqlite:///{path}")
    log = PredictionLog(store, interval=0.01)
    log.start()
    now = time.time()
    features = {"x": np.array([1.0, 2.0])}
    log.submit(("r1", now, "m", "1", "champion", features, ["a", "b"], 1.0, True))
    log.submit(("r1", now, "m", "2", "shadow", features, ["a", "a"], 1.0, True))
    log.submit(("r2", now, "m", "1", "champion", {"x": np.array([3.0])}, ["c"], 1.0, True))
    log.close()
    store.write_feedback([("r1", ["a", "b"])])
    plain = store.labelled("m")
    assert plain[["x", "_prediction", "_label"]].values.tolist() == [[1.0, "a", "a"], [2.0, "b", "b"]]
    both = store.labelled("m", include_shadow=True)
    shadow = both[both._variant == "shadow"]
    assert shadow["_label"].tolist() == ["a", "b"] and shadow["_prediction"].tolist() == ["a", "a"]
