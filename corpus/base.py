"""The base of every `corpus clean` step: counting, timing, and the audit trail of removed documents.

A step implements one method, `apply(doc)`, returning True to keep the document (possibly modified) or
`(False, reason)` to remove it. Everything around it (documents and bytes in and out, removals by reason,
writing removed documents with the step and reason to `removed/<step>/`) lives here, once.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

import datatrove.executor.base as _executor_base
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from corpus.io import RecordSink


def _quiet_task_logger(logging_dir, rank, local_rank=0, node_rank=-1):
    # datatrove prints every task's log and statistics to stderr at INFO; corpus clean shows a progress bar
    # instead and keeps those logs in `_work/logs/<pass>/logs/`. local_rank != 0 lowers stderr to errors only.
    return _datatrove_task_logger(logging_dir, rank, max(local_rank, 1), node_rank)


_datatrove_task_logger = _executor_base.add_task_logger
_executor_base.add_task_logger = _quiet_task_logger


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def length_bucket(n_chars: int) -> str:
    """Label of a power-of-two length bucket, for the length histograms."""
    if n_chars <= 0:
        return "len/0"
    return f"len/{2 ** math.ceil(math.log2(n_chars))}"


class _Timer:
    """A context manager adding the seconds spent inside it to `total`."""

    __slots__ = ("_entered", "total")

    def __init__(self):
        self.total = 0.0

    def __enter__(self) -> None:
        self._entered = time.perf_counter()

    def __exit__(self, *exc) -> None:
        self.total += time.perf_counter() - self._entered


class NamedStep(PipelineStep):
    """A datatrove step known by its plain name (the name stats.json and the report use)."""

    name: str = "step"
    type = "corpusloop"

    def __repr__(self) -> str:
        return self.name

    def __init__(self):
        super().__init__()
        self._counts: Counter = Counter()
        self._timer = _Timer()

    def count(self, label: str, value: int = 1) -> None:
        """Add to a counter; kept locally and handed to datatrove's stats once per task (`flush_counts`),
        because datatrove's per-call `stat_update` (running mean and variance) costs more than many steps."""
        self._counts[label] += value

    def track_time(self, unit: str | None = None) -> _Timer:
        """Times a block; like `count`, summed locally and handed to datatrove's time stats by `flush_counts`."""
        return self._timer

    def flush_counts(self) -> None:
        for label, value in sorted(self._counts.items()):
            self.stat_update(label, value=value)
        self._counts.clear()
        if self._timer.total:
            self.stats.time_stats.update(self._timer.total)
            self._timer.total = 0.0


class CorpusStep(NamedStep):
    """A named, counted step; removed documents go to `removed/<name>/<rank>.jsonl.gz` with their reason."""

    name: str = "step"  # the registry name: `normalize`, `heuristics`, ...

    def __init__(self, output_dir: str | Path):
        super().__init__()
        self.output_dir = str(output_dir)

    def apply(self, doc: Document) -> bool | tuple[bool, str]:
        """Keep (True) or remove (False, reason) one document; may modify it or its metadata."""
        raise NotImplementedError

    def removed_sink(self, rank: int) -> RecordSink:
        return RecordSink(Path(self.output_dir) / "removed" / self.name / f"{rank:05d}.jsonl.gz", "jsonl.gz")

    def remove(self, doc: Document, reason: str, sink: RecordSink) -> None:
        self.count("docs_removed")
        self.count(f"removed/{reason}")
        doc.metadata["removed_by"] = {"step": self.name, "reason": reason}
        sink.write_document(doc)

    def count_in(self, doc: Document) -> int:
        n_bytes = utf8_len(doc.text)
        self.count("docs_in")
        self.count("bytes_in", n_bytes)
        return n_bytes

    def count_out(self, doc: Document, n_bytes: int | None = None) -> None:
        self.count("docs_out")
        self.count("bytes_out", utf8_len(doc.text) if n_bytes is None else n_bytes)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        sink = self.removed_sink(rank)
        for doc in data:
            text_before = doc.text
            n_bytes = self.count_in(doc)
            with self.track_time():
                verdict = self.apply(doc)
            if verdict is True:
                self.count_out(doc, n_bytes if doc.text is text_before else None)
                yield doc
            else:
                reason = verdict[1] if isinstance(verdict, tuple) else "removed"
                self.remove(doc, reason, sink)
        sink.close()
        self.flush_counts()
