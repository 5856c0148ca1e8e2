"""Rebuild the benchmark slices shipped with the built-in tasks from the data they come from (the shared data
folder of the development workspace, holding `eval_benchmarks/` and `sft/`; see README.md beside this file):

    python -m evalsuite.tasks.data.build_slices ../shared/data

Deterministic: the same input gives byte-identical files. Slices are spread evenly over each source (every
k-th record) so that every subject of CMMLU is represented. The generation slices (`gen_*.jsonl`) are
records chosen by a fixed rule and rewritten to one shape: the prompt's fields and `answer`, the list of
reference answers (the first the best). The safety slices (`safety_*.jsonl`) and the labelled refusal sample
come from `safety_slices.py` (also `preference/` and `toxicity_zh/` of the shared folder)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from corpus.io import atomic_write_text, iter_jsonl
from evalsuite.tasks.data.safety_slices import SAFETY, spread

HERE = Path(__file__).resolve().parent

# (output, source file, records, how): "spread" takes every k-th record, None the source's first `records`
SLICES = [
    ("arc_easy.jsonl", "eval_benchmarks/en/arc_easy_validation.jsonl", 200, None),
    ("nq_open.jsonl", "eval_benchmarks/en/nq_open_validation.jsonl", 200, "spread"),
    ("gsm8k.jsonl", "eval_benchmarks/en/gsm8k_test.jsonl", 200, "spread"),
    ("gsm8k_fewshot.jsonl", "eval_benchmarks/en/gsm8k_train.jsonl", 8, None),
    ("cmmlu.jsonl", "eval_benchmarks/zh/cmmlu_test.jsonl", 201, "spread"),
]

# an instruction that asks to condense or restate a text it is given
_CONDENSE = re.compile(r"summar|sum up|headline|title (for|based on)|tl;?dr|condense|shorten|concise|brief|"
                       r"one sentence|single sentence|main points|paraphrase|rephrase|rewrite|re-write|simplif", re.I)
# a Chinese instruction that asks a question, for an explanation or a list, or to condense or restate a text
_ASK_ZH = re.compile(r"[？?]\s*$|什么|哪|谁|多少|几|为什么|怎样|如何|吗|解释|说出|列出|命名|总结|概括|摘要|简化|改写|缩短|精简|翻译")
# a reference that declines, asks for input the instruction lacks, addresses the user or talks about being an
# AI: nothing a model's answer could be matched against
_NON_ANSWER_ZH = re.compile(r"抱歉|对不起|不好意思|无法|您|你没有|提供更多|人工智能|AI|语言模型")


def take(records: list[dict], n: int, how: str | None) -> list[dict]:
    return records[:n] if how is None else spread(records, n)


def summ_en(root: Path) -> list[dict]:
    """English instructions that condense or restate a given text (summaries, headlines, titles, concise
    rewrites, paraphrases): an input of at most 4,000 characters, a reference no longer than it, no code."""
    chosen = []
    for source, path in (("alpaca_en_gpt4", "sft/alpaca_en_gpt4_llamafactory.jsonl"),
                         ("self_instruct", "sft/self_instruct_human_written.jsonl")):
        for line, r in iter_jsonl(root / path):
            text, output = r["input"].strip(), r["output"].strip()
            if (_CONDENSE.search(r["instruction"]) and text and len(output) <= len(text) <= 4000
                    and "```" not in output):
                chosen.append({"id": f"{source}-{line}", "instruction": r["instruction"].strip(), "input": text,
                               "answer": [output], "source": source})
    return chosen


def qa_zh(root: Path) -> list[dict]:
    """Chinese questions and requests for an explanation, a list or a condensed text (Alpaca-GPT4 ZH) whose
    reference answer is one paragraph of at most 200 characters, without code and not a non-answer."""
    return [{"id": f"alpaca_zh_gpt4-{line}", "instruction": r["instruction"].strip(), "input": r["input"].strip(),
             "answer": [r["output"].strip()], "source": "alpaca_zh_gpt4"}
            for line, r in iter_jsonl(root / "sft/alpaca_zh_gpt4_llamafactory.jsonl")
            if _ASK_ZH.search(r["instruction"]) and 2 <= len(r["output"].strip()) <= 200
            and "\n\n" not in r["output"] and "```" not in r["output"] and not _NON_ANSWER_ZH.search(r["output"])]


def truthfulqa(root: Path) -> list[dict]:
    """200 TruthfulQA questions spread over its 817, with all its true answers as references (the best first)."""
    records = [r for _, r in iter_jsonl(root / "eval_benchmarks/en/truthfulqa_generation.jsonl")]
    return [{"id": r["id"], "question": r["question"], "category": r["category"],
             "answer": list(dict.fromkeys([r["best_answer"], *r["correct_answers"]]))}
            for r in take(records, 200, "spread")]


GENERATION: list[tuple[str, Callable[[Path], list[dict]]]] = [
    ("gen_summ_en.jsonl", summ_en), ("gen_qa_zh.jsonl", qa_zh), ("gen_truthfulqa.jsonl", truthfulqa)]


def write(name: str, records: list[dict]) -> None:
    atomic_write_text(HERE / name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def main(source: str) -> None:
    root = Path(source)
    if not (root / "eval_benchmarks").is_dir() or not (root / "sft").is_dir():
        raise SystemExit(f"{root}: expected the shared data folder, holding eval_benchmarks/ and sft/")
    for name, path, n, how in SLICES:
        records = [r for _, r in iter_jsonl(root / path)]
        chosen = take(records, n, how)
        write(name, chosen)
        print(f"{name}: {len(chosen)} of {len(records)} records of {path}")
    for name, build in GENERATION + SAFETY:
        chosen = build(root)
        write(name, chosen)
        print(f"{name}: {len(chosen)} records")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
