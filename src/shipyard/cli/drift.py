"""``shipyard drift``: is live data still like what the model was trained on?"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.output import console, err_console, table, write_json
from shipyard.cli.predict import read_frame
from shipyard.config.settings import get_settings
from shipyard.errors import ConfigError

DRIFT_EXIT_CODE = 10
_AGO = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> float:
    """A UNIX time from '30m', '6h', '7d' (ago) or an ISO 8601 time."""
    found = _AGO.match(text.strip().lower())
    if found:
        return time.time() - int(found.group(1)) * _UNIT[found.group(2)]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--since: expected 30m, 6h, 7d or an ISO time, got '{text}'") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def drift(
    name: Annotated[str, typer.Argument(help="Registered model name, e.g. housing.")],
    current: Annotated[
        Path | None,
        typer.Option(
            "--current", "-c", help="CSV or Parquet file of current rows (default: the prediction log)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="From the prediction log: rows newer than this (30m, 6h, 7d or an ISO time)."),
    ] = None,
    window: Annotated[
        int | None, typer.Option(min=1, help="From the prediction log: the latest N rows (default 10,000).")
    ] = None,
    ref: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Alias or version to compare with (default: the champion)."),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report as JSON.")] = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write a self-contained HTML report with a plot per feature."),
    ] = None,
    explain_rows: Annotated[
        int,
        typer.Option(
            "--explain-rows",
            min=0,
            help="Mean |TreeSHAP attribution| per feature on this many rows of each side, in the report "
            "and as a plot in the HTML (0: off; a deep forest costs ~50 ms a row).",
        ),
    ] = 50,
    fail_on_drift: Annotated[
        bool,
        typer.Option(
            "--fail-on-drift", help=f"Exit {DRIFT_EXIT_CODE} when the dataset drifted (for CI/cron)."
        ),
    ] = False,
) -> None:
    from shipyard.monitoring.reports import drift_for_model, logged_rows

    settings = get_settings()
    if current is not None:
        if since or window:
            raise ConfigError("--since and --window read the prediction log; they do not apply to --current")
        frame = read_frame(current)
    else:
        frame = logged_rows(settings, name, parse_since(since) if since else None, window or 10_000)
    report = drift_for_model(settings, name, frame, ref, explain_rows)
    rows = []
    for f in [*report.features, *([report.prediction] if report.prediction else [])]:
        score = "n/a" if math.isnan(f.score) else f"{f.score:.4g}"
        verdict = "[red]drift[/]" if f.drifted else "ok"
        if f.drifted_uncorrected and not f.drifted:
            verdict = "ok (drift before correction)"
        adjusted = "" if f.p_adjusted is None else f"{f.p_adjusted:.4g}"
        rows.append([f.name, f.kind, f.test, score, adjusted, f"{f.threshold:g}", verdict])
    console.print(
        table(
            f"Drift of {name} v{report.version}: "
            f"{report.current_rows} current vs {report.reference_rows} reference rows",
            ["feature", "kind", "test", "score", "adjusted p", "threshold", "verdict"],
            rows,
        )
    )
    verdict = "[red]DRIFTED[/]" if report.dataset_drift else "[green]no drift[/]"
    console.print(
        f"dataset: {verdict} — {len(report.drifted_features)} of {len(report.features)} features drifted "
        f"(share {report.drifted_share:.2f}, threshold {report.drift_share:g}; p-value correction: "
        f"{report.correction})"
        + (
            f"; prediction drift: {'yes' if report.prediction.drifted else 'no'}" if report.prediction else ""
        ),
        soft_wrap=True,
    )
    domain = report.multivariate
    if domain is not None:
        used = ", ".join(str(f["name"]) for f in domain.top_features)
        console.print(
            f"multivariate (domain classifier on {domain.reference_rows} + {domain.current_rows} rows): "
            f"AUROC {domain.auroc:.3f} (threshold {domain.threshold:g}, p {domain.p_value:.2g}) — "
            + (
                "[red]drift[/]" + (f"; it used most: {used}" if used else "")
                if domain.drifted
                else "no drift"
            ),
            soft_wrap=True,
        )
    estimate = report.performance
    if estimate is not None:
        shown = ", ".join(
            f"{m} {v:.4g} (held-out split: estimated {estimate.reference_estimate.get(m, float('nan')):.4g}, "
            f"realised {estimate.reference.get(m, float('nan')):.4g})"
            for m, v in estimate.estimated.items()
        )
        console.print(
            f"estimated performance without labels ({estimate.method.upper()}, {estimate.rows} rows): "
            f"{shown} — {estimate.metric} {estimate.drop:+.1%} worse than estimated on the held-out split, "
            f"limit {estimate.max_drop:.0%}: " + ("[red]DEGRADED[/]" if estimate.degraded else "ok"),
            soft_wrap=True,
        )
    issues = report.quality_issues
    if issues:
        first_refusal = {f.name: f.type_violation_example or "" for f in report.features}
        console.print(
            table(
                "Data quality of the current rows (shares of the values present; refused: values the "
                "model's input rules do not accept)",
                ["feature", "missing", "outside training range", "unseen categories", "refused", "first"],
                [
                    [
                        name,
                        _share(findings.get("current_missing")),
                        _share(findings.get("out_of_range")),
                        _share(findings.get("unseen_categories")),
                        str(findings.get("type_violations") or ""),
                        first_refusal[name],
                    ]
                    for name, findings in issues.items()
                ],
            )
        )
        if report.rows_not_scored:
            console.print(
                f"{report.rows_not_scored} of {report.current_rows} current rows hold a refused value: "
                "they count in the feature drift, not in the prediction drift",
                soft_wrap=True,
            )
    if output:
        write_json(output, report.to_dict())
    if html:
        from shipyard.monitoring.report_html import render_html

        html.parent.mkdir(parents=True, exist_ok=True)
        tmp = html.with_name(f".{html.name}.tmp")
        tmp.write_text(render_html(report), encoding="utf-8")
        tmp.replace(html)
        err_console.print(f"wrote {html}")
    if fail_on_drift and report.dataset_drift:
        raise typer.Exit(DRIFT_EXIT_CODE)


def _share(value: float | None) -> str:
    return f"{value:.1%}" if value else ""
