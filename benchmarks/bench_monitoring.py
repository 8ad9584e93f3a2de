"""Drift alarms on scripted windows (issue 16): false alarms per 100 no-shift windows and detection of a
covariate shift, with the p-value correction off (Evidently's behaviour), Benjamini-Hochberg (the
default) and Bonferroni, on the two example datasets.

Data, all generated here from what ships in data/raw (nothing downloaded):
  iris      a per-species multivariate normal fitted to the 150 flowers (the features' correlations
            kept), species drawn uniformly; reference 120 rows (what training keeps), windows of 200.
  housing   rows bootstrapped from data/raw/housing.csv (the joint distribution kept): a reference of
            1,000 rows (the p-value tests: KS, chi-squared, Z; set ``monitoring.reference_rows: 1000``)
            and the default of up to 5,000 (2,344 training rows: distance tests, which no correction
            touches); windows of 500 rows drawn from the rows not in the reference.
Scenarios, each over --windows windows with a fresh draw per window:
  no shift        current windows from the reference's distribution
  covariate       one feature moved (iris petal_width +0.3 sd; housing gr_liv_area x1.10)
  joint           one feature shuffled within the window (iris petal_width, housing gr_liv_area): its
                  distribution and every other one unchanged, its relation to the others gone
  concept         the inputs unchanged, the labels changed (iris: a third of versicolor now virginica;
                  housing: every price 15 % higher): no input test can see it, by construction
For each: the share of windows where any feature is flagged, where the moved feature is flagged, and
where the per-feature dataset verdict (``drift_share`` 0.5 of the features) says drift, per
correction; and for the domain classifier (the multivariate score, once per window): the share of
windows it calls drifted, how often the moved feature tops its list, its median AUROC and time.
Estimated performance (``--part performance``): the shipped config's model fitted on its training split
and its estimator (CBPE for iris, DLE for housing) on the held-out split, as `shipyard train` does; then
per window the estimate against the metric realised on the window's labels. iris windows of 200
synthetic flowers (labels: the species drawn), housing windows of 300 rows bootstrapped from the
half of the held-out split that DLE did not learn from (cross-fitted: DLE learns from the other half;
the training rows would show in-sample errors). Scenarios as above, plus
  selection       a covariate shift by selection, the relation from inputs to labels untouched (iris:
                  versicolor and virginica only; housing: big houses favoured, weight rank^3)
Run: .venv/bin/python benchmarks/bench_monitoring.py [--windows 200] [--only iris|housing]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import benchmark_parser, git_revision, machine_basics

REPO = Path(__file__).resolve().parents[1]
CORRECTIONS = ("none", "bh", "bonferroni")
IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SCENARIOS = ("no shift", "covariate", "joint", "concept")


def iris_sampler(seed: int) -> Any:
    from sklearn.datasets import load_iris

    data = load_iris()
    fits = [
        (data.data[data.target == k].mean(axis=0), np.cov(data.data[data.target == k], rowvar=False))
        for k in range(3)
    ]
    sd = data.data.std(axis=0)
    rng = np.random.default_rng(seed)

    def draw(rows: int, shift: str = "", labelled: bool = False) -> Any:
        """A window (and its labels, the species drawn, when ``labelled``)."""
        species = rng.integers(0, 3, rows)
        if shift == "selection":  # covariate shift by selection: versicolor and virginica only
            species = rng.integers(1, 3, rows)
        values = np.empty((rows, 4))
        for k, (mean, cov) in enumerate(fits):
            at = species == k
            values[at] = rng.multivariate_normal(mean, cov, int(at.sum()))
        if shift == "covariate":
            values[:, 3] += 0.3 * sd[3]
        if shift == "joint":  # the same petal widths, no longer paired with their lengths
            values[:, 3] = rng.permutation(values[:, 3])
        frame = pd.DataFrame(np.round(values, 1), columns=IRIS)
        labels = np.asarray(data.target_names)[species]
        if shift == "concept":  # the same flowers, a third of the versicolor now called virginica
            labels = np.where((labels == "versicolor") & (rng.random(rows) < 1 / 3), "virginica", labels)
        return (frame, labels) if labelled else frame

    return draw, dict.fromkeys(IRIS, "numeric"), "petal_width"


def housing_sampler(seed: int, reference_rows: int) -> tuple[Any, pd.DataFrame, dict[str, str], str]:
    from shipyard.config.loading import load_config

    config = load_config(REPO / "configs/housing.yaml")
    features = config.feature_columns
    kinds = {c: config.dataset.columns[c].feature_kind for c in features}
    frame = pd.read_csv(REPO / "data/raw/housing.csv")[features]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(frame))
    reference = frame.iloc[order[:reference_rows]].reset_index(drop=True)
    pool = frame.iloc[order[reference_rows:]].reset_index(drop=True)

    def draw(rows: int, shift: str = "") -> pd.DataFrame:
        # without replacement: a row twice in one window is one the domain classifier can memorise
        window = pool.iloc[rng.choice(len(pool), rows, replace=False)].reset_index(drop=True)
        if shift == "covariate":
            window["gr_liv_area"] = (window["gr_liv_area"] * 1.10).round()
        if shift == "joint":  # the same living areas, shuffled between the houses
            window["gr_liv_area"] = rng.permutation(window["gr_liv_area"].to_numpy())
        return window

    return draw, reference, kinds, "gr_liv_area"


PERFORMANCE_SCENARIOS = ("no shift", "covariate", "selection", "joint", "concept")


def trained_example(name: str, hold_back: float = 0.0, seed: int = 0) -> tuple[Any, Any, Any]:
    """The shipped config's model fitted on its training split and the estimator it keeps (CBPE / DLE,
    fitted on the held-out split as `shipyard train` does); ``hold_back``: that share of the held-out
    rows is kept from the estimator and returned as the split's test rows, for windows the estimator
    never saw."""
    from dataclasses import replace

    from shipyard.config.loading import load_config
    from shipyard.pipeline.steps import fit_performance_estimator, prepare_data, split_data
    from shipyard.training.trainer import ModelTrainer

    config = load_config(REPO / f"configs/{name}.yaml")
    split = split_data(config, prepare_data(config, REPO))
    model = ModelTrainer(config).fit(split.X_train, split.y_train)
    fit_on, kept = split, split
    if hold_back:
        order = np.random.default_rng(seed).permutation(len(split.X_test))
        cut = int(len(order) * (1 - hold_back))
        fit_on = replace(split, X_test=split.X_test.iloc[order[:cut]], y_test=split.y_test.iloc[order[:cut]])
        kept = replace(split, X_test=split.X_test.iloc[order[cut:]], y_test=split.y_test.iloc[order[cut:]])
    estimator = fit_performance_estimator(config, model, fit_on, model.predict(fit_on.X_test))
    return model, estimator, kept


def housing_test_sampler(split: Any, seed: int) -> Any:
    """Windows bootstrapped from the held-out rows (the training rows would show in-sample errors)."""
    rng = np.random.default_rng(seed)
    X, y = split.X_test.reset_index(drop=True), split.y_test.to_numpy(dtype=float)
    size_rank = X["gr_liv_area"].rank(pct=True).to_numpy()

    def draw(rows: int, shift: str = "", labelled: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
        weights = size_rank**3 if shift == "selection" else np.ones(len(X))  # big houses favoured
        pick = rng.choice(len(X), rows, replace=True, p=weights / weights.sum())
        window = X.iloc[pick].reset_index(drop=True)
        labels = y[pick].copy()
        if shift == "covariate":
            window["gr_liv_area"] = (window["gr_liv_area"] * 1.10).round()
        if shift == "joint":
            window["gr_liv_area"] = rng.permutation(window["gr_liv_area"].to_numpy())
        if shift == "concept":  # the same houses, sold 15 % dearer
            labels = labels * 1.15
        return window, labels

    return draw


def run_performance(
    name: str, draw: Any, model: Any, estimator: Any, rows: int, windows: int, shifted: int
) -> dict[str, Any]:
    """Estimated (CBPE / DLE) against realised per window, for each scenario: the absolute error, how
    often it is within 3 points (accuracy) or 10 % (MAE), and how often the window is called degraded
    at the shipped max_drop."""
    from shipyard.monitoring.estimated import estimate_window
    from shipyard.training.performance import CBPE, realised

    classifier = isinstance(estimator, CBPE)
    metric = "accuracy" if classifier else "mae"
    out: dict[str, Any] = {"method": estimator.method, "metric": metric, "held_out": estimator.reference}
    for scenario in PERFORMANCE_SCENARIOS:
        errors, estimated_values, realised_values, degraded, by_drop_alone = [], [], [], 0, 0
        first_degraded = None
        count = windows if scenario == "no shift" else shifted
        for window in range(count):
            current, labels = draw(rows, shift=scenario, labelled=True)
            predicted = model.predict(current)
            found = estimate_window(
                estimator,
                current,
                predicted,
                primary_metric=metric,
                max_drop=0.1,
                probabilities=model.predict_proba(current) if classifier else None,
            )
            assert found is not None
            actual = realised(predicted, labels, classifier)[metric]
            estimated_values.append(found.estimated[metric])
            realised_values.append(actual)
            errors.append(found.estimated[metric] - actual)
            degraded += found.degraded
            by_drop_alone += found.drop > found.max_drop  # the verdict without the 3-standard-error rule
            if found.degraded and first_degraded is None:
                first_degraded = window + 1
        errors_arr = np.abs(np.asarray(errors))
        if classifier:
            within = float(np.mean(errors_arr <= 0.03))
        else:
            within = float(np.mean(errors_arr <= 0.10 * np.asarray(realised_values)))
        out[scenario] = {
            "windows": count,
            "median_estimated": round(float(np.median(estimated_values)), 4),
            "median_realised": round(float(np.median(realised_values)), 4),
            "median_abs_error": round(float(np.median(errors_arr)), 4),
            "mean_error": round(float(np.mean(errors)), 4),
            "within_tolerance_pct": round(100 * within, 1),
            "degraded_pct": round(100 * degraded / count, 1),
            "degraded_by_drop_alone_pct": round(100 * by_drop_alone / count, 1),
            "first_degraded_window": first_degraded,
        }
        print(f"  {name} {estimator.method}, {scenario}: {out[scenario]}", flush=True)
    return out


def performance_table(results: dict[str, Any]) -> str:
    lines = [
        "| data | method | scenario | median estimated | median realised | median abs. error | mean error "
        "(bias) | windows within tolerance | windows called degraded | by the 10% rule alone | "
        "first degraded window |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, found in results.items():
        for scenario in PERFORMANCE_SCENARIOS:
            row = found[scenario]
            lines.append(
                f"| {name} | {found['method'].upper()} {found['metric']} | {scenario} | "
                f"{row['median_estimated']:.4g} | {row['median_realised']:.4g} | "
                f"{row['median_abs_error']:.3g} | {row['mean_error']:+.3g} | "
                f"{row['within_tolerance_pct']:.1f} | {row['degraded_pct']:.1f} | "
                f"{row['degraded_by_drop_alone_pct']:.1f} | "
                f"{row['first_degraded_window'] or '–'} |"
            )
    return "\n".join(lines)


def run_setting(
    name: str,
    draw: Any,
    reference: pd.DataFrame,
    kinds: dict[str, str],
    moved: str,
    rows: int,
    windows: int,
    shifted_windows: int,
) -> dict[str, Any]:
    from shipyard.monitoring.drift import compute_drift
    from shipyard.monitoring.multivariate import DomainClassifierSettings, domain_classifier

    out: dict[str, Any] = {"reference_rows": len(reference), "window_rows": rows}
    started = time.perf_counter()
    for scenario in SCENARIOS:
        counts = {c: {"any_feature": 0, "moved_feature": 0, "dataset": 0} for c in CORRECTIONS}
        domain = {"drifted": 0, "moved_feature_named_first": 0, "shipped_verdict": 0}
        aurocs, seconds = [], []
        first: dict[str, int | None] = {"bh": None, "domain classifier": None, "shipped": None}
        tests: set[str] = set()
        count = windows if scenario == "no shift" else shifted_windows
        for window in range(count):
            current = draw(rows, shift=scenario)
            shipped = False
            for correction in CORRECTIONS:  # the per-feature verdict alone (domain classifier apart)
                report = compute_drift(reference, current, kinds, correction=correction)
                shipped |= correction == "bh" and report.dataset_drift
                tests.update(f.test for f in report.features)
                flagged = report.drifted_features
                counts[correction]["any_feature"] += bool(flagged)
                counts[correction]["moved_feature"] += moved in flagged
                counts[correction]["dataset"] += report.dataset_drift
            found = domain_classifier(reference, current, kinds, DomainClassifierSettings(seed=window))
            assert found is not None
            domain["drifted"] += found.drifted
            # the dataset verdict as shipped: the share rule on bh-corrected features, or the classifier
            domain["shipped_verdict"] += shipped or found.drifted
            domain["moved_feature_named_first"] += bool(
                found.top_features and found.top_features[0]["name"] == moved
            )
            aurocs.append(found.auroc)
            seconds.append(found.seconds)
            for method, said in (
                ("bh", counts["bh"]["dataset"] > 0),
                ("domain classifier", found.drifted),
                ("shipped", shipped or found.drifted),
            ):
                if said and first[method] is None:
                    first[method] = window + 1
        out[scenario] = {
            c: {k: round(100 * v / count, 2) for k, v in found.items()} for c, found in counts.items()
        }
        out[scenario]["windows"] = count
        out[scenario]["first_detection_window"] = first
        out[scenario]["domain classifier"] = {
            **{k: round(100 * v / count, 2) for k, v in domain.items()},
            "median_auroc": round(float(np.median(aurocs)), 3),
            "median_seconds": round(float(np.median(seconds)), 3),
        }
        out["tests"] = sorted(tests)
        print(f"  {name}, {scenario}: {out[scenario]}", flush=True)
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def table(results: dict[str, Any]) -> str:
    lines = [
        "| data (reference rows, tests) | scenario | per-feature tests, correction | windows with any "
        "feature flagged | moved feature flagged | dataset drift (share rule) |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name, found in results.items():
        label = f"{name} ({found['reference_rows']:,}, {', '.join(found['tests'])})"
        for scenario in SCENARIOS:
            for correction in CORRECTIONS:
                row = found[scenario][correction]
                moved = f"{row['moved_feature']:.1f}" if scenario != "no shift" else "–"
                lines.append(
                    f"| {label} | {scenario} | {correction} | {row['any_feature']:.1f} | {moved} | "
                    f"{row['dataset']:.1f} |"
                )
    lines += [
        "",
        "| data | scenario | domain classifier: windows drifted | moved feature named first | median "
        "AUROC | median seconds | dataset drift as shipped (bh share rule or classifier) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, found in results.items():
        for scenario in SCENARIOS:
            row = found[scenario]["domain classifier"]
            lines.append(
                f"| {name} | {scenario} | {row['drifted']:.1f} | {row['moved_feature_named_first']:.1f} | "
                f"{row['median_auroc']:.3f} | {row['median_seconds']:.2f} | {row['shipped_verdict']:.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(
        __doc__,
        repeats=1,
        output=REPO / "benchmarks" / "results" / "bench_monitoring.json",
        cpu=None,
        seed=0,
    )
    parser.add_argument("--windows", type=int, default=200, help="No-shift windows per setting.")
    parser.add_argument(
        "--shifted-windows", type=int, default=50, help="Windows per shifted scenario and setting."
    )
    parser.add_argument("--only", choices=["iris", "housing"], help="One dataset only.")
    parser.add_argument(
        "--part",
        choices=["drift", "performance", "both"],
        default="both",
        help="The drift alarms, the estimated performance (CBPE / DLE), or both.",
    )
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    performance: dict[str, Any] = {}
    if args.part in ("performance", "both"):
        if args.only in (None, "iris"):
            model, estimator, _ = trained_example("iris")
            draw, _, _ = iris_sampler(args.seed)
            print("iris, estimated performance", flush=True)
            performance["iris"] = run_performance(
                "iris", draw, model, estimator, 200, args.windows, args.shifted_windows
            )
        if args.only in (None, "housing"):
            # cross-fitted: DLE learns from half the held-out rows, the windows come from the other half
            model, estimator, split = trained_example("housing", hold_back=0.5, seed=args.seed)
            print("housing, estimated performance", flush=True)
            performance["housing"] = run_performance(
                "housing",
                housing_test_sampler(split, args.seed),
                model,
                estimator,
                300,
                args.windows,
                args.shifted_windows,
            )
    if args.part == "performance":
        pass
    elif args.only in (None, "iris"):
        draw, kinds, moved = iris_sampler(args.seed)
        reference = draw(120)
        print("iris", flush=True)
        results["iris"] = run_setting(
            "iris", draw, reference, kinds, moved, 200, args.windows, args.shifted_windows
        )
    if args.part != "performance" and args.only in (None, "housing"):
        for reference_rows in (1000, 2344):
            draw, reference, kinds, moved = housing_sampler(args.seed, reference_rows)
            print(f"housing, reference {reference_rows}", flush=True)
            results[f"housing, reference {reference_rows}"] = run_setting(
                "housing", draw, reference, kinds, moved, 500, args.windows, args.shifted_windows
            )
    print()
    if results:
        print(
            f"Shares of windows, in percent (false alarms per 100 windows under 'no shift'; {args.windows} "
            f"no-shift windows and {args.shifted_windows} per shifted scenario):"
        )
        print(table(results))
    if performance:
        print()
        print("Estimated vs realised performance per window (tolerance: 3 points of accuracy, 10 % of MAE):")
        print(performance_table(performance))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "revision": git_revision(REPO),
                "machine": machine_basics(),
                "seed": args.seed,
                "results": results,
                "performance": performance,
            },
            indent=2,
        )
    )
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
