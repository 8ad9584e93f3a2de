"""The promotion gate: thresholds first, then at least as good as the champion on the same split."""

from __future__ import annotations

from shipyard.config.pipeline import PromotionConfig
from shipyard.pipeline import decide


def test_first_version_meeting_thresholds_is_promoted() -> None:
    d = decide({"accuracy": 0.95}, "accuracy", PromotionConfig(thresholds={"accuracy": 0.9}))
    assert d.promote and "no champion yet" in d.reason


def test_thresholds_are_respected_even_without_a_champion() -> None:
    d = decide({"accuracy": 0.85, "f1_macro": 0.8}, "accuracy", PromotionConfig(thresholds={"accuracy": 0.9}))
    assert not d.promote
    assert d.reason == "below thresholds: accuracy 0.85 < minimum 0.9"


def test_lower_is_better_thresholds_are_maximums() -> None:
    rule = PromotionConfig(thresholds={"rmse": 100.0, "r2": 0.8})
    assert decide({"rmse": 90.0, "r2": 0.85}, "r2", rule).promote
    d = decide({"rmse": 120.0, "r2": 0.85}, "r2", rule)
    assert not d.promote and "rmse 120 > maximum 100" in d.reason


def test_better_or_equal_than_champion_is_promoted_worse_is_not() -> None:
    rule = PromotionConfig()
    assert decide({"r2": 0.90}, "r2", rule, "3", 0.90, "new test split").promote
    worse = decide({"r2": 0.89}, "r2", rule, "3", 0.90, "new test split")
    assert not worse.promote
    assert worse.reason == "r2 0.89 < champion v3's 0.9 (new test split)"
    assert worse.champion_version == "3" and worse.champion_score == 0.90


def test_direction_follows_the_metric() -> None:
    rule = PromotionConfig()
    assert decide({"mae": 10.0}, "mae", rule, "1", 12.0).promote
    assert not decide({"mae": 13.0}, "mae", rule, "1", 12.0).promote


def test_min_improvement_is_required_when_set() -> None:
    rule = PromotionConfig(min_improvement=0.02)
    assert not decide({"accuracy": 0.91}, "accuracy", rule, "1", 0.90).promote
    assert decide({"accuracy": 0.93}, "accuracy", rule, "1", 0.90).promote


def test_comparison_can_be_turned_off() -> None:
    d = decide({"accuracy": 0.5}, "accuracy", PromotionConfig(compare_with_champion=False), "1", 0.99)
    assert d.promote and "comparison with the champion is off" in d.reason
