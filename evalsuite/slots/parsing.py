"""Tool calls in model text: read them out of what chat models emit, and write them as Hermes markup.

Formats read:
    <tool_call>{"name": ..., "arguments": {...}}</tool_call>      Hermes, Qwen (several; a final unclosed one too)
    [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]           Mistral (v3)
    [TOOL_CALLS]name[ARGS]{...}                                     Mistral (v11+; optionally [CALL_ID]id)
    <|python_tag|>{"name": ..., "parameters": {...}}                Llama 3.x (also `;`-separated, a list, or a
                                                                    Python call)
    <function=name>{...}</function>                                 functionary, Llama 3.1 custom tools
    {"name": ..., "parameters": {...}}, ```json ...```              bare JSON (alone, `;`-separated, in a list)
    [func(a=1, b='x'), mod.g()]                                     Python call syntax (BFCL's prompting format)

Explicit markup (the first five) yields calls whatever the name, so a call to a wrong tool is scored as wrong
instead of vanishing. Bare JSON and Python syntax count only when they name offered tools: a model answering
with a JSON object that is not a call must not be misread. Markup that does not parse yields no call and
stays in the text.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from evalsuite.slots.cases import ToolCall

_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_FUNCTION = re.compile(r"<function=([^>\s]+)>(.*?)(?:</function>|\Z)", re.DOTALL)
_MISTRAL = re.compile(r"\[TOOL_CALLS\]")
_MISTRAL_NAMED = re.compile(r"\s*([\w.\-]+)(?:\[CALL_ID\][\w\-]*)?\[ARGS\]")
_PYTHON_TAG = re.compile(r"<\|python_tag\|>(.*)", re.DOTALL)
_FENCE = re.compile(r"```[ \t]*[\w+\-]*[ \t]*\n(.*?)```", re.DOTALL)
_SEPARATOR = re.compile(r"[\s;,]*")
# keys a bare JSON object may have to be read as a call: one with more (e.g. an echoed tool definition with
# its "description") is data
_CALL_KEYS = {"name", "arguments", "parameters"}
_WRAPPER_KEYS = {"id", "type", "function"}

_Span = tuple[int, int, list[ToolCall] | None]  # None: markup that did not parse; kept as text, not re-read


def parse_tool_calls(text: str, tool_names: set[str] | None = None) -> tuple[str, list[ToolCall]]:
    """(the text without its call markup, stripped; the tool calls in it, in order). `tool_names`: the offered
    tools, which bare JSON and Python-syntax calls must name to count."""
    known = tool_names or set()
    spans: list[_Span] = []

    def claim(start: int, end: int, calls: list[ToolCall] | None) -> None:
        if all(end <= s or start >= e for s, e, _ in spans):
            spans.append((start, end, calls))

    for m in _TOOL_CALL.finditer(text):
        claim(m.start(), m.end(), _json_calls(m.group(1), strict=False))
    for m in _FUNCTION.finditer(text):
        arguments = _json_value(m.group(2).strip() or "{}")
        claim(m.start(), m.end(), [ToolCall(name=m.group(1), arguments=arguments)]
              if isinstance(arguments, dict) else None)
    for m in _MISTRAL.finditer(text):
        calls, end = _mistral(text, m.end())
        claim(m.start(), end if calls else len(text), calls)  # unparsed: the rest is its broken payload
    for m in _PYTHON_TAG.finditer(text):
        claim(m.start(), m.end(), _json_calls(m.group(1), strict=False) or _python_calls(m.group(1)))
    for m in _FENCE.finditer(text):
        calls = _json_calls(m.group(1), strict=True) or _python_calls(m.group(1))
        if calls and all(c.name in known for c in calls):
            claim(m.start(), m.end(), calls)
    for start, end, calls in _bare_json(text, known):
        claim(start, end, calls)
    if not spans:
        calls = _python_calls(text)
        if calls and all(c.name in known for c in calls):
            return "", calls

    kept, calls, at = [], [], 0
    for start, end, found in sorted(spans, key=lambda s: s[0]):
        if found is None:
            continue
        kept.append(text[at:start])
        calls.extend(found)
        at = end
    kept.append(text[at:])
    return "".join(kept).strip(), calls


def render_tool_calls(calls: list[ToolCall]) -> str:
    """The calls as Hermes markup, one `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` per line."""
    return "\n".join("<tool_call>" + json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False)
                     + "</tool_call>" for c in calls)


def _json_value(source: str) -> Any:
    try:
        return json.loads(source)
    except json.JSONDecodeError:
        return None


def _as_call(value: Any, strict: bool) -> ToolCall | None:
    """A call from {"name", "arguments" | "parameters"} or the OpenAI wire shape {"type", "function": {...}};
    `strict` (bare JSON) also refuses objects with other keys."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):
        if strict and not value.keys() <= _WRAPPER_KEYS:
            return None
        value = value["function"]
    name = value.get("name")
    if not isinstance(name, str) or not name or (strict and not value.keys() <= _CALL_KEYS):
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):  # OpenAI style: the arguments as a JSON string
        arguments = _json_value(arguments) if arguments.strip() else {}
    if not isinstance(arguments, dict):
        return None
    return ToolCall(name=name, arguments=arguments)


def _json_calls(source: str, strict: bool) -> list[ToolCall] | None:
    """The calls in one or more JSON values (call objects or lists of them) separated by whitespace, `;` or
    `,`; None unless all of `source` is such values."""
    decoder, calls = json.JSONDecoder(), []
    source = source.strip()
    at = 0
    while at < len(source):
        try:
            value, at = decoder.raw_decode(source, at)
        except json.JSONDecodeError:
            return None
        for item in value if isinstance(value, list) else [value]:
            call = _as_call(item, strict)
            if call is None:
                return None
            calls.append(call)
        at = _SEPARATOR.match(source, at).end()
    return calls or None


def _mistral(text: str, at: int) -> tuple[list[ToolCall] | None, int]:
    """The calls after a [TOOL_CALLS] marker ending at `at`, and where they end."""
    decoder = json.JSONDecoder()
    start = _SEPARATOR.match(text, at).end()
    named = _MISTRAL_NAMED.match(text, at)
    try:
        if named:
            arguments, end = decoder.raw_decode(text, named.end())
            return ([ToolCall(name=named.group(1), arguments=arguments)] if isinstance(arguments, dict) else None,
                    end)
        value, end = decoder.raw_decode(text, start)
    except json.JSONDecodeError:
        return None, at
    calls = [_as_call(item, strict=False) for item in (value if isinstance(value, list) else [value])]
    return (calls if calls and None not in calls else None), end


def _bare_json(text: str, known: set[str]) -> list[tuple[int, int, list[ToolCall]]]:
    """Spans of bare JSON calls to offered tools: objects, lists of them, and `;`-separated runs."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := _next_bracket(text, at)) >= 0:
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            at += 1
            continue
        calls = [_as_call(item, strict=True) for item in (value if isinstance(value, list) else [value])]
        if calls and all(c is not None and c.name in known for c in calls):
            # Llama 3.2 separates parallel calls with ";": one span, so no stray separators stay in the text
            if found and not text[found[-1][1]:at].strip(" \t\n;"):
                found[-1] = (found[-1][0], end, found[-1][2] + calls)
            else:
                found.append((at, end, calls))
        at = end  # a JSON value that is not a call is data: nothing inside it is read as a call either
    return found


def _next_bracket(text: str, at: int) -> int:
    positions = [p for p in (text.find("{", at), text.find("[", at)) if p >= 0]
    return min(positions, default=-1)


def _python_calls(source: str) -> list[ToolCall] | None:
    """Calls in Python syntax, `[f(a=1), mod.g(b='x')]` or one `f(a=1)`: keyword arguments with literal values
    only (read with ast.literal_eval; nothing is evaluated)."""
    try:
        node = ast.parse(source.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        return None
    items = node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]
    calls = []
    for item in items:
        name = _dotted(item.func) if isinstance(item, ast.Call) else None
        if name is None or item.args:  # positional arguments cannot be matched to parameter names
            return None
        arguments = {}
        for keyword in item.keywords:
            if keyword.arg is None:
                return None
            try:
                # through JSON: tuples become lists, and values JSON cannot carry (sets, bytes) are refused
                arguments[keyword.arg] = json.loads(json.dumps(ast.literal_eval(keyword.value)))
            except (ValueError, TypeError, SyntaxError, RecursionError):
                return None
        calls.append(ToolCall(name=name, arguments=arguments))
    return calls or None


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None
