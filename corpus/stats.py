"""Merges the per-task statistics datatrove saved for every step into one `stats.json`."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from corpus import __version__
from corpus.config import CleanConfig
from corpus.readers import InputSplit, split_summary
from corpus.writers import SHARD_PREFIX


def _total(value) -> float:
    return value["total"] if isinstance(value, dict) else value


def _merge_pass(logs: Path) -> dict[str, dict[str, float]]:
    """{step name: {label: total over all tasks}} for one pass, plus `_time` (seconds) per step."""
    merged: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for path in sorted((logs / "stats").glob("*.json")):
        for step in json.loads(path.read_text()):
            bucket = merged[step["name"]]
            for label, value in step.get("stats", {}).items():
                bucket[label] += _total(value)
            bucket["_time"] += _total(step.get("time_stats") or 0)
    return merged


def _prefixed(counters: dict[str, float], prefix: str) -> dict[str, int]:
    items = {k[len(prefix):]: int(v) for k, v in counters.items() if k.startswith(prefix)}
    return dict(sorted(items.items(), key=lambda kv: (-kv[1], kv[0])))


def _histogram(counters: dict[str, float]) -> dict[str, int]:
    items = {k[4:]: int(v) for k, v in counters.items() if k.startswith("len/")}
    return {k: items[k] for k in sorted(items, key=int)}


def collect_stats(out: Path, splits: list[InputSplit], tasks: int, steps: list[str], config: CleanConfig,
                  plan: dict | None, wall_seconds: float) -> dict:
    """Assemble the run's statistics: per step counts, removals, languages, lengths, throughput."""
    logs = out / "_work" / "logs"
    passes = [_merge_pass(logs / "process")]
    if (logs / "finalize").is_dir():
        passes.append(_merge_pass(logs / "finalize"))
    table: list[dict] = []
    by_name: dict[str, dict[str, float]] = {}
    for merged in passes:
        for name, counters in merged.items():
            if name in ("work_write", "work_read", "minhash_signature"):
                continue
            by_name[name] = counters
            row = {
                "step": name,
                "docs_in": int(counters.get("docs_in", counters.get("docs_out", 0) + counters.get("rejected", 0))),
                "docs_out": int(counters.get("docs_out", 0)),
                "bytes_in": int(counters.get("bytes_in", counters.get("bytes_out", 0))),
                "bytes_out": int(counters.get("bytes_out", 0)),
                "time_s": round(counters.get("_time", 0.0), 3),
            }
            if name == "read":
                row["rejected"] = _prefixed(counters, "rejected/")
            else:
                row["removed"] = _prefixed(counters, "removed/")
            if "changed" in counters:
                row["changed"] = int(counters["changed"])
            table.append(row)
    read = by_name.get("read", {})
    write = by_name.get("write", {})
    languages = {}
    if "langid" in by_name:
        languages["detected"] = _prefixed(by_name["langid"], "lang/")
    if "balance" in by_name:
        languages["before_balance"] = _prefixed(by_name["balance"], "lang_in/")
        languages["after_balance"] = _prefixed(by_name["balance"], "lang_out/")
    if plan and plan.get("rates"):
        languages["rates"] = {k: round(v, 6) for k, v in plan["rates"].items()}
    input_summary = split_summary(splits)
    cpu_seconds = sum(row["time_s"] for row in table)
    shards = sorted(p.name for p in out.glob(f"{SHARD_PREFIX}*") if not p.name.endswith(".tmp"))
    return {
        "corpusloop_version": __version__,
        "steps_run": steps,
        "tasks": tasks,
        "workers": config.executor.workers,
        "executor": config.executor.kind,
        "input": input_summary,
        "steps": table,
        "rejected_total": int(read.get("rejected", 0)),
        "removed_total": int(sum(sum(row.get("removed", {}).values()) for row in table)),
        "languages": languages,
        "near_duplicates": (plan or {}).get("near_duplicates"),
        "quality_cut": (plan or {}).get("quality_cut"),
        "pii": {"documents": int(by_name["pii"].get("docs_with_pii", 0)), "by_type": _prefixed(by_name["pii"], "pii/")}
        if "pii" in by_name else None,
        "length_histogram": {"input": _histogram(read), "output": _histogram(write)},
        "output": {"docs": int(write.get("docs_out", 0)), "bytes": int(write.get("bytes_out", 0)), "shards": shards},
        "throughput": {
            "wall_seconds": round(wall_seconds, 3),
            "step_seconds": round(cpu_seconds, 3),
            "input_mb_per_wall_second": round(input_summary["bytes"] / 1e6 / wall_seconds, 3) if wall_seconds else None,
        },
    }
