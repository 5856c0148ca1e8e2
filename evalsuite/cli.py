"""The `evalsuite` command line: run, bfcl, list, runs, compare, dashboard, serve, judge and human."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evalsuite.compare import ResultsError, compare_runs, regressions

app = typer.Typer(help="Evaluate models and compare runs.", no_args_is_help=True, add_completion=False)
console = Console()
err = Console(stderr=True)


@app.callback()
def main() -> None:
    """Evaluate models and compare runs."""


def _fail(message: str) -> NoReturn:
    """Print the one-line reason (markup in it shown as text) and exit 2."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _run_and_show(cfg) -> None:
    """Run an evaluation, print its summary and folder; a run that cannot start exits 2 with the reason."""
    from evalsuite.run import EvalError
    from evalsuite.run import run as run_suite

    try:
        result = run_suite(cfg)
    except EvalError as e:
        _fail(str(e))
    console.print((result.output / "summary.md").read_text(encoding="utf-8"), highlight=False, soft_wrap=True)
    console.print(f"run folder: {result.output}", highlight=False)


@app.command()
def run(
    model: str = typer.Option(..., "--model", help="Local Hugging Face model folder (or PEFT adapter folder), or an "
                              "OpenAI-compatible endpoint: http://host:port/v1 (completions) or .../v1/chat/completions, "
                              "or scripted:NAME, a reference model with known answers (toxic, refuse, comply, leak, "
                              "echo for generation tasks; oracle, wrong_tool, ... for slot tasks)."),
    suite: str = typer.Option("core", "--suite", help="Built-in suite name (see `evalsuite list`) or a suite YAML."),
    output: Path = typer.Option(..., "--output", "-o", help="Run folder: results.json, samples/, run.json, summary.md."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Documents per task (a quick look)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:0, ..."),
    batch_size: str = typer.Option("auto", "--batch-size", help="auto, or a number."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run the model folder's own code."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Run the suite N times; run.json reports each "
                                "metric's spread."),
    registry: Path | None = typer.Option(None, "--registry", help="Run registry file (default: "
                                            "registry.sqlite beside the run folder)."),
    lineage: list[str] | None = typer.Option(None, "--lineage", help="key=value recorded with the run, e.g. "
                                                "train_data=out/web-v2 (repeatable)."),
    apply_chat_template: bool = typer.Option(False, "--apply-chat-template", help="Prompt through the model's chat "
                                             "template (instruction-tuned models)."),
    cache: Path | None = typer.Option(None, "--cache", help="Answer cache file (SQLite), keyed by the weights "
                                      "fingerprint, chat template and request: re-runs skip answered requests."),
    tokenizer: Path | None = typer.Option(None, "--tokenizer", help="Endpoints without a /tokenize route: a local "
                                          "folder with the served model's tokenizer."),
    served_model: str | None = typer.Option(None, "--served-model", help="Endpoints serving several models: "
                                            "which one (default: the first listed)."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Slot tasks: the longest reply per "
                                       "model turn."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="Slot tasks: sampling temperature; "
                                      "above 0 the --repeats trials sample anew (seeded: re-runs repeat them)."),
    latency: int = typer.Option(0, "--latency", "--latency-prompts", min=0, help="Serving figures: time N "
                                "streamed greedy replies (up to --max-new-tokens) to the run's generation prompts "
                                "(then built-in ones): time to first token, tokens/s, latency P50/P95/P99."),
) -> None:
    """Run a suite of evaluation tasks (lm-evaluation-harness tasks and MCP slot benchmarks) against a model."""
    from evalsuite.run import RunConfig

    pairs = [item.partition("=") for item in lineage or []]
    if any(not key or not sep for key, sep, _ in pairs):
        _fail("--lineage takes key=value")
    cfg = RunConfig(model=model, suite=suite, output=str(output), limit=limit, device=device,
                    batch_size=int(batch_size) if batch_size.isdigit() else batch_size, trust_remote_code=trust_remote_code,
                    registry=str(registry) if registry else None, lineage={k: v for k, _, v in pairs},
                    repeats=repeats, apply_chat_template=apply_chat_template, cache=str(cache) if cache else None,
                    tokenizer=str(tokenizer) if tokenizer else None, served_model=served_model,
                    max_new_tokens=max_new_tokens, temperature=temperature, latency=latency)
    _run_and_show(cfg)


@app.command()
def bfcl(
    directory: Path = typer.Argument(..., help="Folder of BFCL question files (BFCL_v4_<category>.json) with their "
                                     "possible_answer/ folder."),
    model: str = typer.Option(..., "--model", help="Local chat model folder, OpenAI-compatible chat endpoint "
                              "URL, or a scripted reference agent (scripted:oracle reads the answer files)."),
    output: Path = typer.Option(..., "--output", "-o", help="Run folder (results.json, samples/, run.json)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Cases per run (a quick look)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:0, ..."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="The longest reply of the model."),
    registry: Path | None = typer.Option(None, "--registry", help="Run registry file (default: registry.sqlite "
                                            "beside the run folder)."),
) -> None:
    """Score a directory of BFCL-format questions with BFCL's AST rules (single-turn categories), as a run."""
    from evalsuite.run import RunConfig
    from evalsuite.slots.bfcl import SUPPORTED, UNSUPPORTED

    present = sorted(p.name.removeprefix("BFCL_v4_").removesuffix(".json") for p in directory.glob("BFCL_v4_*.json"))
    for category in present:
        if category in UNSUPPORTED:
            err.print(f"skipped {category}: {UNSUPPORTED[category]}", highlight=False, soft_wrap=True)
    if not set(present) & set(SUPPORTED):
        _fail(f"{directory}: no BFCL question files of the supported categories ({', '.join(SUPPORTED)})")
    output.mkdir(parents=True, exist_ok=True)
    suite = output / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "bfcl", "tasks": [f"bfcl:{directory.resolve()}"]}), encoding="utf-8")
    cfg = RunConfig(model=model, suite=str(suite), output=str(output), limit=limit, device=device,
                    registry=str(registry) if registry else None, max_new_tokens=max_new_tokens)
    _run_and_show(cfg)


@app.command()
def serve(
    model: Path = typer.Option(..., "--model", help="Local Hugging Face model folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:0, ..."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run the model folder's own code."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="EVALSUITE_API_KEY",
                                       help="Require this bearer token on every request."),
) -> None:
    """Serve a local model over an OpenAI-compatible API (completions with echo and logprobs, chat, tokenize)."""
    from evalsuite.run import EvalError
    from evalsuite.serve import LocalModel, make_server

    try:
        server = make_server(LocalModel(model, device, trust_remote_code), host, port, api_key)
    except (EvalError, OSError) as e:
        _fail(str(e))
    console.print(f"serving {model} at http://{host}:{server.server_address[1]}/v1 (Ctrl-C stops)", highlight=False,
                  soft_wrap=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@app.command("runs")
def list_runs(
    registry: Path = typer.Argument(Path("runs/registry.sqlite"), help="Run registry file, or the folder holding it."),
) -> None:
    """List the registered runs with their model fingerprint, lineage and metrics."""
    from evalsuite.registry import list_runs as runs_of
    from evalsuite.registry import run_metrics

    path = registry / "registry.sqlite" if registry.is_dir() else registry
    records = runs_of(path)
    if not records:
        _fail(f"no runs registered in {path}")
    for r in records:  # plain lines, not a table: long paths and many metrics stay readable and greppable
        lineage = " ".join(f"{k}={v}" for k, v in sorted(r.lineage.items())) or "-"
        console.print(f"[bold]{r.run_id}[/]  suite={r.suite}  model={r.model}  weights={r.model_fingerprint[:12]}  "
                      f"lineage: {lineage}", highlight=False, soft_wrap=True)
        for (task, metric), (value, stderr) in sorted(run_metrics(path, r.run_id).items()):
            spread = f" ± {stderr:.4g}" if stderr is not None else ""
            console.print(f"    {task}/{metric.split(',')[0]} {value:.4g}{spread}", highlight=False, soft_wrap=True)


@app.command("dashboard")
def dashboard(
    registry: Path = typer.Argument(Path("runs/registry.sqlite"), help="Run registry file, or the folder holding it."),
    output: Path | None = typer.Option(None, "--output", "-o", help="HTML file to write (default: dashboard.html "
                                          "beside the registry)."),
    max_drop: str = typer.Option("5", "--fail-on-regression", "--max-drop", help="Flag a metric worse than the "
                                 "previous run by more than this many percent, e.g. 5 or 5% (the gate of `compare`)."),
    suite: str | None = typer.Option(None, "--suite", help="Only the runs of this suite."),
) -> None:
    """Write an HTML page with each metric across the registered runs, regressions in red. It only reports:
    the exit code is 0 with regressions too (`compare` is the gate)."""
    from evalsuite.dashboard import DashboardError, drift_table, latest_regressions, write_dashboard

    try:
        drop = float(max_drop.rstrip("%"))
    except ValueError:
        drop = float("nan")
    if not drop >= 0:
        _fail(f"--fail-on-regression takes a percentage, not {max_drop!r}")
    path = registry / "registry.sqlite" if registry.is_dir() else registry
    try:
        out = write_dashboard(path, output or path.parent / "dashboard.html", drop / 100, suite)
        series = drift_table(path, suite, drop / 100)
    except DashboardError as e:
        _fail(str(e))
    console.print(f"dashboard: {escape(str(out))}", highlight=False, soft_wrap=True)
    for p in latest_regressions(series):
        c = p.change
        console.print(f"[red]REGRESSION[/] {escape(c.task)}/{escape(c.metric.split(',')[0])}: {c.baseline:.4g} -> "
                      f"{c.candidate:.4g} ({c.relative_change:+.1%})", highlight=False, soft_wrap=True)


@app.command("list")
def list_tasks() -> None:
    """List the built-in suites and tasks."""
    from evalsuite.run import builtin_suites, builtin_tasks, load_suite

    table = Table("suite", "tasks", "description", box=None)
    for name in builtin_suites():
        s = load_suite(name)
        table.add_row(name, ", ".join(s.tasks), s.description)
    console.print(table)
    tasks = Table("task", "what", box=None)
    for name, path in builtin_tasks().items():
        first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
        tasks.add_row(name, first)
    tasks.add_row("cl_slots", "MCP slot benchmark against the built-in tool server (docs/slots.md)")
    tasks.add_row("cl_bfcl", "BFCL v4 single-turn slice, BFCL's AST rules (docs/slots.md)")
    tasks.add_row("slots:<file>, bfcl:<dir>", "your own slot cases; a folder of BFCL question and answer files")
    console.print(tasks)


@app.command()
def compare(
    baseline: Path = typer.Argument(..., help="Baseline run: an lm-eval results JSON, or a folder holding one."),
    candidate: Path = typer.Argument(..., help="Candidate run, same forms."),
    max_drop: str = typer.Option("5", "--fail-on-regression", "--max-drop", help="Fail when a watched metric "
                                 "gets worse by more than this many percent, e.g. 5 or 5% (the field's rollback rule)."),
    metric: list[str] | None = typer.Option(None, "--metric", "-m", help="Watch only this metric (acc, or "
                                               "task/acc); repeatable. Default: every shared metric."),
) -> None:
    """Compare CANDIDATE with BASELINE metric by metric; exit 1 when a watched metric regressed."""
    try:
        max_drop = float(max_drop.rstrip("%"))
    except ValueError:
        _fail(f"--fail-on-regression takes a percentage, not {max_drop!r}")
    try:
        changes = compare_runs(baseline, candidate)
    except ResultsError as e:
        _fail(str(e))
    if not changes:
        _fail("the two runs share no task and metric")
    failed = regressions(changes, max_drop / 100, metric)
    table = Table("task", "metric", "baseline", "candidate", "change", "± 1.96 se", "verdict")
    for c in changes:
        se = c.delta_stderr
        noise = f"{1.96 * se:.3g}" if se is not None else "n/a"
        if c in failed:
            verdict = "[red]REGRESSION[/]" + (" (within noise)" if c.significant is False else "")
        elif c.significant is False:
            verdict = "within noise"
        else:
            verdict = "better" if c.relative_change > 0 else "worse" if c.relative_change < 0 else "same"
        table.add_row(c.task, c.metric.split(",")[0], f"{c.baseline:.4g}", f"{c.candidate:.4g}",
                      f"{c.relative_change:+.1%}", noise, verdict)
    console.print(table)
    for c in failed:  # also as plain lines: a narrow terminal or a CI log must not cut them off
        console.print(f"[red]REGRESSION[/] {c.task}/{c.metric.split(',')[0]}: {c.baseline:.4g} -> {c.candidate:.4g} "
                      f"({c.relative_change:+.1%})", highlight=False, soft_wrap=True)
    if failed:
        console.print(f"[red]{len(failed)} metric(s) worse by more than {max_drop:g}%: roll back[/]", soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[green]no watched metric worse by more than {max_drop:g}%[/]", soft_wrap=True)


@app.command()
def judge(
    runs: list[Path] = typer.Argument(..., help="Run folder whose generated outputs are judged; with --pairwise, "
                                     "RUN_A RUN_B (the results go with RUN_B)."),
    judges: list[str] = typer.Option(..., "--judge", help="Judge endpoint, OpenAI-compatible: http://host:port/v1 "
                                     "(or its /chat/completions URL); repeat for several judges."),
    judge_models: list[str] | None = typer.Option(None, "--judge-model", help="Served model of each --judge, in "
                                                  "order (one for all; default: the first each lists)."),
    rubrics: list[str] | None = typer.Option(None, "--rubric", help="Built-in rubric name or rubric YAML file; "
                                             "repeatable. Default: every built-in rating rubric (pairwise: "
                                             "the built-in pairwise rubric)."),
    pairwise: bool = typer.Option(False, "--pairwise", help="Compare RUN_B's outputs with RUN_A's for the same "
                                  "prompts, in both orders."),
    tasks: list[str] | None = typer.Option(None, "--task", help="Only this generation task; repeatable."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Outputs per task (the first N)."),
    max_tokens: int = typer.Option(512, "--max-tokens", min=1, help="The longest judge reply."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="Environment variable with the "
                                    "judges' API key (read, never printed or stored)."),
) -> None:
    """Rate a run's generated outputs with judge models (rubrics with parsed verdicts), or compare two runs
    pairwise; the figures are stored with the run (task `judge` or `judge_pairwise`)."""
    import os

    from evalsuite.judge import JudgeError, builtin_rubrics, judge_pairwise, judge_run, load_rubric, open_judges, store

    try:
        if len(runs) != (2 if pairwise else 1):
            raise JudgeError("--pairwise takes two runs, RUN_A RUN_B" if pairwise else
                             "give one run folder (two with --pairwise)")
        names = rubrics or (["pairwise"] if pairwise else [n for n in builtin_rubrics() if n != "pairwise"])
        chosen = [load_rubric(n) for n in names]
        clients = open_judges(judges, judge_models or [], os.environ.get(api_key_env), max_tokens)
        if pairwise:
            if len(chosen) != 1:
                raise JudgeError("--pairwise takes one pairwise rubric")
            judged = judge_pairwise(runs[0], runs[1], clients, chosen[0], tasks, limit)
        else:
            judged = judge_run(runs[0], clients, chosen, tasks, limit)
        store(runs[-1], judged)
    except JudgeError as e:
        _fail(str(e))
    table = Table("task", "metric", "value", box=None)
    for key, value in judged.values.items():
        if "_stderr" not in key and key != "sample_len":
            table.add_row(judged.task, key.split(",")[0], f"{value:.4g}")
    console.print(table)
    for a in judged.agreement:
        alpha = f"{a.alpha:.3f}" if a.alpha is not None else "n/a"
        console.print(f"agreement on {a.dimension}: Krippendorff's alpha ({a.level}) {alpha} over {a.units} items",
                      highlight=False, soft_wrap=True)
    console.print(f"{judged.values['sample_len']} outputs judged; stored in {runs[-1]} "
                  f"(results.json, samples/{judged.task}.jsonl)", highlight=False, soft_wrap=True)


human_app = typer.Typer(help="Human evaluation: rating sheets out of runs, filled sheets back in.",
                        no_args_is_help=True, add_completion=False)
app.add_typer(human_app, name="human")


@human_app.command("export")
def human_export(
    runs: list[Path] = typer.Argument(..., help="Run folders (of `evalsuite run`); several are rated blind, mixed."),
    output: Path = typer.Option(..., "--output", "-o", help="Sheet folder: sheet.csv, sheet.html, key.json."),
    per_dimension: int = typer.Option(500, "--per-dimension", min=1, help="Outputs sampled per run, each rated "
                                      "on every dimension (all when a run has fewer)."),
    seed: int = typer.Option(0, "--seed", help="Sampling and shuffling seed (same seed, same sheets)."),
    raters: int = typer.Option(1, "--raters", min=1, help="Sheets to write, one per rater, each in its own order."),
) -> None:
    """Write blind rating sheets (CSV and a self-contained HTML form) of runs' generated outputs."""
    from evalsuite.human import HumanError, export_sheets

    try:
        done = export_sheets(runs, output, per_dimension, seed, raters)
    except HumanError as e:
        _fail(str(e))
    for line in done.skipped:
        err.print(line, highlight=False, soft_wrap=True)
    counts = ", ".join(f"{n} from {run}" for run, n in done.items.items())
    console.print(f"{sum(done.items.values())} items ({counts}) in {', '.join(str(f) for f in done.files)}; "
                  "keep key.json from the raters", highlight=False, soft_wrap=True)


@human_app.command("import")
def human_import(
    sheets: list[Path] = typer.Argument(..., help="Filled sheet CSV files, or sheet folders (every *.csv in them)."),
    registry: Path | None = typer.Option(None, "--registry", help="Run registry file (default: registry.sqlite "
                                            "beside each run folder)."),
    key: Path | None = typer.Option(None, "--key", help="The sheets' key.json (default: the one beside them)."),
) -> None:
    """Read filled rating sheets into their runs (task `human`) and the registry, with Krippendorff's alpha."""
    from evalsuite.human import HumanError, import_sheets

    try:
        done = import_sheets(sheets, registry, key)
    except HumanError as e:
        _fail(str(e))
    for line in done.skipped:
        err.print(line, highlight=False, soft_wrap=True)
    table = Table("run", "dimension", "mean", "± se", "items", "ratings")
    for run, scores in done.scores.items():
        for name, s in scores.items():
            table.add_row(run, name, f"{s.mean:.3f}", f"{s.stderr:.3f}" if s.stderr is not None else "n/a",
                          str(s.items), str(s.ratings))
    console.print(table)
    for a in done.agreement:
        alpha = f"{a.alpha:.3f}" if a.alpha is not None else "n/a (needs two raters of one item)"
        console.print(f"{a.dimension}: Krippendorff's alpha ({a.level}) {alpha} over {a.units} items, "
                      f"{a.raters} rater(s)", highlight=False, soft_wrap=True)
    console.print(f"{done.raters} rater(s), {len(done.files)} file(s) read", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    app(prog_name="evalsuite")
