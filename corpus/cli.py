"""The `corpus` command line: `corpus clean` and `corpus steps`."""

from __future__ import annotations

import os

# datatrove logs every task at INFO through loguru; worker processes read this at import
os.environ.setdefault("LOGURU_LEVEL", "WARNING")

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from corpus.config import ConfigError, load_config

app = typer.Typer(help="Clean pretraining and fine-tuning corpora.", no_args_is_help=True, add_completion=False)
err = Console(stderr=True)
console = Console()


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def clean(
    inputs: list[str] = typer.Argument(..., help="Input files, folders (searched recursively) or globs: "
                                       ".jsonl, .jsonl.gz, .jsonl.zst, .parquet, .warc.gz."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder: shards, removed/, rejects/, "
                                "stats.json, report.html."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (see "
                                          "pipelines/clean-web.yaml); defaults apply when omitted."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Tasks run at the same time "
                                          "(default: config executor.workers, 1)."),
    executor: Optional[str] = typer.Option(None, "--executor", "-e", help="local (processes on this "
                                           "machine) or ray (a Ray cluster; RAY_ADDRESS or a local one)."),
    steps: Optional[str] = typer.Option(None, "--steps", "-s", help="Comma-separated steps to run, e.g. "
                                        "normalize,langid; default: every enabled step. See `corpus steps`."),
    tasks: Optional[int] = typer.Option(None, "--tasks", min=1, help="Number of tasks (default: one per "
                                        "input split). Output shards are per task."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Output format: jsonl.gz, jsonl or parquet."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an earlier run in --output first."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Clean INPUT... into --output. Re-running the same command resumes an interrupted run."""
    overrides: dict = {"executor": {}}
    if workers is not None:
        overrides["executor"]["workers"] = workers
    if executor is not None:
        if executor not in ("local", "ray", "slurm"):
            _fail(f"--executor must be local, ray or slurm, not {executor!r}")
        overrides["executor"]["kind"] = executor
    if tasks is not None:
        overrides["executor"]["tasks"] = tasks
    if fmt is not None:
        overrides["output"] = {"format": fmt}
    try:
        cfg = load_config(config, overrides)
    except ConfigError as e:
        _fail(str(e))
    from corpus.pipeline import clean as run_clean

    step_list = [s.strip() for s in steps.split(",") if s.strip()] if steps else None
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("tasks"), TimeElapsedColumn(), console=err, disable=not progress,
                  transient=False) as bar:
        bars: dict[str, int] = {}

        def on_progress(name: str, done: int, total: int) -> None:
            if name not in bars:
                bars[name] = bar.add_task(f"{name:>9}", total=total)
            bar.update(bars[name], completed=done)

        try:
            result = run_clean(inputs, output, cfg, step_list, overwrite=overwrite, on_progress=on_progress)
        except ConfigError as e:
            _fail(str(e))
        except RuntimeError as e:
            _fail(str(e))
    s = result.stats
    first = s["steps"][0]
    console.print(
        f"[green]done[/]: {first['docs_in']} documents read, {s['rejected_total']} rejected, "
        f"{s['removed_total']} removed, {s['output']['docs']} written to {len(s['output']['shards'])} shards "
        f"in {s['throughput']['wall_seconds']:.1f}s", highlight=False, soft_wrap=True)
    console.print(f"stats:  {result.stats_path}\nreport: {result.report_path}", highlight=False, soft_wrap=True)


@app.command("steps")
def list_steps() -> None:
    """List the cleaning steps, in the order they run."""
    from corpus.pipeline import STEPS

    table = Table("step", "what it does", box=None)
    for name, description in STEPS.items():
        table.add_row(name, description)
    console.print(table)


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="corpus")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
