"""What each stage kind does. One function per kind: `(stage, ctx) -> (outputs, metrics)`, outputs being
named lists of paths inside `ctx.folder`; the engine caches and orders them."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from pathlib import Path
from typing import Any

import yaml

from corpus.io import atomic_write_text
from pipelines.engine import LoopError, StageContext
from pipelines.scores import (
    ClassifierScorer,
    InfluenceScorer,
    LanguageScorer,
    LengthScorer,
    PerplexityScorer,
    iter_documents,
    score_table,
    select,
    selection_report,
    train_favoured_classifier,
    write_subset,
)
from pipelines.spec import (
    ClassifierStage,
    CleanStage,
    CompareStage,
    EvalStage,
    FilterStage,
    InitStage,
    ScoreStage,
    SplitStage,
    TrainStage,
    references,
)

Outputs = dict[str, list[Path]]


def _fields(ctx: StageContext, ref: str) -> tuple[str, str]:
    """(text field, id field) of the documents behind a reference: a dataset's own, else our outputs'."""
    head = ref.split("/", 1)[0]
    dataset = ctx.engine.spec.datasets.get(head)
    return (dataset.text_field, dataset.id_field) if dataset else ("text", "id")


def init(stage: InitStage, ctx: StageContext) -> tuple[Outputs, dict]:
    """A tokenizer trained on documents spread over `tokenizer_data` and a randomly initialised model."""
    import torch

    from plugins.pretrain import PretrainOptions, scratch_model
    from train.tokenizer import train_bpe_tokenizer

    texts = [text for _, text in _spread_documents(ctx, stage.tokenizer_data, stage.tokenizer_docs)]
    tokenizer = train_bpe_tokenizer(texts, stage.vocab_size)
    torch.manual_seed(stage.seed)
    options = PretrainOptions(architecture=stage.architecture, vocab_size=stage.vocab_size,
                              hidden_size=stage.hidden_size, layers=stage.layers, heads=stage.heads)
    model = scratch_model(options, tokenizer, stage.context)
    folder = ctx.folder / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return {"model": [folder]}, {"parameters": sum(p.numel() for p in model.parameters()),
                                 "tokenizer_documents": len(texts)}


def clean(stage: CleanStage, ctx: StageContext) -> tuple[Outputs, dict]:
    """`corpus clean` into `clean/`; the output is its shards."""
    from corpus.config import load_config
    from corpus.pipeline import clean as run_clean

    config = load_config(stage.config, overrides=stage.overrides)
    result = run_clean([str(p) for p in ctx.paths(stage.input)], ctx.folder / "clean", config, steps=stage.steps)
    shards = sorted((ctx.folder / "clean").glob("shard-*"))
    return {"docs": shards}, {"documents_in": result.stats["steps"][0]["docs_in"],
                              "documents_out": result.stats["output"]["docs"]}


def part_of(doc_id: str, seed: int, fractions: dict[str, float]) -> str:
    """The part a document id falls in: a hash of (seed, id) mapped to [0, 1) against the cumulative fractions."""
    u = int.from_bytes(hashlib.sha256(f"{seed}\0{doc_id}".encode()).digest()[:8], "big") / 2**64
    total = 0.0
    for name, fraction in fractions.items():
        total += fraction
        if u < total:
            return name
    return name  # rounding at the top end


def split(stage: SplitStage, ctx: StageContext) -> tuple[Outputs, dict]:
    """Each part as JSONL shards under `<part>/`, documents unchanged and in input order."""

    paths = ctx.paths(stage.input)
    text_field, id_field = _fields(ctx, stage.input)
    members: dict[str, list[str]] = {name: [] for name in stage.fractions}
    for doc_id, _, _ in iter_documents(paths, text_field, id_field):
        members[part_of(doc_id, stage.seed, stage.fractions)].append(doc_id)
    outputs, metrics = {}, {}
    for name, ids in members.items():
        write_subset(paths, ids, ctx.folder / name, text_field, id_field)
        outputs[name] = sorted((ctx.folder / name).glob("*.jsonl.gz"))
        metrics[f"{name}_documents"] = len(ids)
    return outputs, metrics


def train(stage: TrainStage, ctx: StageContext) -> tuple[Outputs, dict]:
    """One model per seed under `seed<N>/`, at the stage's token budget."""
    from train import TrainConfig
    from train import run as run_training

    text_field, _ = _fields(ctx, stage.data)
    config = dict(stage.config)
    if text_field != "text" and stage.method == "pretrain":
        config.setdefault("options", {}).setdefault("text_field", text_field)
    config.setdefault("report_to", [])
    outputs, metrics = {}, {}
    for seed in stage.seeds:
        out = ctx.folder / f"seed{seed}"
        cfg = TrainConfig(method=stage.method, output=str(out), data=[str(p) for p in ctx.paths(stage.data)],
                          model=str(ctx.paths(stage.init)[0]) if stage.init else None, seed=seed, **config)
        result = run_training(cfg)
        outputs[f"seed{seed}"] = [out]
        metrics[f"seed{seed}"] = result.metrics
    metrics["token_budget"] = cfg.max_steps * cfg.batch_size * cfg.gradient_accumulation * cfg.max_length
    return outputs, metrics


def _spread_documents(ctx: StageContext, ref: str, count: int) -> list[tuple[str, str]]:
    """(id, text) of `count` documents spread evenly over those behind a reference (all of them when there
    are fewer), in their order: every part of the input is represented (files are often sorted by language or
    source, so the first documents would be one language), and the choice is the same on every run."""
    text_field, id_field = _fields(ctx, ref)
    docs = [(doc_id, text) for doc_id, text, _ in iter_documents(ctx.paths(ref), text_field, id_field)]
    return docs if len(docs) <= count else [docs[i * len(docs) // count] for i in range(count)]


def _held_out_task(name: str, data: Path) -> str:
    """An lm-eval task: rolling log-likelihood (perplexity, bits per byte) on the documents in `data`."""
    return (f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data))}\n"
            "test_split: test\noutput_type: loglikelihood_rolling\ndoc_to_text: \"\"\ndoc_to_target: \"{{text}}\"\n"
            "metric_list:\n  - metric: word_perplexity\n    aggregation: weighted_perplexity\n"
            "    higher_is_better: false\n  - metric: byte_perplexity\n    aggregation: weighted_perplexity\n"
            "    higher_is_better: false\n  - metric: bits_per_byte\n    aggregation: bits_per_byte\n"
            "    higher_is_better: false\nmetadata:\n  version: 1.0\n")


def evaluate(stage: EvalStage, ctx: StageContext) -> tuple[Outputs, dict]:
    """`evalsuite run` on each seed's model; `results.json` (lm-eval's shape, so `evalsuite compare` reads
    it) holds each metric's mean over seeds with its standard error (between seeds when there are several,
    else the run's own)."""
    from evalsuite.run import RunConfig, load_suite
    from evalsuite.run import run as run_suite

    tasks = list(load_suite(stage.suite).tasks) if stage.suite else []
    task_dir = ctx.folder / "tasks"
    task_dir.mkdir()
    for ref in stage.held_out:
        name = "heldout_" + ref.replace("/", "_")
        rows = [json.dumps({"id": doc_id, "text": text}, ensure_ascii=False)
                for doc_id, text in _spread_documents(ctx, ref, stage.held_out_docs)]
        atomic_write_text(task_dir / f"{name}.jsonl", "\n".join(rows) + "\n")
        atomic_write_text(task_dir / f"{name}.yaml", _held_out_task(name, task_dir / f"{name}.jsonl"))
        tasks.append(name)
    if not tasks:
        raise LoopError(f"stage {ctx.name}: no suite and no held_out: nothing to evaluate")
    suite = ctx.folder / "suite.yaml"
    atomic_write_text(suite, yaml.safe_dump({"name": ctx.name, "tasks": tasks}))
    models = ctx.state(stage.model).outputs
    lineage = {"loop": ctx.engine.spec.name, "eval_stage": ctx.name, "model_stage": stage.model,
               **_data_lineage(ctx, stage.model)}
    runs: dict[str, dict] = {}
    outputs: Outputs = {}
    for part in models:
        model = ctx.paths(f"{stage.model.split('/', 1)[0]}/{part}")[0]
        out = ctx.folder / f"run-{part}"
        run_suite(RunConfig(model=str(model), suite=str(suite), output=str(out), limit=stage.limit,
                            device=stage.device, batch_size=stage.batch_size, task_dirs=[str(task_dir)],
                            registry=str(ctx.engine.registry), lineage={**lineage, "model_part": part}))
        runs[part] = json.loads((out / "results.json").read_text(encoding="utf-8"))["results"]
        outputs[f"run-{part}"] = [out]
    combined = combine_seeds(list(runs.values()))
    atomic_write_text(ctx.folder / "results.json", json.dumps({"results": combined}, indent=2, sort_keys=True))
    metrics = {f"{task}/{key.split(',')[0]}": value for task, values in combined.items()
               for key, value in values.items() if "_stderr" not in key}
    return {"results": [ctx.folder / "results.json"], **outputs}, metrics


def _data_lineage(ctx: StageContext, model_ref: str) -> dict[str, str]:
    """Everything upstream of the model: each stage with (the start of) its cache key, each dataset with its
    paths, recorded with the run in the registry."""
    spec, out, todo, seen = ctx.engine.spec, {}, [model_ref.split("/", 1)[0]], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in spec.datasets:
            out[f"dataset:{name}"] = ",".join(spec.datasets[name].paths)
            continue
        stage = ctx.engine.stages[name]
        out[f"{stage.kind}:{name}"] = ctx.engine.states[name].key[:16]
        todo += [ref.split("/", 1)[0] for _, ref in references(stage)]
    return out


def combine_seeds(runs: list[dict[str, dict]]) -> dict[str, dict]:
    """Per task and metric, the mean over runs and its standard error: the standard deviation between runs
    over sqrt(n) when there are several, else the run's own stderr where it reports one."""
    combined: dict[str, dict] = {}
    for task in runs[0]:
        entry = {}
        for key, value in runs[0][task].items():
            if "," not in key or "_stderr" in key or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue  # stderrs are recomputed; "sample_len" and the like are not metrics
            values = [r[task][key] for r in runs if isinstance(r.get(task, {}).get(key), (int, float))]
            metric, _, filt = key.partition(",")
            entry[key] = statistics.fmean(values)
            if len(values) > 1:
                entry[f"{metric}_stderr,{filt}"] = statistics.stdev(values) / math.sqrt(len(values))
            elif isinstance(runs[0][task].get(f"{metric}_stderr,{filt}"), (int, float)):
                entry[f"{metric}_stderr,{filt}"] = runs[0][task][f"{metric}_stderr,{filt}"]
        combined[task] = entry
    return combined


def score(stage: ScoreStage, ctx: StageContext) -> tuple[Outputs, dict]:
    """The score table `scores.parquet`."""

    scorers: list[Any] = [LengthScorer()] if stage.length else []
    if stage.language:
        scorers.append(LanguageScorer())
    scorers += [ClassifierScorer(kind) for kind in stage.classifiers]
    scorers += [ClassifierScorer("quality", model_path=ctx.paths(ref)[0], column=column)
                for column, ref in stage.trained.items()]
    scorers += [PerplexityScorer(column, ctx.paths(ref)[0], max_length=stage.max_length)
                for column, ref in stage.perplexity.items()]
    for name, influence in stage.influence.items():
        held_out = _spread_documents(ctx, influence.held_out, influence.held_out_docs)
        scorers.append(InfluenceScorer(name, ctx.paths(influence.model)[0], [text for _, text in held_out],
                                       max_length=stage.max_length))
    if not scorers:
        raise LoopError(f"stage {ctx.name}: no scores asked for")
    text_field, id_field = _fields(ctx, stage.input)
    table = score_table(ctx.paths(stage.input), ctx.folder / "scores.parquet", scorers, text_field, id_field)
    return {"table": [table]}, {}


def classifier(stage: ClassifierStage, ctx: StageContext) -> tuple[Outputs, dict]:
    """`model.bin`: a fastText classifier of what the better model favours, with its held-out figures."""

    text_field, id_field = _fields(ctx, stage.input)
    report = train_favoured_classifier(ctx.paths(stage.scores)[0], ctx.paths(stage.input), stage.better, stage.worse,
                                       ctx.folder / "model.bin", stage.fraction, text_field, id_field)
    return {"model": [Path(report.model_path)]}, {"roc_auc": report.roc_auc, "train_documents": report.train_docs,
                                                  "heldout_documents": report.heldout_docs}


def filter_documents(stage: FilterStage, ctx: StageContext) -> tuple[Outputs, dict]:
    """The documents of `input` kept by every rule, as JSONL shards under `docs/`."""

    rules = stage.keep
    table = ctx.paths(stage.scores)[0]
    kept = select(table, rules)
    text_field, id_field = _fields(ctx, stage.input)
    counts = write_subset(ctx.paths(stage.input), kept, ctx.folder / "docs", text_field, id_field)
    return {"docs": sorted((ctx.folder / "docs").glob("*.jsonl.gz"))}, {
        **counts, "rules": selection_report(table, rules)}


def compare(stage: CompareStage, ctx: StageContext) -> tuple[Outputs, dict]:
    """The gate's verdict on each candidate against the baseline, in `compare.json`, and `report.html` over
    the compared evaluations."""
    from evalsuite.compare import MetricChange
    from pipelines.report import write_loop_report

    task, _, metric = stage.key_metric.partition("/")
    results = {ref: json.loads(ctx.paths(f"{ref.split('/', 1)[0]}/results")[0].read_text(encoding="utf-8"))
               for ref in [stage.baseline, *stage.candidates]}

    def value(ref: str) -> tuple[float, float | None]:
        entry = results[ref]["results"].get(task, {})
        if f"{metric},none" not in entry:
            known = ", ".join(f"{t}/{k.split(',')[0]}" for t, v in results[ref]["results"].items() for k in v
                              if "_stderr" not in k)
            raise LoopError(f"stage {ctx.name}: {ref} has no {stage.key_metric} (it has {known})")
        return entry[f"{metric},none"], entry.get(f"{metric}_stderr,none")

    base, base_se = value(stage.baseline)
    verdicts = {}
    for ref in stage.candidates:
        cand, cand_se = value(ref)
        change = MetricChange(task, metric, base, cand, base_se, cand_se)
        if change.relative_change < -stage.max_drop:
            verdict = "rolled back"
        elif change.relative_change > 0 and change.significant is not False:
            verdict = "accepted"
        else:
            verdict = "not better"
        verdicts[ref] = {"value": cand, "stderr": cand_se, "relative_change": change.relative_change,
                         "verdict": verdict}
    accepted = [r for r, v in verdicts.items() if v["verdict"] == "accepted"]
    best = max(accepted, key=lambda r: verdicts[r]["relative_change"]) if accepted else stage.baseline
    report = {"key_metric": stage.key_metric, "baseline": {"ref": stage.baseline, "value": base, "stderr": base_se},
              "candidates": verdicts, "chosen": best}
    atomic_write_text(ctx.folder / "compare.json", json.dumps(report, indent=2, sort_keys=True))
    write_loop_report(ctx.folder / "report.html", report, results, f"{ctx.engine.spec.name}: {ctx.name}",
                      stage.max_drop)
    return {"compare": [ctx.folder / "compare.json"], "report": [ctx.folder / "report.html"]}, report


RUNNERS = {"init": init, "clean": clean, "split": split, "train": train, "eval": evaluate, "score": score,
           "classifier": classifier, "filter": filter_documents, "compare": compare}


def run_stage(stage, ctx: StageContext) -> tuple[Outputs, dict]:
    return RUNNERS[stage.kind](stage, ctx)
