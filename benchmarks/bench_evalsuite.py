"""Overhead of `evalsuite run` over calling lm-evaluation-harness directly, on the same tasks in one process.

    .venv/bin/python benchmarks/bench_evalsuite.py [--repeats 6]

Builds a tiny GPT-2 (tokenizer trained on the bundled sample corpus, random weights), then alternates
`evalsuite.run.run` (the built-in `core` suite: suite resolution, offline set-up, model checks, run folder
with samples, manifest and summary) with lm-eval's `simple_evaluate` on the same task YAML and model
settings, and prints the wall time of each and the ratio of the medians (the first, warm-up pair left out).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HOME", str(ROOT / ".cache" / "hf"))


def tiny_model(folder: Path) -> str:
    from corpus.io import iter_jsonl
    from train.tiny import build_tiny_gpt2

    texts = [r["text"] for _, r in iter_jsonl(ROOT / "corpus" / "data" / "sample" / "web_en.jsonl")][:200]
    return str(build_tiny_gpt2(folder, texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from evalsuite.run import RunConfig, load_suite, materialise_tasks, run

    work = Path(tempfile.mkdtemp(prefix="bench-evalsuite-"))
    model = tiny_model(work / "tiny")
    tasks = load_suite("core").tasks
    ours, direct = [], []
    for rep in range(args.repeats):
        start = time.perf_counter()
        run(RunConfig(model=model, output=str(work / f"run{rep}"), batch_size=8))
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        manager = TaskManager(include_path=str(materialise_tasks(work / f"direct{rep}")))
        simple_evaluate(model=HFLM(pretrained=model, device="cpu", batch_size=8), tasks=tasks, task_manager=manager,
                        log_samples=True)
        direct.append(time.perf_counter() - start)
    a, b = statistics.median(ours[1:]), statistics.median(direct[1:])
    print(f"\n| method | median seconds ({args.repeats - 1} warm runs) |\n|---|---:|")
    print(f"| evalsuite run (core suite, tiny GPT-2, CPU) | {a:.2f} |\n| lm-eval simple_evaluate, same tasks | {b:.2f} |")
    print(f"\noverhead ratio: {a / b:.3f}")


if __name__ == "__main__":
    main()
