"""``shipyard models``: list registered models and versions, promote a version by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.output import console, table, write_json
from shipyard.config.settings import get_settings

app = typer.Typer(help="Inspect and manage registered models.", no_args_is_help=True)

_KEY_METRICS = ("accuracy", "f1_macro", "roc_auc_ovr", "r2", "rmse", "mae")


@app.command(
    "list", help="Registered models with their versions, aliases, key test metrics and gate decisions."
)
def list_models(
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write JSON to this file.")
    ] = None,
) -> None:
    from shipyard.registry import ModelRegistry
    from shipyard.registry.models import DECISION_TAG, REASON_TAG

    registry = ModelRegistry(get_settings())
    names = [name] if name else registry.model_names()
    if not names:
        console.print(f"no registered models in {registry.store}")
    dump: dict[str, list[dict[str, object]]] = {}
    for model in names:
        versions = registry.versions(model)
        rows = []
        dump[model] = []
        for v in versions:
            metrics = {k.removeprefix("test_"): m for k, m in v.metrics.items() if k.startswith("test_")}
            decision = v.tags.get(DECISION_TAG)
            dump[model].append(
                {
                    "version": v.version,
                    "aliases": v.aliases,
                    "created_at": v.created_at.isoformat(timespec="seconds"),
                    "run_id": v.run_id,
                    "metrics": metrics,
                    "decision": decision,
                    "reason": v.tags.get(REASON_TAG),
                }
            )
            shown = "  ".join(f"{k}={metrics[k]:.4f}" for k in _KEY_METRICS if k in metrics)
            created = v.created_at.strftime("%Y-%m-%d %H:%M")
            rows.append([v.version, ", ".join(v.aliases) or "-", created, shown, decision or "-"])
        console.print(table(model, ["version", "aliases", "created (UTC)", "test metrics", "decision"], rows))
    if output:
        write_json(output, dump)


@app.command(help="Make VERSION the champion by hand; who and why are recorded on the version.")
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number to promote.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (recorded as a version tag).")],
    by: Annotated[str | None, typer.Option("--by", help="Who (default: the current user).")] = None,
) -> None:
    from shipyard.registry import ModelRegistry

    settings = get_settings()
    registry = ModelRegistry(settings)
    before = registry.version_by_alias(name, settings.champion_alias)
    info = registry.promote(name, version, reason, by)
    previous = f" (was version {before.version})" if before and before.version != info.version else ""
    console.print(f"[green]✓[/] {name} version {info.version} is now '{settings.champion_alias}'{previous}")


REPRODUCE_MISMATCH_EXIT = 11


@app.command(
    help="Where a version came from: data file and hash, DVC stage, config, code commit, run, metrics, "
    "aliases, and who promoted it and why."
)
def lineage(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number or alias (e.g. 3, champion).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write JSON to this file.")
    ] = None,
) -> None:
    from shipyard.registry import ModelRegistry
    from shipyard.registry.lineage import TAG_PREFIX
    from shipyard.registry.models import AT_TAG, BY_TAG, DECISION_TAG, REASON_TAG

    info = ModelRegistry(get_settings()).resolve(name, version)
    tags = info.tags

    def tag(key: str) -> str:
        return tags.get(f"{TAG_PREFIX}{key}", "-")

    chain = [
        ("data", f"{tag('data_uri')} (sha256 {tag('data_hash')[:16]}…)"),
        ("runner", tag("runner") + (f", DVC stage {tag('dvc_stage')}" if tag("dvc_stage") != "-" else "")),
        ("config", f"{tag('config_name')} (sha256 {tag('config_hash')[:16]}…)"),
        (
            "code",
            f"commit {tag('git_commit')[:12]} (dirty: {tag('git_dirty')}), shipyard {tag('package_version')}",
        ),
        ("run", info.run_id or "-"),
        (
            "metrics",
            "  ".join(
                f"{k.removeprefix('test_')}={v:.4g}" for k, v in info.metrics.items() if k.startswith("test_")
            ),
        ),
        (
            "retrain",
            f"{tag('retrain.trigger')} (drift report {tag('retrain.drift_report')}, "
            f"{tag('retrain.feedback_rows')} feedback rows)"
            if tag("retrain.trigger") != "-"
            else "-",
        ),
        ("aliases", ", ".join(info.aliases) or "-"),
        (
            "decision",
            f"{tags.get(DECISION_TAG, '-')} by {tags.get(BY_TAG, '-')} at {tags.get(AT_TAG, '-')}: "
            f"{tags.get(REASON_TAG, '-')}",
        ),
    ]
    console.print(f"[bold]Lineage of {name} version {info.version}[/]")
    for key, value in chain:
        console.print(f"  {key:<9} {value}", soft_wrap=True, highlight=False)
    if output:
        write_json(
            output,
            {
                "name": name,
                "version": info.version,
                "run_id": info.run_id,
                "aliases": info.aliases,
                "created_at": info.created_at.isoformat(timespec="seconds"),
                "metrics": info.metrics,
                "tags": tags,
            },
        )


@app.command(
    help="Retrain a version from the config and data it recorded (nothing is registered) and check the "
    f"metrics match; refuses when the data changed. Exits {REPRODUCE_MISMATCH_EXIT} when they differ."
)
def reproduce(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number or alias.")],
    tolerance: Annotated[
        float, typer.Option(min=0.0, help="Relative (and absolute) difference accepted per metric.")
    ] = 1e-9,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write JSON to this file.")
    ] = None,
) -> None:
    from shipyard.pipeline.reproduce import reproduce as run_reproduce

    result = run_reproduce(get_settings(), name, version, tolerance)
    rows = [
        [
            c.metric,
            f"{c.recorded:.6g}",
            f"{c.reproduced:.6g}",
            f"{c.difference:+.3g}",
            "yes" if c.matches else "[red]no[/]",
        ]
        for c in result.checks
    ]
    console.print(
        table(
            f"Reproducing {name} version {result.version} from {result.data_uri}",
            ["metric", "recorded", "reproduced", "difference", "match"],
            rows,
        )
    )
    for note in result.notes:
        console.print(f"[dim]note: {note}[/]", soft_wrap=True)
    if output:
        write_json(output, result.to_dict())
    if result.matches:
        console.print(f"[green]✓[/] reproduced: every metric within {tolerance:g}")
    else:
        console.print(f"[red]✗[/] not reproduced (tolerance {tolerance:g})")
        raise typer.Exit(REPRODUCE_MISMATCH_EXIT)
