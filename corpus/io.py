"""The one place that writes output files: atomically, deterministically, in JSONL(.gz) or Parquet.

A file is written under `<name>.tmp` and renamed to its final name only when complete, so a partial file
never looks complete, and a re-run after a crash overwrites the `.tmp` and produces the same bytes.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from datatrove.data import Document

from corpus.config import ConfigError

TMP_SUFFIX = ".tmp"
PARQUET_BATCH = 10_000


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) of a JSONL file, plain or .gz, blank lines skipped. For inputs that must be
    read whole (benchmarks, training labels): a line that is not a JSON object is a ConfigError naming the
    file and line. (`corpus clean` input goes through the readers instead, which reject and go on.)"""
    for n, record in iter_records(path):
        if isinstance(record, str):
            raise ConfigError(f"{path}:{n}: {record}")
        yield n, record


RECORD_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


def record_files(paths: list[str | Path]) -> list[Path]:
    """The record files of `paths`: files as given, folders searched recursively for *.jsonl, *.jsonl.gz and
    *.parquet; sorted by path, each once."""
    # Not corpus.readers.discover_inputs: it also takes WARC and zstd files, which hold no records.
    found: set[Path] = set()
    for path in map(Path, paths):
        if path.is_dir():
            found.update(f for f in path.rglob("*") if f.is_file() and f.name.endswith(RECORD_SUFFIXES))
        elif path.is_file():
            if not path.name.endswith(RECORD_SUFFIXES):
                raise ConfigError(f"{path}: not a document file (expected .jsonl, .jsonl.gz or .parquet)")
            found.add(path)
        else:
            raise ConfigError(f"input not found: {path}")
    if not found:
        raise ConfigError(f"no .jsonl, .jsonl.gz or .parquet files in {', '.join(map(str, paths))}")
    return sorted(found, key=str)


def iter_records(path: str | Path) -> Iterator[tuple[int, dict | str]]:
    """(line or row number, record) of a JSONL (plain or .gz) or Parquet file, blank lines skipped; where a
    line is not a JSON object, the reason as a string in place of the record, so a reader can reject it with
    its line and go on."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        yield from enumerate(pq.read_table(path).to_pylist(), 1)
        return
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                yield n, f"not valid JSON ({e.msg})"
                continue
            yield n, record if isinstance(record, dict) else "not a JSON object"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_npy(path: str | Path, array: np.ndarray) -> None:
    """One numpy array as a `.npy` file (no pickles), written atomically."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Named numpy arrays as one `.npz` file, written atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def document_to_record(doc: Document) -> dict[str, Any]:
    """The output record of a document: its input id, its text, and everything the steps learned."""
    return {"id": doc.id, "text": doc.text, "metadata": doc.metadata}


def record_to_document(record: dict[str, Any]) -> Document:
    return Document(text=record["text"], id=record["id"], metadata=record.get("metadata") or {})


class RecordSink:
    """Writes dict records to one file, atomically (renamed from `.tmp` on `close`).

    Formats: `jsonl`, `jsonl.gz` (gzip header without timestamp or name, so bytes are reproducible) and
    `parquet` (columns id, text, metadata; metadata as a JSON string since its shape varies per record).
    The file is created on the first record: an empty sink leaves no file behind.
    """

    def __init__(self, path: str | Path, fmt: str = "jsonl"):
        if fmt not in ("jsonl", "jsonl.gz", "parquet"):
            raise ValueError(f"unknown output format {fmt!r}")
        self.path = Path(path)
        self.fmt = fmt
        self.count = 0
        self._raw = None
        self._fh = None
        self._rows: list[dict[str, Any]] = []
        self._pq_writer = None

    @property
    def tmp_path(self) -> Path:
        return self.path.with_name(self.path.name + TMP_SUFFIX)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.fmt == "parquet":
            return
        self._raw = open(self.tmp_path, "wb")  # noqa: SIM115 - the sink owns it until close()
        if self.fmt == "jsonl.gz":
            self._fh = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6)
        else:
            self._fh = self._raw

    def write(self, record: dict[str, Any]) -> None:
        if self.count == 0:
            self._open()
        self.count += 1
        if self.fmt == "parquet":
            self._rows.append(record)
            if len(self._rows) >= PARQUET_BATCH:
                self._flush_parquet()
        else:
            self._fh.write(orjson.dumps(record) + b"\n")

    def write_document(self, doc: Document) -> None:
        self.write(document_to_record(doc))

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._rows:
            return
        columns = {
            "id": [str(r.get("id")) for r in self._rows],
            "text": [r.get("text") for r in self._rows],
            "metadata": [orjson.dumps(r.get("metadata") or {}).decode() for r in self._rows],
        }
        table = pa.table(columns, schema=pa.schema([("id", pa.string()), ("text", pa.string()), ("metadata", pa.string())]))
        if self._pq_writer is None:
            self._pq_writer = pq.ParquetWriter(self.tmp_path, table.schema, compression="zstd")
        self._pq_writer.write_table(table)
        self._rows = []

    def close(self) -> None:
        """Finish the file and give it its final name (no-op when nothing was written)."""
        if self.count == 0:
            return
        if self.fmt == "parquet":
            self._flush_parquet()
            self._pq_writer.close()
        else:
            if self._fh is not self._raw:
                self._fh.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
        os.replace(self.tmp_path, self.path)
        self.count = 0


def package_versions(names: list[str]) -> dict[str, str]:
    """{name: version} of the installed distributions among `names` (missing ones left out), for manifests."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
