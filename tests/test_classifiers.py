import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import SAMPLE, read_jsonl
from corpus.classifier import TextClassifier, fasttext_line, read_labelled, roc_auc
from corpus.cli import app
from corpus.config import ConfigError, load_config
from corpus.pipeline import clean
from corpus.scoring import SHIPPED_QUALITY, SHIPPED_TOXICITY

TOX = Path(__file__).parent / "data" / "toxicity"


def test_roc_auc_by_ranks():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.3, 0.4])) == 0.0
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5  # ties count half
    assert roc_auc(np.array([0, 1, 1, 0]), np.array([0.1, 0.35, 0.4, 0.8])) == 0.5


def test_cjk_is_split_into_characters_for_fasttext():
    assert fasttext_line("你好，World\n  Again") == "你 好 ，world again"


def test_shipped_toxicity_models_on_texts_they_were_not_trained_on():
    zh = read_labelled(TOX / "cold_dev_sample.jsonl")
    en = read_labelled(TOX / "davidson_heldout_sample.jsonl", label_field="toxic")
    for path, data, floor in ((SHIPPED_TOXICITY["zh"], zh, 0.85), (SHIPPED_TOXICITY["en"], en, 0.9)):
        model = TextClassifier(path)
        auc = roc_auc(np.array([y for _, y in data]), model.scores([t for t, _ in data]))
        assert auc >= floor, (path, auc)


def test_shipped_quality_model_agrees_with_ratings_it_was_not_trained_on():
    rated = read_jsonl(Path(__file__).parent / "data" / "quality" / "rated_web_test_sample.jsonl")
    model = TextClassifier(SHIPPED_QUALITY)
    for lang, floor in (("all", 0.75), ("en", 0.75), ("zh", 0.65)):  # measured 0.87, 0.90, 0.79
        part = [r for r in rated if lang in ("all", r["lang"])]
        auc = roc_auc(np.array([r["rating"] >= 3 for r in part]), model.scores([r["text"] for r in part]))
        assert auc >= floor, (lang, auc)


def test_train_classifier_cli_measures_and_is_deterministic(tmp_path: Path):
    runner = CliRunner()
    args = ["train-classifier", "--data", str(TOX / "cold_dev_sample.jsonl"), "--heldout", "0.3", "--epoch", "20"]
    first = runner.invoke(app, args + ["--output", str(tmp_path / "a.bin")])
    assert first.exit_code == 0, first.output
    assert "ROC AUC" in first.output and "threshold" in first.output
    card = json.loads((tmp_path / "a.bin.json").read_text())["report"]
    assert card["heldout_docs"] > 80 and card["roc_auc"] > 0.6  # 280 training comments are enough to rank
    runner.invoke(app, args + ["--output", str(tmp_path / "b.bin")])
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    quantized = runner.invoke(app, args + ["--output", str(tmp_path / "c.ftz"), "--quantize"])
    assert quantized.exit_code == 0 and (tmp_path / "c.ftz").stat().st_size < (tmp_path / "a.bin").stat().st_size
    bad = runner.invoke(app, ["train-classifier", "--data", str(TOX / "cold_dev_sample.jsonl"), "--label-field",
                              "nope", "--output", str(tmp_path / "d.bin")])
    assert bad.exit_code == 2 and "cold_dev_sample.jsonl:1: field 'nope' is missing" in bad.output


def test_toxicity_and_quality_steps_in_corpus_clean(tmp_path: Path):
    zh = read_jsonl(TOX / "cold_dev_sample.jsonl")[:100]
    records = [{"id": r["id"], "text": r["text"]} for r in zh]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    cfg = load_config(overrides={"toxicity": {"enabled": True}, "quality": {"enabled": True}})
    clean([str(path)], tmp_path / "out", cfg, steps=["langid", "quality", "toxicity"])
    kept = read_jsonl(next((tmp_path / "out").glob("shard-*.jsonl.gz")))
    removed = read_jsonl(next((tmp_path / "out" / "removed" / "toxicity").glob("*.gz")))
    assert len(kept) + len(removed) == 100 and removed
    assert all(r["metadata"]["toxicity"]["score"] >= 0.3 and r["metadata"]["toxicity"]["model"] == "toxicity_zh"
               for r in removed)
    scored = [r for r in kept if "toxicity" in r["metadata"]]  # langid may call a short comment ja or und
    assert len(scored) >= 0.9 * len(kept) and all("score" in r["metadata"]["quality"] for r in kept)
    assert all(r["metadata"]["toxicity"]["score"] < 0.3 for r in scored)
    offensive = {r["id"] for r in zh if r["label"] == 1}
    precision = sum(r["id"] in offensive for r in removed) / len(removed)
    assert precision >= 0.7
    with pytest.raises(ConfigError, match="classifier model not found"):
        clean([str(path)], tmp_path / "out2", load_config(overrides={"quality": {"enabled": True, "model": "nope.ftz"}}),
              steps=["quality"])


def test_quality_keep_top_fraction_is_counted_over_all_shards(tmp_path: Path):
    docs = read_jsonl(SAMPLE / "web_en.jsonl")[:120]
    for i in range(3):  # three input files: three tasks, one cut for all of them
        (tmp_path / f"in{i}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[i * 40 : (i + 1) * 40]))
    cfg = load_config(overrides={"quality": {"enabled": True, "keep_top_fraction": 0.25}})
    result = clean([str(tmp_path / f"in{i}.jsonl") for i in range(3)], tmp_path / "out", cfg, steps=["quality"])
    kept = [r for f in sorted((tmp_path / "out").glob("shard-*.jsonl.gz")) for r in read_jsonl(f)]
    removed = [r for f in (tmp_path / "out" / "removed" / "quality_top").glob("*.gz") for r in read_jsonl(f)]
    assert len(kept) + len(removed) == 120 and 30 <= len(kept) <= 33  # a quarter, plus ties at the cut
    assert min(r["metadata"]["quality"]["score"] for r in kept) >= max(r["metadata"]["quality"]["score"] for r in removed)
    assert result.stats["output"]["docs"] == len(kept)
    with pytest.raises(ConfigError, match="not both"):
        load_config(overrides={"quality": {"threshold": 0.5, "keep_top_fraction": 0.1}})
