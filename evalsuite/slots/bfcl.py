"""BFCL v4's single-turn categories as slot-benchmark cases, and the builder of the shipped slice.

    python -m evalsuite.slots.bfcl --build-slice /path/to/bfcl_v4 [--categories simple_python multiple]

BFCL question files are JSON Lines (`id`, `question`: turns of `{role, content}`, `function`: specs in
BFCL's types); `possible_answer/` holds the ground truth (`{func_name: {arg: [acceptable values]}}`, ""
among the values: the argument may be left out). Each question becomes one case whose single step holds
the ground-truth calls (parallel categories: in any order); irrelevance cases expect no call.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from corpus.config import format_validation_error
from evalsuite.slots.cases import ArgConstraint, Case, Expectation, ExpectedCall, Message, dump_cases

SUPPORTED = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
UNSUPPORTED = {
    "multi_turn_base": "multi-turn: BFCL scores it by running the calls on its stateful API simulators "
                       "(file system, trading, travel, ...) and comparing states, which are not reimplemented",
    "multi_turn_long_context": "multi-turn with long simulator outputs: needs BFCL's stateful API simulators",
    "multi_turn_miss_func": "multi-turn where a function arrives in a later turn: needs BFCL's stateful "
                            "API simulators",
    "multi_turn_miss_param": "multi-turn where a parameter arrives in a later turn: needs BFCL's stateful "
                             "API simulators",
    "simple_java": "arguments are Java source text that BFCL's Java type converter parses before comparing",
    "simple_javascript": "arguments are JavaScript source text that BFCL's JavaScript type converter parses "
                         "before comparing",
    "memory": "needs BFCL's memory backends (key-value, vector, recursive summary) primed with the "
              "memory_prereq_conversation sessions; the answer is free text",
    "web_search": "needs a live web-search backend; the answer is free text checked against the final reply",
    "format_sensitivity": "not a question file: ids of other categories that BFCL asks again under varied "
                          "output-format prompts (prompting mode only)",
}
NO_ANSWERS = ("irrelevance",)  # the model must not call: BFCL ships no answer file
SLICE = Path(__file__).parent / "data" / "bfcl_slice.jsonl"
SLICE_PER_CATEGORY = 40

_TYPES: dict[str, str | None] = {"string": "string", "integer": "integer", "float": "number",
                                 "boolean": "boolean", "array": "array", "tuple": "array", "dict": "object",
                                 "any": None}


class BfclError(ValueError):
    """BFCL data that cannot be imported; the message names the file and line."""


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, decoded object) for each non-blank line of a JSON Lines file."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as e:
                raise BfclError(f"{path}:{number}: not JSON ({e.msg} at column {e.colno})") from None


def to_json_schema(spec: dict) -> dict:
    """A BFCL parameter spec as JSON Schema: dict→object, float→number, tuple→array, any→no type; other
    keys (description, required, enum, default, properties, items, ...) are kept."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "type":
            if value not in _TYPES:
                raise ValueError(f"unknown BFCL type {value!r}")
            if _TYPES[value]:
                out["type"] = _TYPES[value]
        elif key == "properties":
            out[key] = {name: to_json_schema(prop) for name, prop in value.items()}
        elif key == "items":
            out[key] = to_json_schema(value)
        elif key != "optional":  # BFCL's own marker; `required` says the same in JSON Schema
            out[key] = value
    return out


def _function(spec: Any) -> dict:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or \
            not isinstance(spec.get("parameters"), dict):
        raise ValueError("each function needs a name and a parameters object")
    return {"name": spec["name"], "description": spec.get("description", ""),
            "parameters": to_json_schema(spec["parameters"])}


def _expected_call(entry: Any, functions: dict[str, dict]) -> ExpectedCall:
    """One ground-truth call ({func_name: {arg: [acceptable values]}}) as an expected call."""
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ValueError("each ground-truth call must be an object with one function name")
    (name, args), = entry.items()
    if name not in functions:
        raise ValueError(f"ground truth calls {name!r}, which the question does not offer")
    if not isinstance(args, dict):
        raise ValueError(f"ground truth of {name!r} must map arguments to lists of acceptable values")
    parameters = functions[name]["parameters"]
    properties, required = parameters.get("properties", {}), parameters.get("required", [])
    arguments = {}
    for arg, values in args.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"ground truth of {name!r}.{arg!r} must be a non-empty list of acceptable values")
        optional = "" in values and arg not in required
        if arg not in properties:
            if optional:
                continue  # BFCL rejects any undeclared argument, so leaving it out is the only way to pass
            raise ValueError(f"ground truth requires {name!r}.{arg!r}, which the function does not declare")
        single = len(values) == 1 and values[0] is not None and not optional
        arguments[arg] = ArgConstraint(exact=values[0], optional=optional) if single else \
            ArgConstraint(any_of=values, optional=optional)
    return ExpectedCall(name=name, arguments=arguments)


def _answers(path: Path) -> dict[str, tuple[int, Any]]:
    """Ground truth by question id, with its line number."""
    answers: dict[str, tuple[int, Any]] = {}
    for number, record in _lines(path):
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or \
                not isinstance(record.get("ground_truth"), list):
            raise BfclError(f"{path}:{number}: an answer line needs an id and a ground_truth list")
        if record["id"] in answers:
            raise BfclError(f"{path}:{number}: duplicate answer id {record['id']!r}")
        answers[record["id"]] = (number, record["ground_truth"])
    return answers


def _case(record: Any, category: str, answer: Any) -> Case:
    """One question line as a case; `answer` is its ground truth (None: no call expected)."""
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        raise ValueError("a question line needs an id")
    turns, specs = record.get("question"), record.get("function")
    if not isinstance(turns, list) or len(turns) != 1 or not isinstance(turns[0], list):
        raise ValueError("question must hold exactly one turn (a list of messages)")
    if not isinstance(specs, list) or not specs:
        raise ValueError("function must be a non-empty list of function specs")
    functions = [_function(spec) for spec in specs]
    steps = []
    if answer is not None:
        if not answer:
            raise ValueError("empty ground_truth")
        by_name = {f["name"]: f for f in functions}
        steps = [[_expected_call(entry, by_name) for entry in answer]]
    messages = [Message.model_validate(m) for m in turns[0]]
    return Case(id=record["id"], category=f"bfcl_{category}", task=record["id"], messages=messages,
                functions=functions, expect=Expectation(steps=steps), max_turns=1)


def _category(directory: Path, category: str) -> list[Case]:
    questions = directory / f"BFCL_v4_{category}.json"
    answer_path = directory / "possible_answer" / questions.name
    if not questions.is_file():
        raise BfclError(f"{questions}: no such question file")
    answers = None
    if category not in NO_ANSWERS:
        if not answer_path.is_file():
            raise BfclError(f"{answer_path}: no such answer file")
        answers = _answers(answer_path)
    cases = []
    for number, record in _lines(questions):
        where = f"{questions}:{number}"
        answer = None
        if answers is not None:
            qid = record.get("id") if isinstance(record, dict) else None
            if qid not in answers:
                raise BfclError(f"{where}: no answer for {qid!r} in {answer_path}")
            answer_line, answer = answers[qid]
            where += f" (answer at line {answer_line})"
        try:
            cases.append(_case(record, category, answer))
        except ValidationError as e:
            raise BfclError(format_validation_error(e, where, "docs/slots.md")) from None
        except ValueError as e:
            raise BfclError(f"{where}: {e}") from None
    return cases


def load_bfcl(directory: str | Path, categories: Sequence[str] | None = None) -> list[Case]:
    """The cases of the given categories (default: every supported one whose file is present), in category
    order then file order. Unsupported or unknown categories, missing files and bad lines raise BfclError."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BfclError(f"{directory}: no such directory")
    if categories is None:
        categories = [c for c in SUPPORTED if (directory / f"BFCL_v4_{c}.json").is_file()]
        if not categories:
            raise BfclError(f"{directory}: no question file of a supported category ({', '.join(SUPPORTED)})")
    for category in categories:
        if category in UNSUPPORTED:
            raise BfclError(f"BFCL category {category!r} is not supported: {UNSUPPORTED[category]}")
        if category not in SUPPORTED:
            raise BfclError(f"unknown BFCL category {category!r} (supported: {', '.join(SUPPORTED)})")
    return [case for category in categories for case in _category(directory, category)]


def build_slice(directory: str | Path, categories: Sequence[str] = SUPPORTED,
                per_category: int = SLICE_PER_CATEGORY) -> str:
    """The slice's JSONL text: the first `per_category` cases of each category, byte-for-byte reproducible."""
    taken: Counter[str] = Counter()
    chosen = []
    for case in load_bfcl(directory, categories):
        if taken[case.category] < per_category:
            taken[case.category] += 1
            chosen.append(case)
    return dump_cases(chosen)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: rebuild the shipped slice from a BFCL v4 data directory."""
    parser = argparse.ArgumentParser(prog="python -m evalsuite.slots.bfcl", description=__doc__.splitlines()[0])
    parser.add_argument("--build-slice", metavar="SRC_DIR", required=True, type=Path,
                        help="BFCL v4 data directory (BFCL_v4_*.json and possible_answer/)")
    parser.add_argument("--categories", nargs="+", default=list(SUPPORTED), metavar="CATEGORY",
                        help=f"categories to take (default: {' '.join(SUPPORTED)})")
    parser.add_argument("--per-category", type=int, default=SLICE_PER_CATEGORY, help="cases per category")
    parser.add_argument("--out", type=Path, default=SLICE, help="where to write the slice")
    args = parser.parse_args(argv)
    try:
        text = build_slice(args.build_slice, args.categories, args.per_category)
    except BfclError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {len(text.splitlines())} cases to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
