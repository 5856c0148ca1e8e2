"""`corpus curate` on real SFT and preference data (EN and ZH slices of ../shared/data) with planted problems: each
must be caught, the rest left alone, the records keep their format, and the output loads for training."""

import copy
import json
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from corpus.finetune.checks import CheckSettings, length_bias, near_identical_pair, truncated_response
from corpus.finetune.curate import CurateConfig, curate
from corpus.finetune.formats import Turn

DATA = ROOT / "tests" / "data"  # slices of ../shared/data (sources and licences in tests/data/README.md)
EMAIL = "jane.doe@example.org"


def head(name: str, n: int) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def write(path: Path, rows: list, extra_lines: tuple[str, ...] = ()) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "".join(extra_lines),
                    encoding="utf-8")
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def sft(tmp_path_factory) -> tuple[Path, Path]:
    """40 Alpaca-GPT4 EN and 40 ZH records (the real data) and planted ones after them, curated once."""
    tmp = tmp_path_factory.mktemp("sft")
    en, zh = head("finetune/alpaca_en.jsonl", 40), head("finetune/alpaca_zh.jsonl", 40)
    en[7] = {**en[7], "output": en[7]["output"] + f"\n\nQuestions? Write to me at {EMAIL}."}  # line 8
    planted = [
        {**en[3], "output": "A different answer to the same instruction, written by someone else entirely."},  # 81
        {**zh[5], "output": "对同一个问题的另一个回答，内容完全不同。"},  # 82: a Chinese duplicate prompt
        {"instruction": "Name the largest planet.", "input": "", "output": "Jupiter is the largest planet."},  # 83
        {"instruction": "Give me three tips for staying healthy.", "input": "",
         "output": "I'm sorry, but I can't help with that."},  # 84: an over-refusal of a harmless request
        {"instruction": "Describe the water cycle.", "input": "", "output": "   "},  # 85: an empty reply
    ]
    rows = en + zh + planted
    write(tmp / "sft.jsonl", rows, ('{"instruction": "broken json"\n', '{"instruction": "no output field"}\n'))
    out = tmp / "out"
    result = curate([tmp / "sft.jsonl"], out, CurateConfig(), progress=False)
    return out, result.stats


def test_planted_problems_in_sft_data_are_caught(sft):
    out, stats = sft
    removed = {r["line"]: r["reason"] for r in lines(out / "removed.jsonl")}
    assert removed[81].startswith("duplicate_prompt: same prompt as") and removed[81].endswith(":4")
    assert removed[82].startswith("duplicate_prompt") and removed[82].endswith(":46")
    assert removed[85] == "empty_response: empty response"
    flagged = {r["line"]: r["flags"] for r in lines(out / "flagged.jsonl")}
    assert flagged[84] == ["refusal: over-refusal: response is a refusal of a harmless request"]
    rejects = {r["line"]: r["reason"] for r in lines(out / "rejects.jsonl")}
    assert rejects[86].startswith("not valid JSON") and rejects[87] == "field 'output' is missing (format alpaca)"
    assert stats["input"] == {"files": 1, "records": 87, "formats": {"alpaca": 85}}
    assert stats["pii"]["by_type"]["EMAIL"] >= 1


def test_pii_is_scrubbed_in_the_reply_and_the_rest_of_each_record_is_untouched(sft):
    out, stats = sft
    curated = lines(out / "curated.jsonl")
    text = (out / "curated.jsonl").read_text(encoding="utf-8")
    assert EMAIL not in text and "Write to me at <EMAIL>." in text
    assert EMAIL not in (out / "stats.json").read_text() + (out / "removed.jsonl").read_text()
    originals = head("finetune/alpaca_en.jsonl", 40)
    assert curated[0] == originals[0] and set(curated[0]) == {"instruction", "input", "output"}
    scrubbed = next(r for r in curated if r["instruction"] == originals[7]["instruction"])
    assert scrubbed == {**originals[7], "output": originals[7]["output"] + "\n\nQuestions? Write to me at <EMAIL>."}
    assert len(curated) == stats["output"]["records"] == 87 - 2 - sum(stats["removed"].values())


def test_phone_numbers_are_checked_against_the_plans_of_the_records_language(tmp_path: Path):
    """As the `pii` step after `langid` does: a Swedish record keeps a library shelf mark that neither Sweden's nor
    Finland's plan has; an English one has it scrubbed, one of the 66 default plans having it."""
    rows = [{"instruction": "Var finns boken om huset i Ligurien?", "input": "",
             "output": "Boken finns på hyllan BN 445 24 52 i biblioteket, och den handlar om ett gammalt hus."},
            {"instruction": "Where is the book about the house in Liguria?", "input": "",
             "output": "The book is on shelf BN 445 24 52 in the library, and it tells of an old house."}]
    curate([write(tmp_path / "in.jsonl", rows)], tmp_path / "out", CurateConfig(), progress=False)
    swedish, english = lines(tmp_path / "out" / "curated.jsonl")
    assert "BN 445 24 52" in swedish["output"] and "BN <PHONE> in" in english["output"]


def test_the_same_input_gives_the_same_bytes_and_scores_per_turn(sft, tmp_path: Path):
    out, _ = sft
    again = curate([out.parent / "sft.jsonl"], tmp_path / "again", CurateConfig(), progress=False).output
    for name in ("curated.jsonl", "removed.jsonl", "rejects.jsonl", "flagged.jsonl", "scores.jsonl", "stats.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    scores = lines(out / "scores.jsonl")
    assert len(scores) == 85 and all(len(s["turns"]["toxicity"]) == len(s["turns"]["quality"]) for s in scores)
    assert all(s["toxicity"] == max(s["turns"]["toxicity"]) for s in scores)


@pytest.fixture(scope="module")
def preference(tmp_path_factory) -> tuple[Path, dict]:
    """30 DPO ZH pairs (ShareGPT) with a near-identical and a length-only pair planted, curated to pairwise."""
    tmp = tmp_path_factory.mktemp("pref")
    rows = head("finetune/dpo_zh.jsonl", 30)
    same = copy.deepcopy(rows[0])
    same["conversations"][0]["value"] = "请写一首关于秋天落叶的短诗，并解释它的意象。"
    same["chosen"]["value"] = "秋风起，落叶黄，片片飘零似信笺，写满了夏天的故事，寄给即将到来的冬天。"
    same["rejected"]["value"] = same["chosen"]["value"].replace("冬天", "冬季")
    longer = copy.deepcopy(rows[1])
    longer["conversations"][0]["value"] = "用一句话介绍长城。"
    longer["rejected"]["value"] = "长城是中国古代修建的军事防御工程，绵延数千公里。"
    longer["chosen"]["value"] = longer["rejected"]["value"] + "它始建于春秋战国时期，历经秦、汉、明等朝代的修缮与扩建，" \
        "如今已成为世界文化遗产和中华民族的象征，每年吸引大量游客前来参观。"
    write(tmp / "dpo.jsonl", [*rows, same, longer])
    result = curate([tmp / "dpo.jsonl"], tmp / "out", CurateConfig(convert_to="pairwise"), progress=False)
    return tmp / "out", result.stats


def test_planted_preference_pairs_are_caught_and_the_output_trains(preference):
    from train.data import load, to_preference

    out, stats = preference
    removed = {r["line"]: r["reason"] for r in lines(out / "removed.jsonl")}
    assert removed[31].startswith("near_identical_pair: chosen and rejected near-identical")
    flagged = {r["line"]: r["flags"] for r in lines(out / "flagged.jsonl")}
    assert any(f.startswith("length_only_pair: one reply is the other plus more text") for f in flagged[32])
    curated = lines(out / "curated.jsonl")
    assert all(set(r) == {"prompt", "chosen", "rejected"} for r in curated)
    loaded = load([str(out / "curated.jsonl")], to_preference)
    assert loaded.rejects == [] and len(loaded.examples) == len(curated) == stats["output"]["records"]
    assert stats["length_bias"]["pairs"] == len(curated)


def test_checks_on_their_own():
    settings = CheckSettings()
    cut = [Turn(("output",), "response", "Here is the code:\n```python\nprint('hi')\n")]
    assert truncated_response(cut, settings) == "truncated response: unclosed code block"
    sentence = [Turn(("output",), "response", "A complete answer. " * 12 + "It ends with the")]
    assert truncated_response(sentence, settings) == "truncated response: ends mid-sentence"
    assert truncated_response([Turn(("output",), "response", "Paris")], settings) is None
    pair = [Turn(("prompt",), "prompt", "Q"), Turn(("chosen",), "chosen", "The same answer, word for word."),
            Turn(("rejected",), "rejected", "The same answer, word for word!")]
    assert near_identical_pair(pair, settings).startswith("chosen and rejected near-identical")
    bias = length_bias([("a long chosen reply", "short"), ("short", "a long rejected reply"), ("same", "same")])
    assert bias.pairs == 3 and bias.chosen_longer == pytest.approx(0.5)


def test_cli_reports_and_bad_config_names_the_option(tmp_path: Path):
    rows = head("train/self_instruct.jsonl", 20)
    src = write(tmp_path / "in.jsonl", rows)
    done = run_cli("curate", str(src), "-o", str(tmp_path / "out"), "--to", "messages")
    assert done.returncode == 0, done.stderr
    assert "20 records in (alpaca 20)" in done.stdout
    converted = lines(tmp_path / "out" / "curated.jsonl")
    assert all(r["messages"][-1]["role"] == "assistant" for r in converted)
    bad = tmp_path / "bad.yaml"
    bad.write_text("checks: {no_such_check: drop}\n")
    done = run_cli("curate", str(src), "-o", str(tmp_path / "out2"), "--config", str(bad))
    assert done.returncode == 2 and "unknown check 'no_such_check'" in done.stderr


def test_decontamination_token_budget_and_balance(tmp_path: Path):
    from train.tokenizer import train_bpe_tokenizer

    en, zh = head("finetune/alpaca_en.jsonl", 40), head("finetune/alpaca_zh.jsonl", 10)
    src = write(tmp_path / "mix.jsonl", en + zh)
    # an evaluation set that quotes record 5's reply
    bench = write(tmp_path / "bench.jsonl", [{"question": "q", "answer": en[4]["output"][:400]}])
    cfg = CurateConfig(decontaminate={"benchmarks": [str(bench)]}, dedup="off", checks={})
    done = curate([src], tmp_path / "decon", cfg, progress=False)
    removed = {r["line"]: r["reason"] for r in lines(tmp_path / "decon" / "removed.jsonl")}
    assert removed == {5: removed[5]} and removed[5].startswith("decontaminate: shares n-grams with bench (")
    assert done.stats["removed"] == {"decontaminate": 1}

    tokenizer = train_bpe_tokenizer([r["output"] for r in en + zh], 500)
    tokenizer.save_pretrained(tmp_path / "tok")
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    sizes = [count(r["instruction"]) + count(r["input"]) + count(r["output"]) for r in en + zh]
    budget = sorted(sizes)[len(sizes) // 2]  # about half the records are over it
    over = sum(n > budget for n in sizes)
    dropped = curate([src], tmp_path / "drop", CurateConfig(max_tokens=budget, tokenizer=str(tmp_path / "tok"),
                                                              dedup="off", checks={}), progress=False)
    assert dropped.stats["token_budget"] == {"dropped": over} and dropped.stats["output"]["records"] == 50 - over
    cut = curate([src], tmp_path / "cut", CurateConfig(max_tokens=budget, tokenizer=str(tmp_path / "tok"),
                                                         over_budget="truncate", dedup="off", checks={}), progress=False)
    assert cut.stats["output"]["records"] == 50 - cut.stats["token_budget"].get("dropped", 0)
    for r in lines(tmp_path / "cut" / "curated.jsonl"):
        assert count(r["instruction"]) + count(r["input"]) + count(r["output"]) <= budget

    balanced = curate([src], tmp_path / "bal", CurateConfig(balance={"mode": "proportions", "proportions":
                                                                    {"en": 0.5, "zh": 0.5}, "max_upsample": 4},
                                                            dedup="off", checks={}), progress=False)
    mix = balanced.stats["balance"]
    assert mix["before"] == {"en": 40, "zh": 10} and mix["after"]["en"] == pytest.approx(mix["after"]["zh"], abs=8)
    assert balanced.stats["output"]["records"] == sum(mix["after"].values())


@pytest.mark.slow
def test_report_draws_every_chart_and_shows_examples_as_text(sft):
    from conftest import chromium_page

    out, stats = sft
    with chromium_page(out / "report.html") as page:
        page.wait_for_selector("body[data-ready='1']")
        drawn = page.eval_on_selector_all(".chart", "els => els.map(e => [e.id, e.dataset.drawn])")
        assert dict(drawn) == {"chart-checks": "1", "chart-languages": "1", "chart-prompt-lengths": "1",
                               "chart-reply-lengths": "1", "chart-pii": "1", "chart-balance": "empty"}
        kpis = dict(page.eval_on_selector_all("#kpis .kpi", "els => els.map(e => [e.lastChild.textContent, "
                                              "e.firstChild.textContent])"))
        assert kpis["output records"] == str(stats["output"]["records"]) and kpis["input records"] == "87"
        rows = page.eval_on_selector_all("#examples tr[data-check]", "rs => rs.map(r => [r.dataset.check, "
                                         "r.cells[1].textContent])")
        assert ["duplicate_prompt", "sft.jsonl:81"] in rows and ["empty_response", "sft.jsonl:85"] in rows
        languages = stats["languages"]
        assert set(languages["input"]) >= {"en", "zh"} and sum(languages["input"].values()) == 85
