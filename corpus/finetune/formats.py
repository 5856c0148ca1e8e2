"""Fine-tuning records as users have them: which format a record is in, where each of its texts sits, and the
conversions that lose nothing.

| format | fields | kind |
|---|---|---|
| `io` | `{input, output}` | sft |
| `alpaca` | `{instruction, input, output}` (+ optional `system`, `history: [[prompt, response], ...]`) | sft |
| `prompt_completion` | `{prompt, completion}` | sft |
| `messages` | `{messages: [{role, content, tool_calls?}]}` (+ optional `tools`) | sft |
| `sharegpt` | `{conversations: [{from, value}]}` (`human`, `gpt`, `system`, `function_call`, `observation`; + `tools`) | sft |
| `pairwise` | `{prompt, chosen, rejected}` (strings, or lists of messages) | preference |
| `sharegpt_pairwise` | `{conversations, chosen: {from, value}, rejected: {from, value}}` | preference |
| `ranked` | `{prompt, responses: [{text, rank}]}` (rank 1 is best) | preference |
| `kto` | `{prompt, completion, label}` | unpaired |
| `kto_messages` | `{messages, label}` | unpaired |

`turns(record, format)` lists a record's texts as `Turn`s: the path to the string inside the record and its
role (`system`, `prompt`, `context`: the text a prompt works on, Alpaca's `input`; `response`, `chosen`,
`rejected`, `tool`, `tool_call`), so a cleaning step can
rewrite a turn in place (`set_text`) and the record keeps its shape and its other fields. A record that does
not fit gets a `FormatError` naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

ROLES = ("system", "prompt", "context", "response", "chosen", "rejected", "tool", "tool_call")
# ShareGPT speakers (LLaMA-Factory's names and the plain ones) -> chat roles
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
                  "function_call": "assistant", "observation": "tool", "tool": "tool"}
_CHAT_TURN_ROLES = {"system": "system", "user": "prompt", "assistant": "response", "tool": "tool"}

Path = tuple[str | int, ...]


class FormatError(ValueError):
    """A record that does not fit its format; the message names the field."""


@dataclass(frozen=True)
class Turn:
    """One text of a record: where it sits (`path` of keys and indexes), its role, the text."""

    path: Path
    role: str
    text: str


@dataclass(frozen=True)
class RecordFormat:
    """A named record format: the fields that identify it and how to list its turns."""

    name: str
    kind: str  # sft | preference | unpaired
    fields: tuple[str, ...]  # all present: the record may be in this format
    turns: Callable[[dict], list[Turn]]


def _string(record: dict, path: Path) -> str:
    value: Any = record
    for key in path:
        value = value[key]
    if not isinstance(value, str):
        raise FormatError(f"field {_name(path)!r} must be a string, not {type(value).__name__}")
    return value


def _name(path: Path) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


def _text(record: dict, path: Path, role: str, optional: bool = False) -> list[Turn]:
    if optional and (path[0] not in record or record[path[0]] in (None, "")):
        return []
    if path[0] not in record:
        raise FormatError(f"field {path[0]!r} is missing")
    return [Turn(path, role, _string(record, path))]


def _list(record: dict, key: str) -> list:
    value = record.get(key)
    if not isinstance(value, list) or not value:
        raise FormatError(f"field {key!r} must be a non-empty list")
    return value


def _chat_turns(record: dict, key: str) -> list[Turn]:
    """`messages`-style turns: role and content, an assistant turn's tool calls as one `tool_call` text each."""
    out = []
    for i, turn in enumerate(_list(record, key)):
        if not isinstance(turn, dict) or turn.get("role") not in _CHAT_TURN_ROLES:
            raise FormatError(f"field '{key}[{i}].role' must be one of {', '.join(_CHAT_TURN_ROLES)}")
        content = turn.get("content")
        if content is not None or not turn.get("tool_calls"):
            out.append(Turn((key, i, "content"), _CHAT_TURN_ROLES[turn["role"]], _string(record, (key, i, "content"))))
        for j, call in enumerate(turn.get("tool_calls") or []):
            arguments = call.get("function", {}).get("arguments") if isinstance(call, dict) else None
            if isinstance(arguments, str):  # OpenAI's shape: arguments as a JSON string; objects have no text
                out.append(Turn((key, i, "tool_calls", j, "function", "arguments"), "tool_call", arguments))
    return out


def _sharegpt_turn(record: dict, path: Path) -> Turn:
    turn: Any = record
    for key in path:
        turn = turn[key]
    if not isinstance(turn, dict) or turn.get("from") not in SHAREGPT_ROLES:
        raise FormatError(f"field '{_name((*path, 'from'))}' must be one of {', '.join(SHAREGPT_ROLES)}")
    role = {"user": "prompt", "assistant": "response"}.get(SHAREGPT_ROLES[turn["from"]], SHAREGPT_ROLES[turn["from"]])
    if turn["from"] == "function_call":
        role = "tool_call"
    return Turn((*path, "value"), role, _string(record, (*path, "value")))


def _sharegpt_turns(record: dict) -> list[Turn]:
    return (_text(record, ("system",), "system", optional=True)
            + [_sharegpt_turn(record, ("conversations", i)) for i in range(len(_list(record, "conversations")))])


def _reply(record: dict, key: str, role: str) -> list[Turn]:
    """A preference reply: a string, one message, or a list of messages (TRL's conversational shape)."""
    value = record.get(key)
    if isinstance(value, str):
        return [Turn((key,), role, value)]
    if isinstance(value, dict):
        return [Turn((key, "content"), role, _string(record, (key, "content")))]
    return [Turn(t.path, role if t.role == "response" else t.role, t.text) for t in _chat_turns(record, key)]


def _prompt(record: dict) -> list[Turn]:
    return _text(record, ("prompt",), "prompt") if not isinstance(record.get("prompt"), list) \
        else _chat_turns(record, "prompt")


def _alpaca(record: dict) -> list[Turn]:
    turns = _text(record, ("system",), "system", optional=True)
    history = record.get("history") or []
    if not isinstance(history, list):
        raise FormatError("field 'history' must be a list of [prompt, response] pairs")
    for i, pair in enumerate(history):
        if not isinstance(pair, list) or len(pair) != 2:
            raise FormatError(f"field 'history[{i}]' must be a [prompt, response] pair")
        turns += [Turn(("history", i, 0), "prompt", _string(record, ("history", i, 0))),
                  Turn(("history", i, 1), "response", _string(record, ("history", i, 1)))]
    return (turns + _text(record, ("instruction",), "prompt") + _text(record, ("input",), "context", optional=True)
            + _text(record, ("output",), "response"))


def _ranked(record: dict) -> list[Turn]:
    turns = _prompt(record)
    responses = _list(record, "responses")
    for i, response in enumerate(responses):
        if not isinstance(response, dict) or isinstance(response.get("rank"), bool) \
                or not isinstance(response.get("rank"), (int, float)):
            raise FormatError(f"field 'responses[{i}].rank' must be a number")
        turns.append(Turn(("responses", i, "text"), "response", _string(record, ("responses", i, "text"))))
    if len(responses) < 2:
        raise FormatError("field 'responses' must hold at least two ranked responses")
    return turns


def _label(record: dict) -> None:
    if not isinstance(record.get("label"), bool):
        raise FormatError("field 'label' must be true (desirable) or false (undesirable)")


def _kto(record: dict) -> list[Turn]:
    _label(record)
    return _prompt(record) + _text(record, ("completion",), "response")


def _kto_messages(record: dict) -> list[Turn]:
    _label(record)
    return _chat_turns(record, "messages")


# most specific first: detection takes the first whose fields are all present
FORMATS: dict[str, RecordFormat] = {f.name: f for f in (
    RecordFormat("ranked", "preference", ("prompt", "responses"), _ranked),
    RecordFormat("sharegpt_pairwise", "preference", ("conversations", "chosen", "rejected"),
                 lambda r: _sharegpt_turns(r) + [Turn(t.path, role, t.text) for key, role in
                                                 (("chosen", "chosen"), ("rejected", "rejected"))
                                                 for t in [_sharegpt_turn(r, (key,))]]),
    RecordFormat("pairwise", "preference", ("prompt", "chosen", "rejected"),
                 lambda r: _prompt(r) + _reply(r, "chosen", "chosen") + _reply(r, "rejected", "rejected")),
    RecordFormat("kto", "unpaired", ("prompt", "completion", "label"), _kto),
    RecordFormat("kto_messages", "unpaired", ("messages", "label"), _kto_messages),
    RecordFormat("messages", "sft", ("messages",), lambda r: _chat_turns(r, "messages")),
    RecordFormat("sharegpt", "sft", ("conversations",), _sharegpt_turns),
    RecordFormat("alpaca", "sft", ("instruction", "output"), _alpaca),
    RecordFormat("prompt_completion", "sft", ("prompt", "completion"),
                 lambda r: _prompt(r) + _text(r, ("completion",), "response")),
    RecordFormat("io", "sft", ("input", "output"),
                 lambda r: _text(r, ("input",), "prompt") + _text(r, ("output",), "response")),
)}


def detect(record: dict) -> str:
    """The name of the first format (most specific first) whose fields the record has."""
    for fmt in FORMATS.values():
        if all(f in record for f in fmt.fields):
            return fmt.name
    raise FormatError("no fine-tuning format fits: expected one of " + "; ".join(
        f"{f.name} {{{', '.join(f.fields)}}}" for f in FORMATS.values()))


def turns(record: Any, format_name: str) -> list[Turn]:
    """The record's texts in order, checked against `format_name` (FormatError naming the field if it does
    not fit)."""
    fmt = FORMATS[format_name]
    if not isinstance(record, dict):
        raise FormatError("the record must be a JSON object")
    missing = [f for f in fmt.fields if f not in record]
    if missing:
        raise FormatError(f"field {missing[0]!r} is missing (format {format_name})")
    return fmt.turns(record)


def set_text(record: dict, path: Path, text: str) -> None:
    """Replace the string at `path` inside `record` (in place)."""
    target: Any = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = text


def prompt_text(record_turns: list[Turn]) -> str:
    """What the record asks: its system and prompt turns joined, the text prompt deduplication compares."""
    return "\n\n".join(t.text for t in record_turns if t.role in ("system", "prompt", "context"))


# -- conversions ---------------------------------------------------------------------------------------------

def _sharegpt_message(turn: dict) -> dict:
    role = SHAREGPT_ROLES[turn["from"]]
    if turn["from"] == "function_call":
        try:
            call = json.loads(turn["value"])
        except json.JSONDecodeError:
            raise FormatError("a function_call turn's value must be a JSON {name, arguments} object") from None
        if not isinstance(call, dict) or "name" not in call:
            raise FormatError("a function_call turn's value must be a JSON {name, arguments} object")
        return {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {
            "name": call["name"], "arguments": json.dumps(call.get("arguments", {}), ensure_ascii=False)}}]}
    return {"role": role, "content": turn["value"]}


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def _as_messages(record: dict, fmt: str) -> dict:
    extra = {k: v for k, v in record.items() if k in ("tools", "id")}
    if fmt == "messages":
        return record
    if fmt == "sharegpt":
        system = [{"role": "system", "content": record["system"]}] if record.get("system") else []
        return {**extra, "messages": system + [_sharegpt_message(t) for t in record["conversations"]]}
    if fmt == "alpaca":
        system = [{"role": "system", "content": record["system"]}] if record.get("system") else []
        history = [m for q, a in record.get("history") or [] for m in (_user(q), _assistant(a))]
        ask = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
        return {**extra, "messages": system + history + [_user(ask), _assistant(record["output"])]}
    if fmt == "io":
        return {**extra, "messages": [_user(record["input"]), _assistant(record["output"])]}
    if fmt == "prompt_completion":
        prompt = record["prompt"] if isinstance(record["prompt"], list) else [_user(record["prompt"])]
        return {**extra, "messages": [*prompt, _assistant(record["completion"])]}
    raise FormatError(f"{fmt} records cannot become messages without losing their structure")


def _reply_messages(value: Any) -> list[dict]:
    if isinstance(value, str):
        return [_assistant(value)]
    if isinstance(value, dict):
        return [_sharegpt_message(value) if "from" in value else value]
    return value


def _as_pairwise(record: dict, fmt: str) -> list[dict]:
    extra = {k: v for k, v in record.items() if k == "id"}
    if fmt == "pairwise":
        return [record]
    if fmt == "sharegpt_pairwise":
        prompt = _as_messages({"conversations": record["conversations"], "system": record.get("system")},
                              "sharegpt")["messages"]
        return [{**extra, "prompt": prompt, "chosen": _reply_messages(record["chosen"]),
                 "rejected": _reply_messages(record["rejected"])}]
    if fmt == "ranked":
        out = []
        for a, b in combinations(record["responses"], 2):
            if a["rank"] == b["rank"]:
                continue
            better, worse = (a, b) if a["rank"] < b["rank"] else (b, a)
            out.append({**extra, "prompt": record["prompt"], "chosen": better["text"], "rejected": worse["text"]})
        return out
    raise FormatError(f"{fmt} records are not preference pairs")


CONVERSIONS = {"messages": ("io", "alpaca", "prompt_completion", "sharegpt", "messages"),
               "pairwise": ("pairwise", "sharegpt_pairwise", "ranked")}


def convert(record: dict, source: str, target: str) -> list[dict]:
    """The record (in format `source`) as records of format `target` (`messages` or `pairwise`): ranked
    responses become every pair of differently ranked ones (better one chosen), Alpaca's instruction and input
    one user turn, ShareGPT function calls OpenAI-style tool calls. Other targets are an error (they would
    lose structure)."""
    if target not in CONVERSIONS:
        raise FormatError(f"records convert to {' or '.join(CONVERSIONS)} only, not {target!r}")
    if source not in CONVERSIONS[target]:
        raise FormatError(f"{source} records cannot be converted to {target} without loss "
                          f"(convertible: {', '.join(CONVERSIONS[target])})")
    return [_as_messages(record, source)] if target == "messages" else _as_pairwise(record, source)
