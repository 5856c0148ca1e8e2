"""Binary fastText text classifiers: training with a held-out split and a threshold table, and scoring.

fastText (supervised, word bigrams and character n-grams) is what DCLM and FineWeb-style pipelines use for
quality and toxicity filters: small, CPU-fast, and good enough to rank documents. Texts are prepared the
same way for training and scoring (`fasttext_line`): lower case, one line, and characters of scripts
without spaces split apart, because fastText tokenises on whitespace only and would otherwise see a whole
Chinese clause as one unknown word. Training runs on one thread with a fixed seed, so a rebuild gives the
same model.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import xxhash

from corpus.config import ConfigError
from corpus.io import atomic_write_text, iter_jsonl
from corpus.langid import load_fasttext

POSITIVE, NEGATIVE = "__label__pos", "__label__neg"
MAX_CHARS = 8000  # a document's first characters decide; longer lines cost time and change little
_CJK = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u0e00-\u0e7f])")
_SPACE = re.compile(r"\s+")


def fasttext_line(text: str) -> str:
    """A text as fastText sees it, for training and scoring alike."""
    text = _CJK.sub(r" \1 ", text[:MAX_CHARS].lower())
    return _SPACE.sub(" ", text).strip()


@dataclass
class ClassifierConfig:
    """fastText training settings (defaults suit a few thousand to a few million short documents)."""

    epoch: int = 10
    lr: float = 0.2
    dim: int = 32
    word_ngrams: int = 2
    minn: int = 2  # character n-grams of 2-4: misspellings, obfuscated slurs, CJK words
    maxn: int = 4
    min_count: int = 1
    bucket: int = 200_000  # hash buckets for word and character n-grams (fastText's 2M make 500 MB models)
    heldout: float = 0.2  # share of the labelled data kept out of training, to measure on
    seed: int = 0
    quantize: bool = False  # write a small .ftz (product quantisation, vocabulary cut to `cutoff`)
    cutoff: int = 20_000


@dataclass
class ClassifierReport:
    """What training measured on the held-out split."""

    train_docs: int
    heldout_docs: int
    positives_train: int
    roc_auc: float
    thresholds: list[dict] = field(default_factory=list)  # {threshold, precision, recall, f1}
    model_path: str = ""
    model_bytes: int = 0

    def at(self, threshold: float) -> dict:
        return min(self.thresholds, key=lambda row: abs(row["threshold"] - threshold))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random negative (ties
    count half), by ranks."""
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    i = 0
    while i < len(sorted_scores):  # average ranks over ties
        j = i
        while j + 1 < len(sorted_scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def threshold_table(labels: np.ndarray, scores: np.ndarray, steps: int = 9) -> list[dict]:
    rows = []
    labels = np.asarray(labels, dtype=bool)
    for t in np.linspace(0.1, 0.9, steps):
        pred = scores >= t
        tp = int((pred & labels).sum())
        precision = tp / int(pred.sum()) if pred.any() else 1.0
        recall = tp / int(labels.sum()) if labels.any() else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"threshold": round(float(t), 2), "precision": round(precision, 4), "recall": round(recall, 4),
                     "f1": round(f1, 4)})
    return rows


class TextClassifier:
    """A trained binary fastText model: `score(text)` is the probability of the positive label."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if not Path(path).is_file():
            raise ConfigError(f"classifier model not found: {path}")
        self.model = load_fasttext(path)
        if POSITIVE not in self.model.get_labels():
            raise ConfigError(f"{path} is not a corpusloop classifier (no {POSITIVE} label)")

    def score(self, text: str) -> float:
        labels, probs = self.model.predict(fasttext_line(text), k=2)
        for label, p in zip(labels, probs):
            if label == POSITIVE:
                return min(1.0, float(p))
        return 0.0

    def scores(self, texts: list[str]) -> np.ndarray:
        labels, probs = self.model.predict([fasttext_line(t) for t in texts], k=2)
        return np.array([min(1.0, float(dict(zip(lab, p)).get(POSITIVE, 0.0))) for lab, p in zip(labels, probs)])


def is_heldout(text: str, share: float, seed: int) -> bool:
    """Deterministic split by a hash of the prepared text: the same text is always on the same side, so
    duplicates cannot leak from training into the held-out split."""
    return xxhash.xxh64_intdigest(fasttext_line(text), seed=seed) % 10_000 < share * 10_000


def _fit(train_file: str, output: str, cfg: ClassifierConfig, retrain: bool) -> None:
    import fasttext

    fasttext.FastText.eprint = lambda *args, **kwargs: None
    model = fasttext.train_supervised(
        input=train_file, epoch=cfg.epoch, lr=cfg.lr, dim=cfg.dim, wordNgrams=cfg.word_ngrams, minn=cfg.minn,
        maxn=cfg.maxn, minCount=cfg.min_count, bucket=cfg.bucket, thread=1, seed=cfg.seed, verbose=0)
    if cfg.quantize:
        model.quantize(input=train_file, qnorm=True, retrain=retrain, cutoff=cfg.cutoff, thread=1, verbose=0)
    tmp_model = output + ".tmp"
    model.save_model(tmp_model)
    os.replace(tmp_model, output)


def _fit_in_child(train_file: str, output: str, cfg: ClassifierConfig, retrain: bool) -> None:
    # fastText keeps process-wide state: after a model was loaded or quantised in a process, a quantisation
    # with retraining can diverge to NaN. Each model is therefore trained in a fresh interpreter (a fork
    # would inherit that state; spawn would re-run the caller's unguarded main module).
    args = json.dumps({"train_file": train_file, "output": output, "cfg": asdict(cfg), "retrain": retrain})
    code = "import json, sys; from corpus.classifier import _fit, ClassifierConfig; a = json.loads(sys.argv[1]); " \
           "_fit(a['train_file'], a['output'], ClassifierConfig(**a['cfg']), a['retrain'])"
    proc = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"fastText training failed: {proc.stderr.strip().splitlines()[-1:]}")


def train_classifier(examples: list[tuple[str, bool]], output: str | Path, cfg: ClassifierConfig | None = None,
                     heldout_examples: list[tuple[str, bool]] | None = None) -> ClassifierReport:
    """Train on (text, is_positive) pairs, measure on the held-out split (or on `heldout_examples` when
    given, e.g. an official dev set), and write the model (`.bin`, or `.ftz` with `cfg.quantize`) and a
    model card `<output>.json` with the measurements."""
    cfg = cfg or ClassifierConfig()
    if heldout_examples is None:
        train = [e for e in examples if not is_heldout(e[0], cfg.heldout, cfg.seed)]
        heldout = [e for e in examples if is_heldout(e[0], cfg.heldout, cfg.seed)]
    else:
        train, heldout = examples, heldout_examples
    if not any(y for _, y in train) or all(y for _, y in train):
        raise ConfigError("training data needs both positive and negative examples")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        with open(train_file, "w", encoding="utf-8") as f:
            for text, y in train:
                line = fasttext_line(text)
                if line:
                    f.write(f"{POSITIVE if y else NEGATIVE} {line}\n")
        try:  # retraining after the vocabulary cut recovers most of what quantisation loses ...
            _fit_in_child(str(train_file), str(output), cfg, retrain=True)
        except RuntimeError:  # ... but can diverge on small data ("Encountered NaN"): quantise as trained
            if not cfg.quantize:
                raise
            _fit_in_child(str(train_file), str(output), cfg, retrain=False)
    classifier = TextClassifier(output)
    labels = np.array([y for _, y in heldout], dtype=bool)
    scores = classifier.scores([t for t, _ in heldout]) if heldout else np.zeros(0)
    report = ClassifierReport(
        train_docs=len(train), heldout_docs=len(heldout), positives_train=sum(1 for _, y in train if y),
        roc_auc=round(roc_auc(labels, scores), 4), thresholds=threshold_table(labels, scores),
        model_path=str(output), model_bytes=output.stat().st_size)
    card = {"report": {**asdict(report), "model_path": output.name}, "config": asdict(cfg)}  # no local paths
    atomic_write_text(str(output) + ".json", json.dumps(card, indent=2))
    return report


def read_labelled(path: str | Path, text_field: str = "text", label_field: str | None = "label",
                  positive: list[str] | None = None) -> list[tuple[str, bool]]:
    """(text, is_positive) from a JSONL file; a label counts as positive when it is true, 1, or one of
    `positive` (with `label_field` None, every label is False: a file of one class). A bad line is an error
    naming the file, line and field."""
    out = []
    for n, record in iter_jsonl(path):
        text = record.get(text_field)
        if not isinstance(text, str):
            raise ConfigError(f"{path}:{n}: field {text_field!r} is missing or not a string")
        if label_field is None:
            out.append((text, False))
            continue
        if label_field not in record:
            raise ConfigError(f"{path}:{n}: field {label_field!r} is missing")
        value = record[label_field]
        out.append((text, value is True or value == 1 or (positive is not None and str(value) in positive)))
    return out
