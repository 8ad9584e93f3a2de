"""Everything the CLI prints goes through here: Rich consoles, tables, JSON files, the progress view."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.status import Status
from rich.table import Table

if TYPE_CHECKING:
    from shipyard.pipeline.training_run import TrainingSummary
    from shipyard.training.trainer import TrialResult

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as pretty JSON, atomically (a half-written file never replaces a good one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def error(message: str) -> None:
    from rich.markup import escape

    # a message may quote anything (paths like [/etc], user input): never read it as markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    out = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*row)
    return out


def print_training_summary(summary: TrainingSummary, why: str | None = None) -> None:
    """The outcome of a training run, as ``train``, ``tune --register`` and ``retrain`` all print it."""
    from rich.markup import escape

    verdict = "[green]promoted to champion[/]" if summary.promoted else "[yellow]kept as challenger[/]"
    lines = [f"\n[bold]{escape(summary.model_name)}[/] version {summary.version} — {verdict}"]
    if why:
        lines.append(f"  why      {escape(why)}")
    lines += [
        f"  gate     {escape(summary.decision.reason)}",
        f"  run      {summary.run_id} (experiment '{escape(summary.experiment)}')",
        f"  aliases  {', '.join(summary.aliases) or '-'}",
        "  metrics  " + "  ".join(f"{k}={v:.4f}" for k, v in summary.metrics.items()),
    ]
    console.print("\n".join(lines), soft_wrap=True)


class ConsoleReporter:
    """Shows each pipeline step with a spinner while it runs and a tick with its result when done."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._status: Status | None = None
        self._started: dict[str, float] = {}

    def step(self, name: str, detail: str = "") -> None:
        self._started[name] = time.perf_counter()
        if self.quiet:
            return
        text = f"[bold]{name}[/] {detail}".rstrip()
        if console.is_terminal:
            if self._status is None:
                self._status = console.status(text)
                self._status.start()
            else:
                self._status.update(text)

    def done(self, name: str, detail: str = "") -> None:
        seconds = time.perf_counter() - self._started.pop(name, time.perf_counter())
        if not self.quiet:
            console.print(f"[green]✓[/] [bold]{name:<9}[/] {detail} [dim]({seconds:.1f}s)[/]", soft_wrap=True)

    def trial(self, result: TrialResult, total: int) -> None:
        if self.quiet:
            return
        text = f"[bold]tune[/] trial {result.number + 1}/{total}: cv score {result.score:.4f}"
        if self._status is not None:
            self._status.update(text)
        elif not console.is_terminal:
            console.print(f"  trial {result.number + 1}/{total}: {result.score:.4f} {result.params}")

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
