"""A drift report as one self-contained HTML page: verdicts, a summary table and a plot per feature.

Why self-contained: the page is read where the monitoring job ran or attached to a ticket, often with no
internet, so nothing is fetched from anywhere: CSS is inline in a ``<style>`` tag, there is no script,
and every plot is a small PNG embedded as a ``data:`` URI (matplotlib object API, no pyplot state, so it
renders in a headless job with no display). PNGs are small (about 400x210 px) because a housing report
has one per feature, 79 of them. Every string that comes from the data (feature names, categories,
model name) is escaped, since a column name is user input.
"""

from __future__ import annotations

import base64
import html
import io
import math
from itertools import pairwise
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from shipyard.monitoring.drift import DriftReport, FeatureDrift

FIGSIZE = (5.0, 2.6)
DPI = 80
REFERENCE_COLOR = "#4c72b0"
CURRENT_COLOR = "#dd8452"
ROTATE_ABOVE = 4  # more categories than this: labels are slanted so they do not overlap
MAX_TITLE = 48  # characters of the plot title, which shares its line with the legend
MAX_LABEL = 14  # characters of a category shown under its bar; the table and alt text keep the full name

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 1.5rem auto; max-width: 60rem; padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.5rem; margin-bottom: 0.3rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 0.3rem; }
.meta { color: #555; margin: 0.2rem 0; }
.verdict { font-size: 1.1rem; padding: 0.6rem 0.9rem; border-radius: 4px; margin: 1rem 0; }
.verdict.yes { background: #fde2e1; border-left: 5px solid #c0392b; }
.verdict.no { background: #e3f4e5; border-left: 5px solid #2e8b57; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.5rem; text-align: left; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.drifted td { background: #fde2e1; font-weight: 600; }
section.feature { border-top: 1px solid #eee; }
section.feature.drifted h3 { color: #c0392b; }
.detail { color: #555; font-size: 0.85rem; margin: 0 0 0.4rem; }
img { display: block; max-width: 100%; height: auto; }
"""


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _score(value: float) -> str:
    """Four significant digits: enough to compare with a threshold, short enough for a table."""
    if math.isnan(value):
        return "n/a"
    return f"{value:.4g}"


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def _short_title(title: str) -> str:
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"


def _draw_numeric(ax: Axes, feature: FeatureDrift, edges: list[float]) -> None:
    """Reference and current bars side by side inside each bin, so neither hides the other."""
    lefts = edges[:-1]
    widths = [(b - a) / 2 for a, b in pairwise(edges)]
    ax.bar(
        lefts, feature.reference_shares, width=widths, align="edge", color=REFERENCE_COLOR, label="reference"
    )
    ax.bar(
        [a + w for a, w in zip(lefts, widths, strict=True)],
        feature.current_shares,
        width=widths,
        align="edge",
        color=CURRENT_COLOR,
        label="current",
    )
    ax.set_xlim(edges[0], edges[-1])


def _draw_categorical(ax: Axes, feature: FeatureDrift, categories: list[str]) -> None:
    positions = list(range(len(categories)))
    ax.bar(
        [p - 0.2 for p in positions],
        feature.reference_shares,
        width=0.4,
        color=REFERENCE_COLOR,
        label="reference",
    )
    ax.bar(
        [p + 0.2 for p in positions], feature.current_shares, width=0.4, color=CURRENT_COLOR, label="current"
    )
    # parse_math=False: a category such as "$5-$10" is text, not a mathtext formula that could fail to parse
    ax.set_xticks(
        positions,
        [_short(c) for c in categories],
        rotation=45 if len(categories) > ROTATE_ABOVE else 0,
        ha="right" if len(categories) > ROTATE_ABOVE else "center",
        fontsize=7,
        parse_math=False,
    )


def feature_figure(feature: FeatureDrift) -> Figure:
    """One plot of reference vs current shares: per bin for numbers, per category otherwise."""
    # fixed margins rather than layout="constrained": the layout pass nearly doubled the time per plot,
    # which adds up over the 80 plots of a housing report
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    ax = fig.subplots()
    edges, categories = feature.edges, feature.categories
    rotated = False
    if edges is not None and len(edges) == len(feature.reference_shares) + 1 and feature.reference_shares:
        _draw_numeric(ax, feature, edges)
    elif categories:
        _draw_categorical(ax, feature, categories)
        rotated = len(categories) > ROTATE_ABOVE
    else:
        ax.text(0.5, 0.5, "no values to plot", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
    ax.set_ylabel("share", fontsize=8)
    ax.tick_params(labelsize=7)
    verdict = "drifted" if feature.drifted else "no drift"
    ax.set_title(_short_title(f"{feature.name}: {verdict}"), fontsize=9, loc="left", parse_math=False)
    if ax.has_data():
        # above the axes, right of the title: never over a bar, and no "best" placement search
        ax.legend(
            fontsize=7, frameon=False, ncols=2, loc="lower right", bbox_to_anchor=(1.0, 1.0), borderaxespad=0
        )
    fig.subplots_adjust(left=0.12, right=0.96, top=0.88, bottom=0.34 if rotated else 0.14)
    return fig


def figure_png(fig: Figure) -> bytes:
    """PNG bytes at 80 dpi; the Software tag is dropped (it names a URL and varies by version)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _img(feature: FeatureDrift) -> str:
    encoded = base64.b64encode(figure_png(feature_figure(feature))).decode("ascii")
    alt = html.escape(f"{feature.name} distribution")
    return f'<img alt="{alt}" src="data:image/png;base64,{encoded}">'


def _row(feature: FeatureDrift, anchor: str, label: str) -> str:
    css = ' class="drifted"' if feature.drifted else ""
    cells = [
        f'<td><a href="#{anchor}">{html.escape(label)}</a></td>',
        f"<td>{html.escape(feature.kind)}</td>",
        f"<td>{html.escape(feature.test_title)}</td>",
        f'<td class="num">{_score(feature.score)}</td>',
        f'<td class="num">{_adjusted(feature)}</td>',
        f'<td class="num">{feature.threshold:g}</td>',
        f"<td>{_yes_no(feature.drifted)}</td>",
    ]
    return f"<tr{css}>{''.join(cells)}</tr>"


def _adjusted(feature: FeatureDrift) -> str:
    return "–" if feature.p_adjusted is None else _score(feature.p_adjusted)


def _correction(report: DriftReport) -> str:
    """What the verdicts were taken on, in a sentence."""
    names = {"bh": "Benjamini–Hochberg", "bonferroni": "Bonferroni"}
    if report.correction not in names:
        return "p-values not corrected for the number of features"
    flipped = [f.name for f in report.features if f.drifted_uncorrected and not f.drifted]
    said = f"p-values adjusted for the number of features tested ({names[report.correction]})"
    if flipped:
        said += f"; drifted before correction only: {', '.join(flipped[:10])}"
        said += f" (and {len(flipped) - 10} more)" if len(flipped) > 10 else ""
    return html.escape(said)


def _multivariate(report: DriftReport) -> str:
    found = report.multivariate
    if found is None:
        return ""
    used = ", ".join(f"{f['name']} ({float(f['importance']):.3f})" for f in found.top_features)
    return (
        f'<p class="meta">Multivariate (a domain classifier telling current from reference rows, '
        f"{found.reference_rows:,} + {found.current_rows:,} rows): AUROC {found.auroc:.3f}, threshold "
        f"{found.threshold:g}, p {found.p_value:.2g}: <strong>{_yes_no(found.drifted)}</strong>"
        + (f"; the features it used most: {html.escape(used)}" if used else "")
        + "</p>"
    )


def _performance(report: DriftReport) -> str:
    found = report.performance
    if found is None:
        return ""
    nan = float("nan")
    rows = "\n".join(
        f"<tr><td>{html.escape(m)}</td><td>{v:.4g}</td><td>{found.reference_estimate.get(m, nan):.4g}</td>"
        f"<td>{found.reference.get(m, nan):.4g}</td></tr>"
        for m, v in found.estimated.items()
    )
    method = {"cbpe": "CBPE: calibrated confidence", "dle": "DLE: a model of the model's error"}
    return (
        f"<h2>Estimated performance (no labels: {html.escape(method.get(found.method, found.method))})</h2>"
        f'<p class="meta">On {found.rows:,} current rows; {html.escape(found.metric)} is '
        f"{found.drop:+.1%} worse than estimated on the held-out split (limit {found.max_drop:.0%}): "
        f"<strong>{'degraded' if found.degraded else 'ok'}</strong>. Trust it under covariate shift; it "
        "cannot see a concept shift (same inputs, new labels): live quality on feedback can.</p>"
        "<table><thead><tr><th>metric</th><th>estimated</th><th>held-out split, estimated</th>"
        "<th>held-out split, realised</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def attribution_figure(attributions: dict[str, Any], top: int = 15) -> Figure:
    """Mean |attribution| per feature, reference vs current, the features the current side leans on most."""
    current, reference = attributions["current"], attributions["reference"]
    names = sorted(current, key=lambda n: -max(current[n], reference.get(n, 0.0)))[:top][::-1]
    fig = Figure(figsize=(6.4, 0.28 * len(names) + 1.2), dpi=DPI)
    ax = fig.subplots()
    ys = range(len(names))
    ax.barh([y + 0.2 for y in ys], [reference.get(n, 0.0) for n in names], height=0.4, label="reference")
    ax.barh([y - 0.2 for y in ys], [current[n] for n in names], height=0.4, label="current")
    ax.set_yticks(list(ys), names, fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("mean |attribution|", fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    fig.subplots_adjust(left=0.3, right=0.97, top=0.97, bottom=0.8 / (0.28 * len(names) + 1.2))
    return fig


def _attributions(report: DriftReport) -> str:
    found = report.attributions
    if not found:
        return ""
    rows = found["rows"]
    encoded = base64.b64encode(figure_png(attribution_figure(found))).decode("ascii")
    return (
        "<h2>What the model leans on: mean |attribution| per feature</h2>\n"
        f"<p>TreeSHAP on {rows['reference']:,} reference and {rows['current']:,} current rows (sampled): "
        "a feature whose share moved is one the model now answers by differently.</p>\n"
        f'<img alt="mean attribution per feature" src="data:image/png;base64,{encoded}">'
    )


def _quality_table(report: DriftReport) -> str:
    """Data quality of the current rows, for the features with a finding (nothing when none has)."""
    issues = report.quality_issues
    if not issues:
        return (
            "<h2>Data quality</h2>\n<p>No missing values beyond the reference's, no value outside its "
            "range, no unseen category, no refused value.</p>"
        )
    by_name = {f.name: f for f in report.features}

    def share(value: float | None) -> str:
        return f"{value:.1%}" if value else ""

    rows = "\n".join(
        "<tr>"
        f"<td>{html.escape(name)}</td>"
        f'<td class="num">{share(found.get("current_missing"))}</td>'
        f'<td class="num">{share(found.get("out_of_range"))}</td>'
        f'<td class="num">{share(found.get("unseen_categories"))}</td>'
        f'<td class="num">{found.get("type_violations") or ""}</td>'
        f"<td>{html.escape(by_name[name].type_violation_example or '')}</td>"
        "</tr>"
        for name, found in issues.items()
    )
    unscored = (
        f"<p>{report.rows_not_scored:,} of {report.current_rows:,} current rows hold a refused value: they "
        "count in the feature drift, not in the prediction drift.</p>"
        if report.rows_not_scored
        else ""
    )
    return (
        "<h2>Data quality</h2>\n<table>\n<thead><tr><th>feature</th><th>missing</th>"
        "<th>outside training range</th><th>unseen categories</th><th>refused values</th>"
        f"<th>first refusal</th></tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>\n{unscored}"
    )


def _section(feature: FeatureDrift, anchor: str, heading: str) -> str:
    css = "feature drifted" if feature.drifted else "feature"
    adjusted = "" if feature.p_adjusted is None else f", adjusted {_score(feature.p_adjusted)}"
    detail = (
        f"{html.escape(feature.test_title)} = {_score(feature.score)}{adjusted} "
        f"(threshold {feature.threshold:g}); "
        f"missing: reference {feature.reference_missing:.1%}, current {feature.current_missing:.1%}"
    )
    return (
        f'<section class="{css}" id="{anchor}">\n'
        f"<h3>{html.escape(heading)} — {'drifted' if feature.drifted else 'no drift'}</h3>\n"
        f'<p class="detail">{detail}</p>\n'
        f"{_img(feature)}\n"
        "</section>"
    )


def render_html(report: DriftReport) -> str:
    """The whole page as a string; the caller decides where it is written or logged as an artifact."""
    title = f"Drift report: {report.model}" + (f" v{report.version}" if report.version else "")
    drifted = len(report.drifted_features)
    total = len(report.features)
    verdict = _yes_no(report.dataset_drift)
    entries = [(f, f"feature-{i}", f.name) for i, f in enumerate(report.features)]
    if report.prediction is not None:
        entries.append((report.prediction, "prediction", f"{report.prediction.name} (prediction)"))
    rows = "\n".join(_row(f, anchor, label) for f, anchor, label in entries)
    sections = "\n".join(_section(f, anchor, label) for f, anchor, label in entries)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{html.escape(title)}</h1>
<p class="meta">Model <strong>{html.escape(report.model)}</strong>, version
{html.escape(report.version or "n/a")}, created {html.escape(report.created_at)}</p>
<p class="meta">Reference rows: {report.reference_rows:,} vs current rows: {report.current_rows:,}</p>
</header>
<p class="verdict {verdict}">Dataset drift: {verdict} — {drifted} of {total} features drifted
(share {report.drifted_share:.3g}, threshold {report.drift_share:g})</p>
<p class="meta">{_correction(report)}</p>
{_multivariate(report)}
{_performance(report)}
<h2>Summary</h2>
<table>
<thead><tr><th>feature</th><th>kind</th><th>test</th><th>score</th><th>adjusted p</th><th>threshold</th>
<th>drifted</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
{_quality_table(report)}
{_attributions(report)}
<h2>Distributions: reference vs current</h2>
{sections}
</body>
</html>
"""
