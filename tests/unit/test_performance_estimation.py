"""CBPE and DLE against the truth: on data whose labels the test knows, the estimate made without labels
is compared with the metric realised once they are revealed, under covariate shift (where the methods
hold) and under concept shift (where they cannot see anything, by construction)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from shipyard.monitoring.estimated import estimate_window
from shipyard.monitoring.retrain import triggers, watching
from shipyard.training.performance import CBPE, DLE, realised, relative_drop, watched_metric


def classes_from(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Three classes whose true posterior depends on x0 and x1 (overlapping near the boundaries)."""
    logits = np.stack([-2 * x[:, 0], np.zeros(len(x)), 2 * x[:, 0] + x[:, 1]], axis=1)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return np.array(["a", "b", "c"])[[rng.choice(3, p=row) for row in p]]


@pytest.fixture(scope="module")
def classifier() -> tuple[RandomForestClassifier, CBPE, np.random.Generator]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 3))
    y = classes_from(x, rng)
    model = RandomForestClassifier(100, min_samples_leaf=20, random_state=0).fit(x[:2000], y[:2000])
    held = x[2000:]
    estimator = CBPE.fit(list(model.classes_), model.predict_proba(held), y[2000:], model.predict(held))
    return model, estimator, rng


def test_cbpe_follows_realised_accuracy_under_covariate_shift(
    classifier: tuple[RandomForestClassifier, CBPE, np.random.Generator],
) -> None:
    model, estimator, rng = classifier
    # covariate shift: rows selected by their inputs (towards the class boundaries), labels drawn from
    # the same posterior as in training
    pool = rng.normal(size=(40_000, 3))
    near = np.abs(pool[:, 0]) < 0.4
    shifted = np.concatenate([pool[near][:3000], pool[~near][:1000]])
    truth = classes_from(shifted, rng)
    predicted = model.predict(shifted)
    actual = realised(predicted, truth, classifier=True)
    estimate = estimator.estimate(model.predict_proba(shifted), predicted)
    assert actual["accuracy"] < estimator.reference["accuracy"] - 0.05  # the shift really hurt
    assert abs(estimate["accuracy"] - actual["accuracy"]) <= 0.03
    assert abs(estimate["f1_macro"] - actual["f1_macro"]) <= 0.04


def test_cbpe_is_blind_to_concept_shift(
    classifier: tuple[RandomForestClassifier, CBPE, np.random.Generator],
) -> None:
    model, estimator, rng = classifier
    x = rng.normal(size=(3000, 3))
    truth = classes_from(x, rng)
    flipped = np.where(truth == "a", "b", truth)  # same inputs, new labels: a concept shift
    predicted = model.predict(x)
    estimate = estimator.estimate(model.predict_proba(x), predicted)
    assert realised(predicted, flipped, True)["accuracy"] < realised(predicted, truth, True)["accuracy"] - 0.2
    assert abs(estimate["accuracy"] - realised(predicted, truth, True)["accuracy"]) <= 0.03


def test_calibrated_rows_are_probabilities(
    classifier: tuple[RandomForestClassifier, CBPE, np.random.Generator],
) -> None:
    model, estimator, rng = classifier
    calibrated = estimator.calibrated(model.predict_proba(rng.normal(size=(500, 3)) * 3))
    assert np.all(calibrated >= 0) and np.allclose(calibrated.sum(axis=1), 1.0)


def regression_rows(rows: int, rng: np.random.Generator, big_share: float = 0.5) -> pd.DataFrame:
    """y = 3 x + noise whose spread grows with x; a category that shifts the level."""
    size = rng.uniform(0, 10, rows)
    big = rng.random(rows) < big_share
    size[big] = rng.uniform(7, 10, big.sum())
    kind = rng.choice(["brick", "wood", None], rows)
    noise = rng.normal(0, 0.2 + 0.5 * size, rows)
    return pd.DataFrame({"size": size, "kind": kind, "y": 3 * size + np.where(kind == "brick", 5, 0) + noise})


def test_dle_follows_realised_mae_and_rmse_under_covariate_shift() -> None:
    rng = np.random.default_rng(5)
    train, held = regression_rows(3000, rng, 0.1), regression_rows(1500, rng, 0.1)
    encoded = {"brick": 0, "wood": 1}

    def X(frame: pd.DataFrame) -> np.ndarray:
        return np.c_[frame["size"], frame["kind"].map(encoded).fillna(2)]

    model = RandomForestRegressor(100, min_samples_leaf=10, random_state=0).fit(X(train), train["y"])
    estimator = DLE.fit(held[["size", "kind"]], model.predict(X(held)), held["y"], ["kind"])
    shifted = regression_rows(4000, rng, 0.8)  # mostly big rows: larger errors
    shifted.loc[0, "kind"] = "stone"  # a category training never had is estimated, not refused
    predicted = model.predict(X(shifted))
    actual = realised(predicted, shifted["y"], classifier=False)
    estimate = estimator.estimate(shifted[["size", "kind"]], predicted)
    assert actual["mae"] > estimator.reference["mae"] * 1.3  # the shift really hurt
    assert abs(estimate["mae"] - actual["mae"]) <= 0.1 * actual["mae"]
    assert abs(estimate["rmse"] - actual["rmse"]) <= 0.1 * actual["rmse"]


def test_drop_direction_and_watched_metric(
    classifier: tuple[RandomForestClassifier, CBPE, np.random.Generator],
) -> None:
    assert relative_drop("accuracy", 0.9, 0.81) == pytest.approx(0.1)
    assert relative_drop("accuracy", 0.9, 0.95) < 0
    assert relative_drop("mae", 100.0, 125.0) == pytest.approx(0.25)
    assert relative_drop("rmse", 100.0, 90.0) < 0
    _, estimator, _ = classifier
    assert watched_metric(estimator, "f1_macro") == "f1_macro"
    assert watched_metric(estimator, "roc_auc_ovr") == "accuracy"  # not estimated: accuracy is watched


def test_a_window_is_degraded_past_the_configured_drop(
    classifier: tuple[RandomForestClassifier, CBPE, np.random.Generator],
) -> None:
    model, estimator, rng = classifier
    easy = rng.normal(size=(400, 3)) * 3  # far from the boundaries: as good as held out, or better
    hard = np.c_[rng.normal(0, 0.1, 400), rng.normal(size=(400, 2))]  # on the boundary
    windows = {}
    for name, rows in (("easy", easy), ("hard", hard)):
        windows[name] = estimate_window(
            estimator,
            pd.DataFrame(rows),
            model.predict(rows),
            primary_metric="f1_macro",
            max_drop=0.1,
            probabilities=model.predict_proba(rows),
        )
    easy_window, hard_window = windows["easy"], windows["hard"]
    assert easy_window is not None and hard_window is not None
    assert not easy_window.degraded and hard_window.degraded and hard_window.drop > 0.1
    assert hard_window.metric == "f1_macro" and hard_window.rows == 400
    assert "DEGRADED" in hard_window.summary()
    # CBPE without the probabilities cannot estimate: no guess is made
    missing = estimate_window(
        estimator, pd.DataFrame(hard), model.predict(hard), primary_metric="f1_macro", max_drop=0.1
    )
    assert missing is None


@pytest.mark.parametrize(
    ("on", "drift", "degraded", "expected"),
    [
        ("either", True, True, ["drift", "estimated_drop"]),
        ("either", False, True, ["estimated_drop"]),
        ("drift", False, True, []),
        ("estimated_drop", True, False, []),
        ("estimated_drop", False, True, ["estimated_drop"]),
    ],
)
def test_what_calls_for_a_retrain(on: str, drift: bool, degraded: bool, expected: list[str]) -> None:
    report = {
        "dataset_drift": drift,
        "drifted_share": 0.5 if drift else 0.0,
        "performance": {"degraded": degraded, "metric": "accuracy", "drop": 0.2, "max_drop": 0.1},
    }
    assert triggers(report, on) == expected
    if not expected:
        assert watching(report, on)  # the skip says what it looked at


def test_standard_errors_match_the_spread_of_window_estimates(
    classifier: tuple[RandomForestClassifier, CBPE, np.random.Generator],
) -> None:
    """What a drop is weighed against: the standard error each estimate reports is the spread its
    estimates really have from one window to the next (within 25 %)."""
    model, estimator, rng = classifier
    found = []
    for _ in range(150):
        rows = rng.normal(size=(200, 3))
        found.append(estimator.estimate_with_errors(model.predict_proba(rows), model.predict(rows)))
    for metric in ("accuracy", "f1_macro"):
        spread = np.std([estimated[metric] for estimated, _ in found])
        reported = np.mean([errors[metric] for _, errors in found])
        assert reported == pytest.approx(spread, rel=0.25), metric

    rng = np.random.default_rng(11)
    train, held = regression_rows(2000, rng, 0.1), regression_rows(800, rng, 0.1)
    X = {"brick": 0, "wood": 1}
    model_r = RandomForestRegressor(50, min_samples_leaf=10, random_state=0)
    model_r.fit(np.c_[train["size"], train["kind"].map(X).fillna(2)], train["y"])

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return model_r.predict(np.c_[frame["size"], frame["kind"].map(X).fillna(2)])

    dle = DLE.fit(held[["size", "kind"]], predict(held), held["y"], ["kind"])
    windows = [regression_rows(200, rng, 0.1) for _ in range(150)]
    found_r = [dle.estimate_with_errors(w[["size", "kind"]], predict(w)) for w in windows]
    for metric in ("mae", "rmse"):
        spread = np.std([estimated[metric] for estimated, _ in found_r])
        reported = np.mean([errors[metric] for _, errors in found_r])
        assert reported == pytest.approx(spread, rel=0.25), metric


def test_a_drop_must_also_stand_out_of_the_noise() -> None:
    from shipyard.training.performance import drop_z

    estimator = CBPE(["a", "b"], [None, None])
    estimator.reference_estimate = {"accuracy": 0.9, "f1_macro": 0.9}
    estimator.reference_error = {"accuracy": 0.03, "f1_macro": 0.03}
    assert drop_z("accuracy", estimator, 0.75, 0.04) == pytest.approx(3.0)  # 0.15 over hypot(0.03, 0.04)
    assert drop_z("accuracy", estimator, 0.95, 0.04) < 0
    rows = np.array([[0.55, 0.45]] * 5 + [[0.99, 0.01]] * 5)  # 14 % worse, but only ten rows of it
    window = estimate_window(
        estimator, pd.DataFrame(rows), ["a"] * 10, primary_metric="accuracy", max_drop=0.1, probabilities=rows
    )
    assert window is not None and window.drop > 0.1 and window.z < 3 and not window.degraded
