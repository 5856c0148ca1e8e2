"""Throughput of `corpus clean` against stock datatrove running the same steps, in the same run, on one core.

    make bench                       # or: .venv/bin/python benchmarks/bench_clean.py [--data DIR] [--limit N]

Inputs: the real raw EN and ZH web corpora of ../shared/data (raw_web_en, raw_web_zh), or --data.
Same steps on both sides, each at its defaults, one worker (MB/s is per core):
  stock datatrove: JsonlReader -> FTFYFormatter -> LanguageFilter (lid.176, keep all) -> GopherRepetitionFilter
                   -> GopherQualityFilter -> C4QualityFilter (FineWeb's settings) -> FineWebQualityFilter -> JsonlWriter
  corpusloop:      corpus clean --steps normalize,langid,heuristics
Then the full corpusloop pipeline (adds exact_dedup, minhash and balance, two passes) for reference.
Needs the `bench` extra (spaCy: datatrove's English word tokenizer).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LOGURU_LEVEL", "WARNING")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def stock_datatrove(inputs: list[Path], work: Path) -> tuple[float, int]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.formatters import FTFYFormatter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.lid import FT176LID

    from corpus.langid import bundled_model_path, load_fasttext

    class OfflineFT176(FT176LID):
        # datatrove's LanguageFilter downloads lid.176.bin at run time; this loads the bundled .ftz instead
        @property
        def model(self):
            if self._model is None:
                self._model = load_fasttext(bundled_model_path())
            return self._model

    language = LanguageFilter(languages=None, language_threshold=-1.0)
    language.model = OfflineFT176(None)
    folder = work / "dt_in"
    folder.mkdir()
    for i, p in enumerate(inputs):
        os.symlink(p.resolve(), folder / f"{i}_{p.name}")
    pipeline = [
        JsonlReader(str(folder), glob_pattern="*.jsonl"),
        FTFYFormatter(),
        language,
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
        JsonlWriter(str(work / "dt_out")),
    ]
    executor = LocalPipelineExecutor(pipeline, tasks=len(inputs), workers=1, logging_dir=str(work / "dt_logs"))
    start = time.perf_counter()
    executor.run()
    seconds = time.perf_counter() - start
    kept = 0
    for stats_file in (work / "dt_logs" / "stats").glob("*.json"):
        for step in json.loads(stats_file.read_text()):
            if "Jsonl" in step["name"] and "Writer" in step["name"] or step["name"].startswith("💽"):
                total = step["stats"].get("total", 0)
                kept += total["total"] if isinstance(total, dict) else total
    return seconds, kept


def corpusloop(inputs: list[Path], out: Path, steps: list[str] | None, config: Path | None = None,
               overrides: dict | None = None) -> tuple[float, dict]:
    from corpus.config import load_config
    from corpus.pipeline import clean

    cfg = load_config(config, overrides={"executor": {"workers": 1}, **(overrides or {})})
    start = time.perf_counter()
    result = clean([str(p) for p in inputs], out, cfg, steps)
    return time.perf_counter() - start, result.stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N lines of each corpus")
    parser.add_argument("--config", type=Path, help="config of the full-pipeline run (e.g. a balancing target)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-clean-"))
    try:
        inputs = []
        for name in ("raw_web_en", "raw_web_zh"):
            src = args.data / name / "docs.jsonl"
            if not src.is_file():
                sys.exit(f"missing {src}: pass --data to the folder holding raw_web_en/ and raw_web_zh/")
            if args.limit:
                dst = work / f"{name}.jsonl"
                with open(src, "rb") as f, open(dst, "wb") as g:
                    for i, line in enumerate(f):
                        if i >= args.limit:
                            break
                        g.write(line)
                src = dst
            inputs.append(src)
        mb = sum(p.stat().st_size for p in inputs) / 1e6
        print(f"input: {', '.join(str(p) for p in inputs)} ({mb:.1f} MB), 1 worker, cpu count {os.cpu_count()}")

        dt_seconds, dt_kept = stock_datatrove(inputs, work)
        ours_seconds, ours = corpusloop(inputs, work / "ours", ["normalize", "langid", "heuristics"])
        full_seconds, full = corpusloop(inputs, work / "full", None, args.config)

        rows = [
            ("stock datatrove 0.10.1 (same steps)", dt_seconds, dt_kept),
            ("corpusloop (same steps)", ours_seconds, ours["output"]["docs"]),
            ("corpusloop full pipeline (+pii, exact_dedup, minhash, balance)", full_seconds, full["output"]["docs"]),
        ]
        print("\n| pipeline | seconds | MB/s per core | docs kept | vs datatrove |\n|---|---:|---:|---:|---:|")
        for name, seconds, kept in rows:
            print(f"| {name} | {seconds:.1f} | {mb / seconds:.2f} | {kept} | {dt_seconds / seconds:.2f}x |")

        print("\ncorpusloop full pipeline, documents per step:")
        print("| step | in | out | removed (top reasons) |\n|---|---:|---:|---|")
        for row in full["steps"]:
            reasons = row.get("removed") or row.get("rejected") or {}
            top = ", ".join(f"{k} {v}" for k, v in list(reasons.items())[:4])
            print(f"| {row['step']} | {row['docs_in']} | {row['docs_out']} | {top} |")
        content_steps = ["langid", "quality", "toxicity", "decontaminate", "pii"]
        _, content = corpusloop(inputs, work / "content", content_steps, overrides={
            "quality": {"enabled": True}, "toxicity": {"enabled": True, "mode": "flag"},
            "decontaminate": {"enabled": True, "benchmarks": [str(args.data / "eval_benchmarks")], "mode": "flag"}})
        print("\ncontent steps on the same input (every document, nothing removed before them), one core:")
        print("| step | MB in | seconds | MB/s per core | documents/s |\n|---|---:|---:|---:|---:|")
        for row in content["steps"]:
            if row["step"] in content_steps and row["time_s"]:
                print(f"| {row['step']} | {row['bytes_in'] / 1e6:.1f} | {row['time_s']:.1f} | "
                      f"{row['bytes_in'] / 1e6 / row['time_s']:.2f} | {row['docs_in'] / row['time_s']:,.0f} |")
        langs = full["languages"]
        top = list(langs["before_balance"])[:6]
        print("\nlanguages (top 6) | before balance | after balance | rate")
        for lang in top:
            print(f"{lang} | {langs['before_balance'][lang]} | {langs['after_balance'].get(lang, 0)} | "
                  f"{langs['rates'].get(lang, 1.0):.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
