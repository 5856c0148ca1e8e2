from pathlib import Path

import numpy as np
from datatrove.data import Document

from conftest import SAMPLE, read_jsonl
from corpus.balance import LanguageBalancer, balance_rates
from corpus.config import BalanceConfig, CleanConfig, ExactDedupConfig
from corpus.exact_dedup import plan_duplicates, text_fingerprint
from corpus.heuristics import HeuristicFilter, split_words
from corpus.langid import LanguageIdentifier, script_language
from corpus.normalize import Normalizer

CFG = CleanConfig()


def doc(text: str, **meta) -> Document:
    return Document(text=text, id="d", metadata=dict(meta))


def test_normalize_repairs_mojibake_entities_and_whitespace(tmp_path: Path):
    n = Normalizer(CFG.normalize, tmp_path)
    assert n.normalize("The cafÃ© is   open\u00a0today.\r\n\n\n\nBye &amp; see you  \n") == (
        "The café is open today.\n\nBye & see you")
    assert n.normalize("中文，标点。") == "中文，标点。"  # full-width CJK punctuation is kept by default


def test_langid_uses_the_bundled_lid176_model(tmp_path: Path):
    step = LanguageIdentifier(CFG.langid.model_copy(update={"allow": ["en"]}), tmp_path)
    en = doc("The quick brown fox jumps over the lazy dog near the river bank.")
    zh = doc("今天天气很好，我们一起去公园散步吧。")
    assert step.apply(en) is True and en.metadata["langid"]["lang"] == "en"
    assert step.apply(zh) == (False, "language_not_allowed/zh")
    assert zh.metadata["langid"]["lang"] == "zh" and zh.metadata["langid"]["score"] > 0.5
    assert script_language("これは日本語の文章です") == "ja" and script_language("hello") is None


def test_heuristics_keep_clean_web_text_in_english_and_chinese(tmp_path: Path):
    step = HeuristicFilter(CFG.heuristics, tmp_path)
    c4 = [r for r in read_jsonl(SAMPLE / "web_en.jsonl") if r["source"].startswith("c4")][:100]
    kept_en = sum(step.apply(doc(r["text"], langid={"lang": "en"})) is True for r in c4)
    zh = [r for r in read_jsonl(SAMPLE / "web_zh.jsonl") if len(r["text"]) > 300][:100]
    kept_zh = sum(step.apply(doc(r["text"], langid={"lang": "zh"})) is True for r in zh)
    assert kept_en >= 60, kept_en  # C4 was already filtered with similar rules
    assert kept_zh >= 30, kept_zh  # most others are truncated one-line pages (FineWeb punctuation rule)
    english_rules_on_zh = HeuristicFilter(CFG.heuristics.model_copy(update={"languages": {}}), tmp_path)
    kept_with_en_rules = sum(english_rules_on_zh.apply(doc(r["text"], langid={"lang": "xx"})) is True for r in zh)
    assert kept_with_en_rules < kept_zh / 3  # English word rules drop nearly all Chinese documents


def test_heuristics_name_the_rule_that_removed(tmp_path: Path):
    step = HeuristicFilter(CFG.heuristics, tmp_path)
    spam = "\n".join(["The price of the watch and the band is lower than ever, so have a look with us today."] * 30)
    assert step.apply(doc(spam, langid={"lang": "en"})) == (False, "gopher_repetition/dup_line_frac")
    assert step.apply(doc("too short", langid={"lang": "en"}))[1].startswith("gopher_")
    assert split_words("中文abc de") == ["中", "文", "abc", "de"]


def test_exact_dedup_keeps_first_occurrence_across_tasks():
    cfg = ExactDedupConfig()
    h = lambda t: np.array([text_fingerprint(x, cfg) for x in t], dtype=np.uint64).reshape(-1, 2)
    assert text_fingerprint("Hello  World", cfg) == text_fingerprint("hello world", cfg)
    keeps = plan_duplicates([h(["a", "b", "a"]), h([]), h(["b", "c"])])
    assert [k.tolist() for k in keeps] == [[True, True, False], [], [False, True]]


def test_balance_rates_temperature_and_proportions():
    counts = {"en": 9000, "zh": 1000}
    rates = balance_rates(counts, BalanceConfig(alpha=0.5))
    # p ~ n^0.5: en 0.75, zh 0.25 of 10000 -> en keeps 7500/9000, zh is capped at 1x
    assert abs(rates["en"] - 7500 / 9000) < 1e-9 and rates["zh"] == 1.0
    rates = balance_rates(counts, BalanceConfig(alpha=0.5, max_upsample=3))
    assert abs(rates["zh"] - 2.5) < 1e-9
    rates = balance_rates(counts, BalanceConfig(mode="proportions", proportions={"en": 0.5, "zh": 0.5}, max_upsample=10))
    assert abs(rates["en"] - 5000 / 9000) < 1e-9 and abs(rates["zh"] - 5.0) < 1e-9


def test_balancer_reaches_the_target_mix_deterministically(tmp_path: Path):
    docs = [Document(text=f"text {i}", id=str(i), metadata={"langid": {"lang": "en" if i % 10 else "zh"}})
            for i in range(20000)]
    rates = {"en": 0.5, "zh": 2.5}
    step = LanguageBalancer(BalanceConfig(max_upsample=3), rates, tmp_path)
    out = list(step.run(iter(docs), 0, 1))
    en = sum(d.metadata["langid"]["lang"] == "en" for d in out)
    zh = len(out) - en
    assert abs(en - 9000) < 300 and abs(zh - 5000) < 200
    again = list(LanguageBalancer(BalanceConfig(max_upsample=3), rates, tmp_path / "b").run(iter(docs), 0, 1))
    assert [(d.id, d.metadata["balance"]["copy"]) for d in again] == [(d.id, d.metadata["balance"]["copy"]) for d in out]


def test_proportions_are_met_exactly_by_downsampling_when_upsampling_is_capped():
    rates = balance_rates({"en": 9000, "zh": 1000, "fr": 50}, BalanceConfig(mode="proportions", proportions={"en": 1, "zh": 1}))
    assert rates == {"en": 1000 / 9000, "zh": 1.0, "fr": 1.0}
    rates = balance_rates({"en": 1006, "zh": 9574}, BalanceConfig(mode="proportions", proportions={"en": 1, "zh": 1}, max_upsample=3))
    assert abs(rates["en"] - 3.0) < 1e-9 and abs(rates["zh"] * 9574 - 3018) < 1e-6
