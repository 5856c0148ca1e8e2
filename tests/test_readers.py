import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from conftest import SAMPLE, read_jsonl
from corpus.config import ReaderConfig
from corpus.readers import CorpusReader, discover_inputs, plan_splits


def read_all(paths, tmp_path: Path, **cfg):
    config = ReaderConfig(**cfg)
    splits = plan_splits(discover_inputs([str(p) for p in paths]), config)
    reader = CorpusReader(splits, config, tmp_path)
    docs = [d for rank in range(len(splits)) for d in reader.run(None, rank, len(splits))]
    rejects = [r for p in sorted((tmp_path / "rejects").glob("*.jsonl")) for r in read_jsonl(p)]
    return docs, rejects, splits


def test_bad_records_go_to_rejects_with_file_line_and_reason(tmp_path: Path):
    src = tmp_path / "in.jsonl"
    lines = [
        b'{"id": "ok1", "text": "a fine document"}',
        b'{"id": "bad-json", "text": "unterminated',
        b'\xff\xfe{"id": "bad-utf8", "text": "x"}',
        b'{"id": "no-text"}',
        b'{"id": "int-text", "text": 42}',
        b'{"id": "blank", "text": "   \\n "}',
        b'{"id": "big", "text": "' + b"x" * 200 + b'"}',
        b'["not", "an", "object"]',
        b'{"id": "ok2", "text": "another fine document"}',
    ]
    src.write_bytes(b"\n".join(lines) + b"\n")
    docs, rejects, _ = read_all([src], tmp_path / "o", max_doc_chars=100)
    assert [d.id for d in docs] == ["ok1", "ok2"]
    by_line = {r["line"]: r for r in rejects}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8]
    assert all(r["file"] == str(src) for r in rejects)
    assert by_line[2]["reason"].startswith("malformed JSON")
    assert by_line[3]["reason"].startswith("invalid UTF-8") and "raw_base64" in by_line[3]
    assert by_line[4]["reason"] == "missing field: 'text'"
    assert by_line[5]["reason"] == "non-string field: 'text' is int"
    assert by_line[6]["reason"].startswith("empty document")
    assert by_line[7]["reason"].startswith("oversized document: 200 chars")
    assert by_line[8]["reason"].startswith("not a JSON object")
    # nothing is lost: every input line is either a document or a reject, and rejects keep the raw record
    assert json.loads(by_line[4]["raw"]) == {"id": "no-text"}


def test_compressed_and_parquet_inputs_read_the_same_documents(tmp_path: Path):
    records = read_jsonl(SAMPLE / "web_zh.jsonl")[:50]
    raw = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    pq.write_table(pa.table({"id": [r["id"] for r in records], "text": [r["text"] for r in records]}),
                   tmp_path / "c.parquet")
    for name in ("a.jsonl.gz", "b.jsonl.zst", "c.parquet"):
        docs, rejects, _ = read_all([tmp_path / name], tmp_path / ("o-" + name))
        assert [(d.id, d.text) for d in docs] == [(r["id"], r["text"]) for r in records], name
        assert rejects == []


def test_large_jsonl_is_split_on_line_boundaries_without_loss(tmp_path: Path):
    whole, _, one = read_all([SAMPLE / "web_en.jsonl"], tmp_path / "a")
    parts, _, many = read_all([SAMPLE / "web_en.jsonl"], tmp_path / "b", split_mb=0.05)
    assert len(one) == 1 and len(many) > 5
    assert [d.id for d in parts] == [d.id for d in whole]
    # line numbers continue across splits
    assert many[1].first_line == 1 + (SAMPLE / "web_en.jsonl").read_bytes()[: many[1].start].count(b"\n")


@pytest.mark.parametrize("extractor", ["trafilatura", "resiliparse"])
def test_warc_response_records_become_documents(tmp_path: Path, extractor: str):
    docs, rejects, _ = read_all([SAMPLE / "whirlwind.warc.gz"], tmp_path, warc_extractor=extractor)
    assert len(docs) + len(rejects) == 1
    assert docs and "Escopete" in docs[0].text
    # the extracted text is the page's content: its words appear in Common Crawl's own WET conversion
    from warcio.archiveiterator import ArchiveIterator

    with open(Path(__file__).parent / "data" / "whirlwind.warc.wet.gz", "rb") as f:
        wet = next(r.content_stream().read().decode() for r in ArchiveIterator(f) if r.rec_type == "conversion")
    words = docs[0].text.split()
    assert sum(w in wet for w in words) / len(words) > 0.9
    assert docs[0].id.startswith("<urn:uuid:") and docs[0].metadata["url"].startswith("http")


def test_inputs_by_folder_and_glob(tmp_path: Path):
    assert [p.name for p in discover_inputs([str(SAMPLE)])] == ["web_en.jsonl", "web_zh.jsonl", "whirlwind.warc.gz"]
    assert [p.name for p in discover_inputs([str(SAMPLE / "web_*.jsonl")])] == ["web_en.jsonl", "web_zh.jsonl"]
