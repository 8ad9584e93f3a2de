"""Drift tests on synthetic data with known shifts, and agreement with scipy's own statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from shipyard.config.pipeline import DRIFT_METHOD_KINDS, DriftMethod
from shipyard.errors import ConfigError
from shipyard.monitoring.drift import DriftOverride, compute_drift, default_test
from shipyard.monitoring.stattests import STATTESTS, get_stattest

KINDS = {"a": "numeric", "b": "numeric", "c": "categorical", "d": "categorical", "e": "numeric"}


def frames(n_ref: int, n_cur: int, shift: bool, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def make(n: int, moved: bool) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "a": rng.normal(0, 1, n),
                "b": rng.normal(1.0 if moved else 0.0, 1, n),
                "c": rng.choice(["x", "y", "z"], n, p=[0.6, 0.2, 0.2] if moved else [0.34, 0.33, 0.33]),
                "d": rng.choice(["yes", "no"], n),
                "e": rng.integers(0, 4, n).astype(float),  # low-cardinality numeric
            }
        )

    return make(n_ref, False), make(n_cur, shift)


@pytest.mark.parametrize(
    ("n_ref", "expected"),
    [
        (800, {"a": "ks", "b": "ks", "c": "chisquare", "d": "z", "e": "chisquare"}),
        (
            3000,
            {
                "a": "wasserstein",
                "b": "wasserstein",
                "c": "jensenshannon",
                "d": "jensenshannon",
                "e": "jensenshannon",
            },
        ),
    ],
)
def test_tests_are_chosen_like_evidently(n_ref: int, expected: dict[str, str]) -> None:
    reference, current = frames(n_ref, 500, shift=False)
    report = compute_drift(reference, current, KINDS)
    assert {f.name: f.test for f in report.features} == expected


@pytest.mark.parametrize("n_ref", [800, 3000])
def test_no_shift_no_drift_and_shift_drifts_exactly_the_moved_features(n_ref: int) -> None:
    reference, same = frames(n_ref, 1000, shift=False, seed=1)
    quiet = compute_drift(reference, same, KINDS)
    assert quiet.drifted_features == [] and not quiet.dataset_drift

    _, moved = frames(n_ref, 1000, shift=True, seed=2)
    loud = compute_drift(reference, moved, KINDS, drift_share=0.4)
    assert loud.drifted_features == ["b", "c"]
    assert loud.drifted_share == pytest.approx(0.4) and loud.dataset_drift
    assert not compute_drift(reference, moved, KINDS, drift_share=0.5).dataset_drift


def test_statistics_agree_with_scipy() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(0, 1, 700), rng.normal(0.2, 1.3, 400)
    assert get_stattest("ks").compute(ref, cur) == pytest.approx(stats.ks_2samp(ref, cur).pvalue)
    assert get_stattest("wasserstein").compute(ref, cur) == pytest.approx(
        stats.wasserstein_distance(ref, cur) / np.std(ref)
    )
    cats_ref = rng.choice(["x", "y", "z"], 600, p=[0.5, 0.3, 0.2]).astype(object)
    cats_cur = rng.choice(["x", "y", "z"], 300, p=[0.3, 0.3, 0.4]).astype(object)
    counts_ref = np.array([np.sum(cats_ref == c) for c in "xyz"], dtype=float)
    counts_cur = np.array([np.sum(cats_cur == c) for c in "xyz"], dtype=float)
    assert get_stattest("chisquare").compute(cats_ref, cats_cur) == pytest.approx(
        stats.chi2_contingency(np.vstack([counts_ref, counts_cur]), correction=False).pvalue
    )
    # shares over the reference's categories plus one slot for categories the reference never saw
    share_ref = np.append(counts_ref / counts_ref.sum(), 0)
    share_cur = np.append(counts_cur / counts_cur.sum(), 0)
    assert get_stattest("jensenshannon").compute(cats_ref, cats_cur) == pytest.approx(
        distance.jensenshannon(share_ref, share_cur, base=2)
    )
    binary_ref = rng.choice(["no", "yes"], 500, p=[0.5, 0.5]).astype(object)
    binary_cur = rng.choice(["no", "yes"], 500, p=[0.35, 0.65]).astype(object)
    p1, p2 = np.mean(binary_ref == "yes"), np.mean(binary_cur == "yes")
    pooled = (p1 + p2) / 2
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (2 / 500))
    assert get_stattest("z").compute(binary_ref, binary_cur) == pytest.approx(2 * stats.norm.sf(abs(z)))


def test_overrides_and_unknown_methods() -> None:
    reference, current = frames(800, 500, shift=True, seed=4)
    report = compute_drift(
        reference,
        current,
        KINDS,
        overrides={"b": DriftOverride("psi", 5.0), "a": DriftOverride(threshold=0.9)},
    )
    by_name = {f.name: f for f in report.features}
    assert by_name["b"].test == "psi" and by_name["b"].threshold == 5.0 and not by_name["b"].drifted
    assert by_name["a"].test == "ks" and by_name["a"].threshold == 0.9
    with pytest.raises(ConfigError, match="unknown drift test 'cosine'"):
        get_stattest("cosine")


def test_config_method_names_match_the_registry() -> None:
    assert set(DriftMethod.__args__) == set(STATTESTS)  # type: ignore[attr-defined]
    assert set(DRIFT_METHOD_KINDS) == set(STATTESTS)
    assert {name: test.kinds for name, test in STATTESTS.items()} == DRIFT_METHOD_KINDS


@pytest.mark.parametrize(
    ("feature", "method", "fitting"),
    [
        ("c", "ks", "chisquare, z, jensenshannon, psi"),
        ("c", "wasserstein", "chisquare, z, jensenshannon, psi"),
        ("a", "z", "ks, chisquare, wasserstein, jensenshannon, psi"),
    ],
)
def test_a_test_is_refused_on_a_feature_of_the_wrong_kind(feature: str, method: str, fitting: str) -> None:
    """KS on a categorical column would compare category labels as numbers (or fail deep in scipy):
    the detector refuses it up front, naming the feature, the test and the tests that fit."""
    reference, current = frames(800, 500, shift=False, seed=6)
    kind = KINDS[feature]
    with pytest.raises(ConfigError) as err:
        compute_drift(reference, current, KINDS, overrides={feature: DriftOverride(method)})
    message = str(err.value)
    assert f"drift test '{method}' does not apply to '{feature}', a {kind} feature" in message
    assert message.endswith(f"tests for {kind} features: {fitting}")


def test_every_test_fits_the_kinds_it_claims_and_the_defaults_always_fit() -> None:
    reference, current = frames(800, 500, shift=False, seed=7)
    for name, test in STATTESTS.items():
        for feature, kind in KINDS.items():
            overrides = {feature: DriftOverride(name)}
            if kind in test.kinds:
                report = compute_drift(reference, current, {feature: kind}, overrides=overrides)
                assert report.features[0].test == name
            else:
                with pytest.raises(ConfigError, match=f"drift test '{name}' does not apply to '{feature}'"):
                    compute_drift(reference, current, {feature: kind}, overrides=overrides)
    for n_ref in (800, 3000):  # both default regimes: small and large reference
        big_reference, _ = frames(n_ref, 10, shift=False, seed=8)
        for feature, kind in KINDS.items():
            assert kind in get_stattest(default_test(kind, big_reference[feature].to_numpy())).kinds


def test_missing_values_are_reported_not_tested() -> None:
    reference, current = frames(800, 500, shift=False, seed=5)
    current.loc[:99, "a"] = np.nan
    report = compute_drift(reference, current, KINDS)
    a = next(f for f in report.features if f.name == "a")
    assert a.current_missing == pytest.approx(0.2) and not a.drifted
    assert len(a.edges or []) == len(a.reference_shares) + 1
    assert sum(a.current_shares) == pytest.approx(1.0)


def test_default_test_for_a_single_value_column() -> None:
    assert default_test("numeric", np.ones(10)) == "chisquare"


@pytest.mark.parametrize("seed", range(5))
def test_adjusted_p_values_match_scipy(seed: int) -> None:
    """Benjamini-Hochberg against scipy's false_discovery_control, Bonferroni against m * p; NaN (a
    feature with nothing to test) stays NaN and does not count in m."""
    from shipyard.monitoring.drift import adjust_p_values

    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 1, 12), rng.uniform(0, 0.01, 4), [0.0, 1.0, 0.03, 0.03]])
    rng.shuffle(p)
    np.testing.assert_allclose(adjust_p_values(p, "bh"), stats.false_discovery_control(p, method="bh"))
    np.testing.assert_allclose(adjust_p_values(p, "bonferroni"), np.minimum(p * p.size, 1.0))
    np.testing.assert_array_equal(adjust_p_values(p, "none"), p)
    with_gap = np.insert(p, 3, np.nan)
    adjusted = adjust_p_values(with_gap, "bh")
    assert np.isnan(adjusted[3])
    np.testing.assert_allclose(np.delete(adjusted, 3), stats.false_discovery_control(p, method="bh"))
    with pytest.raises(ValueError, match=r"unknown p-value correction 'holm'.*bh, bonferroni, none"):
        adjust_p_values(p, "holm")


def test_the_correction_decides_the_verdict_and_keeps_the_raw_one() -> None:
    """A feature just under 0.05 among several untouched ones: drifted without correction, not with;
    a large shift survives every correction; distance tests (large reference) are never adjusted."""
    rng = np.random.default_rng(7)
    n = 600
    base = {f"x{i}": rng.normal(0, 1, n) for i in range(8)}
    reference = pd.DataFrame(base)
    current = pd.DataFrame({k: rng.normal(0, 1, n) for k in base})
    current["x0"] = rng.normal(0.6, 1, n)  # a real shift
    kinds = dict.fromkeys(base, "numeric")
    none = compute_drift(reference, current, kinds, correction="none")
    bh = compute_drift(reference, current, kinds)  # the default
    bonferroni = compute_drift(reference, current, kinds, correction="bonferroni")
    assert bh.correction == "bh" and none.correction == "none"
    for report in (none, bh, bonferroni):
        assert "x0" in report.drifted_features
    assert all(f.p_adjusted is None and f.drifted_uncorrected is None for f in none.features)
    raw = {f.name: f.score for f in none.features}
    for f in bonferroni.features:
        assert f.score == raw[f.name]  # the score stays the raw p-value
        assert f.p_adjusted == pytest.approx(min(1.0, raw[f.name] * 8))
        assert f.drifted == (f.p_adjusted < 0.05) and f.drifted_uncorrected == (raw[f.name] < 0.05)
    # a borderline feature: raw p just under 0.05 drifts only without correction
    p = np.array([raw[k] for k in kinds])
    borderline = [f.name for f in none.features if f.drifted and f.name != "x0"]
    for name in borderline:
        assert name not in bonferroni.drifted_features
    assert set(bh.drifted_features) <= set(none.drifted_features)
    assert p.size == 8
    big = compute_drift(
        pd.concat([reference] * 3, ignore_index=True), pd.concat([current] * 2, ignore_index=True), kinds
    )
    assert {f.test for f in big.features} == {"wasserstein"}
    assert all(f.p_adjusted is None for f in big.features)
    assert "x0" in big.drifted_features


def test_the_correction_is_a_config_choice() -> None:
    from pydantic import ValidationError

    from shipyard.config.pipeline import MonitoringConfig

    assert MonitoringConfig().correction == "bh"
    assert MonitoringConfig(correction="bonferroni").correction == "bonferroni"
    with pytest.raises(ValidationError, match="correction"):
        MonitoringConfig(correction="holm")
