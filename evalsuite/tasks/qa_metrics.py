"""Scoring of the built-in generative tasks (referenced from their YAML as `!function qa_metrics.NAME`).

Exact match and token F1 as SQuAD defines them (lower case, punctuation and English articles removed,
whitespace collapsed), the best over a question's reference answers; Chinese is compared character by
character, since it has no spaces to split on. GSM8K's answer is the number after `####` in the reference,
matched against the last number of the generation (what a model that reasons before answering ends with).

The generation tasks (`cl_gen_*`) add BLEU and ROUGE. BLEU is sacrebleu's corpus BLEU (0-100) over all the
task's generations, each against all its references, tokenised by sacrebleu's `13a` (English) or `zh` (each
Chinese character a token, other text as `13a`). ROUGE-1/2/L are rouge_score's F-measures (0-1) against the
best-matching reference, averaged over documents; English with rouge_score's tokenizer and Porter stemmer,
Chinese character by character (`tokens` below: rouge_score's own tokenizer keeps only a-z and 0-9, so
Chinese text would score 0). Characters rather than jieba words: no segmentation dictionary decides the
score, and BLEU and ROUGE then count the same units.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter

from rouge_score.rouge_scorer import RougeScorer
from sacrebleu.metrics import BLEU

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER = re.compile(r"-?[\d,]*\.?\d+")
_PUNCTUATION = set(string.punctuation) | {"，", "。", "！", "？", "、", "：", "；", "“", "”", "‘", "’", "（", "）", "《", "》"}


def normalise(text: str) -> str:
    text = "".join(ch for ch in unicodedata.normalize("NFKC", text).lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def tokens(text: str) -> list[str]:
    """Words; CJK characters one token each."""
    out = []
    for word in normalise(text).split():
        run = ""
        for ch in word:
            if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf":
                if run:
                    out.append(run)
                    run = ""
                out.append(ch)
            else:
                run += ch
        if run:
            out.append(run)
    return out


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def references(doc: dict) -> list[str]:
    """A document's reference answers: `doc["answer"]`, a list or one string."""
    return doc["answer"] if isinstance(doc["answer"], list) else [doc["answer"]]


def process_qa(doc: dict, results: list[str]) -> dict[str, float]:
    """exact_match and f1 of the generation against the best-matching reference in `doc["answer"]`."""
    answers = references(doc)
    prediction = results[0].strip()
    return {"exact_match": max(float(normalise(prediction) == normalise(a)) for a in answers),
            "f1": max(token_f1(prediction, a) for a in answers)}


def _number(text: str) -> str | None:
    found = _NUMBER.findall(text)
    if not found:
        return None
    value = found[-1].replace(",", "").rstrip(".")
    return value[:-2] if value.endswith(".0") else value


def process_gsm8k(doc: dict, results: list[str]) -> dict[str, float]:
    """exact_match of the generation's last number against the reference's `#### N`."""
    return {"exact_match": float(_number(results[0]) == _number(doc["answer"].split("####")[-1]))}


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


class CharTokenizer:
    """rouge_score's tokenizer interface over `tokens`: words, and Chinese one character a token."""

    def tokenize(self, text: str) -> list[str]:
        return tokens(text)


_ROUGE = {"en": RougeScorer(list(ROUGE_TYPES), use_stemmer=True),
          "zh": RougeScorer(list(ROUGE_TYPES), tokenizer=CharTokenizer())}


def rouge(prediction: str, answers: list[str], lang: str = "en") -> dict[str, float]:
    """ROUGE-1/2/L F-measure of the prediction against, per type, its best-matching answer."""
    best = _ROUGE[lang].score_multi(answers, prediction)
    return {name: best[name].fmeasure for name in ROUGE_TYPES}


def _process_generation(doc: dict, results: list[str], lang: str) -> dict:
    answers = references(doc)
    prediction = results[0].strip()
    return {**process_qa(doc, results), **rouge(prediction, answers, lang), "bleu": (answers, prediction)}


def process_generation(doc: dict, results: list[str]) -> dict:
    """exact_match, f1 and ROUGE of an English generation against `doc["answer"]`, and its (references,
    generation) pair for the task's corpus BLEU."""
    return _process_generation(doc, results, "en")


def process_generation_zh(doc: dict, results: list[str]) -> dict:
    """`process_generation` for Chinese: ROUGE by character."""
    return _process_generation(doc, results, "zh")


def corpus_bleu(items: list[tuple[list[str], str]], tokenize: str = "13a") -> float:
    """sacrebleu's corpus BLEU of (references, generation) pairs; documents may have different numbers of
    references (sacrebleu takes None for a missing one)."""
    width = max(len(refs) for refs, _ in items)
    streams = [[refs[i] if i < len(refs) else None for refs, _ in items] for i in range(width)]
    return BLEU(tokenize=tokenize).corpus_score([prediction for _, prediction in items], streams).score


def bleu(items: list[tuple[list[str], str]]) -> float:
    """Corpus BLEU, English (`13a` tokenisation): the aggregation of the `bleu` metric in the task YAML."""
    return corpus_bleu(items, "13a")


def bleu_zh(items: list[tuple[list[str], str]]) -> float:
    """Corpus BLEU, Chinese (`zh` tokenisation: each Chinese character a token)."""
    return corpus_bleu(items, "zh")
