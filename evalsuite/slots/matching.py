"""AST matching of tool calls against expected calls, by the rules of BFCL's AST checker.

A call matches when the name is right, every required argument is there, no other argument is, and each
value has the declared JSON type and equals an acceptable value. Types: an integer passes where a number is
declared, a float never passes where an integer is, a boolean is never a number, array items are checked
against `items`. A value of another type also passes when an acceptable value has that type (BFCL's answers
sometimes give variable names or off-schema literals, and its checker accepts them the same way). Values:
strings compare after BFCL's standardisation, numbers by value (3 == 3.0), lists item by item, and a dict
among the acceptable values maps each key to a list of acceptable values ("" among them: the key may be
left out), as BFCL's possible answers nest them; [] passes where "" is acceptable, as in BFCL.

Where this departs from BFCL's checker, on purpose: parallel calls are assigned by bipartite matching (BFCL's
greedy pass fails parallel_178, whose first answer accepts either company), integers pass inside arrays of
numbers (BFCL converts int to float only at the top level; in JSON 1 and 1.0 are the same number), the
rules apply at every depth (BFCL checks one level), BFCL's `any` type checks nothing (BFCL wants a string),
and strings given where the schema declares another type are standardised too (BFCL compares those exactly).
"""

from __future__ import annotations

import re
from typing import Any

from evalsuite.slots.cases import ArgConstraint, ExpectedCall, ToolCall

_IGNORED = re.compile(r"[ ,./\-_*^]")
_CANONICAL: dict[str, Any] = {"string": "", "number": 0, "integer": 0, "boolean": False, "array": [],
                              "object": {}, "null": None}


def standardize(text: str) -> str:
    """BFCL's string standardisation: spaces and `,./-_*^` removed, lowercased, single quotes made double."""
    return _IGNORED.sub("", text).lower().replace("'", '"')


def json_type(value: Any) -> str:
    """The JSON type of a decoded value (a float is "number", an int "integer")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _fits(kind: str, declared: str | list[str] | None) -> bool:
    """Whether a value of JSON type `kind` may stand where `declared` is asked for (no type: anything)."""
    if declared is None:
        return True
    if isinstance(declared, list):
        return any(_fits(kind, d) for d in declared)
    return kind == declared or (kind == "integer" and declared == "number")


def _real(acceptable: list[Any]) -> list[Any]:
    """The acceptable values without BFCL's "" (which marks the argument optional)."""
    return [a for a in acceptable if not (isinstance(a, str) and a == "")]


def _options(acceptable: Any) -> list[Any]:
    """A dict key's acceptable values (BFCL gives a list; a bare value stands for itself)."""
    return acceptable if isinstance(acceptable, list) else [acceptable]


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _type_problem(value: Any, schema: dict | None, acceptable: list[Any], where: str) -> str | None:
    """Why `value` does not have the type `schema` declares (None when it does)."""
    declared = (schema or {}).get("type")
    kind = json_type(value)
    allowed = {json_type(a) for a in _real(acceptable)}
    if not _fits(kind, declared):
        if any(_fits(kind, a) for a in allowed):
            return None
        shown = "/".join(declared) if isinstance(declared, list) else declared
        return f"{where}: type {type(value).__name__} where {shown} expected"
    items = (schema or {}).get("items")
    if kind == "array" and isinstance(items, dict):
        inner = [item for a in _real(acceptable) if isinstance(a, list) for item in a]
        for i, item in enumerate(value):
            problem = _type_problem(item, items, inner, f"{where}[{i}]")
            if problem:
                return problem
    return None


def _equal(value: Any, acceptable: Any) -> bool:
    """Whether `value` equals one acceptable value, by the rules in the module docstring."""
    if isinstance(acceptable, str):
        return isinstance(value, str) and standardize(value) == standardize(acceptable)
    if isinstance(acceptable, bool) or acceptable is None:
        return type(value) is type(acceptable) and value == acceptable
    if isinstance(acceptable, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == acceptable
    if isinstance(acceptable, (list, tuple)):
        return (isinstance(value, (list, tuple)) and len(value) == len(acceptable)
                and all(_equal(v, a) for v, a in zip(value, acceptable)))
    if isinstance(acceptable, dict):
        return (isinstance(value, dict)
                and all(k in acceptable and any(_equal(v, a) for a in _options(acceptable[k]))
                        for k, v in value.items())
                and all(k in value or "" in _options(a) for k, a in acceptable.items()))
    return bool(value == acceptable)


def _value_problem(name: str, value: Any, constraint: ArgConstraint, schema: dict | None) -> str | None:
    """Why `value` does not satisfy `constraint` and the declared `schema` (None when it does)."""
    where = f"argument {name!r}"
    if constraint.type is not None:
        if not _fits(json_type(value), constraint.type):
            return f"{where}: type {type(value).__name__} where {constraint.type} expected"
        return _type_problem(value, schema, [], where)
    acceptable = [constraint.exact] if constraint.any_of is None else constraint.any_of
    problem = _type_problem(value, schema, acceptable, where)
    if problem:
        return problem
    if isinstance(value, list) and not value and "" in acceptable:
        return None  # BFCL's list checker reads the optional marker "" as [], so [] stands for leaving it out
    if not any(_equal(value, a) for a in acceptable):
        return f"{where}: value {_short(value)} not among {_short(acceptable)}"
    return None


def match_value(value: Any, constraint: ArgConstraint, schema: dict | None = None) -> bool:
    """Whether one argument value satisfies its constraint; `schema` is the argument's JSON Schema."""
    return _value_problem("value", value, constraint, schema) is None


def match_call(call: ToolCall, expected: ExpectedCall, schema: dict | None = None) -> str | None:
    """None when `call` matches `expected`, else a short reason; `schema` is the tool's `parameters` schema."""
    if call.name != expected.name:
        return f"wrong function name {call.name!r} (expected {expected.name!r})"
    for name, constraint in expected.arguments.items():
        if not constraint.optional and name not in call.arguments:
            return f"missing required argument {name!r}"
    for name in call.arguments:
        if name not in expected.arguments:
            return f"unexpected argument {name!r}"
    properties = (schema or {}).get("properties") or {}
    for name, value in call.arguments.items():
        problem = _value_problem(name, value, expected.arguments[name], properties.get(name))
        if problem:
            return problem
    return None


def match_step(calls: list[ToolCall], expected: list[ExpectedCall],
               schemas: dict[str, dict] | None = None) -> str | None:
    """None when the calls of one turn match the expected ones one to one in any order, else a reason.
    `schemas` maps a tool's name to its `parameters` schema."""
    if len(calls) != len(expected):
        return f"expected {len(expected)} call(s), got {len(calls)}"
    schemas = schemas or {}
    problems = [[match_call(c, e, schemas.get(e.name)) for c in calls] for e in expected]
    owner: list[int | None] = [None] * len(calls)  # the expected call each call is assigned to

    def assign(i: int, tried: set[int]) -> bool:
        """Kuhn's augmenting path: give expected call i a call, moving earlier assignments if need be."""
        for j, problem in enumerate(problems[i]):
            if problem is None and j not in tried:
                tried.add(j)
                holder = owner[j]
                if holder is None or assign(holder, tried):
                    owner[j] = i
                    return True
        return False

    for i, want in enumerate(expected):
        if not assign(i, set()):
            if len(calls) == 1:
                return problems[0][0]
            same_name = [p for c, p in zip(calls, problems[i]) if c.name == want.name]
            reason = same_name[0] if same_name else f"no call to {want.name!r}"
            return f"expected call {i + 1} ({want.name}) matched no call: {reason}"
    return None


def _example(acceptable: Any) -> Any:
    """A value equal to `acceptable` (dicts in BFCL's nested form become plain dicts)."""
    if isinstance(acceptable, dict):
        out = {}
        for key, options in acceptable.items():
            real = _real(_options(options))
            if real:
                out[key] = _example(real[0])
        return out
    if isinstance(acceptable, (list, tuple)):
        return [_example(a) for a in acceptable]
    return acceptable


def satisfying_call(expected: ExpectedCall) -> ToolCall:
    """A call that matches `expected`: exact values, the first acceptable value that is not "", a canonical
    value for type constraints; optional arguments whose only acceptable value is "" are left out."""
    arguments: dict[str, Any] = {}
    for name, constraint in expected.arguments.items():
        if constraint.type is not None:
            arguments[name] = _CANONICAL[constraint.type]
        elif constraint.any_of is None:
            arguments[name] = _example(constraint.exact)
        elif real := _real(constraint.any_of):
            arguments[name] = _example(real[0])
        elif not constraint.optional:
            arguments[name] = ""
    return ToolCall(name=expected.name, arguments=arguments)
