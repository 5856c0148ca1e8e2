"""Checks only fine-tuning data needs, on one record's turns (`corpus.finetune.formats.Turn`).

Each check returns the reason a record fails it, or None:
- `empty_response`: a response (or chosen / rejected reply) that is empty or whitespace;
- `truncated_response`: a reply cut off mid-way: an unclosed code fence, or a long reply ending on a comma,
  colon, open bracket or a dangling connective word instead of finishing its sentence;
- `repeats_prompt`: a reply that mostly restates the prompt (most of its word 3-grams are in the prompt);
- `refusal`: a reply that declines (`corpus.refusal`); kept for harmful prompts, flagged for harmless ones;
- `near_identical_pair`: chosen and rejected that are nearly the same text (character 5-gram Jaccard);
- `length_only_pair`: chosen and rejected where one is the other plus more text (the shorter is contained
  in the longer), so the preference teaches length rather than quality.

`length_bias` summarises a preference set: how often the chosen reply is the longer one, and the mean
length ratio. Shingles are those of near-duplicate removal (`corpus.minhash.Shingler`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from corpus.config import MinhashConfig
from corpus.finetune.formats import Turn
from corpus.langid import script_language
from corpus.minhash import Shingler, containment, jaccard
from corpus.refusal import is_refusal

REPLY_ROLES = ("response", "chosen", "rejected")
_FENCE = re.compile(r"^\s*```", re.MULTILINE)
_DANGLING = re.compile(r"(?:[,:;(\[{\-–—]|\b(?:and|or|but|the|a|an|of|to|with|for|that|which|because|is|are))\s*$",
                       re.IGNORECASE)
_WORDS = Shingler(MinhashConfig(word_ngram=3, char_ngram=3))
_CHARS = Shingler(MinhashConfig(word_ngram=5, char_ngram=5))


@dataclass(frozen=True)
class CheckSettings:
    """Thresholds of the checks (the defaults are documented in `corpus curate --help`)."""

    truncated_min_chars: int = 200  # shorter replies may end without punctuation (answers like "Paris")
    repeat_containment: float = 0.8  # share of a reply's word 3-grams found in its prompt
    repeat_min_shingles: int = 8  # shorter replies (a word, a choice) may well be copied from the prompt
    pair_jaccard: float = 0.9  # character 5-gram Jaccard of chosen and rejected
    length_containment: float = 0.9  # share of the shorter reply's 5-grams found in the longer one
    length_ratio: float = 1.3  # ... and the longer one at least this much longer


def _lang(text: str) -> str:
    return "zh" if script_language(text) == "zh" else "en"


def _shingles(shingler: Shingler, text: str) -> object:
    return shingler.shingles(text, _lang(text))


def replies(turns: list[Turn]) -> list[Turn]:
    """The turns a model is trained to write."""
    return [t for t in turns if t.role in REPLY_ROLES]


def empty_response(turns: list[Turn], settings: CheckSettings) -> str | None:
    empty = [t for t in replies(turns) if not t.text.strip()]
    return f"empty {empty[0].role}" if empty else None


def truncated_response(turns: list[Turn], settings: CheckSettings) -> str | None:
    for t in replies(turns):
        text = t.text.rstrip()
        if len(_FENCE.findall(text)) % 2:
            return f"truncated {t.role}: unclosed code block"
        if len(text) >= settings.truncated_min_chars and _DANGLING.search(text[-40:]):
            return f"truncated {t.role}: ends mid-sentence"
    return None


def repeats_prompt(turns: list[Turn], settings: CheckSettings) -> str | None:
    """Compared with what was asked (system and prompt turns), not with a `context` the prompt works on: a
    reply to "reorder these sentences" rightly repeats the sentences."""
    prompt = " ".join(t.text for t in turns if t.role in ("system", "prompt"))
    if not prompt.strip():
        return None
    asked = _shingles(_WORDS, prompt)
    for t in replies(turns):
        said = _shingles(_WORDS, t.text)
        if len(said) >= settings.repeat_min_shingles and containment_of(said, asked) >= settings.repeat_containment:
            return f"{t.role} repeats the prompt"
    return None


def containment_of(part, whole) -> float:
    """Share of `part`'s shingles found in `whole` (not symmetric, unlike `corpus.minhash.containment`)."""
    if not len(part):
        return 0.0
    return len(np.intersect1d(part, whole, assume_unique=True)) / len(part)


def refusal(turns: list[Turn], settings: CheckSettings) -> str | None:
    refused = [t for t in replies(turns) if t.role != "rejected" and is_refusal(t.text)]
    return f"{refused[0].role} is a refusal" if refused else None


def pair_texts(turns: list[Turn]) -> tuple[str, str] | None:
    """(chosen, rejected) texts of a preference record's turns; None for a record without both."""
    chosen = "\n".join(t.text for t in turns if t.role == "chosen")
    rejected = "\n".join(t.text for t in turns if t.role == "rejected")
    return (chosen, rejected) if chosen and rejected else None


def near_identical_pair(turns: list[Turn], settings: CheckSettings) -> str | None:
    pair = pair_texts(turns)
    if pair is None:
        return None
    similarity = jaccard(_shingles(_CHARS, pair[0]), _shingles(_CHARS, pair[1]))
    return f"chosen and rejected near-identical (Jaccard {similarity:.2f})" \
        if similarity >= settings.pair_jaccard else None


def length_only_pair(turns: list[Turn], settings: CheckSettings) -> str | None:
    pair = pair_texts(turns)
    if pair is None:
        return None
    short, long = sorted(pair, key=len)
    if len(long) < settings.length_ratio * max(len(short), 1):
        return None
    overlap = containment(_shingles(_CHARS, short), _shingles(_CHARS, long))
    return f"one reply is the other plus more text (containment {overlap:.2f})" \
        if overlap >= settings.length_containment else None


CHECKS = {"empty_response": empty_response, "truncated_response": truncated_response,
          "repeats_prompt": repeats_prompt, "refusal": refusal, "near_identical_pair": near_identical_pair,
          "length_only_pair": length_only_pair}


@dataclass(frozen=True)
class LengthBias:
    """How much a preference set rewards length: the share of pairs whose chosen reply is longer, the mean
    log length ratio (chosen / rejected), and the pairs counted."""

    pairs: int
    chosen_longer: float
    mean_log_ratio: float


def length_bias(pairs: list[tuple[str, str]]) -> LengthBias:
    """`LengthBias` of (chosen, rejected) texts; pairs of equal length count half."""
    if not pairs:
        return LengthBias(0, math.nan, math.nan)
    longer = sum(1.0 if len(c) > len(r) else 0.5 if len(c) == len(r) else 0.0 for c, r in pairs)
    ratio = sum(math.log((len(c) + 1) / (len(r) + 1)) for c, r in pairs)
    return LengthBias(len(pairs), longer / len(pairs), ratio / len(pairs))
