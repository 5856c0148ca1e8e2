import json
from pathlib import Path

import pytest

from conftest import SAMPLE, read_jsonl
from corpus.config import ConfigError, DecontaminateConfig, load_config
from corpus.decontaminate import BenchmarkIndex
from corpus.pipeline import clean

BENCH = Path(__file__).parent / "data" / "benchmarks"


def contaminated_corpus(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Real web documents, some with a benchmark question (or a part of it) pasted into them."""
    web_en = [r for r in read_jsonl(SAMPLE / "web_en.jsonl") if len(r["text"]) > 300][:40]
    web_zh = [r for r in read_jsonl(SAMPLE / "web_zh.jsonl") if len(r["text"]) > 300][:20]
    mmlu = read_jsonl(BENCH / "mmlu_test.jsonl")
    gsm = read_jsonl(BENCH / "gsm8k_test.jsonl")
    cmmlu = read_jsonl(BENCH / "cmmlu_test.jsonl")
    expected = {}
    docs = []
    for i, r in enumerate(web_en):
        text = r["text"]
        if i % 4 == 0:  # a whole MMLU question, mid-document
            q = next(q for q in mmlu[i:] if len(q["question"].split()) >= 16)
            text = text[:200] + " " + q["question"] + " " + text[200:]
            expected[r["id"]] = "mmlu_test"
        elif i % 4 == 1:  # the first 15 words of a GSM8K problem, lower-cased and re-punctuated
            words = gsm[i]["question"].split()[:15]
            text = text + "\n" + " ".join(words).lower().replace(",", " ,")
            expected[r["id"]] = "gsm8k_test"
        docs.append({"id": r["id"], "text": text})
    for i, r in enumerate(web_zh):
        text = r["text"]
        if i % 2 == 0:
            q = next(q for q in cmmlu[i:] if len(q["question"]) >= 32)
            text = text[:100] + q["question"] + text[100:]
            expected[r["id"]] = "cmmlu_test"
        docs.append({"id": r["id"], "text": text})
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    return path, expected


def test_pasted_benchmark_text_is_removed_with_its_benchmark(tmp_path: Path):
    path, expected = contaminated_corpus(tmp_path)
    cfg = load_config(overrides={"decontaminate": {"enabled": True, "benchmarks": [str(BENCH)]}})
    result = clean([str(path)], tmp_path / "out", cfg, steps=["langid", "decontaminate"])
    removed = {r["id"]: r for r in read_jsonl(next((tmp_path / "out" / "removed" / "decontaminate").glob("*.gz")))}
    assert set(removed) == set(expected)  # every pasted one, nothing else
    for doc_id, bench in expected.items():
        assert removed[doc_id]["metadata"]["removed_by"]["reason"] == f"contaminated/{bench}"
        assert bench in removed[doc_id]["metadata"]["decontaminate"]
    row = next(r for r in result.stats["steps"] if r["step"] == "decontaminate")
    assert sum(row["removed"].values()) == len(expected)


def test_flag_mode_keeps_and_marks(tmp_path: Path):
    path, expected = contaminated_corpus(tmp_path)
    cfg = load_config(overrides={"decontaminate": {"enabled": True, "benchmarks": [str(BENCH / "mmlu_test.jsonl")],
                                                   "mode": "flag"}})
    clean([str(path)], tmp_path / "out", cfg, steps=["decontaminate"])
    out = read_jsonl(next((tmp_path / "out").glob("shard-*.jsonl.gz")))
    flagged = {r["id"] for r in out if "decontaminate" in r["metadata"]}
    assert flagged == {k for k, v in expected.items() if v == "mmlu_test"} and len(out) == 60


def test_template_ngrams_and_short_records_are_not_indexed(tmp_path: Path):
    f = tmp_path / "tpl.jsonl"
    template = "Which of the following statements about the topic below is true according to the passage"
    f.write_text("".join(json.dumps({"question": f"{template} number {i}?"}) + "\n" for i in range(30))
                 + json.dumps({"question": "too short to index"}) + "\n")
    index = BenchmarkIndex(DecontaminateConfig(enabled=True, benchmarks=[str(f)]))
    assert index.hits(f"{template} again, in a web page", "en") == {}  # in 30 records: template
    assert index.hits("too short to index", "en") == {}
    assert index.hits(f"{template} number 7? yes", "en") == {"tpl": 1}  # the record's own last n-gram


def test_bad_benchmark_file_and_missing_benchmarks_are_clear_errors(tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "fine"}\n{not json\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: not valid JSON"):
        BenchmarkIndex(DecontaminateConfig(enabled=True, benchmarks=[str(bad)]))
    with pytest.raises(ConfigError, match="needs benchmarks"):
        load_config(overrides={"decontaminate": {"enabled": True}})


def test_evalsuite_builtin_task_data_is_a_benchmark():
    from evalsuite.run import TASKS_DIR

    index = BenchmarkIndex(DecontaminateConfig(enabled=True, benchmarks=["evalsuite"]))
    assert set(index.names) >= {"arc_easy", "ppl_en", "ppl_zh"}
    speech = read_jsonl(TASKS_DIR / "data" / "ppl_en.jsonl")[3]["text"]
    page = "Some web page quoting a speech: " + " ".join(speech.split()[40:70]) + " and more."
    assert index.hits(page, "en") == {"ppl_en": 18}  # 30 quoted words: 18 shared 13-grams
