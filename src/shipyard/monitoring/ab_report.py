"""Which variant of an A/B test is better, on the ground truth the service received.

Split mode: the variants saw different requests, so the test is unpaired (two-proportion Z-test on
accuracy, Welch's t-test on absolute error). Shadow mode: both variants answered every request, so the
test is paired and much stronger for the same traffic (McNemar's exact test on the rows where exactly one
was right; Wilcoxon signed-rank on the difference of absolute errors). Pure: a frame in, a report out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from shipyard.monitoring.store import SHADOW_VARIANT

CHAMPION = "champion"


@dataclass
class VariantQuality:
    variant: str
    version: str
    rows: int
    metrics: dict[str, float]


@dataclass
class ABReport:
    model: str
    task: str
    mode: str  # split | shadow
    metric: str  # accuracy (higher is better) or mae (lower is better)
    variants: list[VariantQuality]
    test: str
    p_value: float | None
    difference: float | None  # challenger minus champion, in ``metric``
    verdict: str  # promote | keep-champion | keep-collecting | no-test
    recommendation: str
    alpha: float
    min_rows: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("p_value", "difference"):
            value = out[key]
            out[key] = None if value is None or math.isnan(value) else value
        return out


def _quality(task: str, predicted: pd.Series, truth: pd.Series) -> dict[str, float]:
    if task == "classification":
        return {"accuracy": float((predicted.astype(str) == truth.astype(str)).mean())}
    errors = predicted.astype(float) - truth.astype(float)
    return {"mae": float(errors.abs().mean()), "rmse": float(math.sqrt((errors**2).mean()))}


def _latest_version(rows: pd.DataFrame) -> str:
    return str(rows["_version"].to_numpy()[int(np.argmax(rows["_ts"].to_numpy()))])


def compare_variants(
    frame: pd.DataFrame, model: str, task: str, alpha: float = 0.05, min_rows: int = 30
) -> ABReport:
    """``frame``: labelled log rows (``_variant``, ``_version``, ``_prediction``, ``_label``,
    ``_request_id``, ``_ts``), shadow rows included."""
    metric = "accuracy" if task == "classification" else "mae"
    variants: list[VariantQuality] = []
    notes: list[str] = []
    latest: dict[str, pd.DataFrame] = {}
    for variant, rows in frame.groupby("_variant", sort=False) if not frame.empty else []:
        version = _latest_version(rows)
        older = sorted(set(rows["_version"]) - {version})
        if older:
            notes.append(f"{variant}: graded version {version} only (also logged: {', '.join(older)})")
        rows = rows[rows["_version"] == version]
        latest[str(variant)] = rows
        quality = _quality(task, rows["_prediction"], rows["_label"])
        variants.append(VariantQuality(str(variant), version, len(rows), quality))
    order = {CHAMPION: 0, "challenger": 1, SHADOW_VARIANT: 2}
    variants.sort(key=lambda v: order.get(v.variant, 3))
    champion = latest.get(CHAMPION)
    other_name = next((v for v in ("challenger", SHADOW_VARIANT) if v in latest), None)
    mode = "shadow" if other_name == SHADOW_VARIANT else "split"

    def report(test: str, p: float | None, diff: float | None, verdict: str, text: str) -> ABReport:
        return ABReport(
            model, task, mode, metric, variants, test, p, diff, verdict, text, alpha, min_rows, notes
        )

    if champion is None or other_name is None:
        have = ", ".join(latest) or "none"
        return report(
            "none",
            None,
            None,
            "no-test",
            f"no labelled rows for both a champion and a challenger (variants with labels: {have}); run "
            "the service with SHIPYARD_AB_MODE=split or shadow and send ground truth to POST /feedback",
        )
    challenger = latest[other_name]
    if mode == "shadow":  # grade the champion on the same requests the shadow answered, nothing else
        paired = champion[champion["_request_id"].isin(set(challenger["_request_id"]))]
        if len(paired) < len(champion):
            notes.append(f"champion graded on the {len(paired)} rows the shadow also answered")
        champion = paired
        variants[0] = VariantQuality(
            CHAMPION,
            variants[0].version,
            len(paired),
            _quality(task, paired["_prediction"], paired["_label"]),
        )
    short = [f"{name} has {len(rows)}" for name, rows in ((CHAMPION, champion), (other_name, challenger))]
    if min(len(champion), len(challenger)) < min_rows:
        return report(
            "none",
            None,
            None,
            "keep-collecting",
            f"too few labelled rows to judge ({'; '.join(short)}; need {min_rows} each)",
        )
    if mode == "shadow":
        test, p, diff = _paired(task, champion, challenger)
    else:
        test, p, diff = _unpaired(task, champion, challenger)
    challenger_version = str(challenger["_version"].iloc[0])
    better = diff > 0 if metric == "accuracy" else diff < 0
    if p is None or math.isnan(p):
        return report(test, p, diff, "keep-collecting", "the test is undefined on these rows (no variation)")
    if p < alpha and better:
        text = (
            f"promote the challenger: version {challenger_version} is better on {metric} by "
            f"{abs(diff):.4g} (p={p:.3g} < {alpha:g}); `shipyard models promote {model} "
            f"{challenger_version} --reason 'A/B test'`"
        )
        return report(test, p, diff, "promote", text)
    if p < alpha:
        text = (
            f"keep the champion: the challenger (version {challenger_version}) is worse on {metric} by "
            f"{abs(diff):.4g} (p={p:.3g} < {alpha:g})"
        )
        return report(test, p, diff, "keep-champion", text)
    text = f"no significant difference on {metric} yet (p={p:.3g} >= {alpha:g}); keep collecting feedback"
    return report(test, p, diff, "keep-collecting", text)


def _paired(task: str, champion: pd.DataFrame, challenger: pd.DataFrame) -> tuple[str, float, float]:
    """Rows both variants answered, matched by request id and row order."""
    key = ["_request_id", "_row"]
    a = champion.assign(_row=champion.groupby("_request_id").cumcount())
    b = challenger.assign(_row=challenger.groupby("_request_id").cumcount())
    both = a.merge(b, on=key, suffixes=("_a", "_b"))
    if task == "classification":
        right_a = both["_prediction_a"].astype(str) == both["_label_a"].astype(str)
        right_b = both["_prediction_b"].astype(str) == both["_label_b"].astype(str)
        only_b, only_a = int((right_b & ~right_a).sum()), int((right_a & ~right_b).sum())
        diff = float(right_b.mean() - right_a.mean())
        if only_a + only_b == 0:
            return "McNemar exact (paired)", 1.0, diff
        p = stats.binomtest(only_b, only_a + only_b, 0.5).pvalue
        return "McNemar exact (paired)", float(p), diff
    err_a = (both["_prediction_a"].astype(float) - both["_label_a"].astype(float)).abs()
    err_b = (both["_prediction_b"].astype(float) - both["_label_b"].astype(float)).abs()
    delta = (err_b - err_a).to_numpy()
    if not np.any(delta):
        return "Wilcoxon signed-rank (paired)", 1.0, 0.0
    p = stats.wilcoxon(err_b, err_a).pvalue
    return "Wilcoxon signed-rank (paired)", float(p), float(delta.mean())


def _unpaired(task: str, champion: pd.DataFrame, challenger: pd.DataFrame) -> tuple[str, float, float]:
    if task == "classification":
        right_a = (champion["_prediction"].astype(str) == champion["_label"].astype(str)).to_numpy()
        right_b = (challenger["_prediction"].astype(str) == challenger["_label"].astype(str)).to_numpy()
        n_a, n_b = len(right_a), len(right_b)
        p_a, p_b = right_a.mean(), right_b.mean()
        pooled = (right_a.sum() + right_b.sum()) / (n_a + n_b)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
        if se == 0:
            return "two-proportion Z-test", 1.0, float(p_b - p_a)
        z = (p_b - p_a) / se
        return "two-proportion Z-test", float(2 * stats.norm.sf(abs(z))), float(p_b - p_a)
    err_a = (champion["_prediction"].astype(float) - champion["_label"].astype(float)).abs()
    err_b = (challenger["_prediction"].astype(float) - challenger["_label"].astype(float)).abs()
    p = stats.ttest_ind(err_b, err_a, equal_var=False).pvalue
    return "Welch t-test on absolute error", float(p), float(err_b.mean() - err_a.mean())
