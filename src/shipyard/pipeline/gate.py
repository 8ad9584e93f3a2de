"""The promotion gate: does a new version replace the champion? A pure decision with its reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from shipyard.config.pipeline import PromotionConfig
from shipyard.training.metrics import METRICS, is_better, meets_threshold


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    primary_metric: str
    candidate_score: float
    champion_version: str | None = None
    champion_score: float | None = None
    champion_score_source: str | None = None  # "new test split" or "recorded metric"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def decide(
    metrics: dict[str, float],
    primary_metric: str,
    rule: PromotionConfig,
    champion_version: str | None = None,
    champion_score: float | None = None,
    champion_score_source: str | None = None,
) -> PromotionDecision:
    """Thresholds first, then the comparison with the champion on the same test split."""
    candidate = metrics[primary_metric]

    def verdict(promote: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(
            promote,
            reason,
            primary_metric,
            candidate,
            champion_version,
            champion_score,
            champion_score_source,
        )

    misses = []
    for metric, threshold in rule.thresholds.items():
        value = metrics.get(metric)
        if value is None:
            misses.append(f"{metric} was not computed")
        elif not meets_threshold(metric, value, threshold):
            sign = "<" if METRICS[metric].greater_is_better else ">"
            word = "minimum" if METRICS[metric].greater_is_better else "maximum"
            misses.append(f"{metric} {_fmt(value)} {sign} {word} {_fmt(threshold)}")
    if misses:
        return verdict(False, "below thresholds: " + "; ".join(misses))
    if champion_version is None:
        return verdict(True, "meets every threshold and there is no champion yet")
    if not rule.compare_with_champion:
        return verdict(True, "meets every threshold (comparison with the champion is off)")
    if champion_score is None:
        return verdict(
            True, f"meets every threshold; champion v{champion_version} has no {primary_metric} to compare"
        )
    margin = f" + {_fmt(rule.min_improvement)}" if rule.min_improvement else ""
    where = champion_score_source or "new test split"
    promote = is_better(primary_metric, candidate, champion_score, rule.min_improvement)
    higher = METRICS[primary_metric].greater_is_better
    op = (">=" if higher else "<=") if promote else ("<" if higher else ">")
    reason = (
        f"{primary_metric} {_fmt(candidate)} {op} champion v{champion_version}'s "
        f"{_fmt(champion_score)}{margin} ({where})"
    )
    return verdict(promote, reason)
