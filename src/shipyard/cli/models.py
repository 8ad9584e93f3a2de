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
