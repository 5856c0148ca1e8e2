"""Rebuild the benchmark slices shipped with the built-in tasks from the evaluation data they come from
(`../shared/data/eval_benchmarks` in the development workspace; see README.md beside this file):

    python -m evalsuite.tasks.data.build_slices ../shared/data/eval_benchmarks

Deterministic: the same input gives byte-identical files. Slices are spread evenly over each source (every
k-th record) so that every subject of CMMLU is represented."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from corpus.io import atomic_write_text, iter_jsonl

HERE = Path(__file__).resolve().parent

# (output, source file, records); None keeps the source's first `records` (the few-shot pool)
SLICES = [
    ("arc_easy.jsonl", "en/arc_easy_validation.jsonl", 200, None),
    ("nq_open.jsonl", "en/nq_open_validation.jsonl", 200, "spread"),
    ("gsm8k.jsonl", "en/gsm8k_test.jsonl", 200, "spread"),
    ("gsm8k_fewshot.jsonl", "en/gsm8k_train.jsonl", 8, None),
    ("cmmlu.jsonl", "zh/cmmlu_test.jsonl", 201, "spread"),
]


def take(records: list[dict], n: int, how: str | None) -> list[dict]:
    if how is None or len(records) <= n:
        return records[:n]
    step = len(records) / n
    return [records[int(i * step)] for i in range(n)]


def main(source: str) -> None:
    root = Path(source)
    for name, path, n, how in SLICES:
        records = [r for _, r in iter_jsonl(root / path)]
        chosen = take(records, n, how)
        atomic_write_text(HERE / name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chosen))
        print(f"{name}: {len(chosen)} of {len(records)} records of {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/eval_benchmarks")
