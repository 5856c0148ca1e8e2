"""The generation tasks' metrics (`cl_gen_*`): BLEU and ROUGE against values worked out by hand and
sacrebleu's documented example, Chinese tokenisation, the task YAML's wiring of them (references as answers
score the maximum), and the suite end to end through `evalsuite run` on a tiny random-weight local model."""

import json
import math
from pathlib import Path

import pytest
import sacrebleu
from typer.testing import CliRunner

from conftest import SAMPLE, read_jsonl
from evalsuite.tasks.qa_metrics import bleu, bleu_zh, process_generation, process_generation_zh, rouge

GENERATION = {"cl_gen_summ_en": "13a", "cl_gen_truthfulqa": "13a", "cl_gen_qa_zh": "zh"}


def test_bleu_against_known_values():
    # sacrebleu's README: three segments, two reference streams -> BLEU = 48.53
    streams = [["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
               ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]]
    system = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    assert round(bleu([([streams[0][i], streams[1][i]], system[i]) for i in range(3)]), 2) == 48.53
    # by hand: 7 words against 6, all 6 reference words in order; n-gram precisions 6/7, 5/6, 4/5, 3/4, no
    # brevity penalty (the hypothesis is longer): BLEU = 100 * (3/7) ** (1/4)
    assert bleu([(["the cat sat on the mat"], "the cat sat on the mat today")]) == pytest.approx(100 * (3 / 7) ** 0.25)
    # a shorter hypothesis pays the brevity penalty exp(1 - 6/5), its precisions all 1
    assert bleu([(["the cat sat on the mat"], "the cat sat on the")]) == pytest.approx(100 * math.exp(1 - 6 / 5))
    # references per document may differ in number; a second reference that matches makes it perfect
    assert bleu([(["an unrelated sentence here", "the cat sat on the mat"], "the cat sat on the mat"),
                 (["dogs bark at night"], "dogs bark at night")]) == pytest.approx(100.0)
    assert bleu([(["dogs bark at night"], "cats sleep all day")]) == 0.0


def test_rouge_against_known_values():
    # rouge_score's README pair, worked by hand (stemmed: jumps -> jump, lazy -> lazi): 6 of 8 predicted and 9
    # reference unigrams match, 2 of 7 and 8 bigrams, the longest common subsequence is 5 words
    # (the quick brown jump the)
    scores = rouge("The quick brown dog jumps on the log.", ["The quick brown fox jumps over the lazy dog"])
    assert scores["rouge1"] == pytest.approx(12 / 17)
    assert scores["rouge2"] == pytest.approx(4 / 15)
    assert scores["rougeL"] == pytest.approx(10 / 17)
    # several references: the best per type
    best = rouge("the cat sat", ["a dog ran", "the cat sat down"])
    assert best["rouge1"] == pytest.approx(2 * 3 / 7) and best["rougeL"] == pytest.approx(6 / 7)


def test_chinese_is_scored_by_character():
    prediction, reference = "我喜欢吃苹果", "我喜欢吃香蕉"
    # 6 characters each, 4 shared in a row: precisions 4/6, 3/5, 2/4, 1/3 -> BLEU = 100 * (1/15) ** (1/4)
    assert bleu_zh([([reference], prediction)]) == pytest.approx(100 * (1 / 15) ** 0.25)
    assert bleu([([reference], prediction)]) == 0.0  # 13a sees one word each, and they differ
    scores = process_generation_zh({"answer": [reference]}, [prediction])
    assert scores["rouge1"] == pytest.approx(4 / 6) and scores["rouge2"] == pytest.approx(3 / 5)
    assert scores["rougeL"] == pytest.approx(4 / 6) and scores["f1"] == pytest.approx(4 / 6)
    assert scores["exact_match"] == 0.0
    # rouge_score's own tokenizer keeps a-z and 0-9 only: it would score Chinese 0
    assert rouge(prediction, [reference], "en")["rouge1"] == 0.0
    # Latin words inside Chinese text stay words
    assert rouge("我用Python写代码", ["我用Java写代码"], "zh")["rouge1"] == pytest.approx(5 / 6)


def test_process_generation_reuses_exact_match_and_f1():
    scores = process_generation({"answer": ["Nothing happens", "The seeds pass through you"]}, [" nothing happens."])
    assert scores["exact_match"] == 1.0 and scores["f1"] == 1.0 and scores["rouge1"] == 1.0
    assert scores["bleu"] == (["Nothing happens", "The seeds pass through you"], "nothing happens.")


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> dict:
    """The built-in generation tasks as lm-eval loads them for `evalsuite run` (from the materialised YAML)."""
    from lm_eval.tasks import TaskManager

    from evalsuite.run import materialise_tasks

    manager = TaskManager(include_path=str(materialise_tasks(tmp_path_factory.mktemp("tasks"))))
    return manager.load(list(GENERATION))["tasks"]


def scores(task, docs: list[dict], generations: list[str]) -> dict[str, float]:
    """The task's metrics over `docs` answered with `generations`: its YAML's process_results, then its
    aggregations (what lm-eval does after generating)."""
    per_doc = [task.process_results(doc, [text]) for doc, text in zip(docs, generations, strict=True)]
    return {name: aggregate([r[name] for r in per_doc]) for name, aggregate in task.aggregation().items()}


def streams(references: list[list[str]]) -> list[list[str | None]]:
    """sacrebleu's reference streams (the i-th reference of every document), None where a document has fewer."""
    width = max(len(r) for r in references)
    return [[r[i] if i < len(r) else None for r in references] for i in range(width)]


def test_task_yaml_wires_the_metrics(tasks):
    """Each `cl_gen_*` YAML reaches the right scoring: its references as the answers score the maximum, and
    a near-miss scores what sacrebleu gives with the task's language tokenisation."""
    for name, tokenize in GENERATION.items():
        task = tasks[name]
        docs = list(task.test_docs())[:20]
        perfect = scores(task, docs, [doc["answer"][0] for doc in docs])
        assert perfect["bleu"] == pytest.approx(100.0), name
        assert all(perfect[m] == pytest.approx(1.0) for m in ("rouge1", "rouge2", "rougeL", "exact_match", "f1"))
        clipped = [doc["answer"][0][: len(doc["answer"][0]) // 2] for doc in docs]  # the first half of each
        expected = sacrebleu.corpus_bleu(clipped, streams([doc["answer"] for doc in docs]), tokenize=tokenize).score
        assert scores(task, docs, clipped)["bleu"] == pytest.approx(expected) and 0 < expected < 100, name
    zh = list(tasks["cl_gen_qa_zh"].test_docs())[:20]
    assert scores(tasks["cl_gen_qa_zh"], zh, [d["answer"][0][:-4] for d in zh])["rouge1"] > 0.8  # by character
    truthful = tasks["cl_gen_truthfulqa"]
    doc = next(iter(truthful.test_docs()))
    assert truthful.doc_to_text(doc).endswith(f"Q: {doc['question']}\nA:") and len(doc["answer"]) > 1
    assert truthful.process_results(doc, [doc["answer"][-1]])["exact_match"] == 1.0  # any true answer counts


@pytest.mark.slow
def test_generation_suite_end_to_end(tmp_path: Path):
    """`evalsuite run --suite generation` on a tiny random-weight model: every metric lands in results.json and
    the registry, BLEU equals sacrebleu's corpus BLEU of the logged generations with the task's tokenisation,
    the other metrics the mean of the logged per-document scores."""
    pytest.importorskip("torch", reason="the eval extra is part of the dev install (make install-dev)")
    from evalsuite.cli import app
    from evalsuite.registry import run_metrics
    from train.tiny import build_tiny_gpt2

    folder = build_tiny_gpt2(tmp_path / "random", [r["text"] for r in read_jsonl(SAMPLE / "web_en.jsonl")[:200]])
    out = tmp_path / "run"
    ran = CliRunner().invoke(app, ["run", "--model", str(folder), "--suite", "generation", "--output", str(out),
                                   "--limit", "3", "--batch-size", "4"])
    assert ran.exit_code == 0, ran.output
    results = json.loads((out / "results.json").read_text())["results"]
    registered = run_metrics(tmp_path / "registry.sqlite", "run")
    for task, tokenize in GENERATION.items():
        samples = read_jsonl(out / "samples" / f"{task}.jsonl")
        assert len(samples) == 3
        references = [s["doc"]["answer"] for s in samples]
        generations = [s["filtered_resps"][0].strip() for s in samples]
        bleu_value = results[task]["bleu,none"]
        assert bleu_value == pytest.approx(sacrebleu.corpus_bleu(generations, streams(references), tokenize=tokenize).score)
        assert registered[(task, "bleu,none")][0] == pytest.approx(bleu_value)
        for metric in ("rouge1", "rouge2", "rougeL", "exact_match", "f1"):
            value = results[task][f"{metric},none"]
            assert value == pytest.approx(sum(s[metric] for s in samples) / 3) and 0.0 <= value <= 1.0, metric
        assert f"| {task} | bleu |" in (out / "summary.md").read_text()
