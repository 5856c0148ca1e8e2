"""`heuristics`: Gopher repetition and quality, C4 and FineWeb rules, with language-aware defaults.

The rules, thresholds, word lists and repetition counters are datatrove's (imported, not copied). What
differs is the plumbing: datatrove's four filters each split the text into words again, through spaCy or
NLTK; this step splits once per document with one regular expression (CJK and Thai characters count as
one word each, so Chinese text is measured in characters instead of unsplit clauses) and runs all four
rule sets on that one list. Per-language overrides (config `heuristics.languages`) adapt thresholds to
scripts without spaces.
"""

from __future__ import annotations

import re
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, ELLIPSIS, END_PUNCTUATION, POLICY_SUBSTRINGS
from datatrove.pipeline.filters.gopher_quality_filter import STOP_WORDS
from datatrove.pipeline.filters.gopher_repetition_filter import (
    find_all_duplicate,
    find_duplicates,
    find_top_duplicate,
    get_n_grams,
)
from datatrove.utils.text import PUNCTUATION_SET, TERMINAL_PUNCTUATION

from corpus.base import CorpusStep
from corpus.config import HeuristicRules, HeuristicsConfig
from corpus.langid import document_language

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f"
# one CJK/Thai character | a word (letters and digits, inner apostrophes kept) | a run of symbols
_WORDS = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+(?:['’][^\W{_CJK}]+)*|[^\w\s]+")
_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")
_SENTENCE_END = re.compile(r"[.!?。！？]+[\"'”’」）)]?(?=\s|$)|[。！？]")
_TERMINAL = tuple(TERMINAL_PUNCTUATION)


def split_words(text: str) -> list[str]:
    """The one word split of a document, shared by every rule."""
    return _WORDS.findall(text)


def _char_n_grams(chars: list[str], n: int) -> list[str]:
    return ["".join(chars[i : i + n]) for i in range(len(chars) - n + 1)]


def gopher_repetition(text: str, words: list[str], r) -> str | None:
    """Gopher (Rae et al. 2021, table A1) repetition rules; returns the failed rule or None."""
    paragraphs = _PARAGRAPHS.split(text.strip())
    n_dup, dup_chars = find_duplicates(paragraphs)
    if r.dup_para_frac is not None and n_dup / len(paragraphs) > r.dup_para_frac:
        return "dup_para_frac"
    if r.dup_para_char_frac is not None and dup_chars / len(text) > r.dup_para_char_frac:
        return "dup_para_char_frac"
    lines = _LINES.split(text)
    n_dup, dup_chars = find_duplicates(lines)
    if r.dup_line_frac is not None and n_dup / len(lines) > r.dup_line_frac:
        return "dup_line_frac"
    if r.dup_line_char_frac is not None and dup_chars / len(text) > r.dup_line_char_frac:
        return "dup_line_char_frac"
    for n, frac in r.top_n_grams:
        n_grams = _char_n_grams(words, n) if r.char_ngrams else get_n_grams(words, n)
        if n_grams and find_top_duplicate(n_grams) / len(text) > frac:
            return f"top_{n}_gram"
    for n, frac in r.dup_n_grams:
        if find_all_duplicate(words, n) / len(text) > frac:
            return f"duplicated_{n}_n_grams"
    return None


def gopher_quality(text: str, words: list[str], r, stop_words: frozenset[str]) -> str | None:
    """Gopher quality rules: length, mean word length, symbols, bullets, ellipses, alphabetic words, stop words."""
    n_words = len(words)
    if n_words == 0:
        return "gopher_short_doc"
    non_symbol = [w for w in words if any(ch not in PUNCTUATION_SET for ch in w)]
    if r.min_doc_words is not None and len(non_symbol) < r.min_doc_words:
        return "gopher_short_doc"
    if r.max_doc_words is not None and len(non_symbol) > r.max_doc_words:
        return "gopher_long_doc"
    if non_symbol and (r.min_avg_word_length is not None or r.max_avg_word_length is not None):
        avg = sum(map(len, non_symbol)) / len(non_symbol)
        if r.min_avg_word_length is not None and avg < r.min_avg_word_length:
            return "gopher_below_avg_threshold"
        if r.max_avg_word_length is not None and avg > r.max_avg_word_length:
            return "gopher_above_avg_threshold"
    if r.max_symbol_word_ratio is not None:
        if text.count("#") / n_words > r.max_symbol_word_ratio:
            return "gopher_too_many_hashes"
        if (text.count("...") + text.count("…")) / n_words > r.max_symbol_word_ratio:
            return "gopher_too_many_ellipsis"
    lines = text.splitlines() or [text]
    if r.max_bullet_lines_ratio is not None:
        bullets = sum(1 for s in lines if s.lstrip().startswith(("•", "-")))
        if bullets / len(lines) > r.max_bullet_lines_ratio:
            return "gopher_too_many_bullets"
    if r.max_ellipsis_lines_ratio is not None:
        ellipses = sum(1 for s in lines if s.rstrip().endswith(("...", "…")))
        if ellipses / len(lines) > r.max_ellipsis_lines_ratio:
            return "gopher_too_many_end_ellipsis"
    if r.max_non_alpha_words_ratio is not None:
        alpha = sum(1 for w in words if any(c.isalpha() for c in w))
        if alpha / n_words < r.max_non_alpha_words_ratio:
            return "gopher_below_alpha_threshold"
    if r.min_stop_words is not None and len(stop_words.intersection(words)) < r.min_stop_words:
        return "gopher_enough_stop_words"
    return None


def c4_lines(text: str, r) -> tuple[str | None, str]:
    """C4 (Raffel et al. 2020) rules as FineWeb applies them; returns (failed rule or None, kept text)."""
    kept: list[str] = []
    n_sentences = 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            if kept and kept[-1]:
                kept.append("")  # keep paragraph breaks, unlike datatrove's C4 filter
            continue
        # whitespace words undercount CJK lines (a whole clause is one "word"): those are recounted properly
        if (r.min_words_per_line is not None and len(line.split()) < r.min_words_per_line
                and len(split_words(line)) < r.min_words_per_line):
            continue
        if (r.max_word_length is not None and len(line) > r.max_word_length
                and any(len(w) > r.max_word_length for w in split_words(line))):
            continue
        line = CITATION_REGEX.sub("", line)
        if r.drop_no_terminal_punct_lines and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
            continue
        lower = line.lower()
        if r.drop_lorem_ipsum and "lorem ipsum" in lower:
            return "lorem_ipsum", text
        if r.drop_javascript_lines and "javascript" in lower:
            continue
        if r.drop_curly_bracket and "{" in line:
            return "curly_bracket", text
        if r.drop_policy_lines and any(p in lower for p in POLICY_SUBSTRINGS):
            continue
        if r.min_sentences is not None:
            n_sentences += max(1, len(_SENTENCE_END.findall(line)))
        kept.append(line)
    if r.min_sentences is not None and n_sentences < r.min_sentences:
        return "too_few_sentences", text
    kept_text = "\n".join(kept).strip()
    if not kept_text:
        return "no_lines_left", text
    return None, kept_text


def fineweb_quality(text: str, n_words: int, r) -> str | None:
    """FineWeb (Penedo et al. 2024) line-level rules: punctuation, short lines, duplicated lines, lists."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return "empty"
    if r.line_punct_thr is not None:
        ratio = sum(1 for line in lines if line.endswith(_TERMINAL)) / len(lines)
        if ratio < r.line_punct_thr and not (ratio == 0 and r.line_punct_exclude_zero):
            return "line_punct_ratio"
    if r.short_line_thr is not None:
        ratio = sum(1 for line in lines if len(line) <= r.short_line_length) / len(lines)
        if ratio > r.short_line_thr:
            return "short_line_ratio"
    if (r.char_duplicates_ratio is not None
            and find_duplicates(lines)[1] / max(1, len(text.replace("\n", ""))) > r.char_duplicates_ratio):
        return "char_dup_ratio"
    if r.new_line_ratio is not None and text.count("\n") / max(1, n_words) > r.new_line_ratio:
        return "list_ratio"
    return None


class HeuristicFilter(CorpusStep):
    """Removes documents failing a Gopher, C4 or FineWeb rule; the reason names the rule set and rule."""

    name = "heuristics"

    def __init__(self, cfg: HeuristicsConfig, output_dir: str | Path):
        super().__init__(output_dir)
        self.cfg = cfg
        self._rules: dict[str, tuple[HeuristicRules, frozenset[str]]] = {}

    def rules(self, lang: str) -> tuple[HeuristicRules, frozenset[str]]:
        """A language's rules and Gopher stop words, built once per language."""
        if lang not in self._rules:
            rules = self.cfg.rules_for(lang)
            listed = rules.gopher_quality.stop_words if rules.gopher_quality else None
            self._rules[lang] = (rules, frozenset(STOP_WORDS if listed is None else listed))
        return self._rules[lang]

    def apply(self, doc: Document) -> bool | tuple[bool, str]:
        rules, stop_words = self.rules(document_language(doc))
        text = doc.text
        words = split_words(text)
        # the cheap linear rules run before the n-gram counting; a document must pass all of them anyway
        if rules.gopher_quality is not None and (failed := gopher_quality(text, words, rules.gopher_quality, stop_words)):
            return False, f"gopher_quality/{failed}"
        if rules.gopher_repetition is not None and (failed := gopher_repetition(text, words, rules.gopher_repetition)):
            return False, f"gopher_repetition/{failed}"
        if rules.c4 is not None:
            failed, kept = c4_lines(text, rules.c4)
            if failed:
                return False, f"c4/{failed}"
            if kept != text:
                self.count("c4_lines_removed")
                doc.text = text = kept
                words = split_words(text)
        if rules.fineweb is not None and (failed := fineweb_quality(text, len(words), rules.fineweb)):
            return False, f"fineweb/{failed}"
        return True
