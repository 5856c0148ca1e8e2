"""Fine-tuning record formats on real SFT, preference and tool-calling data (slices of ../shared/data): detection,
every text reached in place, lossless conversions, and errors that name the field."""

import copy
import json

import pytest

from conftest import ROOT
from corpus.finetune.formats import FORMATS, FormatError, convert, detect, prompt_text, set_text, turns

DATA = ROOT / "tests" / "data"  # slices of ../shared/data (sources and licences in tests/data/README.md)
FILES = {  # file: (format, the roles of the first record's turns)
    "finetune/alpaca_en.jsonl": ("alpaca", ["prompt", "response"]),
    "train/self_instruct.jsonl": ("alpaca", ["prompt", "response"]),
    "finetune/dpo_zh.jsonl": ("sharegpt_pairwise", ["prompt", "chosen", "rejected"]),
    "train/hh_rlhf.jsonl": ("pairwise", ["prompt", "chosen", "rejected"]),
    "finetune/kto_en.jsonl": ("kto_messages", ["prompt", "response"]),
    "finetune/glaive_toolcall_en.jsonl": ("sharegpt", ["prompt", "response", "prompt", "tool_call", "tool",
                                                       "response", "prompt", "response"]),
}


def records(name: str, n: int = 200) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


@pytest.mark.parametrize("name", FILES)
def test_real_files_are_detected_and_every_text_is_reached_in_place(name: str):
    expected, first_roles = FILES[name]
    rows = records(name)
    assert {detect(r) for r in rows} == {expected}
    assert [t.role for t in turns(rows[0], expected)] == first_roles
    for record in rows:
        found = turns(record, expected)
        assert found  # (some real replies are empty: the curation checks catch those)
        marked = copy.deepcopy(record)
        for i, t in enumerate(found):
            set_text(marked, t.path, f"<{i}>")
        assert [t.text for t in turns(marked, expected)] == [f"<{i}>" for i in range(len(found))]
        # nothing but the texts changed: putting them back gives the record again
        for t in found:
            set_text(marked, t.path, t.text)
        assert marked == record


def test_each_format_by_its_fields():
    examples = {
        "io": {"input": "2+2?", "output": "4"},
        "alpaca": {"instruction": "Add.", "input": "2+2", "output": "4", "system": "Be brief.",
                   "history": [["hi", "hello"]]},
        "prompt_completion": {"prompt": "2+2?", "completion": "4"},
        "messages": {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
        "sharegpt": {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]},
        "pairwise": {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        "sharegpt_pairwise": {"conversations": [{"from": "human", "value": "2+2?"}],
                              "chosen": {"from": "gpt", "value": "4"}, "rejected": {"from": "gpt", "value": "5"}},
        "ranked": {"prompt": "2+2?", "responses": [{"text": "5", "rank": 2}, {"text": "4", "rank": 1}]},
        "kto": {"prompt": "2+2?", "completion": "4", "label": True},
        "kto_messages": {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
                         "label": False},
    }
    assert set(examples) == set(FORMATS)
    for name, record in examples.items():
        assert detect(record) == name
    alpaca = turns(examples["alpaca"], "alpaca")
    assert [(t.role, t.text) for t in alpaca] == [("system", "Be brief."), ("prompt", "hi"), ("response", "hello"),
                                                  ("prompt", "Add."), ("context", "2+2"), ("response", "4")]
    assert prompt_text(alpaca) == "Be brief.\n\nhi\n\nAdd.\n\n2+2"


def test_conversions_that_lose_nothing():
    ranked = {"id": "r1", "prompt": "Best fruit?", "responses": [
        {"text": "apple", "rank": 1}, {"text": "pear", "rank": 2}, {"text": "plum", "rank": 2}]}
    assert convert(ranked, "ranked", "pairwise") == [
        {"id": "r1", "prompt": "Best fruit?", "chosen": "apple", "rejected": "pear"},
        {"id": "r1", "prompt": "Best fruit?", "chosen": "apple", "rejected": "plum"}]  # equal ranks make no pair
    alpaca = {"instruction": "Translate.", "input": "chat", "output": "cat", "system": "Be brief."}
    assert convert(alpaca, "alpaca", "messages") == [{"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Translate.\n\nchat"},
        {"role": "assistant", "content": "cat"}]}]
    tool = records("finetune/glaive_toolcall_en.jsonl", 1)[0]
    (converted,) = convert(tool, "sharegpt", "messages")
    assert converted["tools"] == tool["tools"]
    call = next(m for m in converted["messages"] if m.get("tool_calls"))
    original = json.loads(next(t["value"] for t in tool["conversations"] if t["from"] == "function_call"))
    assert call["tool_calls"][0]["function"]["name"] == original["name"]
    assert json.loads(call["tool_calls"][0]["function"]["arguments"]) == original["arguments"]
    assert detect(converted) == "messages" and [t.role for t in turns(converted, "messages")].count("tool_call") == 1
    dpo = records("finetune/dpo_zh.jsonl", 1)[0]
    (pair,) = convert(dpo, "sharegpt_pairwise", "pairwise")
    assert pair["chosen"] == [{"role": "assistant", "content": dpo["chosen"]["value"]}]
    assert detect(pair) == "pairwise" and [t.role for t in turns(pair, "pairwise")][-2:] == ["chosen", "rejected"]
    with pytest.raises(FormatError, match="kto records cannot be converted to messages without loss"):
        convert({"prompt": "a", "completion": "b", "label": True}, "kto", "messages")
    with pytest.raises(FormatError, match="convert to messages or pairwise only"):
        convert(alpaca, "alpaca", "sharegpt")


@pytest.mark.parametrize(("record", "fmt", "message"), [
    ({"instruction": "x", "output": 3}, "alpaca", "field 'output' must be a string, not int"),
    ({"conversations": [{"from": "bot", "value": "x"}]}, "sharegpt", r"field 'conversations\[0\].from' must be"),
    ({"messages": []}, "messages", "field 'messages' must be a non-empty list"),
    ({"prompt": "x", "responses": [{"text": "a", "rank": "1"}, {"text": "b", "rank": 2}]}, "ranked",
     r"field 'responses\[0\].rank' must be a number"),
    ({"prompt": "x", "responses": [{"text": "a", "rank": 1}]}, "ranked", "at least two ranked responses"),
    ({"prompt": "x", "completion": "y", "label": "true"}, "kto", "field 'label' must be true"),
    ({"input": "x"}, "io", r"field 'output' is missing \(format io\)"),
    ({"history": [["only one"]], "instruction": "x", "output": "y"}, "alpaca", r"'history\[0\]' must be a \[prompt"),
])
def test_records_that_do_not_fit_name_the_field(record: dict, fmt: str, message: str):
    with pytest.raises(FormatError, match=message):
        turns(record, fmt)


def test_a_record_of_no_format():
    with pytest.raises(FormatError, match="no fine-tuning format fits"):
        detect({"text": "plain pretraining text"})
