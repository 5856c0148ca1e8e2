"""Toxicity: corpusloop's shipped fastText models against alt-profanity-check, in one run, on held-out text.

    .venv/bin/python benchmarks/bench_toxicity.py [--data DIR]      # needs: pip install alt-profanity-check==1.9.1

Sets (none used to train our models):
  davidson-heldout  the 20% of Davidson et al.'s tweets our English model was not trained on (in-domain for
                    us; alt-profanity-check was reportedly trained on Davidson's data, so this favours it)
  davidson-hate     the same tweets labelled hate speech against those labelled neither (offensive left out):
                    hateful text, as against merely offensive
  ours-test         the test part of `corpus/models/labels/toxicity_en.jsonl`: HH-RLHF red-team messages and
                    replies, WNUT-17 YouTube comments and tweets, labelled toxic (and hateful) by us; neither
                    tool was trained on these texts (ours was trained on the train part, from the same sources)
  ours-test-hate    its hateful texts against its non-toxic ones
  jigsaw-sample     333 Jigsaw Wikipedia talk-page comments (out of domain for us: tweets vs Wikipedia talk;
                    alt-profanity-check's training data reportedly includes Jigsaw's)
  cold-dev          COLD dev comments not in COLD train (Chinese; alt-profanity-check is English-only)
  benign-answers    427 human-written Self-Instruct answers (ordinary helpful text, none toxic): the share
                    each tool flags is its false-positive rate on what an assistant writes
--test-en FILE / --test-zh FILE (repeatable) add any labelled JSONL file, such as a held-out test split: a
`text` and a `toxic` or `label` field (true/false, 0/1, or Davidson's and COLD's label names).
ROC AUC, and F1 at each tool's decision threshold (ours: the shipped 0.3; alt-profanity-check: 0.5, its
`predict`). Speed: texts per second on one core, scored one list at a time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corpus.classifier import TextClassifier, is_heldout, read_labelled, roc_auc
from corpus.io import iter_records
from corpus.models.build_models import TOXICITY_EN_LABELS
from corpus.scoring import SHIPPED_TOXICITY

THRESHOLD = 0.3


def f1_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    pred = scores >= threshold
    tp = int((pred & labels).sum())
    precision = tp / pred.sum() if pred.any() else 0.0
    recall = tp / labels.sum() if labels.any() else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


TOXIC_NAMES = ["hate_speech", "offensive_language", "offensive", "toxic", "1", "true", "True"]


def labelled_set(path: Path) -> list[tuple[str, bool]]:
    """(text, toxic) from a JSONL file with `text` and `toxic` (or else `label`): true, 1, or Davidson's and
    COLD's names of the toxic classes; a bad line names the file, line and field."""
    first = next(iter_records(path), (0, {}))[1]
    return read_labelled(path, label_field="toxic" if "toxic" in first else "label", positive=TOXIC_NAMES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--test-en", type=Path, action="append", default=[], help="another labelled English set")
    parser.add_argument("--test-zh", type=Path, action="append", default=[], help="another labelled Chinese set")
    args = parser.parse_args()
    load = lambda p: [record for _, record in iter_records(p)]
    tweets = [r for r in load(args.data / "toxicity_en" / "davidson_tweets.jsonl") if is_heldout(r["text"], 0.2, 0)]
    davidson = [(r["text"], bool(r["toxic"])) for r in tweets]
    hate = [(r["text"], r["label"] == "hate_speech") for r in tweets if r["label"] in ("hate_speech", "neither")]
    jigsaw = [(r["text"], bool(r["toxic"])) for r in load(args.data / "toxicity_en" / "jigsaw_wikipedia_comments_sample.jsonl")]
    train_zh = {r["text"] for r in load(args.data / "toxicity_zh" / "cold_train.jsonl")}
    cold = [(r["text"], bool(r["label"])) for r in load(args.data / "toxicity_zh" / "cold_dev.jsonl")
            if r["text"] not in train_zh]

    ours_en, ours_zh = TextClassifier(SHIPPED_TOXICITY["en"]), TextClassifier(SHIPPED_TOXICITY["zh"])
    methods = {"corpusloop (fastText, shipped)": lambda texts, lang: (ours_zh if lang == "zh" else ours_en).scores(texts)}
    try:
        from profanity_check import predict_prob

        methods["alt-profanity-check 1.9.1"] = lambda texts, lang: None if lang == "zh" else predict_prob(texts)
    except ImportError:
        print("alt-profanity-check is not installed: pip install alt-profanity-check==1.9.1 (benchmark only)\n")

    benign = [r["output"] for r in load(args.data / "sft" / "self_instruct_human_written.jsonl") if r["output"].strip()]

    print("| set | texts | method | ROC AUC | F1 at its threshold | texts/s |")
    print("|---|---:|---|---:|---:|---:|")
    ours = [r for r in load(TOXICITY_EN_LABELS) if r["split"] == "test"]
    sets = [("davidson-heldout", davidson, "en"), ("davidson-hate", hate, "en"), ("jigsaw-sample", jigsaw, "en"),
            ("ours-test", [(r["text"], r["toxic"]) for r in ours], "en"),
            ("ours-test-hate", [(r["text"], r["hateful"]) for r in ours if r["hateful"] or not r["toxic"]], "en"),
            ("cold-dev", cold, "zh")]
    sets += [(path.stem, labelled_set(path), lang) for lang in ("en", "zh") for path in getattr(args, f"test_{lang}")]
    for name, data, lang in sets:
        texts, labels = [t for t, _ in data], np.array([y for _, y in data], dtype=bool)
        for method, score in methods.items():
            start = time.perf_counter()
            scores = score(texts, lang)
            seconds = time.perf_counter() - start
            if scores is None:
                print(f"| {name} | {len(texts)} | {method} | n/a (English only) | | |")
                continue
            threshold = THRESHOLD if method.startswith("corpusloop") else 0.5
            print(f"| {name} | {len(texts)} | {method} | {roc_auc(labels, np.asarray(scores)):.3f} | "
                  f"{f1_at(labels, np.asarray(scores), threshold):.3f} | {len(texts) / seconds:,.0f} |")
    print("\n| set | texts | method | share flagged at its threshold (false positives) |")
    print("|---|---:|---|---:|")
    for method, score in methods.items():
        threshold = THRESHOLD if method.startswith("corpusloop") else 0.5
        print(f"| benign-answers | {len(benign)} | {method} | {(np.asarray(score(benign, 'en')) >= threshold).mean():.3f} |")


if __name__ == "__main__":
    main()
