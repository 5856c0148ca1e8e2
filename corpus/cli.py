"""The `corpus` command line: `corpus clean`, `corpus steps`, `corpus train-classifier`, `corpus curate` and
`corpus loop`."""

from __future__ import annotations

import os

# datatrove logs every task at INFO through loguru; worker processes read this at import
os.environ.setdefault("LOGURU_LEVEL", "WARNING")

import sys
from pathlib import Path

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
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config (see "
                                          "pipelines/clean-web.yaml); defaults apply when omitted."),
    workers: int | None = typer.Option(None, "--workers", "-w", min=1, help="Tasks run at the same time "
                                          "(default: config executor.workers, 1)."),
    executor: str | None = typer.Option(None, "--executor", "-e", help="local (processes on this "
                                           "machine) or ray (a Ray cluster; RAY_ADDRESS or a local one)."),
    steps: str | None = typer.Option(None, "--steps", "-s", help="Comma-separated steps to run, e.g. "
                                        "normalize,langid; default: every enabled step. See `corpus steps`."),
    tasks: int | None = typer.Option(None, "--tasks", min=1, help="Number of tasks (default: one per "
                                        "input split). Output shards are per task."),
    fmt: str | None = typer.Option(None, "--format", help="Output format: jsonl.gz, jsonl or parquet."),
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


@app.command("train-classifier")
def train_classifier(
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write (.bin, or .ftz with --quantize)."),
    data: Path | None = typer.Option(None, "--data", help="Labelled JSONL: a text field and a label field."),
    positive_file: Path | None = typer.Option(None, "--positive-file", help="JSONL of positive examples "
                                                 "(with --negative-file, DCLM style)."),
    negative_file: Path | None = typer.Option(None, "--negative-file", help="JSONL of negative examples."),
    text_field: str = typer.Option("text", "--text-field"),
    label_field: str = typer.Option("label", "--label-field"),
    positive: list[str] | None = typer.Option(None, "--positive", help="Label value(s) that count as "
                                                 "positive, besides true and 1 (repeatable)."),
    heldout: float = typer.Option(0.2, "--heldout", min=0.01, max=0.9, help="Share held out to measure on."),
    heldout_file: Path | None = typer.Option(None, "--heldout-file", help="Measure on this labelled JSONL "
                                                "instead (an official dev split)."),
    epoch: int = typer.Option(10, "--epoch", min=1),
    quantize: bool = typer.Option(False, "--quantize", help="Write a small quantised .ftz."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train a binary fastText classifier; print held-out ROC AUC and a threshold table."""
    from corpus.classifier import ClassifierConfig, read_labelled
    from corpus.classifier import train_classifier as train

    try:
        if data and not (positive_file or negative_file):
            examples = read_labelled(data, text_field, label_field, positive)
        elif positive_file and negative_file and not data:
            examples = [(t, True) for t, _ in read_labelled(positive_file, text_field, None)]
            examples += read_labelled(negative_file, text_field, None)
        else:
            raise ConfigError("give --data, or both --positive-file and --negative-file")
        dev = read_labelled(heldout_file, text_field, label_field, positive) if heldout_file else None
        report = train(examples, output, ClassifierConfig(epoch=epoch, quantize=quantize, heldout=heldout, seed=seed),
                       heldout_examples=dev)
    except (ConfigError, FileNotFoundError) as e:
        _fail(str(e))
    console.print(f"trained on {report.train_docs} documents ({report.positives_train} positive); "
                  f"held out {report.heldout_docs}: ROC AUC {report.roc_auc:.3f}")
    table = Table("threshold", "precision", "recall", "F1", box=None)
    for row in report.thresholds:
        table.add_row(f"{row['threshold']:.1f}", f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}")
    console.print(table)
    console.print(f"model: {report.model_path} ({report.model_bytes / 1e6:.2f} MB); card: {report.model_path}.json")


@app.command("curate")
def curate(
    inputs: list[Path] = typer.Argument(..., help="SFT or preference JSONL / Parquet files or folders."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder: curated.jsonl, removed.jsonl, rejects.jsonl, "
                                "flagged.jsonl, scores.jsonl, stats.json."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Curation config YAML (corpus.finetune.curate"
                                       ".CurateConfig); options below override it."),
    record_format: str | None = typer.Option(None, "--format", help="io, alpaca, prompt_completion, messages, "
                                             "sharegpt, pairwise, sharegpt_pairwise, ranked, kto, kto_messages "
                                             "(default: detected per file)."),
    convert_to: str | None = typer.Option(None, "--to", help="Write records as messages or pairwise (lossless "
                                          "conversions only)."),
    dedup: str | None = typer.Option(None, "--dedup", help="near (default), exact or off: duplicate prompts."),
) -> None:
    """Curate fine-tuning data: PII scrubbed in every turn, toxicity and quality scored, fine-tuning checks
    (empty, truncated, prompt-repeating replies, refusals, near-identical and length-only pairs), duplicate
    prompts removed; each record keeps its format."""
    from corpus.finetune.curate import curate as run_curate
    from corpus.finetune.curate import load_curate_config

    try:
        cfg = load_curate_config(config, format=record_format, convert_to=convert_to, dedup=dedup)
        result = run_curate(inputs, output, cfg)
    except ConfigError as e:
        _fail(str(e))
    s = result.stats
    console.print(f"{s['input']['records']} records in ({', '.join(f'{k} {v}' for k, v in s['input']['formats'].items())}); "
                  f"{s['rejected']} rejected, {sum(s['removed'].values())} removed, {s['output']['records']} written "
                  f"({s['records_per_second']:,.0f} records/s)", highlight=False)
    table = Table("check", "removed", "flagged", box=None)
    for name in sorted(set(s["removed"]) | set(s["flagged"])):
        table.add_row(name, str(s["removed"].get(name, 0)), str(s["flagged"].get(name, 0)))
    console.print(table)
    if s["pii"]["by_type"]:
        console.print("personal data replaced: " + ", ".join(f"{k} {v}" for k, v in s["pii"]["by_type"].items()))
    if s["length_bias"]:
        b = s["length_bias"]
        console.print(f"length bias: chosen longer in {b['chosen_longer']:.0%} of {b['pairs']} pairs "
                      f"(mean log length ratio {b['mean_log_length_ratio']:+.2f})", highlight=False)
    console.print(f"output: {result.output}", highlight=False)


@app.command("loop")
def loop(
    definition: Path = typer.Argument(..., help="Loop definition YAML (see pipelines/loop-demo.yaml)."),
    workdir: Path | None = typer.Option(None, "--workdir", help="Where stages write (default: the file's workdir)."),
    force: list[str] | None = typer.Option(None, "--force", help="Rerun this stage even if cached (repeatable); "
                                           "what depends on it reruns when its output changes."),
) -> None:
    """Run a closed loop (clean, split, train, evaluate, score, filter, compare, repeated while the gate accepts),
    skipping finished stages."""
    import json as json_module

    from pipelines import Loop, LoopError, load_loop

    try:
        spec = load_loop(definition)
        engine = Loop(spec, workdir)
        engine.order()
    except (ConfigError, LoopError) as e:
        _fail(str(e))
    try:
        states = engine.run(force=force, on_stage=lambda name, status: err.print(
            f"[bold]{name}[/]: {status}", highlight=False))
    except LoopError as e:
        _fail(str(e))
    table = Table("stage", "kind", "status", "seconds", "measured", box=None)
    for state in states.values():
        shown = {k: v for k, v in state.metrics.items() if isinstance(v, (int, float, str))}
        table.add_row(state.name, state.kind, state.status, f"{state.seconds:.1f}",
                      json_module.dumps(shown, ensure_ascii=False)[:120])
    console.print(table)
    for state in states.values():
        if state.kind == "compare":
            m = state.metrics
            console.print(f"{state.name}: {m['key_metric']} baseline {m['baseline']['ref']} = "
                          f"{m['baseline']['value']:.4g}", highlight=False)
            for ref, v in m["candidates"].items():
                se = f" ± {v['stderr']:.2g}" if v["stderr"] is not None else ""
                console.print(f"  {ref}: {v['value']:.4g}{se} ({v['relative_change']:+.1%}) {v['verdict']}",
                              highlight=False)
            console.print(f"  chosen: {m['chosen']}", highlight=False)
    for i in engine.iterations:
        se = f" ± {i.stderr:.2g}" if i.stderr is not None else ""
        console.print(f"iteration {i.iteration}: {i.evaluation} {i.value:.4g}{se} ({i.relative_change:+.1%} "
                      f"against {i.baseline}) {i.verdict}{'; stopped: ' + i.stop if i.stop else ''}", highlight=False)
    if engine.iterations:
        console.print(f"iterations report: {engine.workdir / 'report.html'}", highlight=False)
    console.print(f"workdir: {engine.workdir} (registry: {engine.registry})", highlight=False)


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="corpus")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
