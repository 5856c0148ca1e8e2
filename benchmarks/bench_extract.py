"""HTML-to-text extraction for WARC input: trafilatura (through datatrove) against resiliparse.

    .venv/bin/python benchmarks/bench_extract.py [--data DIR]

Data: the 141 labelled pages of the Zyte/Scrapinghub article extraction benchmark in
../shared/data/web_html (raw HTML with a human-checked article body). Quality is bag-of-words precision,
recall and F1 of the extracted text against the article body (as the benchmark's own evaluation does,
on whitespace tokens); speed is pages per second on one core.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prf(predicted: str, truth: str) -> tuple[float, float, float]:
    p, t = Counter(predicted.split()), Counter(truth.split())
    common = sum((p & t).values())
    precision = common / max(1, sum(p.values()))
    recall = common / max(1, sum(t.values()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def extractors():
    from datatrove.pipeline.extractors import Trafilatura
    from resiliparse.extract.html2text import extract_plain_text

    trafilatura = Trafilatura(favour_precision=True, deduplicate=False)
    return {
        "trafilatura (datatrove, favour_precision)": lambda html: trafilatura.extract(html) or "",
        "resiliparse (main_content)": lambda html: extract_plain_text(html, main_content=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    base = args.data / "web_html" / "article_extraction_benchmark"
    if not base.is_dir():
        sys.exit(f"missing {base}: pass --data")
    truth = json.loads((base / "ground-truth.json").read_text())
    pages = []
    for page_id, item in sorted(truth.items()):
        raw = gzip.decompress((base / "html" / f"{page_id}.html.gz").read_bytes())
        pages.append((raw.decode("utf-8", errors="replace"), item["articleBody"]))
    print(f"{len(pages)} labelled pages\n")
    print("| extractor | precision | recall | F1 | pages/s |\n|---|---:|---:|---:|---:|")
    for name, extract in extractors().items():
        scores = []
        start = time.perf_counter()
        texts = [extract(html) for html, _ in pages]
        seconds = time.perf_counter() - start
        scores = [prf(text, body) for text, (_, body) in zip(texts, pages)]
        mean = [sum(s[i] for s in scores) / len(scores) for i in range(3)]
        print(f"| {name} | {mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f} | {len(pages) / seconds:.1f} |")


if __name__ == "__main__":
    main()
