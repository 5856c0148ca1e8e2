"""`exact_dedup`: removes documents whose normalised text was already seen, across all shards.

Two passes, as datatrove's exact dedup does it: the first pass stores a 128-bit hash per document in
each task's index (see `corpus.writers`), `plan_duplicates` finds the repeats across all indexes (the
first occurrence in task-then-position order is kept, so the choice is deterministic), and the filter
below drops the others in the second pass.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xxhash
from datatrove.data import Document

from corpus.base import CorpusStep
from corpus.config import ExactDedupConfig

_SPACES = re.compile(r"\s+")


def text_fingerprint(text: str, cfg: ExactDedupConfig) -> tuple[int, int]:
    """The 128-bit xxh3 hash of the normalised text, as two 64-bit halves."""
    if cfg.lowercase:
        text = text.lower()
    if cfg.collapse_whitespace:
        text = _SPACES.sub(" ", text).strip()
    digest = xxhash.xxh3_128_intdigest(text.encode("utf-8", "surrogatepass"))
    return digest >> 64, digest & 0xFFFFFFFFFFFFFFFF


def plan_duplicates(hashes_per_task: list[np.ndarray]) -> list[np.ndarray]:
    """For each task, a boolean array: True where the document is the first occurrence of its text."""
    sizes = [len(h) for h in hashes_per_task]
    if sum(sizes) == 0:
        return [np.zeros(0, dtype=bool) for _ in sizes]
    allh = np.concatenate([h.reshape(-1, 2) for h in hashes_per_task if len(h)])
    # np.unique sorts stably when asked for indices, so `first` is the first occurrence in global order
    _, first = np.unique(allh, axis=0, return_index=True)
    keep = np.zeros(len(allh), dtype=bool)
    keep[first] = True
    return np.split(keep, np.cumsum(sizes)[:-1])


class ExactDedupFilter(CorpusStep):
    """Second pass: drops the documents `plan_duplicates` marked as repeats (reason `duplicate`)."""

    name = "exact_dedup"

    def __init__(self, keep_dir: str | Path, output_dir: str | Path):
        super().__init__(output_dir)
        self.keep_dir = str(keep_dir)
        self._keep: np.ndarray | None = None
        self._position = 0

    def run(self, data, rank: int = 0, world_size: int = 1):
        self._keep = np.load(Path(self.keep_dir) / f"{rank:05d}.npy")
        self._position = 0
        yield from super().run(data, rank, world_size)

    def apply(self, doc: Document) -> bool | tuple[bool, str]:
        keep = bool(self._keep[self._position])
        self._position += 1
        return True if keep else (False, "duplicate")
