"""Reading raw input into Documents: JSONL (plain, .gz, .zst), Parquet and Common Crawl WARC.

Inputs are files, folders (searched recursively) or globs. Plain JSONL files are cut into line-aligned
byte ranges ("splits") so that one big file still spreads over many tasks. Unreadable records never stop a
run: each goes to `rejects/<rank>.jsonl` with its file, line and reason, and the raw bytes.
"""

from __future__ import annotations

import base64
import glob
import gzip
import io
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from datatrove.data import Document, DocumentsPipeline

from corpus.base import NamedStep, length_bucket, utf8_len
from corpus.config import ConfigError, ReaderConfig
from corpus.io import RecordSink

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
COMPRESSION_SUFFIXES = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}


@dataclass(frozen=True)
class InputSplit:
    """A part of one input file: a line-aligned byte range of a plain JSONL file, or a whole file."""

    path: str
    fmt: str  # jsonl | parquet | warc
    compression: str | None = None
    start: int = 0
    end: int | None = None
    first_line: int = 1


def detect_format(path: Path, forced: str = "auto") -> tuple[str, str | None]:
    """(format, compression) of a file from its name; raises ConfigError on an unknown kind."""
    name = path.name.lower()
    compression = None
    for suffix, comp in COMPRESSION_SUFFIXES.items():
        if name.endswith(suffix):
            compression, name = comp, name[: -len(suffix)]
            break
    if forced != "auto":
        return forced, compression
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl", compression
    if name.endswith(".parquet"):
        return "parquet", compression
    if name.endswith((".warc", ".arc")):
        return "warc", compression
    raise ConfigError(f"{path}: unknown input type (expected .jsonl[.gz|.zst], .parquet or .warc[.gz])")


def _is_input_file(path: Path) -> bool:
    try:
        detect_format(path)
        return True
    except ConfigError:
        return False


def discover_inputs(inputs: list[str]) -> list[Path]:
    """Expand files, folders and globs into a sorted, de-duplicated list of input files."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found.extend(f for f in sorted(p.rglob("*")) if f.is_file() and _is_input_file(f))
        elif p.is_file():
            detect_format(p)
            found.append(p)
        elif any(ch in item for ch in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(item, recursive=True)) if Path(m).is_file()]
            if not matches:
                raise ConfigError(f"no input file matches {item!r}")
            found.extend(m for m in matches if _is_input_file(m))
        else:
            raise ConfigError(f"input not found: {item}")
    unique = sorted(set(found), key=lambda q: str(q))
    if not unique:
        raise ConfigError(f"no readable input files in {' '.join(inputs)}")
    return unique


def plan_splits(paths: list[Path], cfg: ReaderConfig) -> list[InputSplit]:
    """Cut the inputs into splits: plain JSONL by line-aligned byte ranges of about `split_mb`, others whole."""
    target = int(cfg.split_mb * 1024 * 1024)
    splits: list[InputSplit] = []
    for path in paths:
        fmt, compression = detect_format(path, cfg.format)
        size = path.stat().st_size
        if fmt != "jsonl" or compression or size <= target:
            splits.append(InputSplit(str(path), fmt, compression))
            continue
        boundaries = [0]
        with open(path, "rb") as f:
            while boundaries[-1] + target < size:
                f.seek(boundaries[-1] + target)
                f.readline()
                pos = f.tell()
                if pos >= size:
                    break
                boundaries.append(pos)
        boundaries.append(size)
        line = 1
        for start, end in itertools.pairwise(boundaries):
            splits.append(InputSplit(str(path), fmt, None, start, end, line))
            line += _count_newlines_between(path, start, end)
    return splits


def _count_newlines_between(path: Path, start: int, end: int) -> int:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(end - start).count(b"\n")


class Reject(Exception):
    """A record that cannot be read; carries the reason shown in rejects/."""


def _open_binary(split: InputSplit) -> io.BufferedIOBase:
    raw = open(split.path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    if split.compression == "gzip":
        return gzip.GzipFile(fileobj=raw)
    if split.compression == "zstd":
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    raw.seek(split.start)
    return raw


class CorpusReader(NamedStep):
    """Reads the splits assigned to a task (split i goes to task i mod tasks) and yields Documents."""

    name = "read"

    def __init__(self, splits: list[InputSplit], cfg: ReaderConfig, output_dir: str | Path):
        super().__init__()
        self.splits = splits
        self.cfg = cfg
        self.output_dir = str(output_dir)

    # -- rejects -------------------------------------------------------------------------------------
    def _reject(self, sink: RecordSink, split: InputSplit, line: int, reason: str, raw: Any) -> None:
        kind = reason.split(":")[0]
        self.count("rejected")
        self.count(f"rejected/{kind}")
        record: dict[str, Any] = {"file": split.path, "line": line, "reason": reason}
        if isinstance(raw, bytes):
            try:
                record["raw"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                record["raw_base64"] = base64.b64encode(raw).decode("ascii")
        elif raw is not None:
            record["raw"] = raw
        sink.write(record)

    # -- record validation ---------------------------------------------------------------------------
    def _to_document(self, record: Any, split: InputSplit, line: int) -> Document:
        if not isinstance(record, dict):
            raise Reject(f"not a JSON object: got {type(record).__name__}")
        text = record.get(self.cfg.text_field)
        if text is None:
            raise Reject(f"missing field: '{self.cfg.text_field}'")
        if not isinstance(text, str):
            raise Reject(f"non-string field: '{self.cfg.text_field}' is {type(text).__name__}")
        if not text.strip():
            raise Reject(f"empty document: field '{self.cfg.text_field}' is blank")
        if len(text) > self.cfg.max_doc_chars:
            raise Reject(f"oversized document: {len(text)} chars > max_doc_chars {self.cfg.max_doc_chars}")
        doc_id = record.get(self.cfg.id_field)
        doc_id = f"{Path(split.path).name}:{line}" if doc_id is None else str(doc_id)
        metadata = {k: v for k, v in record.items() if k not in (self.cfg.text_field, self.cfg.id_field)}
        return Document(text=text, id=doc_id, metadata=metadata)

    # -- formats ---------------------------------------------------------------------------------------
    def _jsonl(self, split: InputSplit) -> Iterator[tuple[int, bytes, Any]]:
        """Yields (line number, raw line, parsed record or Reject)."""
        line_no = split.first_line - 1
        with _open_binary(split) as f:
            pos = split.start
            try:
                for raw in f:
                    line_no += 1
                    if split.end is not None:
                        pos += len(raw)
                    stripped = raw.strip()
                    if stripped:
                        try:
                            stripped.decode("utf-8")
                        except UnicodeDecodeError as e:
                            yield line_no, stripped, Reject(f"invalid UTF-8: byte {e.start} of the line")
                        else:
                            try:
                                yield line_no, stripped, orjson.loads(stripped)
                            except orjson.JSONDecodeError as e:
                                yield line_no, stripped, Reject(f"malformed JSON: {e}")
                    if split.end is not None and pos >= split.end:
                        break
            except (EOFError, OSError, gzip.BadGzipFile) as e:
                yield line_no + 1, None, Reject(f"corrupt or truncated file: {type(e).__name__}: {e}")

    def _parquet(self, split: InputSplit) -> Iterator[tuple[int, Any, Any]]:
        import pyarrow.parquet as pq

        row = 0
        try:
            pf = pq.ParquetFile(split.path)
            for batch in pf.iter_batches(batch_size=1024):
                for record in batch.to_pylist():
                    row += 1
                    yield row, None, record
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for unreadable files
            yield row + 1, None, Reject(f"unreadable Parquet: {type(e).__name__}: {e}")

    def _warc(self, split: InputSplit) -> Iterator[tuple[int, Any, Any]]:
        from warcio.archiveiterator import ArchiveIterator

        extract = self._html_extractor()
        number = 0
        with open(split.path, "rb") as f:
            try:
                for record in ArchiveIterator(f):
                    if record.rec_type != "response":
                        continue
                    number += 1
                    content_type = (record.http_headers.get_header("Content-Type") if record.http_headers else "") or ""
                    url = record.rec_headers.get_header("WARC-Target-URI")
                    if "html" not in content_type.lower():
                        continue
                    payload = record.content_stream().read()
                    charset = "utf-8"
                    if "charset=" in content_type.lower():
                        charset = content_type.lower().split("charset=")[-1].split(";")[0].strip() or "utf-8"
                    try:
                        html = payload.decode(charset, errors="replace")
                    except LookupError:
                        html = payload.decode("utf-8", errors="replace")
                    text = extract(html) or ""
                    rec_id = record.rec_headers.get_header("WARC-Record-ID") or f"{Path(split.path).name}:{number}"
                    if not text.strip():
                        yield number, {"url": url, "id": rec_id}, Reject("no text extracted from the HTML")
                        continue
                    yield number, None, {
                        self.cfg.id_field: rec_id,
                        self.cfg.text_field: text,
                        "url": url,
                        "date": record.rec_headers.get_header("WARC-Date"),
                    }
            except Exception as e:  # noqa: BLE001 - warcio raises several types on corrupt archives
                yield number + 1, None, Reject(f"corrupt WARC: {type(e).__name__}: {e}")

    def _html_extractor(self):
        if self.cfg.warc_extractor == "resiliparse":
            from resiliparse.extract.html2text import extract_plain_text

            return lambda html: extract_plain_text(html, main_content=True)
        from datatrove.pipeline.extractors import Trafilatura

        # deduplicate=False: trafilatura's cross-document dedup keeps state between documents, which would
        # make the output depend on how inputs are sharded over tasks.
        return Trafilatura(favour_precision=True, deduplicate=False).extract

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        rejects = RecordSink(Path(self.output_dir) / "rejects" / f"{rank:05d}.jsonl", "jsonl")
        readers = {"jsonl": self._jsonl, "parquet": self._parquet, "warc": self._warc}
        for split in self.splits[rank::world_size]:
            for line, raw, parsed in readers[split.fmt](split):
                with self.track_time():
                    try:
                        if isinstance(parsed, Reject):
                            raise parsed
                        doc = self._to_document(parsed, split, line)
                    except Reject as reject:
                        if raw is None and not isinstance(parsed, Reject):
                            raw = orjson.dumps(parsed, default=str)
                        self._reject(rejects, split, line, str(reject), raw)
                        continue
                n_chars = len(doc.text)
                self.count("docs_out")
                self.count("bytes_out", utf8_len(doc.text))
                self.count(length_bucket(n_chars))
                yield doc
        rejects.close()
        self.flush_counts()


def split_summary(splits: list[InputSplit]) -> dict[str, int]:
    return {"files": len({s.path for s in splits}), "splits": len(splits),
            "bytes": sum(os.path.getsize(p) for p in {s.path for s in splits})}
