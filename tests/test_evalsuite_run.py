"""`evalsuite run` end to end on CPU with tiny GPT-2 models built here (tokenizer trained on the fly, random
weights; one copy then trained for a few steps on the English perplexity text)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SAMPLE, read_jsonl

torch = pytest.importorskip("torch", reason="the eval extra is part of the dev install (make install-dev)")

from evalsuite.cli import app
from evalsuite.run import TASKS_DIR, EvalError, RunConfig, load_suite, run
from train.tiny import build_tiny_gpt2


def tiny_model(folder: Path, train_texts: list[str] | None = None) -> Path:
    corpus = [r["text"] for r in read_jsonl(SAMPLE / "web_en.jsonl")[:200]]
    return build_tiny_gpt2(folder, corpus, train_texts)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("eval")
    english = [r["text"] for r in read_jsonl(TASKS_DIR / "data" / "ppl_en.jsonl")]
    untrained = tiny_model(base / "untrained")
    trained = tiny_model(base / "trained", english)
    runs = {}
    for name, folder in (("untrained", untrained), ("trained", trained)):
        runs[name] = run(RunConfig(model=str(folder), suite="core", output=str(base / f"run-{name}"), batch_size=8,
                                   lineage={"train_data": "ppl_en" if name == "trained" else "none"}))
    return base, runs


def test_run_writes_the_run_folder_and_consistent_numbers(two_runs):
    _, runs = two_runs
    trained, untrained = runs["trained"], runs["untrained"]
    for r in (trained, untrained):
        for name in ("results.json", "run.json", "summary.md", "samples/cl_arc_easy.jsonl", "samples/cl_ppl_en.jsonl"):
            assert (r.output / name).is_file(), name
        assert set(r.metrics) == {"cl_ppl_en", "cl_ppl_zh", "cl_arc_easy", "cl_cmmlu", "cl_nq_open", "cl_gsm8k", "core"}
        # the core score: each multiple-choice task centred on its chance level (ARC-Easy: 3-5 choices, CMMLU:
        # 4), then averaged; a guessing model scores about 0
        centred = []
        for task in ("cl_arc_easy", "cl_cmmlu"):
            acc = r.metrics[task]["acc,none"]
            samples = read_jsonl(r.output / "samples" / f"{task}.jsonl")
            chance = sum(1 / len(s["arguments"]) for s in samples) / len(samples)
            centred.append((acc - chance) / (1 - chance))
        assert abs(r.metrics["core"]["centred_acc,none"] - sum(centred) / 2) < 1e-9
        assert abs(r.metrics["core"]["centred_acc,none"]) < 0.25
        # a random-weight model answers no question
        assert r.metrics["cl_nq_open"]["exact_match,none"] == 0.0 and r.metrics["cl_gsm8k"]["exact_match,none"] == 0.0
    # the trained model saw the English text: lower bits per byte there than the untrained one, and lower
    # than on the Chinese text it never saw
    assert trained.metrics["cl_ppl_en"]["bits_per_byte,none"] < 0.8 * untrained.metrics["cl_ppl_en"]["bits_per_byte,none"]
    assert trained.metrics["cl_ppl_en"]["bits_per_byte,none"] < trained.metrics["cl_ppl_zh"]["bits_per_byte,none"]
    manifest = json.loads((trained.output / "run.json").read_text())
    assert manifest["model_fingerprint"] != json.loads((untrained.output / "run.json").read_text())["model_fingerprint"]
    assert "ppl_en.jsonl" in manifest["data_fingerprints"]
    assert "| cl_ppl_en | bits_per_byte |" in (trained.output / "summary.md").read_text()
    assert "<td>cl_arc_easy</td><td>acc</td>" in (trained.output / "summary.html").read_text()


def test_qa_scores_a_model_that_learned_the_answers(tmp_path: Path):
    """A tiny model trained on 20 NQ-open questions with their answers answers some of them exactly; the EM
    and F1 in the results are those of the logged generations against the references."""
    from evalsuite.tasks.qa_metrics import normalise

    questions = read_jsonl(TASKS_DIR / "data" / "nq_open.jsonl")[:20]
    drills = [f"Q: {q['question']}?\nA: {q['answer'][0]}\n" for q in questions]
    folder = tiny_model(tmp_path / "drilled", drills * 20)
    suite = tmp_path / "qa.yaml"
    suite.write_text("name: qa\ntasks: [cl_nq_open]\n")
    result = run(RunConfig(model=str(folder), suite=str(suite), output=str(tmp_path / "run"), limit=20, batch_size=8))
    em, f1 = result.metrics["cl_nq_open"]["exact_match,none"], result.metrics["cl_nq_open"]["f1,none"]
    assert em >= 0.2 and f1 >= em
    samples = read_jsonl(result.output / "samples" / "cl_nq_open.jsonl")
    exact = [any(normalise(s["filtered_resps"][0]) == normalise(a) for a in s["doc"]["answer"]) for s in samples]
    assert abs(em - sum(exact) / len(samples)) < 1e-9


def test_qa_metrics():
    from evalsuite.tasks.qa_metrics import process_gsm8k, process_qa

    assert process_qa({"answer": ["The Beatles", "Beatles"]}, [" the beatles."]) == {"exact_match": 1.0, "f1": 1.0}
    partial = process_qa({"answer": ["14 December 1972"]}, ["December 1972"])
    assert partial["exact_match"] == 0.0 and abs(partial["f1"] - 0.8) < 1e-9
    assert process_qa({"answer": ["北京大学"]}, ["北京"])["f1"] == pytest.approx(2 / 3)  # by character
    assert process_gsm8k({"answer": "... so 1,200 in all\n#### 1200"}, ["She pays 3 * 400 = 1,200 dollars."]) == {
        "exact_match": 1.0}
    assert process_gsm8k({"answer": "#### 18"}, ["18 eggs, then 9 left"])["exact_match"] == 0.0


def test_compare_flags_the_real_regression(two_runs):
    _, runs = two_runs
    runner = CliRunner()
    worse = runner.invoke(app, ["compare", str(runs["trained"].output), str(runs["untrained"].output),
                                "--metric", "cl_ppl_en/bits_per_byte"])
    assert worse.exit_code == 1 and "REGRESSION" in worse.output
    better = runner.invoke(app, ["compare", str(runs["untrained"].output), str(runs["trained"].output),
                                 "--metric", "cl_ppl_en/bits_per_byte"])
    assert better.exit_code == 0


def test_clear_errors(tmp_path: Path):
    with pytest.raises(EvalError, match="model folder not found"):
        run(RunConfig(model=str(tmp_path / "nope"), output=str(tmp_path / "r")))
    with pytest.raises(EvalError, match="unknown suite"):
        load_suite("nope")
    bad = tmp_path / "suite.yaml"
    bad.write_text("name: x\ntasks: cl_ppl_en\n")
    with pytest.raises(EvalError, match="'tasks' must be a non-empty list"):
        load_suite(str(bad))
    runner = CliRunner()
    result = runner.invoke(app, ["run", "--model", str(tmp_path / "nope"), "--output", str(tmp_path / "r")])
    assert result.exit_code == 2 and "model folder not found" in result.output


def test_peft_adapter_folder_runs_on_its_base_model(two_runs):
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2LMHeadModel

    base, runs = two_runs
    model = GPT2LMHeadModel.from_pretrained(base / "untrained")  # the adapter records this folder as its base
    adapter = get_peft_model(model, LoraConfig(r=4, target_modules=["c_attn"], task_type="CAUSAL_LM"))
    adapter.save_pretrained(base / "adapter")
    result = run(RunConfig(model=str(base / "adapter"), suite=str(write_suite(base)), output=str(base / "run-adapter"),
                           batch_size=8, repeats=2))
    spread = json.loads((result.output / "run.json").read_text())["repeats"]["cl_ppl_en"]["bits_per_byte,none"]
    assert spread["std"] == 0.0 and spread["min"] == spread["max"]  # CPU evaluation is deterministic
    # a freshly initialised LoRA adapter is the identity (B = 0): the base model's numbers
    untrained = runs["untrained"].metrics["cl_ppl_en"]["bits_per_byte,none"]
    assert abs(result.metrics["cl_ppl_en"]["bits_per_byte,none"] - untrained) < 1e-6


def write_suite(folder: Path) -> Path:
    suite = folder / "ppl.yaml"
    suite.write_text("name: ppl\ntasks: [cl_ppl_en]\n")
    return suite


def test_runs_are_registered_with_metrics_and_lineage(two_runs):
    from evalsuite.registry import list_runs, run_metrics

    base, runs = two_runs
    records = {r.run_id: r for r in list_runs(base / "registry.sqlite")}
    assert {"run-trained", "run-untrained"} <= set(records)
    assert records["run-trained"].lineage == {"train_data": "ppl_en"}
    metrics = run_metrics(base / "registry.sqlite", "run-trained")
    value, stderr = metrics[("cl_arc_easy", "acc,none")]
    assert value == runs["trained"].metrics["cl_arc_easy"]["acc,none"] and stderr > 0
    listing = CliRunner().invoke(app, ["runs", str(base)])
    assert listing.exit_code == 0 and "run-trained" in listing.output and "train_data=ppl_en" in listing.output
