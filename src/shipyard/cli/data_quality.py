"""``shipyard data-quality``: the data quality of each monitoring window, over time, from the store."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.output import console, table
from shipyard.config.settings import get_settings
from shipyard.errors import DataError

if TYPE_CHECKING:
    from shipyard.monitoring.quality_history import QualityHistory


class Check(StrEnum):
    """The checks a row can be narrowed to (``shipyard.monitoring.quality_history.CHECKS``)."""

    missing = "missing"
    out_of_range = "out_of_range"
    unseen_categories = "unseen_categories"
    type_violations = "type_violations"


def data_quality(
    name: Annotated[str, typer.Argument(help="Model name, e.g. iris.")],
    since: Annotated[
        str | None,
        typer.Option(
            help="Windows stored from this time: a time ago (30m, 24h, 7d), ISO-8601 or epoch seconds."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Windows stored up to this time: a time ago, ISO-8601 or epoch seconds."),
    ] = None,
    version: Annotated[
        str | None, typer.Option("--model-version", help="Only the windows of this model version.")
    ] = None,
    feature: Annotated[str | None, typer.Option("--feature", "-f", help="Only this feature's rows.")] = None,
    check: Annotated[
        Check | None,
        typer.Option("--check", case_sensitive=False, help="Only rows where this check is above zero."),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="At most this many windows, newest first.")
    ] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the history as JSON instead of a table.")
    ] = False,
) -> None:
    """Per window the monitor stored (one drift report per served version each round): each feature's
    missing share, share outside the training range, share of unseen categories and refused values."""
    from shipyard.monitoring.quality_history import parse_moment, read_quality_history
    from shipyard.monitoring.store import MonitoringStore

    start = None if since is None else parse_moment(since, "--since", relative=True)
    end = None if until is None else parse_moment(until, "--until", relative=True)
    store = MonitoringStore.for_reading(get_settings().monitoring_store_url)
    try:
        history = read_quality_history(
            store,
            name,
            version=version,
            since=start,
            until=end,
            limit=limit,
            feature=feature,
            check=None if check is None else check.value,
        )
        stored_any = bool(history.windows) or bool(
            store.result_history("drift", name, version=version, limit=1)
        )
    finally:
        store.close()
    if not stored_any:
        raise DataError(
            f"no drift results for '{name}'"
            + (f" version {version}" if version else "")
            + f" in {store.where} (the monitor stores one per served version each round: is "
            "`shipyard monitor`, or the service's in-process monitor, writing there? see "
            "SHIPYARD_MONITORING_URL)"
        )
    if as_json:
        console.print_json(data=history.to_dict(), highlight=False)
        return
    _print(history)


def _print(history: QualityHistory) -> None:
    from rich.markup import escape

    windows = history.windows
    if not windows:
        console.print(f"no drift results for '{escape(history.model)}' in that period", soft_wrap=True)
        return
    narrowed = (f", feature {escape(history.feature)}" if history.feature else "") + (
        f", rows with {history.check} above 0" if history.check else ""
    )
    title = (
        f"Data quality of {escape(history.model)}: {len(windows)} window(s), newest first{narrowed} "
        "(shares of the window's values; refused: values the model's input rules do not accept)"
    )
    rows = [
        [
            _when(r.stored_at),
            r.version or "",
            str(r.window_rows),
            escape(r.feature),
            _share(r.missing),
            _share(r.out_of_range),
            _share(r.unseen_categories),
            str(r.type_violations) if r.type_violations else "",
        ]
        for r in history.rows
    ]
    columns = ["stored (UTC)", "version", "rows", "feature", "missing", "outside range", "unseen", "refused"]
    if rows:
        shown = table(title, columns, rows)
        shown.columns[0].no_wrap = True  # a time split over two lines reads badly; the shares can wrap
        console.print(shown)
    else:
        console.print(f"{title}: no rows match", soft_wrap=True)
    flagged = [w for w in windows if w.findings]
    console.print(
        f"findings in {len(flagged)} of {len(windows)} window(s)" + (":" if flagged else ""),
        soft_wrap=True,
    )
    for w in flagged:
        found = "; ".join(
            f"{escape(feature)} "
            + ", ".join(
                f"{check.removeprefix('current_')} {_finding(check, value)}"
                for check, value in checks.items()
            )
            for feature, checks in w.findings.items()
        )
        console.print(f"  {_when(w.stored_at)} v{w.version or '?'}: {found}", soft_wrap=True)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _share(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if value else "0"


def _finding(check: str, value: float) -> str:
    return str(int(value)) if check == "type_violations" else f"{value:.1%}"
