"""`corpus clean`: builds the step lists and runs them, in passes, on datatrove's executors.

Pass 1 ("process", one task per input split): read, normalize, langid, heuristics, quality, toxicity,
decontaminate, pii, then either the final shards (when neither exact_dedup nor balance runs) or work shards
plus an index. Planning (one process, reads only the small indexes): which documents repeat, and the
sampling rate of each language. Pass 2
("finalize", same tasks): exact_dedup, minhash, the quality top fraction, balance, write the cleaned shards.

Every pass is resumable: datatrove marks each finished task in `_work/logs/<pass>/completions/`, a re-run
skips those, and unfinished tasks start again from scratch, rewriting their `.tmp` files; the planning
result is written last and atomically. So a killed run, re-run, gives the same bytes as an unbroken one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpus.config import CleanConfig, ConfigError, ExecutorConfig
from corpus.io import atomic_write_npy, atomic_write_npz, atomic_write_text
from corpus.readers import CorpusReader, InputSplit, discover_inputs, plan_splits

# name -> what it does; the order is the order steps run in. Reading and writing always run.
STEPS: dict[str, str] = {
    "normalize": "Unicode repair (ftfy), NFC, whitespace and blank-line normalisation",
    "langid": "fastText lid.176 language ID; metadata.langid = {lang, score}; optional allow-list",
    "heuristics": "Gopher repetition + quality, C4 and FineWeb rules with per-language defaults",
    "quality": "fastText quality score (metadata.quality.score); optional threshold",
    "toxicity": "fastText toxicity score by language (EN, ZH shipped); removes at or above 0.3",
    "decontaminate": "remove or flag documents sharing a 13-word n-gram with local evaluation data",
    "pii": "scrub e-mails, phones, IPs, cards (Luhn), IBANs (mod 97), CN IDs, SSNs, secrets, URL credentials",
    "exact_dedup": "drop repeats of the same normalised text across all shards (first occurrence kept)",
    "minhash": "MinHash LSH near-duplicate removal, word or character shingles by script, verified by exact Jaccard",
    "balance": "language balancing to a target mix by hash-based down-/capped up-sampling",
}
PASS_ONE = ("normalize", "langid", "heuristics", "quality", "toxicity", "decontaminate", "pii")
PASS_TWO = ("exact_dedup", "minhash", "balance")


@dataclass
class CleanResult:
    """What a finished `corpus clean` run produced."""

    output_dir: Path
    stats: dict
    stats_path: Path
    report_path: Path


def resolve_steps(names: list[str] | None, config: CleanConfig) -> list[str]:
    """The steps to run, in pipeline order: the named ones, or every enabled one."""
    if names:
        unknown = [n for n in names if n not in STEPS]
        if unknown:
            raise ConfigError(f"unknown step {unknown[0]!r}; available steps: {', '.join(STEPS)}")
        return [n for n in STEPS if n in names]
    return [n for n in STEPS if getattr(config, n).enabled]


def _fingerprint(config: CleanConfig, steps: list[str], splits: list[InputSplit], tasks: int) -> str:
    data = {
        "config": config.model_dump(mode="json", exclude={"executor": {"kind", "workers", "ray_address"}}),
        "steps": steps,
        "tasks": tasks,
        "inputs": [[s.path, s.start, s.end, os.path.getsize(s.path)] for s in splits],
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _claim_output(out: Path, fingerprint: str, overwrite: bool) -> None:
    marker = out / "_work" / "run.json"
    if overwrite and out.exists():
        if not (marker.exists() or (out / "stats.json").exists()):
            raise ConfigError(f"{out} exists and was not written by corpus clean; refusing to delete it")
        shutil.rmtree(out)
    if marker.exists():
        previous = json.loads(marker.read_text()).get("fingerprint")
        if previous != fingerprint:
            raise ConfigError(
                f"{out} holds a run with other inputs or settings; use another --output, or --overwrite"
            )
        return
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no corpus clean run; use another --output")
    atomic_write_text(marker, json.dumps({"fingerprint": fingerprint}))


def _executor(pipeline: list, tasks: int, logs: Path, cfg: ExecutorConfig):
    if cfg.kind == "ray":
        try:
            import ray
            from datatrove.executor import RayPipelineExecutor
        except ImportError:
            raise ConfigError("executor 'ray' needs Ray: pip install -c constraints.txt 'corpusloop[ray]'") from None
        if not ray.is_initialized():
            address = cfg.ray_address or os.environ.get("RAY_ADDRESS")
            if address:  # join an existing cluster with the resources it has
                ray.init(address=address, log_to_driver=False)
            else:  # a local Ray instance on this machine, sized to --workers
                ray.init(num_cpus=cfg.workers, log_to_driver=False, include_dashboard=False)
        return RayPipelineExecutor(pipeline, tasks=tasks, workers=cfg.workers, logging_dir=str(logs),
                                   cpus_per_task=cfg.cpus_per_task, mem_per_cpu_gb=cfg.mem_per_cpu_gb)
    if cfg.kind == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        if not cfg.slurm_partition:
            raise ConfigError("executor.kind slurm needs executor.slurm_partition")
        return SlurmPipelineExecutor(pipeline, tasks=tasks, time=cfg.slurm_time, partition=cfg.slurm_partition,
                                     cpus_per_task=cfg.cpus_per_task, mem_per_cpu_gb=cfg.mem_per_cpu_gb,
                                     workers=cfg.workers, logging_dir=str(logs), job_name="corpus-clean")
    from datatrove.executor import LocalPipelineExecutor

    return LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(cfg.workers, tasks), logging_dir=str(logs))


def _completed(logs: Path) -> int:
    folder = logs / "completions"
    return len(os.listdir(folder)) if folder.is_dir() else 0


def run_pass(name: str, pipeline: list, tasks: int, logs: Path, cfg: ExecutorConfig,
             on_progress: Callable[[str, int, int], None] | None = None) -> None:
    """Run one pass over `tasks` tasks and block until every task is marked complete."""
    if _completed(logs) >= tasks:
        if on_progress:
            on_progress(name, tasks, tasks)
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.5):
            on_progress(name, _completed(logs), tasks)

    watcher = threading.Thread(target=watch, daemon=True) if on_progress else None
    if watcher:
        watcher.start()
    try:
        _executor(pipeline, tasks, logs, cfg).run()
        while cfg.kind == "slurm" and _completed(logs) < tasks:  # Slurm jobs run detached: wait for them
            time.sleep(10)
    finally:
        stop.set()
    if _completed(logs) < tasks:
        raise RuntimeError(f"pass {name!r}: {tasks - _completed(logs)} of {tasks} tasks failed; see {logs}/logs")
    if on_progress:
        on_progress(name, tasks, tasks)


def plan_second_pass(work: Path, tasks: int, steps: list[str], config: CleanConfig) -> dict:
    """Find repeats across all tasks and the per-language sampling rates; written once, atomically."""
    from corpus.balance import balance_rates
    from corpus.exact_dedup import plan_duplicates
    from corpus.writers import load_index

    plan_path = work / "plan.json"
    if plan_path.exists():
        return json.loads(plan_path.read_text())
    indexes = [load_index(work, rank) for rank in range(tasks)]
    if "exact_dedup" in steps:
        keeps = plan_duplicates([h for h, _, _ in indexes])
    else:
        keeps = [np.ones(len(h), dtype=bool) for h, _, _ in indexes]
    for rank, keep in enumerate(keeps):
        atomic_write_npy(work / "keep" / f"{rank:05d}.npy", keep)
    near = None
    if "minhash" in steps:
        from corpus.minhash import SignatureFile, plan_near_duplicates, signature_path

        files = [SignatureFile.load(signature_path(work, rank)) for rank in range(tasks)]
        near = plan_near_duplicates(files, keeps, config.minhash)
        for rank, seen in enumerate(keeps):
            position, keep, kept_id, size = near.for_task(rank)
            # positions among the documents MinhashFilter sees (those exact_dedup kept); clustered ones all are
            atomic_write_npz(work / "minhash_plan" / f"{rank:05d}.npz", position=(np.cumsum(seen) - 1)[position],
                             keep=keep, kept_id=kept_id, size=size)
            keeps[rank] = seen.copy()
            keeps[rank][position[~keep]] = False
    quality_cut = None
    if _keeps_top_quality(steps, config):
        quality_cut = top_fraction_cut([q[k] for (_, _, q), k in zip(indexes, keeps)], config.quality.keep_top_fraction)
        if quality_cut is not None:  # unscored documents (NaN) are not judged, so they stay
            keeps = [k & ~(q < quality_cut) for (_, _, q), k in zip(indexes, keeps)]
    counts: dict[str, int] = {}
    for (_, langs, _), keep in zip(indexes, keeps):
        kept_langs, n = np.unique(langs[keep], return_counts=True)
        for lang, c in zip(kept_langs.tolist(), n.tolist()):
            counts[lang] = counts.get(lang, 0) + c
    counts = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    rates = balance_rates(counts, config.balance) if "balance" in steps else {}
    plan = {
        "near_duplicates": None if near is None else {
            "clusters": near.clusters, "removed": near.removed,
            "candidate_pairs": near.candidate_pairs, "verified_pairs": near.verified_pairs},
        "quality_cut": quality_cut,
        "languages_before_balance": counts,
        "rates": rates,
    }
    atomic_write_text(plan_path, json.dumps(plan, indent=2))
    return plan


def _keeps_top_quality(steps: list[str], config: CleanConfig) -> bool:
    return "quality" in steps and config.quality.keep_top_fraction is not None


def top_fraction_cut(scores: list[np.ndarray], fraction: float) -> float | None:
    """The score of the last document in the best `fraction` of all scored ones (ties at it are kept too)."""
    values = np.concatenate(scores) if scores else np.zeros(0)
    values = np.sort(values[~np.isnan(values)])[::-1]
    if not len(values):
        return None
    return float(values[max(1, int(np.ceil(fraction * len(values)))) - 1])


def build_pass_one(splits: list[InputSplit], steps: list[str], config: CleanConfig, out: Path, two_pass: bool) -> list:
    from corpus.writers import ShardWriter, WorkShardWriter

    def make(name: str):  # imports only the steps that run (ftfy and the heuristics are slow to import)
        if name == "normalize":
            from corpus.normalize import Normalizer

            return Normalizer(config.normalize, out)
        if name == "langid":
            from corpus.langid import LanguageIdentifier

            return LanguageIdentifier(config.langid, out)
        if name in ("quality", "toxicity"):
            from corpus.scoring import QualityScorer, ToxicityFilter

            return QualityScorer(config.quality, out) if name == "quality" else ToxicityFilter(config.toxicity, out)
        if name == "decontaminate":
            from corpus.decontaminate import Decontaminator

            return Decontaminator(config.decontaminate, out)
        if name == "pii":
            from corpus.pii import PiiScrubber

            return PiiScrubber(config.pii, out)
        from corpus.heuristics import HeuristicFilter

        return HeuristicFilter(config.heuristics, out)

    pipeline: list = [CorpusReader(splits, config.reader, out)]
    pipeline += [make(name) for name in steps if name in PASS_ONE]
    if "minhash" in steps:
        from corpus.minhash import MinhashSignature

        pipeline.append(MinhashSignature(config.minhash, out / "_work", out))
    if two_pass:
        pipeline.append(WorkShardWriter(out / "_work", config.exact_dedup if "exact_dedup" in steps else None,
                                        languages="balance" in steps, quality=_keeps_top_quality(steps, config)))
    else:
        pipeline.append(ShardWriter(out, config.output.format))
    return pipeline


def build_pass_two(steps: list[str], config: CleanConfig, out: Path, plan: dict) -> list:
    from corpus.balance import LanguageBalancer
    from corpus.exact_dedup import ExactDedupFilter
    from corpus.writers import ShardWriter, WorkShardReader

    pipeline: list = [WorkShardReader(out / "_work")]
    if "exact_dedup" in steps:
        pipeline.append(ExactDedupFilter(out / "_work" / "keep", out))
    if "minhash" in steps:
        from corpus.minhash import MinhashFilter

        pipeline.append(MinhashFilter(out / "_work" / "minhash_plan", out))
    if plan.get("quality_cut") is not None:
        from corpus.scoring import QualityTopFraction

        pipeline.append(QualityTopFraction(plan["quality_cut"], out))
    if "balance" in steps:
        pipeline.append(LanguageBalancer(config.balance, plan["rates"], out))
    pipeline.append(ShardWriter(out, config.output.format))
    return pipeline


def clean(
    inputs: list[str],
    output_dir: str | Path,
    config: CleanConfig | None = None,
    steps: list[str] | None = None,
    overwrite: bool = False,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> CleanResult:
    """Clean `inputs` into `output_dir`: the Python door onto exactly what `corpus clean` runs."""
    from corpus.report import write_report
    from corpus.stats import collect_stats

    config = config or CleanConfig()
    out = Path(output_dir)
    chosen = resolve_steps(steps, config)
    splits = plan_splits(discover_inputs([str(i) for i in inputs]), config.reader)
    tasks = config.executor.tasks or len(splits)
    _claim_output(out, _fingerprint(config, chosen, splits, tasks), overwrite)
    work = out / "_work"
    two_pass = any(name in chosen for name in PASS_TWO) or _keeps_top_quality(chosen, config)

    started = time.perf_counter()
    run_pass("process", build_pass_one(splits, chosen, config, out, two_pass), tasks, work / "logs" / "process",
             config.executor, on_progress)
    plan = None
    if two_pass:
        plan = plan_second_pass(work, tasks, chosen, config)
        run_pass("finalize", build_pass_two(chosen, config, out, plan), tasks, work / "logs" / "finalize",
                 config.executor, on_progress)
    wall = time.perf_counter() - started

    stats = collect_stats(out, splits, tasks, chosen, config, plan, wall)
    stats_path = out / "stats.json"
    atomic_write_text(stats_path, json.dumps(stats, indent=2, ensure_ascii=False))
    report_path = write_report(stats, out / "report.html")
    if not config.output.keep_work:
        shutil.rmtree(work / "docs", ignore_errors=True)
    return CleanResult(out, stats, stats_path, report_path)
