"""The `evalsuite` command line. This release: `evalsuite compare`, the regression gate between two runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from evalsuite.compare import ResultsError, compare_runs, regressions

app = typer.Typer(help="Evaluate models and compare runs.", no_args_is_help=True, add_completion=False)
console = Console()
err = Console(stderr=True)


@app.callback()
def main() -> None:
    """Evaluate models and compare runs."""


@app.command()
def compare(
    baseline: Path = typer.Argument(..., help="Baseline run: an lm-eval results JSON, or a folder holding one."),
    candidate: Path = typer.Argument(..., help="Candidate run, same forms."),
    max_drop: float = typer.Option(5.0, "--max-drop", min=0, help="Fail when a watched metric gets worse by "
                                   "more than this many percent (the field's rollback rule: 5)."),
    metric: Optional[list[str]] = typer.Option(None, "--metric", "-m", help="Watch only this metric (acc, or "
                                               "task/acc); repeatable. Default: every shared metric."),
) -> None:
    """Compare CANDIDATE with BASELINE metric by metric; exit 1 when a watched metric regressed."""
    try:
        changes = compare_runs(baseline, candidate)
    except ResultsError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    if not changes:
        err.print("[bold red]error:[/] the two runs share no task and metric", soft_wrap=True)
        raise typer.Exit(2)
    failed = regressions(changes, max_drop / 100, metric)
    table = Table("task", "metric", "baseline", "candidate", "change", "")
    for c in changes:
        flag = "[red]REGRESSION[/]" if c in failed else ""
        table.add_row(c.task, c.metric, f"{c.baseline:.4g}", f"{c.candidate:.4g}", f"{c.relative_change:+.1%}", flag)
    console.print(table)
    if failed:
        console.print(f"[red]{len(failed)} metric(s) worse by more than {max_drop:g}%: roll back[/]", soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[green]no watched metric worse by more than {max_drop:g}%[/]", soft_wrap=True)


if __name__ == "__main__":  # pragma: no cover
    app(prog_name="evalsuite")
