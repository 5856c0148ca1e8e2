"""`corpus curate` on every SFT and preference file in ../shared/data: what each check removed and flagged,
and records per second (one process, models loaded once per file; loading included).

    .venv/bin/python benchmarks/bench_curate.py [--data DIR] [--data-juicer PYTHON]

Then, against data-juicer 1.6.1 on the three SFT files, both run as their command-line tools (`corpus curate`,
`dj-process`), one process each, wall time from start to written output. The steps are the ones both have:
e-mail and IP addresses scrubbed, then exact and MinHash near-duplicate removal (Jaccard 0.8; data-juicer
shingles words, or characters for Chinese). data-juicer works on one text field, so it gets each record's
prompt and reply joined; corpusloop keeps the records as they are and compares prompts. corpusloop's
checks and toxicity filter are off, but it still scores toxicity, quality and language. data-juicer runs from
its own virtual environment (`--data-juicer`, default `.cache/dj-venv/bin/python`; `make bench` makes it,
since its pins clash with ours).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corpus.finetune.curate import CurateConfig, curate


def show(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


SAME_STEPS = {"pii": {"entities": ["EMAIL", "IP_ADDRESS"]}, "toxicity": "off", "dedup": "near", "near_threshold": 0.8,
              "checks": {"empty_response": "off", "truncated_response": "off", "repeats_prompt": "off",
                         "refusal": "off", "near_identical_pair": "off", "length_only_pair": "off"}}


def data_juicer_config(source: Path, work: Path, chinese: bool) -> Path:
    """data-juicer's input (prompt and reply joined into `text`) and a config with the same steps as SAME_STEPS."""
    with open(work / "in.jsonl", "w", encoding="utf-8") as out:
        for line in source.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            text = "\n\n".join(x for x in (r["instruction"], r.get("input", ""), r["output"]) if x)
            out.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    config = {"project_name": "bench", "dataset_path": str(work / "in.jsonl"), "export_path": str(work / "out" / "out.jsonl"),
              "np": 1, "text_keys": "text", "open_tracer": False,
              "process": [{"clean_email_mapper": {}}, {"clean_ip_mapper": {}},
                          {"document_deduplicator": {"lowercase": True, "ignore_non_character": True}},
                          {"document_minhash_deduplicator": {"tokenization": "character" if chinese else "space",
                                                             "jaccard_threshold": 0.8}}]}
    (work / "dj.yaml").write_text(json.dumps(config))  # JSON is YAML
    return work / "dj.yaml"


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
    if done.returncode:
        raise SystemExit(f"{command[0]} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def against_data_juicer(data: Path, dj_python: Path) -> None:
    if not dj_python.exists():
        print(f"\ndata-juicer is not installed at {dj_python}: make bench sets it up (peer run skipped)")
        return
    corpus_cli = Path(sys.executable).parent / "corpus"
    print("\n| file | records | tool | written | seconds | records/s | vs data-juicer |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name in ("alpaca_en_gpt4_llamafactory", "alpaca_zh_gpt4_llamafactory", "self_instruct_human_written"):
        source = data / "sft" / f"{name}.jsonl"
        records = len(source.read_text(encoding="utf-8").splitlines())
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            (work / "ours.yaml").write_text(json.dumps(SAME_STEPS))
            ours = timed([str(corpus_cli), "curate", str(source), "--output", str(work / "ours"),
                          "--config", str(work / "ours.yaml")])
            ours_written = json.loads((work / "ours" / "stats.json").read_text())["output"]["records"]
            theirs = timed([str(dj_python.parent / "dj-process"), "--config",
                            str(data_juicer_config(source, work, "_zh_" in name))])
            theirs_written = len((work / "out" / "out.jsonl").read_text(encoding="utf-8").splitlines())
        for tool, seconds, written in (("corpusloop", ours, ours_written), ("data-juicer 1.6.1", theirs, theirs_written)):
            print(f"| sft/{name} | {records} | {tool} | {written} | {seconds:.1f} | {records / seconds:,.0f} | "
                  f"{theirs / seconds:.2f}x |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--data-juicer", type=Path, default=ROOT / ".cache" / "dj-venv" / "bin" / "python",
                        help="the python of a virtual environment with py-data-juicer 1.6.1")
    args = parser.parse_args()
    files = sorted((args.data / "sft").glob("*.jsonl")) + sorted((args.data / "preference").glob("*.jsonl"))
    print("| file | format | records | removed | flagged | written | records/s |")
    print("|---|---|---:|---|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for path in files:
            started = time.perf_counter()
            s = curate([path], Path(tmp) / path.stem, CurateConfig(), progress=False).stats
            seconds = time.perf_counter() - started
            print(f"| {path.parent.name}/{path.name} | {', '.join(s['input']['formats'])} | {s['input']['records']} "
                  f"| {show(s['removed'])} | {show(s['flagged'])} | {s['output']['records']} "
                  f"| {s['input']['records'] / seconds:,.0f} |", flush=True)
    against_data_juicer(args.data, args.data_juicer)


if __name__ == "__main__":
    main()
