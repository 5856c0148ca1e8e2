"""`evalsuite run`: a suite of lm-evaluation-harness tasks against a local model, offline, into a run folder.

lm-eval does the evaluating (`simple_evaluate`); this module resolves the suite and the built-in task YAML
(shipped with their data, so no hub is needed), loads the model safely (no remote code unless asked), and
writes the run folder:

    results.json        lm-eval's results (the `results` section: task -> "metric,filter" -> value, stderr)
    samples/<task>.jsonl  every scored document, as lm-eval logged it
    run.json            what ran: suite, tasks, model path and weights fingerprint, data fingerprints,
                        settings, library versions
    summary.md, .html   the metrics as a table
and records the run, its metrics and lineage in the run registry (see `evalsuite.registry`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from corpus.io import atomic_write_text, package_versions
from evalsuite.registry import RunRecord, default_registry, register

HERE = Path(__file__).resolve().parent
TASKS_DIR = HERE / "tasks"
SUITES_DIR = HERE / "suites"
DATA_PLACEHOLDER = "__DATA__"
log = logging.getLogger("evalsuite")


class EvalError(ValueError):
    """A run that cannot start: a missing model, an unknown suite or task, a malformed suite file."""


@dataclass
class Suite:
    """A named list of lm-eval task names (built-in `cl_*` tasks or any task lm-eval knows)."""

    name: str
    tasks: list[str]
    description: str = ""


@dataclass
class RunConfig:
    """One `evalsuite run`."""

    model: str  # a local model (or PEFT adapter) folder, or an OpenAI-compatible endpoint URL
    suite: str = "core"
    output: str = "runs/latest"
    limit: int | None = None  # documents per task (a quick look; the figures are then not comparable)
    device: str = "cpu"
    batch_size: int | str = "auto"
    trust_remote_code: bool = False
    seed: int = 0
    repeats: int = 1  # run the suite this many times and report each metric's spread in run.json
    registry: str | None = None  # SQLite run registry; None: registry.sqlite beside the run folder
    lineage: dict[str, str] = field(default_factory=dict)  # e.g. {"train_data": "out/web-v2"}
    apply_chat_template: bool = False  # prompt through the model's chat template (instruction-tuned models)
    cache: str | None = None  # answer cache (SQLite) keyed by weights fingerprint, chat template and request
    tokenizer: str | None = None  # endpoints without /tokenize: a local folder with the served model's tokenizer
    served_model: str | None = None  # endpoints serving several models: which one (default: the first listed)
    max_new_tokens: int = 256  # slot tasks: the longest reply per model turn
    temperature: float = 0.0  # slot tasks: sampling temperature (above 0, each of `repeats` trials samples anew)
    task_dirs: list[str] = field(default_factory=list)  # more lm-eval task YAML folders (e.g. a loop's held-out)
    latency: int = 0  # serving figures over this many streamed prompts (`evalsuite.latency`); 0: none


@dataclass
class RunResult:
    """What a finished run wrote, and its metrics: {task: {"metric,filter": value}}."""

    output: Path
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0


def builtin_tasks() -> dict[str, Path]:
    return {p.stem: p for p in sorted(TASKS_DIR.glob("*.yaml"))}


def builtin_suites() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SUITES_DIR.glob("*.yaml"))}


def load_suite(name_or_path: str) -> Suite:
    """A built-in suite by name, or a suite YAML file (`name`, `tasks`, optional `description`)."""
    path = builtin_suites().get(name_or_path) or Path(name_or_path)
    if not path.is_file():
        raise EvalError(f"unknown suite {name_or_path!r}: not a built-in suite ({', '.join(builtin_suites())}) "
                        "nor a file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise EvalError(f"{path}: not valid YAML ({e})") from None
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        raise EvalError(f"{path}: 'tasks' must be a non-empty list of task names")
    return Suite(name=str(data.get("name") or path.stem), tasks=tasks, description=str(data.get("description", "")))


def materialise_tasks(folder: Path) -> Path:
    """Write the built-in task YAML into `folder` with the absolute path of their shipped data, beside the
    scoring functions they reference."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in builtin_tasks().items():
        text = path.read_text(encoding="utf-8").replace(DATA_PLACEHOLDER, str(TASKS_DIR / "data"))
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    for module in TASKS_DIR.glob("*.py"):
        (folder / module.name).write_text(module.read_text(encoding="utf-8"), encoding="utf-8")
    return folder


def fingerprint(paths: list[Path]) -> str:
    """sha256 over the files' names and bytes, in name order."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def model_fingerprint(folder: Path) -> str:
    """The fingerprint of a model folder's weights and configuration (what decides its answers)."""
    files = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".json", ".model", ".txt")]
    return fingerprint(files)


@dataclass
class ModelInfo:
    """What identifies the model that answers: its weights fingerprint (None for an endpoint that does not
    report one) and the chat template it is prompted with."""

    fingerprint: str | None
    chat_template: str | None = None
    served_as: str | None = None  # an endpoint's model id


def _local_model(cfg: RunConfig):
    from lm_eval.models.huggingface import HFLM

    folder = check_model_folder(cfg.model)
    kwargs = {"device": cfg.device, "batch_size": cfg.batch_size, "trust_remote_code": cfg.trust_remote_code}
    adapter = folder / "adapter_config.json"
    if adapter.is_file():  # a PEFT adapter: its base model, with the adapter applied
        base = json.loads(adapter.read_text())["base_model_name_or_path"]
        lm = HFLM(pretrained=base, peft=str(folder), **kwargs)
    else:
        lm = HFLM(pretrained=str(folder), **kwargs)
    return lm, ModelInfo(local_fingerprint(folder), getattr(lm.tokenizer, "chat_template", None))


def local_fingerprint(folder: Path) -> str:
    """The weights fingerprint of a model folder, or of a PEFT adapter folder together with its base model."""
    adapter = folder / "adapter_config.json"
    if adapter.is_file():
        return fingerprint_of_adapter(folder, Path(json.loads(adapter.read_text())["base_model_name_or_path"]))
    return model_fingerprint(folder)


def check_model_folder(path: str) -> Path:
    """The model folder, if it holds a Hugging Face model or PEFT adapter; else a clear EvalError."""
    folder = Path(path)
    if not folder.is_dir() or not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
        raise EvalError(f"model folder not found or not a Hugging Face model (no config.json): {folder}")
    return folder


def fingerprint_of_adapter(adapter: Path, base: Path) -> str:
    """An adapter answers with its base model's weights too: both go into its fingerprint."""
    parts = [model_fingerprint(adapter)] + ([model_fingerprint(base)] if base.is_dir() else [str(base)])
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def endpoint_url(url: str) -> tuple[str, str, bool]:
    """(server base, completions URL, chat) for an endpoint given as its base (`.../v1`) or a full route."""
    url = url.rstrip("/")
    chat = url.endswith("/chat/completions")
    if url.endswith(("/completions", "/chat/completions")):
        base = url.rsplit("/chat/completions", 1)[0] if chat else url.rsplit("/completions", 1)[0]
        return base, url, chat
    return url, url + "/completions", False


def _endpoint_model(cfg: RunConfig):
    """lm-eval's `local-completions` (or `local-chat-completions` for a `/chat/completions` URL) against an
    OpenAI-compatible server; the tokenizer is the server's own when it exposes `/tokenize` (vLLM and
    `evalsuite serve` do), else `cfg.tokenizer` (a local folder)."""
    base, url, chat = endpoint_url(cfg.model)
    entry = served_entry(cfg)
    kwargs = {"base_url": url, "model": entry["id"], "max_retries": 3, "seed": cfg.seed, "timeout": 600,
              # requests per HTTP call; "auto" (a local GPU's memory probe) means nothing to a server
              "batch_size": cfg.batch_size if isinstance(cfg.batch_size, int) else 8}
    if entry.get("max_model_len"):
        kwargs["max_length"] = int(entry["max_model_len"])
    if cfg.tokenizer:
        if not Path(cfg.tokenizer).is_dir():
            raise EvalError(f"tokenizer folder not found: {cfg.tokenizer}")
        kwargs.update(tokenizer_backend="huggingface", tokenizer=cfg.tokenizer)
    else:
        from lm_eval.utils import check_remote_tokenizer_support

        if not check_remote_tokenizer_support(url, auth_token=os.environ.get("OPENAI_API_KEY")):
            raise EvalError(f"endpoint {base} has no /tokenize route; pass --tokenizer DIR (a local copy of the "
                            "served model's tokenizer), which log-likelihood tasks need to split context and "
                            "continuation")
        kwargs["tokenizer_backend"] = "remote"
    if chat:
        from lm_eval.models.openai_completions import LocalChatCompletion

        lm = LocalChatCompletion(**{k: v for k, v in kwargs.items() if k != "batch_size"}, tokenized_requests=False)
    else:
        from lm_eval.models.openai_completions import LocalCompletionsAPI

        lm = LocalCompletionsAPI(**kwargs)
    return lm, ModelInfo(entry.get("fingerprint"), served_as=entry["id"])


def served_entry(cfg: RunConfig) -> dict:
    """The endpoint's `/v1/models` entry for the model under test (`cfg.served_model`, or the first listed)."""
    import requests

    base = endpoint_url(cfg.model)[0]
    headers = {"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}"} if os.environ.get("OPENAI_API_KEY") else {}
    try:
        listing = requests.get(f"{base}/models", headers=headers, timeout=30)
        listing.raise_for_status()
        served = listing.json().get("data") or []
    except (requests.RequestException, ValueError) as e:
        raise EvalError(f"endpoint {base}: cannot list its models ({e})") from None
    entry = next((m for m in served if m.get("id") == cfg.served_model), None) if cfg.served_model else (
        served[0] if served else None)
    if entry is None:
        raise EvalError(f"endpoint {base} serves {[m.get('id') for m in served]}, not {cfg.served_model!r}")
    return entry


def is_endpoint(model: str) -> bool:
    return model.startswith(("http://", "https://"))


def _model(cfg: RunConfig):
    from evalsuite.slots.task import SCRIPTED

    if is_endpoint(cfg.model):
        return _endpoint_model(cfg)
    if cfg.model.startswith(SCRIPTED):
        return _scripted_model(cfg)
    return _local_model(cfg)


def _scripted_model(cfg: RunConfig, task: str = "lm-eval tasks"):
    """A scripted reference model for lm-eval tasks (`evalsuite.scripted`), identified by its script."""
    from evalsuite.scripted import NAMES, ScriptedLM, ScriptedLMError
    from evalsuite.slots.reference import REFERENCE_AGENTS
    from evalsuite.slots.task import SCRIPTED

    name = cfg.model[len(SCRIPTED):]
    if name in REFERENCE_AGENTS:
        raise EvalError(f"{cfg.model} is a scripted reference agent: it answers slot tasks only, not {task!r}; "
                        f"scripted models for lm-eval tasks: {', '.join(NAMES)}")
    try:
        lm = ScriptedLM(name)
    except ScriptedLMError as e:
        raise EvalError(str(e)) from None
    return lm, ModelInfo(lm.fingerprint, served_as=cfg.model)


def _json_default(value):
    return str(value)


def run(cfg: RunConfig) -> RunResult:
    """Run the suite and write the run folder; offline unless HF_HUB_OFFLINE is set to 0 by the user."""
    from evalsuite.slots.task import SCRIPTED, is_slot_task

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    suite = load_suite(cfg.suite)
    slot_tasks = [t for t in suite.tasks if is_slot_task(t)]
    lm_tasks = [t for t in suite.tasks if t not in slot_tasks]
    scripted = cfg.model.startswith(SCRIPTED)
    if scripted and lm_tasks:
        _scripted_model(cfg, lm_tasks[0])  # an unknown name fails now, listing the scripted models
    if not is_endpoint(cfg.model) and not scripted:
        check_model_folder(cfg.model)  # before lm-eval spends seconds indexing its tasks
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    task_dir = materialise_tasks(out / "tasks")
    for extra in cfg.task_dirs:
        for path in sorted(Path(extra).glob("*.yaml")):
            shutil.copyfile(path, task_dir / path.name)
    started = time.perf_counter()
    if lm_tasks:
        results, info, cached, repeats = _lm_eval(cfg, lm_tasks, task_dir)
    else:
        results, info, cached, repeats = {"results": {}}, _model_info(cfg), None, []
    samples = results.pop("samples", {})
    core = centred_core(results["results"], samples)
    if core:
        results["results"]["core"] = core
    slot_files = []
    if slot_tasks:
        agent = _slot_agent(cfg)
        info.chat_template = info.chat_template or getattr(agent, "chat_template", None)
        for task in slot_tasks:
            found, samples[task], files = _slot_task(cfg, task, agent, out)
            results["results"].update(found)
            slot_files += files
    seconds = time.perf_counter() - started
    serving = None
    if cfg.latency:  # after the tasks, outside `seconds`: time to first token, tokens/s, latency percentiles
        from evalsuite.latency import measure_run

        serving = measure_run(cfg, samples, info.served_as)
        results["results"]["serving"] = serving.results()
    (out / "samples").mkdir(exist_ok=True)
    for task, rows in samples.items():  # slot task names can be paths (slots:<file>, bfcl:<folder>)
        name = re.sub(r"[^\w.-]+", "_", task)
        with open(out / "samples" / f"{name}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, default=_json_default, ensure_ascii=False) + "\n" for row in rows)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, default=_json_default, ensure_ascii=False))
    metrics = {task: {k: v for k, v in values.items() if isinstance(v, (int, float)) and "_stderr" not in k
                      and k not in ("sample_len", "tasks")} for task, values in results["results"].items()}
    template = info.chat_template if cfg.apply_chat_template or slot_tasks else None
    manifest = {
        "config": asdict(cfg), "suite": asdict(suite), "seconds": round(seconds, 3),
        "model_fingerprint": info.fingerprint, "served_model": info.served_as,
        "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if template else None,
        "batch_size": results.get("config", {}).get("batch_size"),
        "task_fingerprints": {name: fingerprint([task_dir / f"{name}.yaml"]) for name in lm_tasks
                              if (task_dir / f"{name}.yaml").is_file()},
        "data_fingerprints": {**{p.name: fingerprint([p]) for p in task_data_files(lm_tasks, task_dir)},
                              **{str(p): fingerprint([p]) for p in slot_files}},
        "versions": library_versions(),
        "cache": {"hits": cached.hits, "misses": cached.misses} if cached is not None else None,
        "repeats": repeat_spread(repeats) if len(repeats) > 1 else None,
        "serving": asdict(serving) if serving else None,
    }
    atomic_write_text(out / "run.json", json.dumps(manifest, indent=2, default=_json_default))
    atomic_write_text(out / "summary.md", summary_markdown(suite, cfg, results["results"], seconds))
    atomic_write_text(out / "summary.html", summary_html(suite, cfg, results["results"], seconds))
    record = RunRecord(run_id=out.resolve().name, created=time.time(), output=str(out.resolve()), model=cfg.model,
                       model_fingerprint=info.fingerprint or "", suite=suite.name, seconds=round(seconds, 3),
                       lineage=dict(cfg.lineage))
    register(cfg.registry or default_registry(out), record, results["results"])
    return RunResult(out, metrics, seconds)


def _lm_eval(cfg: RunConfig, tasks: list[str], task_dir: Path):
    """lm-eval's tasks of the suite: (results, model info, answer cache or None, each repeat's results)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(task_dir))
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise EvalError(f"unknown task {unknown[0]!r} in suite {cfg.suite!r}; built-in: "
                        f"{', '.join([*builtin_tasks(), 'cl_slots', 'cl_bfcl'])}")
    model, info = _model(cfg)
    template = info.chat_template if cfg.apply_chat_template else None
    cached = None
    if cfg.cache and cfg.repeats == 1:
        if info.fingerprint:
            from evalsuite.cache import CachedLM, cache_namespace

            model = cached = CachedLM(model, cfg.cache, cache_namespace(info.fingerprint, template,
                                                                          cfg.apply_chat_template))
        else:
            log.warning("answer cache off: endpoint %s reports no weights fingerprint, so cached answers could "
                        "belong to other weights", cfg.model)

    def evaluate() -> dict:
        try:
            return simple_evaluate(model=model, tasks=tasks, task_manager=manager, limit=cfg.limit,
                                   log_samples=True, random_seed=cfg.seed, numpy_random_seed=cfg.seed,
                                   torch_random_seed=cfg.seed, fewshot_random_seed=cfg.seed,
                                   apply_chat_template=cfg.apply_chat_template)
        except NotImplementedError as e:  # e.g. log-likelihood tasks against a chat-completions endpoint
            raise EvalError(f"{cfg.model}: {e}") from None

    results = evaluate()
    # the same evaluation again: on GPUs batched kernels are not bit-exact, so figures can move between runs
    repeats = [results["results"]] + [evaluate()["results"] for _ in range(cfg.repeats - 1)]
    if cached is not None:
        cached.close()
    return results, info, cached, repeats


def _model_info(cfg: RunConfig) -> ModelInfo:
    """The model's identity when lm-eval does not load it (suites of slot tasks only)."""
    if is_endpoint(cfg.model):
        entry = served_entry(cfg)
        return ModelInfo(entry.get("fingerprint"), served_as=entry["id"])
    from evalsuite.slots.task import SCRIPTED

    if cfg.model.startswith(SCRIPTED):
        return ModelInfo(None, served_as=cfg.model)
    return ModelInfo(local_fingerprint(Path(cfg.model)))


def _slot_agent(cfg: RunConfig):
    from evalsuite.slots.task import SlotTaskError, load_agent

    try:
        return load_agent(cfg.model, device=cfg.device, trust_remote_code=cfg.trust_remote_code, seed=cfg.seed,
                          served_model=cfg.served_model, max_new_tokens=cfg.max_new_tokens,
                          temperature=cfg.temperature)
    except SlotTaskError as e:
        raise EvalError(str(e)) from None


def _slot_task(cfg: RunConfig, task: str, agent, out: Path):
    """A slot task of the suite; `repeats` are its trials (pass^k)."""
    from evalsuite.slots.adapters import EndpointError
    from evalsuite.slots.task import SlotTaskError, run_slot_task

    try:
        return run_slot_task(task, agent, repeats=cfg.repeats, limit=cfg.limit, workdir=out)
    except (SlotTaskError, EndpointError) as e:
        raise EvalError(f"suite {cfg.suite!r}: task {task!r}: {e}") from None


def task_data_files(tasks: list[str], task_dir: Path) -> list[Path]:
    """The shipped data files the built-in lm-eval tasks read."""
    text = "".join((task_dir / f"{t}.yaml").read_text(encoding="utf-8") for t in tasks
                   if (task_dir / f"{t}.yaml").is_file())
    return [p for p in sorted((TASKS_DIR / "data").glob("*.jsonl")) if str(p) in text]


def library_versions() -> dict[str, str]:
    """Versions of what decides the figures: Python and the evaluation stack."""
    import platform

    return {"python": platform.python_version(), **package_versions(
        ["corpusloop", "lm_eval", "torch", "transformers", "peft", "tokenizers", "datasets", "numpy"])}


def repeat_spread(repeats: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """{task: {"metric,filter": {"min", "max", "std"}}} over repeated evaluations of the same suite."""
    spread: dict[str, dict[str, dict[str, float]]] = {}
    for task, values in repeats[0].items():
        for key, value in values.items():
            if not isinstance(value, (int, float)) or "_stderr" in key or key == "sample_len":
                continue
            seen = [float(r[task][key]) for r in repeats if key in r.get(task, {})]
            if len(seen) < 2:  # derived entries (the core score) exist in the first repeat only
                continue
            mean = sum(seen) / len(seen)
            spread.setdefault(task, {})[key] = {"min": min(seen), "max": max(seen),
                                                "std": (sum((x - mean) ** 2 for x in seen) / (len(seen) - 1)) ** 0.5}
    return spread


def centred_core(results: dict, samples: dict) -> dict | None:
    """DCLM-style CORE over the multiple-choice tasks of the run: each task's accuracy centred on its chance
    level, (acc - chance) / (1 - chance) with chance the mean of 1 / choices over its documents, then
    averaged over tasks; the standard error combines the tasks' as independent."""
    centred, errors = [], []
    for task, rows in samples.items():
        acc, stderr = results.get(task, {}).get("acc,none"), results.get(task, {}).get("acc_stderr,none")
        if not isinstance(acc, (int, float)) or not rows:
            continue
        chance = sum(1 / len(r["arguments"]) for r in rows) / len(rows)
        centred.append((acc - chance) / (1 - chance))
        errors.append(stderr / (1 - chance) if isinstance(stderr, (int, float)) else 0.0)
    if not centred:
        return None
    return {"centred_acc,none": sum(centred) / len(centred),
            "centred_acc_stderr,none": sum(e * e for e in errors) ** 0.5 / len(errors), "tasks": len(centred)}


def metric_rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(task, metric, value, stderr) as printed, for every reported metric."""
    rows = []
    for task, values in results.items():
        for key, value in values.items():
            if not isinstance(value, (int, float)) or "_stderr" in key or key in ("sample_len", "tasks"):
                continue
            metric, _, filt = key.partition(",")
            stderr = values.get(f"{metric}_stderr,{filt}")
            rows.append((task, metric, f"{value:.4f}", f"{stderr:.4f}" if isinstance(stderr, (int, float)) else "n/a"))
    return rows


def _heading(suite: Suite, cfg: RunConfig, seconds: float) -> tuple[str, str]:
    return f"{suite.name}: {cfg.model}", f"{suite.description}; {seconds:.1f} s on {cfg.device}" + (
        f", limit {cfg.limit}" if cfg.limit else "")


def summary_markdown(suite: Suite, cfg: RunConfig, results: dict, seconds: float) -> str:
    title, line = _heading(suite, cfg, seconds)
    lines = [f"# {title}", "", line, "", "| task | metric | value | stderr |", "|---|---|---:|---:|"]
    lines += [f"| {t} | {m} | {v} | {e} |" for t, m, v, e in metric_rows(results)]
    return "\n".join(lines) + "\n"


def summary_html(suite: Suite, cfg: RunConfig, results: dict, seconds: float) -> str:
    """The same table as one self-contained HTML page."""
    from html import escape

    title, line = _heading(suite, cfg, seconds)
    cells = "".join(f"<tr><td>{escape(t)}</td><td>{escape(m)}</td><td>{v}</td><td>{e}</td></tr>"
                    for t, m, v, e in metric_rows(results))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>"
            "body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{padding:4px 10px;border-bottom:1px solid #ddd}td:nth-child(n+3){text-align:right}</style>"
            f"</head><body><h1>{escape(title)}</h1><p>{escape(line)}</p><table><tr><th>task</th><th>metric</th>"
            f"<th>value</th><th>stderr</th></tr>{cells}</table></body></html>\n")
