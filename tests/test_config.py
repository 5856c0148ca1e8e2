from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from corpus.config import CleanConfig, ConfigError, load_config


def test_shipped_config_documents_exactly_the_defaults():
    assert load_config(ROOT / "pipelines" / "clean-web.yaml") == CleanConfig()


def test_unknown_option_names_file_and_path(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("langid:\n  alow: [en]\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: langid\.alow: unknown option"):
        load_config(cfg)


def test_bad_value_and_bad_yaml(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("balance:\n  mode: proportions\n")
    with pytest.raises(ConfigError, match="needs 'proportions'"):
        load_config(cfg)
    cfg.write_text("reader: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(cfg)


def test_language_override_is_deep_merged():
    cfg = load_config(overrides={"heuristics": {"languages": {"de": {"gopher_quality": {"min_doc_words": 7}}}}})
    rules = cfg.heuristics.rules_for("de")
    assert rules.gopher_quality.min_doc_words == 7
    assert rules.gopher_quality.max_avg_word_length == 10  # untouched defaults survive
    assert cfg.heuristics.rules_for("zh").gopher_quality.min_avg_word_length is None


def test_cli_fails_fast_with_one_line_reason(tmp_path: Path):
    r = run_cli("clean", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "input not found" in r.stderr and "missing.jsonl" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("executor:\n  workers: 0\n")
    r = run_cli("clean", str(ROOT / "corpus/data/sample/web_zh.jsonl"), "-o", str(tmp_path / "o"), "-c", str(bad))
    assert r.returncode == 2
    assert "executor.workers" in r.stderr
    r = run_cli("clean", str(ROOT / "corpus/data/sample/web_zh.jsonl"), "-o", str(tmp_path / "o"), "--steps", "nope")
    assert r.returncode == 2 and "unknown step 'nope'" in r.stderr


def test_steps_command_lists_every_step():
    r = run_cli("steps")
    assert r.returncode == 0
    for name in ("normalize", "langid", "heuristics", "exact_dedup", "balance"):
        assert name in r.stdout
