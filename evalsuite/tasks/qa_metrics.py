"""Scoring of the built-in generative tasks (referenced from their YAML as `!function qa_metrics.NAME`).

Exact match and token F1 as SQuAD defines them (lower case, punctuation and English articles removed,
whitespace collapsed), the best over a question's reference answers; Chinese is compared character by
character, since it has no spaces to split on. GSM8K's answer is the number after `####` in the reference,
matched against the last number of the generation (what a model that reasons before answering ends with).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter

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


def process_qa(doc: dict, results: list[str]) -> dict[str, float]:
    """exact_match and f1 of the generation against the best-matching reference in `doc["answer"]`."""
    answers = doc["answer"] if isinstance(doc["answer"], list) else [doc["answer"]]
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
