"""`normalize`: mojibake and Unicode repair with ftfy, then whitespace normalisation."""

from __future__ import annotations

import re
from pathlib import Path

import ftfy
from datatrove.data import Document

from corpus.base import CorpusStep
from corpus.config import NormalizeConfig

# ftfy is the slowest part of cleaning (about 4 MB/s). On pure-ASCII text without control characters,
# HTML entities or escape sequences it provably changes nothing (no encoding to repair, NFC is the
# identity), so such documents skip it: on raw English web text that is about 80% of documents.
_NEEDS_FTFY_ASCII = re.compile(r"[\x00-\x08\x0b-\x1f\x7f&]")
_SPACES = re.compile(r"[^\S\n]+")  # any whitespace except newline (tabs, NBSP, ideographic space...)
_TRAILING = re.compile(r" +\n")
_LEADING = re.compile(r"\n +")


class Normalizer(CorpusStep):
    """Repairs mojibake and bad Unicode (ftfy, NFC), collapses runs of spaces and blank lines."""

    name = "normalize"

    def __init__(self, cfg: NormalizeConfig, output_dir: str | Path):
        super().__init__(output_dir)
        self.cfg = cfg
        self.ftfy_config = ftfy.TextFixerConfig(
            uncurl_quotes=False,  # curly quotes are legitimate text, not damage
            fix_character_width=cfg.fix_character_width,
            explain=False,
        )
        self.blank_lines = re.compile(rf"\n{{{cfg.max_blank_lines + 2},}}")
        self.blank_replacement = "\n" * (cfg.max_blank_lines + 1)

    def normalize(self, text: str) -> str:
        if self.cfg.fix_mojibake and (not text.isascii() or _NEEDS_FTFY_ASCII.search(text)):
            text = ftfy.fix_text(text, self.ftfy_config)
        if self.cfg.collapse_spaces:
            text = _SPACES.sub(" ", text)
            text = _TRAILING.sub("\n", text)
            text = _LEADING.sub("\n", text)
        text = self.blank_lines.sub(self.blank_replacement, text)
        return text.strip()

    def apply(self, doc: Document) -> bool | tuple[bool, str]:
        text = self.normalize(doc.text)
        if text != doc.text:
            self.count("changed")
            doc.text = text
        if not text:
            return False, "empty_after_normalize"
        return True
