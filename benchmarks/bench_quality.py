"""Quality scores against quality judgements of web documents: does the shipped `quality` model rank the
documents people rate well above those they rate poorly?

    .venv/bin/python benchmarks/bench_quality.py [--data DIR]
    .venv/bin/python benchmarks/bench_quality.py --judgements FILE.jsonl [--rating-field rating] [--good-from 3]

Default set: the `test` part of `corpus/models/labels/web_quality.jsonl`, 385 web documents (128 English C4
and web samples, 257 Chinese CLUECorpusSmall documents) from `raw_web_en` / `raw_web_zh`, each rated 1-5 by
reading it (see `corpus/models/README.md`). The shipped model was trained on the `train` part and its
settings chosen on the `dev` part (247 documents, shown apart); the test part was used for nothing else. With
`--judgements`, any JSONL file with `text` and a numeric rating (or a true/false label) is measured the same
way.

Per language: ROC AUC of the score for "rated at least 3" (acceptable or better) and for "at least 4"
(good), and Spearman's rank correlation with the rating. Beside the shipped model, in the same run:
document length in characters, and datatrove's heuristic quality filters as FineWeb runs them (Gopher
quality, C4 quality without the terminal-punctuation rule, FineWeb quality; a document passes when all
three keep it), whose pass/fail is their score; these filters count English words, so they are shown for
English only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corpus.classifier import TextClassifier, roc_auc
from corpus.config import ConfigError
from corpus.io import iter_records
from corpus.models.build_models import WEB_RATINGS, raw_web_texts
from corpus.scoring import SHIPPED_QUALITY

SHORT = 200  # characters: pages under this were rated in a second round (reviews, stubs)


def rated_documents(data: Path) -> list[dict]:
    """The ratings of the dev and test parts joined with their documents' text (read from the shared data)."""
    ratings = [r for _, r in iter_records(WEB_RATINGS) if r["split"] != "train"]
    texts = raw_web_texts(data, {r["id"] for r in ratings})
    return [{**r, "text": texts[r["id"]]} for r in ratings]


def judged_documents(path: Path, rating_field: str) -> list[dict]:
    """Documents of any JSONL file with `text` and a rating or a true/false label; a bad line is an error
    naming the file, line and field."""
    docs = []
    for line, r in iter_records(path):
        value = r.get(rating_field)
        if not isinstance(r.get("text"), str) or not isinstance(value, (bool, int, float)):
            raise ConfigError(f"{path}:{line}: needs a string 'text' and a numeric or true/false '{rating_field}'")
        docs.append({"text": r["text"], "rating": float(value), "lang": r.get("lang", "all"), "split": "given"})
    return docs


def datatrove_heuristics():
    """Pass (1.0) or fail (0.0) of datatrove's Gopher, C4 and FineWeb quality filters, as FineWeb runs them."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter

    filters = [GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter()]

    def passes(text: str) -> float:
        for f in filters:
            kept = f.filter(Document(text=text, id="0"))
            if not (kept[0] if isinstance(kept, tuple) else kept):
                return 0.0
        return 1.0

    return lambda texts: np.array([passes(t) for t in texts])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0]) if len(set(a)) > 1 and len(set(b)) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--judgements", type=Path, help="another rated JSONL file (text + rating) to measure on")
    parser.add_argument("--rating-field", default="rating")
    parser.add_argument("--good-from", type=float, default=3, help="ratings at or above this count as good")
    parser.add_argument("--model", type=Path, default=SHIPPED_QUALITY, help="the quality model to measure")
    args = parser.parse_args()
    docs = judged_documents(args.judgements, args.rating_field) if args.judgements else rated_documents(args.data)
    model = TextClassifier(args.model)
    methods = {f"corpusloop {args.model.name}": lambda texts: model.scores(texts),
               "length (characters)": lambda texts: np.array([len(t) for t in texts], dtype=float),
               "datatrove Gopher+C4+FineWeb filters": datatrove_heuristics()}
    parts = {}
    for split in sorted({d["split"] for d in docs}, key=lambda s: s != "test"):
        for lang in sorted({d["lang"] for d in docs}) + (["all"] if len({d["lang"] for d in docs}) > 1 else []):
            parts[f"{split} {lang}"] = [d for d in docs if d["split"] == split and lang in ("all", d["lang"])]
        for name, is_short in ((f"{split} long (>= {SHORT} chars)", False), (f"{split} short", True)):
            parts[name] = [d for d in docs if d["split"] == split and (len(d["text"]) < SHORT) == is_short]
    parts = {name: part for name, part in parts.items() if part}
    print(f"| part | docs | good (>= {args.good_from:g}) | method | ROC AUC good | ROC AUC >= {args.good_from + 1:g} | Spearman |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for name, part in parts.items():
        ratings = np.array([d["rating"] for d in part])
        for method, score in methods.items():
            if method.startswith("datatrove") and not name.endswith(" en"):
                continue  # English word statistics
            scores = score([d["text"] for d in part])
            top = ratings >= args.good_from + 1
            top_auc = f"{roc_auc(top, scores):.3f}" if 0 < top.sum() < len(top) else "n/a"
            print(f"| {name} | {len(part)} | {int((ratings >= args.good_from).sum())} | {method} | "
                  f"{roc_auc(ratings >= args.good_from, scores):.3f} | {top_auc} | {spearman(ratings, scores):.3f} |")


if __name__ == "__main__":
    main()
