"""`decontaminate`: remove (or flag) documents that share a long n-gram with evaluation data.

The benchmarks' n-grams (13 words, the GPT-3 and lm-evaluation-harness convention; 30 characters for scripts
without spaces) are hashed with the same normalisation as the `minhash` step and kept as one sorted numpy
array with the benchmark each came from. A document's n-grams are looked up with one `np.isin`, so the cost
per document is that of hashing it. datatrove's decontamination filter fetches its benchmarks from the
Hugging Face hub through lighteval; this one reads any local JSONL or Parquet file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datatrove.data import Document

from corpus.base import CorpusStep
from corpus.config import ConfigError, DecontaminateConfig, MinhashConfig
from corpus.io import iter_jsonl
from corpus.langid import UNKNOWN_LANGUAGE, document_language, script_language
from corpus.minhash import Shingler
from corpus.readers import discover_inputs

EVALSUITE = "evalsuite"  # in `benchmarks`: the data of evalsuite's built-in tasks
EVALSUITE_DATA = Path(__file__).resolve().parents[1] / "evalsuite" / "tasks" / "data"
ID_FIELDS = frozenset({"id", "idx", "task_id", "subject", "source", "label", "answer_idx", "pair_id"})


def _strings(value, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _strings(v, out)


def benchmark_records(path: Path):
    """(line or row number, record) of one JSONL(.gz) or Parquet benchmark file; a bad line is an error
    naming the file and line (a benchmark must be read whole, or decontamination silently weakens)."""
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        yield from enumerate(pq.read_table(path).to_pylist(), 1)
        return
    yield from iter_jsonl(path)


class BenchmarkIndex:
    """The n-gram hashes of every benchmark record, sorted, with the benchmark each belongs to."""

    def __init__(self, cfg: DecontaminateConfig):
        self.cfg = cfg
        self.shingler = Shingler(MinhashConfig(word_ngram=cfg.word_ngram, char_ngram=cfg.char_ngram))
        files = discover_inputs([str(EVALSUITE_DATA) if b == EVALSUITE else b for b in cfg.benchmarks])
        self.names = [f.name.split(".")[0] for f in files]
        hashes, owners, records = [], [], []
        record_id = 0
        for b, path in enumerate(files):
            for n, record in benchmark_records(path):
                text = self.record_text(record, path, n)
                h = self.shingler.shingles(text, script_language(text) or UNKNOWN_LANGUAGE, cfg.min_tokens)
                if not len(h):
                    continue
                hashes.append(h)
                owners.append(np.full(len(h), b, dtype=np.int32))
                records.append(np.full(len(h), record_id, dtype=np.int64))
                record_id += 1
        h = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        owner = np.concatenate(owners) if owners else np.zeros(0, np.int32)
        rec = np.concatenate(records) if records else np.zeros(0, np.int64)
        # drop template n-grams: those in more than max_benchmark_records distinct records
        order = np.lexsort((rec, h))
        h, owner, rec = h[order], owner[order], rec[order]
        first = np.concatenate([[True], (h[1:] != h[:-1]) | (rec[1:] != rec[:-1])]) if len(h) else np.zeros(0, bool)
        h, owner = h[first], owner[first]  # one entry per (n-gram, record)
        keys, start, count = np.unique(h, return_index=True, return_counts=True)
        keep = count <= cfg.max_benchmark_records
        self.hashes = keys[keep]
        self.owner = owner[start[keep]]  # the first benchmark (file order) holding the n-gram
        self.records = record_id

    def record_text(self, record: dict, path: Path, line: int) -> str:
        parts: list[str] = []
        if self.cfg.fields:
            missing = [f for f in self.cfg.fields if f not in record]
            if len(missing) == len(self.cfg.fields):
                raise ConfigError(f"{path}:{line}: none of the fields {self.cfg.fields} is in the record")
            for f in self.cfg.fields:
                _strings(record.get(f), parts)
        else:
            for key, value in record.items():
                if key not in ID_FIELDS:
                    _strings(value, parts)
        return "\n".join(parts)

    def hits(self, text: str, lang: str) -> dict[str, int]:
        """Benchmark name -> number of the text's distinct n-grams found in it."""
        if not len(self.hashes):
            return {}
        h = self.shingler.shingles(text, lang)
        pos = np.searchsorted(self.hashes, h)
        pos[pos == len(self.hashes)] = 0
        found = self.hashes[pos] == h
        if not found.any():
            return {}
        owners, counts = np.unique(self.owner[pos[found]], return_counts=True)
        return {self.names[o]: int(c) for o, c in zip(owners.tolist(), counts.tolist())}


class Decontaminator(CorpusStep):
    """Removes (reason `contaminated/<benchmark>`) or flags documents sharing an n-gram with a benchmark;
    either way `metadata["decontaminate"] = {benchmark: shared n-grams}`."""

    name = "decontaminate"

    def __init__(self, cfg: DecontaminateConfig, output_dir: str | Path):
        super().__init__(output_dir)
        if not cfg.benchmarks:
            raise ConfigError("decontaminate needs decontaminate.benchmarks: the evaluation files to check against")
        self.cfg = cfg
        self._index: BenchmarkIndex | None = None

    @property
    def index(self) -> BenchmarkIndex:
        if self._index is None:  # built in each worker, on its first document
            self._index = BenchmarkIndex(self.cfg)
        return self._index

    def apply(self, doc: Document) -> bool | tuple[bool, str]:
        hits = self.index.hits(doc.text, document_language(doc))
        if not hits:
            return True
        doc.metadata["decontaminate"] = hits
        top = max(hits, key=lambda k: (hits[k], k))
        self.count(f"contaminated/{top}")
        return True if self.cfg.mode == "flag" else (False, f"contaminated/{top}")

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_index"] = None  # rebuilt where the step runs, not pickled to every worker
        return state
