"""`balance`: language balancing so that high-resource languages do not dominate.

The target mix is either explicit proportions or temperature sampling (p_l proportional to n_l ** alpha,
as in XLM-R and mT5). Counts come from a first pass over all tasks (after exact dedup), so the mix holds
across shards and workers; each document is then kept, dropped or repeated by a hash of its id, so the
result is deterministic.
"""

from __future__ import annotations

import math
from pathlib import Path

import xxhash
from datatrove.data import Document, DocumentsPipeline

from corpus.base import CorpusStep
from corpus.config import BalanceConfig
from corpus.langid import document_language


def balance_rates(counts: dict[str, int], cfg: BalanceConfig) -> dict[str, float]:
    """Sampling rate per language: below 1 down-samples, above 1 repeats (capped by `max_upsample`).

    `proportions` are met exactly (unlisted languages keep rate 1); `temperature` is a soft target: the
    output keeps the input's size and languages that would need more than `max_upsample` are capped.
    """
    rates = {lang: 1.0 for lang in counts}
    if cfg.mode == "proportions":
        listed = {lang: p for lang, p in (cfg.proportions or {}).items() if counts.get(lang, 0) > 0 and p > 0}
        weight = sum(listed.values())
        shares = {lang: p / weight for lang, p in listed.items()}
        # the largest output that meets the proportions exactly without repeating any language more than
        # `max_upsample` times, and no larger than the input
        total = min([sum(counts[lang] for lang in listed)] +
                    [cfg.max_upsample * counts[lang] / share for lang, share in shares.items()])
        targets = {lang: share * total for lang, share in shares.items()}
    else:
        eligible = {lang: n for lang, n in counts.items() if n > 0 and n >= cfg.min_docs}
        pool = sum(eligible.values())
        norm = sum(n ** cfg.alpha for n in eligible.values())
        targets = {lang: (n ** cfg.alpha) / norm * pool for lang, n in eligible.items()} if norm else {}
    for lang, target in targets.items():
        rates[lang] = min(target / counts[lang], cfg.max_upsample)
    return rates


def sampling_key(doc_id: str, text: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the document and the seed."""
    return xxhash.xxh64_intdigest(f"{doc_id}\x00{len(text)}", seed) / 2.0**64


def copies(rate: float, key: float) -> int:
    """How many copies of an item to keep at a sampling `rate`, given its uniform `key` in [0, 1): the whole
    part of the rate, plus one more for keys below its fraction."""
    whole, frac = math.floor(rate), rate - math.floor(rate)
    return whole + (1 if key < frac else 0)


class LanguageBalancer(CorpusStep):
    """Keeps a document with probability `rate` (or repeats it `rate` times on average when rate > 1)."""

    name = "balance"

    def __init__(self, cfg: BalanceConfig, rates: dict[str, float], output_dir: str | Path):
        super().__init__(output_dir)
        self.cfg = cfg
        self.rates = rates

    def copies(self, doc: Document, lang: str) -> int:
        return copies(self.rates.get(lang, 1.0), sampling_key(doc.id, doc.text, self.cfg.seed))

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        sink = self.removed_sink(rank)
        for doc in data:
            n_bytes = self.count_in(doc)
            lang = document_language(doc)
            self.count(f"lang_in/{lang}")
            with self.track_time():
                n = self.copies(doc, lang)
            if n == 0:
                self.remove(doc, f"downsampled/{lang}", sink)
                continue
            for copy in range(n):
                out = doc if copy == 0 else Document(text=doc.text, id=doc.id, metadata=dict(doc.metadata))
                out.metadata["balance"] = {"rate": round(self.rates.get(lang, 1.0), 6), "copy": copy}
                self.count(f"lang_out/{lang}")
                self.count_out(out, n_bytes)
                yield out
        sink.close()
        self.flush_counts()
