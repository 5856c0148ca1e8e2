"""AST matching of tool calls (BFCL's rules) and the BFCL import with its shipped slice."""

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from evalsuite.slots.bfcl import (
    SLICE,
    SUPPORTED,
    UNSUPPORTED,
    BfclError,
    load_bfcl,
    main,
    to_json_schema,
)
from evalsuite.slots.cases import ArgConstraint, Case, ExpectedCall, ToolCall, load_cases
from evalsuite.slots.matching import match_call, match_step, match_value, satisfying_call, standardize


def exact(value: Any, optional: bool = False) -> ArgConstraint:
    return ArgConstraint(exact=value, optional=optional)


def any_of(*values: Any, optional: bool = False) -> ArgConstraint:
    return ArgConstraint(any_of=list(values), optional=optional)


def schema(**properties: str | dict) -> dict:
    """A `parameters` schema; a property given as a string is just its type."""
    return {"type": "object", "properties": {k: {"type": v} if isinstance(v, str) else v
                                             for k, v in properties.items()}}


def test_strings_compare_after_bfcl_standardisation():
    assert standardize("April 1, 2024") == standardize("april 1,2024") == "april12024"
    assert standardize("New-York_City./*^") == "newyorkcity"
    assert standardize("it's") == 'it"s'
    assert match_value("NEW YORK", exact("new-york"))
    assert match_value("San Francisco, CA", any_of("LA", "san francisco ca"))
    assert not match_value("Osla", exact("Oslo"))
    assert not match_value("Oslo!", exact("Oslo"))  # only BFCL's characters are dropped


def test_int_is_accepted_for_number_but_float_not_for_integer():
    number, integer = {"type": "number"}, {"type": "integer"}
    assert match_value(3, exact(3.0), number)
    assert match_value(3.0, exact(3), number)
    assert match_value(3.0, exact(3))  # without a schema only the values are compared: 3 == 3.0
    assert not match_value(3.0, exact(3), integer)
    assert match_value(3, exact(3.0), integer)
    call = ToolCall(name="f", arguments={"n": 3.0})
    assert match_call(call, ExpectedCall(name="f", arguments={"n": exact(3)}), schema(n="integer")) == \
        "argument 'n': type float where integer expected"


def test_bool_is_never_a_number():
    assert not match_value(True, exact(1), {"type": "integer"})
    assert not match_value(True, exact(1))
    assert not match_value(1, exact(True))
    assert not match_value(1, exact(True), {"type": "boolean"})
    assert match_value(False, exact(False), {"type": "boolean"})
    assert not match_value(True, ArgConstraint(type="number"))


def test_type_constraints_check_only_the_json_type():
    assert match_value("anything", ArgConstraint(type="string"))
    assert not match_value(5, ArgConstraint(type="string"))
    assert match_value(5, ArgConstraint(type="integer"))
    assert not match_value(5.5, ArgConstraint(type="integer"))
    assert match_value(5, ArgConstraint(type="number")) and match_value(5.5, ArgConstraint(type="number"))
    assert match_value([1], ArgConstraint(type="array")) and not match_value({}, ArgConstraint(type="array"))
    assert match_value({"a": 1}, ArgConstraint(type="object"))
    assert match_value(None, ArgConstraint(type="null"))


def test_values_of_the_answers_type_pass_where_bfcl_gives_variables():
    # parallel_multiple_21 declares an array but answers with the name of a variable
    assert match_value("data['sales']", exact("data['sales']"), {"type": "array"})
    assert not match_value("data['other']", exact("data['sales']"), {"type": "array"})
    assert not match_value(7, exact("data['sales']"), {"type": "array"})
    # parallel_152 declares a float whose only value besides "" is None
    assert match_value(None, any_of("", None), {"type": "number"})
    assert not match_value("", any_of("", None), {"type": "number"})


def test_arrays_are_type_checked_item_by_item():
    ints = {"type": "array", "items": {"type": "integer"}}
    call = ExpectedCall(name="f", arguments={"xs": exact([1, 2])})
    assert match_call(ToolCall(name="f", arguments={"xs": [1, 2]}), call, schema(xs=ints)) is None
    assert match_call(ToolCall(name="f", arguments={"xs": [1, "2"]}), call, schema(xs=ints)) == \
        "argument 'xs'[1]: type str where integer expected"
    assert match_call(ToolCall(name="f", arguments={"xs": [1, 2.0]}), call, schema(xs=ints)) is not None
    assert match_call(ToolCall(name="f", arguments={"xs": [1, "2"]}), call) is not None  # "2" != 2 either way
    numbers = {"type": "array", "items": {"type": "number"}}
    assert match_value([1, 2.5], exact([1.0, 2.5]), numbers)
    assert not match_value({"0": 1}, exact([1]), numbers)


def test_lists_and_nested_lists_compare_item_by_item_in_order():
    table = any_of([[10, 20], [30, 40]])
    assert match_value([[10, 20], [30, 40]], table)
    assert match_value([[10.0, 20], [30, 40.0]], table)
    assert not match_value([[10, 20], [30, 41]], table)
    assert not match_value([[10, 20]], table)
    assert not match_value([[30, 40], [10, 20]], table)
    assert match_value(["Los Angeles", "new york"], exact(["los-angeles", "New York"]))
    assert not match_value(["Los Angeles"], exact("Los Angeles"))


def test_dicts_compare_per_key_against_lists_of_acceptable_values():
    info = exact({"name": ["John Doe", "J. Doe"], "email": ["johndoe@email.com"], "phone": ["", "555"]})
    assert match_value({"name": "john doe", "email": "JohnDoe@email.com"}, info, {"type": "object"})
    assert match_value({"name": "J. Doe", "email": "johndoe@email.com", "phone": "555"}, info)
    assert not match_value({"name": "Jane Doe", "email": "johndoe@email.com"}, info)
    assert not match_value({"name": "John Doe"}, info)  # email may not be left out
    assert not match_value({"name": "John Doe", "email": "johndoe@email.com", "fax": "1"}, info)
    assert not match_value("John Doe", info)
    # a dict value holding a list (simple_python_337), and a list of dicts (simple_python_96), in order
    assert match_value({"Alex": ["A of spades", "K of spades"]}, exact({"Alex": [["A of spades", "K of spades"]]}))
    conditions = exact([{"field": ["age"], "value": ["25"]}, {"field": ["job"], "value": ["engineer"]}])
    assert match_value([{"field": "age", "value": "25"}, {"field": "job", "value": "Engineer"}], conditions)
    assert not match_value([{"field": "job", "value": "engineer"}, {"field": "age", "value": "25"}], conditions)


def test_required_optional_unexpected_and_name():
    expected = ExpectedCall(name="area", arguments={"base": exact(10), "unit": any_of("units", "", optional=True)})
    params = schema(base="integer", unit="string")
    assert match_call(ToolCall(name="area", arguments={"base": 10}), expected, params) is None
    assert match_call(ToolCall(name="area", arguments={"base": 10, "unit": "Units"}), expected, params) is None
    assert match_call(ToolCall(name="area", arguments={"base": 10, "unit": "cm"}), expected, params) == \
        "argument 'unit': value 'cm' not among ['units', '']"
    assert match_call(ToolCall(name="area", arguments={"unit": "units"}), expected, params) == \
        "missing required argument 'base'"
    assert match_call(ToolCall(name="area", arguments={"base": 10, "height": 5}), expected, params) == \
        "unexpected argument 'height'"
    assert match_call(ToolCall(name="volume", arguments={"base": 10}), expected, params) == \
        "wrong function name 'volume' (expected 'area')"
    assert match_call(ToolCall(name="area", arguments={"base": 11}), expected, params) == \
        "argument 'base': value 11 not among [10]"


def test_an_empty_list_stands_for_an_optional_array_left_out():
    amenities = any_of(["Parking"], "", optional=True)  # parallel_44: BFCL's list checker reads "" as []
    assert match_value([], amenities, {"type": "array", "items": {"type": "string"}})
    assert match_value(["parking"], amenities)
    assert not match_value(["Pool"], amenities)
    assert not match_value([], any_of(["Parking"]))


def test_parallel_calls_match_in_any_order_by_bipartite_assignment():
    # parallel_178's shape: the first expected call accepts either company, the second only one of them,
    # so a greedy pass that gives the first expected call the first fitting call fails
    either = ExpectedCall(name="price", arguments={"company": any_of("Apple", "Microsoft")})
    apple = ExpectedCall(name="price", arguments={"company": exact("Apple")})
    calls = [ToolCall(name="price", arguments={"company": c}) for c in ("Apple", "Microsoft")]
    assert match_step(calls, [either, apple]) is None
    assert match_step(calls[::-1], [either, apple]) is None
    assert match_step(calls[::-1], [apple, either]) is None
    twice = [calls[0], calls[0]]
    assert match_step(twice, [apple, apple]) is None
    assert match_step(twice, [either, ExpectedCall(name="price", arguments={"company": exact("Microsoft")})]) == \
        "expected call 2 (price) matched no call: argument 'company': value 'Apple' not among ['Microsoft']"


def test_step_call_counts_must_agree():
    apple = ExpectedCall(name="price", arguments={"company": exact("Apple")})
    call = ToolCall(name="price", arguments={"company": "Apple"})
    assert match_step([call, call], [apple]) == "expected 1 call(s), got 2"
    assert match_step([], [apple]) == "expected 1 call(s), got 0"
    assert match_step([call], []) == "expected 0 call(s), got 1"
    assert match_step([], []) is None
    assert match_step([call], [apple]) is None
    other = ExpectedCall(name="news", arguments={})
    assert match_step([call, call], [apple, other]) == "expected call 2 (news) matched no call: no call to 'news'"


def test_step_uses_each_tools_schema():
    expected = [ExpectedCall(name="f", arguments={"n": exact(2)}), ExpectedCall(name="g", arguments={"n": exact(2)})]
    calls = [ToolCall(name="g", arguments={"n": 2.0}), ToolCall(name="f", arguments={"n": 2.0})]
    assert match_step(calls, expected, {"f": schema(n="number"), "g": schema(n="number")}) is None
    assert match_step(calls, expected, {"f": schema(n="number"), "g": schema(n="integer")}) == \
        "expected call 2 (g) matched no call: argument 'n': type float where integer expected"


def test_satisfying_call():
    expected = ExpectedCall(name="f", arguments={
        "a": exact(1), "b": any_of("", "x", "y"), "c": any_of("", optional=True), "d": ArgConstraint(type="integer"),
        "e": exact({"k": ["", "v"], "gone": [""], "n": [[1, 2]]}), "f": any_of("", 3, optional=True)})
    call = satisfying_call(expected)
    assert call == ToolCall(name="f", arguments={"a": 1, "b": "x", "d": 0, "e": {"k": "v", "n": [1, 2]}, "f": 3})
    assert match_call(call, expected) is None
    for kind in ("string", "number", "integer", "boolean", "array", "object", "null"):
        typed = ExpectedCall(name="f", arguments={"v": ArgConstraint(type=kind)})
        assert match_call(satisfying_call(typed), typed, schema(v=kind)) is None


# --- BFCL import and the shipped slice ---

def _schemas(case: Case) -> dict[str, dict]:
    return {f["name"]: f["parameters"] for f in case.functions}


def _corrupt(value: Any) -> Any:
    """A value of the same JSON type that no BFCL answer accepts (None where there is none to make)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1000003
    if isinstance(value, str):
        return value + "zzqx"
    if isinstance(value, list) and value:
        return value + value[-1:]
    if isinstance(value, dict):
        return {**value, "zzqx": 1}
    return None


@pytest.fixture(scope="module")
def slice_cases() -> list[Case]:
    return load_cases(SLICE)


def test_slice_holds_40_cases_of_each_supported_category(slice_cases: list[Case]):
    assert len(slice_cases) == 200
    assert Counter(c.category for c in slice_cases) == {f"bfcl_{c}": 40 for c in SUPPORTED}
    irrelevance = [c for c in slice_cases if c.category == "bfcl_irrelevance"]
    assert all(not c.expect.steps for c in irrelevance)
    assert all(len(c.expect.steps) == 1 and c.max_turns == 1 for c in slice_cases if c not in irrelevance)
    assert any(len(c.expect.steps[0]) > 1 for c in slice_cases if c.category == "bfcl_parallel")


def test_satisfying_calls_match_every_slice_case_in_any_order(slice_cases: list[Case]):
    for case in slice_cases:
        for step in case.expect.steps:
            calls = [satisfying_call(e) for e in step]
            assert match_step(calls, step, _schemas(case)) is None, case.id
            assert match_step(calls[::-1], step, _schemas(case)) is None, case.id


def test_corrupting_one_argument_fails_every_slice_case(slice_cases: list[Case]):
    corrupted = 0
    for case in slice_cases:
        for step in case.expect.steps:
            calls = [satisfying_call(e) for e in step]
            spot = next(((i, k, _corrupt(v)) for i, c in enumerate(calls) for k, v in c.arguments.items()
                         if _corrupt(v) is not None), None)
            if spot is None:
                assert not any(c.arguments for c in calls), case.id
                continue
            i, name, bad = spot
            calls[i] = ToolCall(name=calls[i].name, arguments={**calls[i].arguments, name: bad})
            assert match_step(calls, step, _schemas(case)) is not None, (case.id, name, bad)
            corrupted += 1
    assert corrupted == 160


RAW = Path(__file__).resolve().parent / "data" / "bfcl"  # the first 5 raw lines of four BFCL v4 files


def test_slice_is_what_the_importer_makes_of_the_raw_bfcl_lines():
    shipped = {c.id: c for c in load_cases(SLICE)}
    imported = load_bfcl(RAW)
    assert len(imported) == 15  # simple_python, parallel_multiple, irrelevance; multi_turn_base not imported
    assert all(case == shipped[case.id] for case in imported)


def test_every_bfcl_v4_category_is_supported_or_explained():
    # the question files of BFCL v4 (bfcl_eval/data at gorilla 6ea5797), live categories aside
    v4 = {"format_sensitivity", "irrelevance", "memory", "multi_turn_base", "multi_turn_long_context",
          "multi_turn_miss_func", "multi_turn_miss_param", "multiple", "parallel", "parallel_multiple",
          "simple_java", "simple_javascript", "simple_python", "web_search"}
    assert set(SUPPORTED) | set(UNSUPPORTED) == v4 and not set(SUPPORTED) & set(UNSUPPORTED)


def test_bfcl_types_become_json_schema():
    spec = {"type": "dict", "required": ["p"], "properties": {
        "p": {"type": "tuple", "items": {"type": "float"}, "description": "a point"},
        "q": {"type": "any", "optional": True, "default": None},
        "r": {"type": "array", "items": {"type": "dict", "properties": {"k": {"type": "string", "enum": ["a"]}}}}}}
    assert to_json_schema(spec) == {"type": "object", "required": ["p"], "properties": {
        "p": {"type": "array", "items": {"type": "number"}, "description": "a point"},
        "q": {"default": None},
        "r": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string", "enum": ["a"]}}}}}}
    with pytest.raises(ValueError, match="unknown BFCL type 'String'"):
        to_json_schema({"type": "String"})


FUNCTION = {"name": "math.factorial", "description": "n!", "parameters": {
    "type": "dict", "properties": {"number": {"type": "integer"}, "mod": {"type": "integer"}}, "required": ["number"]}}


def _write(directory: Path, category: str, questions: list, answers: list | None = None) -> None:
    (directory / "possible_answer").mkdir(parents=True, exist_ok=True)
    lines = [q if isinstance(q, str) else json.dumps(q) for q in questions]
    (directory / f"BFCL_v4_{category}.json").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if answers is not None:
        (directory / "possible_answer" / f"BFCL_v4_{category}.json").write_text(
            "".join(json.dumps(a) + "\n" for a in answers), encoding="utf-8")


def _question(qid: str, messages: list | None = None) -> dict:
    return {"id": qid, "question": [messages or [{"role": "user", "content": "5!?"}]], "function": [FUNCTION]}


def test_load_bfcl_converts_questions_and_answers(tmp_path: Path):
    system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "5!?"}]
    _write(tmp_path, "simple_python", [_question("simple_python_0", system)],
           [{"id": "simple_python_0", "ground_truth": [{"math.factorial": {"number": [5], "mod": ["", 7]}}]}])
    _write(tmp_path, "irrelevance", [_question("irrelevance_0")])
    first, irrelevant = load_bfcl(tmp_path)
    assert (first.id, first.category, first.task, first.max_turns) == ("simple_python_0", "bfcl_simple_python",
                                                                        "simple_python_0", 1)
    assert [m.role for m in first.messages] == ["system", "user"]
    assert first.functions[0]["parameters"]["type"] == "object"
    (call,), = first.expect.steps
    assert call.arguments == {"number": exact(5), "mod": any_of("", 7, optional=True)}
    assert irrelevant.category == "bfcl_irrelevance" and irrelevant.expect.steps == []
    assert [c.id for c in load_bfcl(tmp_path, ["irrelevance"])] == ["irrelevance_0"]


def test_load_bfcl_errors_name_file_and_line(tmp_path: Path):
    path = tmp_path / "BFCL_v4_simple_python.json"
    _write(tmp_path, "simple_python", [_question("simple_python_0"), "{not json"],
           [{"id": "simple_python_0", "ground_truth": [{"math.factorial": {"number": [5]}}]}])
    with pytest.raises(BfclError, match=f"{path}:2: not JSON"):
        load_bfcl(tmp_path)
    _write(tmp_path, "simple_python", [_question("simple_python_0"), _question("simple_python_1")],
           [{"id": "simple_python_0", "ground_truth": [{"math.factorial": {"number": [5]}}]}])
    with pytest.raises(BfclError, match=f"{path}:2: no answer for 'simple_python_1'"):
        load_bfcl(tmp_path)
    _write(tmp_path, "simple_python", [_question("simple_python_0")],
           [{"id": "simple_python_0", "ground_truth": [{"math.gamma": {"number": [5]}}]}])
    with pytest.raises(BfclError, match=f"{path}:1 \\(answer at line 1\\): ground truth calls 'math.gamma'"):
        load_bfcl(tmp_path)
    _write(tmp_path, "simple_python", [_question("simple_python_0", [{"role": "robot", "content": "hi"}])],
           [{"id": "simple_python_0", "ground_truth": [{"math.factorial": {"number": [5]}}]}])
    with pytest.raises(BfclError, match=f"{path}:1 .*role"):
        load_bfcl(tmp_path)


def test_undeclared_answer_arguments(tmp_path: Path):
    # parallel_multiple_12 gives an optional argument of another function: BFCL passes only calls without it
    _write(tmp_path, "simple_python", [_question("simple_python_0")],
           [{"id": "simple_python_0", "ground_truth": [{"math.factorial": {"number": [5], "base": ["", 2]}}]}])
    (case,) = load_bfcl(tmp_path)
    assert list(case.expect.steps[0][0].arguments) == ["number"]
    _write(tmp_path, "simple_python", [_question("simple_python_0")],
           [{"id": "simple_python_0", "ground_truth": [{"math.factorial": {"number": [5], "base": [2]}}]}])
    with pytest.raises(BfclError, match="requires 'math.factorial'.'base', which the function does not declare"):
        load_bfcl(tmp_path)


def test_load_bfcl_rejects_unsupported_and_unknown_categories(tmp_path: Path):
    with pytest.raises(BfclError, match="'multi_turn_base' is not supported: multi-turn"):
        load_bfcl(tmp_path, ["multi_turn_base"])
    with pytest.raises(BfclError, match="unknown BFCL category 'live_simple'"):
        load_bfcl(tmp_path, ["live_simple"])
    with pytest.raises(BfclError, match="no question file of a supported category"):
        load_bfcl(tmp_path)
    with pytest.raises(BfclError, match="no such directory"):
        load_bfcl(tmp_path / "absent")
    _write(tmp_path, "multiple", [_question("multiple_0")])
    with pytest.raises(BfclError, match="possible_answer/BFCL_v4_multiple.json: no such answer file"):
        load_bfcl(tmp_path)


def test_build_slice_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    _write(tmp_path, "irrelevance", [_question(f"irrelevance_{i}") for i in range(3)])
    out = tmp_path / "slice.jsonl"
    assert main(["--build-slice", str(tmp_path), "--categories", "irrelevance", "--per-category", "2",
                 "--out", str(out)]) == 0
    assert [c.id for c in load_cases(out)] == ["irrelevance_0", "irrelevance_1"]
    assert main(["--build-slice", str(tmp_path), "--categories", "memory", "--out", str(out)]) == 2
    assert "'memory' is not supported" in capsys.readouterr().err
