"""Refusal detector (`corpus/refusal.py`): precision, recall and F1 on the held-out part of our labelled sample.

    .venv/bin/python benchmarks/bench_refusal.py

The sample (`evalsuite/tasks/data/refusal_labelled.jsonl`, 600 replies, labels ours; see the data README for
how it was drawn and labelled) is split into dev (40% of each language and label; the patterns were tuned on
it) and held-out (the other 60%; never looked at while tuning). Figures are on held-out only: overall, by
language and by source, with the count of refusals each rests on.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corpus.io import iter_jsonl
from corpus.refusal import is_refusal, measure

SAMPLE = ROOT / "evalsuite" / "tasks" / "data" / "refusal_labelled.jsonl"


def heldout() -> list[dict]:
    return [r for _, r in iter_jsonl(SAMPLE) if r["split"] == "heldout"]


def main() -> None:
    rows = heldout()
    groups = {"all": rows, **{f"lang={lang}": [r for r in rows if r["lang"] == lang] for lang in ("en", "zh")},
              **{f"source={s}": [r for r in rows if r["source"] == s] for s in sorted({r["source"] for r in rows})}}
    print(f"{'held-out part':<20} {'replies':>7} {'refusals':>8} {'precision':>9} {'recall':>7} {'F1':>6}")
    for name, part in groups.items():
        s = measure([(r["response"], r["refusal"]) for r in part])
        print(f"{name:<20} {s['replies']:>7} {s['refusals']:>8} {s['precision']:>9.3f} {s['recall']:>7.3f} "
              f"{s['f1']:>6.3f}")
    texts = [r["response"] for r in rows] * 20
    started = time.perf_counter()
    for text in texts:
        is_refusal(text)
    print(f"speed: {len(texts) / (time.perf_counter() - started):,.0f} replies/s on one core")


if __name__ == "__main__":
    main()
