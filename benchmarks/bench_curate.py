"""`corpus curate` on every SFT and preference file in ../shared/data: what each check removed and flagged,
and records per second (one process, models loaded once per file; loading included).

    .venv/bin/python benchmarks/bench_curate.py [--data DIR]

No peer runs here yet (data-juicer's fine-tuning operators on the same files are the comparison still to do),
so the table is our own figures only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corpus.finetune.curate import CurateConfig, curate


def show(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
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


if __name__ == "__main__":
    main()
