"""Writers: the cleaned shards, and the work shards plus index that carry documents between passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
from datatrove.data import DocumentsPipeline

from corpus.base import NamedStep, length_bucket, utf8_len
from corpus.config import ExactDedupConfig
from corpus.exact_dedup import text_fingerprint
from corpus.io import RecordSink, atomic_write_npz, record_to_document
from corpus.langid import UNKNOWN_LANGUAGE, document_language

SHARD_PREFIX = "shard-"


def shard_path(output_dir: str | Path, rank: int, fmt: str) -> Path:
    return Path(output_dir) / f"{SHARD_PREFIX}{rank:05d}.{fmt}"


class ShardWriter(NamedStep):
    """Writes the documents of one task to `shard-<rank>.<format>` (atomically); counts what leaves."""

    name = "write"

    def __init__(self, output_dir: str | Path, fmt: str):
        super().__init__()
        self.output_dir = str(output_dir)
        self.fmt = fmt

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        sink = RecordSink(shard_path(self.output_dir, rank, self.fmt), self.fmt)
        for doc in data:
            with self.track_time():
                sink.write_document(doc)
            self.count("docs_out")
            self.count("bytes_out", utf8_len(doc.text))
            self.count(length_bucket(len(doc.text)))
            yield doc
        sink.close()
        self.flush_counts()


class WorkShardWriter(NamedStep):
    """End of the first pass: writes each task's surviving documents to `_work/docs/<rank>.jsonl` and an
    index (`_work/index/<rank>.npz`: text hash and language per document) for the planning pass."""

    name = "work_write"

    def __init__(self, work_dir: str | Path, dedup: ExactDedupConfig | None, languages: bool = True,
                 quality: bool = False):
        super().__init__()
        self.work_dir = str(work_dir)
        self.dedup = dedup  # None: exact dedup is off, no text hash needed
        self.languages = languages  # False: balance is off, no language needed
        self.quality = quality  # True: keep_top_fraction needs every document's quality score

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        work = Path(self.work_dir)
        sink = RecordSink(work / "docs" / f"{rank:05d}.jsonl", "jsonl")
        hashes: list[tuple[int, int]] = []
        langs: list[str] = []
        scores: list[float] = []
        for doc in data:
            with self.track_time():
                hashes.append(text_fingerprint(doc.text, self.dedup) if self.dedup else (0, 0))
                langs.append(document_language(doc) if self.languages else UNKNOWN_LANGUAGE)
                if self.quality:
                    scores.append(doc.metadata.get("quality", {}).get("score", float("nan")))
                sink.write_document(doc)
            self.count("docs_out")
            yield doc
        sink.close()
        self.flush_counts()
        atomic_write_npz(work / "index" / f"{rank:05d}.npz",
                         hashes=np.array(hashes, dtype=np.uint64).reshape(-1, 2), langs=np.array(langs, dtype="U16"),
                         quality=np.array(scores, dtype=np.float64))


def load_index(work_dir: str | Path, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(text hashes, languages, quality scores: empty unless recorded) of one task's work shard."""
    with np.load(Path(work_dir) / "index" / f"{rank:05d}.npz", allow_pickle=False) as z:
        return z["hashes"], z["langs"], z["quality"]


class WorkShardReader(NamedStep):
    """Start of the second pass: reads back one task's work shard, in the order it was written."""

    name = "work_read"

    def __init__(self, work_dir: str | Path):
        super().__init__()
        self.work_dir = str(work_dir)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        path = Path(self.work_dir) / "docs" / f"{rank:05d}.jsonl"
        if not path.exists():  # the task kept no document in the first pass
            return
        with open(path, "rb") as f:
            for line in f:
                yield record_to_document(orjson.loads(line))
