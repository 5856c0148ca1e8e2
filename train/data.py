"""Training data as users have it, read and turned into what TRL's trainers take.

Supervised records (any of): `{"messages": [{role, content}, ...]}`, ShareGPT `{"conversations": [{from,
value}, ...]}`, Alpaca `{instruction, input, output}`, `{input, output}`, `{prompt, completion}`. Each becomes
a conversational prompt/completion pair: every turn up to the last assistant turn is the prompt, the last
assistant turn the completion (so the loss falls on the completion only).

Unpaired (KTO) records: `{prompt, completion, label}` or `{messages, label}` with a true/false label, or
preference pairs (chosen desirable, rejected undesirable).

Preference records: `{prompt, chosen, rejected}` (strings or message lists), ShareGPT pairs
`{conversations, chosen: {from, value}, rejected: {from, value}}`, and ranked `{prompt, responses: [{text,
rank}]}` (rank 1 is best), which becomes every pair of differently ranked responses, better one chosen.

A record that fits no format is not fatal: it goes to `rejects.jsonl` in the output folder with the file, line
and reason, and the run goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from corpus.finetune.formats import SHAREGPT_ROLES
from corpus.io import atomic_write_text, iter_records


class RecordError(ValueError):
    """A record that fits none of the accepted formats; the message names the field."""


@dataclass
class Loaded:
    """Converted examples, and the records that did not fit (with file, line and reason)."""

    examples: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    origins: list[tuple[str, int]] = field(default_factory=list)  # (file, line) of each example

    def reject_where(self, reason_of) -> None:
        """Move the examples for which `reason_of(example)` gives a reason (not None) to the rejects."""
        kept, origins = [], []
        for example, (file, line) in zip(self.examples, self.origins):
            reason = reason_of(example)
            if reason is None:
                kept.append(example)
                origins.append((file, line))
            else:
                self.rejects.append({"file": file, "line": line, "reason": reason})
        self.examples, self.origins = kept, origins

    def write_rejects(self, folder: Path) -> None:
        if self.rejects:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / "rejects.jsonl",
                              "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rejects))


def data_files(paths: list[str]) -> list[Path]:
    """The files behind `paths`: files as given, folders expanded to their JSONL(.gz) and Parquet files."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.iterdir() if q.name.endswith((".jsonl", ".jsonl.gz", ".parquet")))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"training data not found: {p}")
    return files


def load(paths: list[str], convert) -> Loaded:
    """Every record of `paths` through `convert` (record -> list of examples); misfits become rejects."""
    out = Loaded()
    for path in data_files(paths):
        for n, record in iter_records(path):
            try:
                if isinstance(record, str):
                    raise RecordError(record)
                examples = convert(record)
                out.examples += examples
                out.origins += [(str(path), n)] * len(examples)
            except RecordError as e:
                out.rejects.append({"file": str(path), "line": n, "reason": str(e)})
    return out


def _text(value, what: str) -> str:
    if not isinstance(value, str):
        raise RecordError(f"field {what!r} must be a string")
    return value


def _messages(turns, what: str) -> list[dict]:
    if not isinstance(turns, list) or not turns:
        raise RecordError(f"field {what!r} must be a non-empty list of turns")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RecordError(f"{what}[{i}] must be an object")
        if "from" in turn:  # ShareGPT
            role = SHAREGPT_ROLES.get(turn["from"])
            if role is None:
                raise RecordError(f"{what}[{i}].from: unknown speaker {turn['from']!r}")
            out.append({"role": role, "content": _text(turn.get("value"), f"{what}[{i}].value")})
        else:
            role = turn.get("role")
            if role not in ("system", "user", "assistant", "tool"):
                raise RecordError(f"{what}[{i}].role must be system, user, assistant or tool")
            out.append({"role": role, "content": _text(turn.get("content"), f"{what}[{i}].content")})
    return out


def _user_prompt(instruction: str, extra: str = "") -> list[dict]:
    return [{"role": "user", "content": f"{instruction}\n\n{extra}" if extra else instruction}]


def _tools(record: dict) -> str | None:
    """The record's tool schemas (a list, or a JSON string of one) as a JSON string, the form TRL renders
    through the chat template's `tools`; None without them."""
    tools = record.get("tools")
    if tools is None or tools == "":
        return None
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as e:
            raise RecordError(f"field 'tools' is not valid JSON ({e.msg})") from None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise RecordError("field 'tools' must be a list of tool schemas (objects)")
    return json.dumps(tools, ensure_ascii=False)


def to_prompt_completion(record: dict) -> list[dict]:
    """A supervised record as `{"prompt": [turns], "completion": [assistant turn], "tools": JSON or None}`."""
    return [{**example, "tools": _tools(record)} for example in _prompt_completion(record)]


def _prompt_completion(record: dict) -> list[dict]:
    if "messages" in record or "conversations" in record:
        key = "messages" if "messages" in record else "conversations"
        turns = _messages(record[key], key)
        last = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
        if last is None or last == 0:
            raise RecordError(f"field {key!r} needs a turn before an assistant turn")
        return [{"prompt": turns[:last], "completion": [turns[last]]}]
    if "instruction" in record:
        prompt = _user_prompt(_text(record["instruction"], "instruction"), _text(record.get("input") or "", "input"))
        return [{"prompt": prompt, "completion": [{"role": "assistant", "content": _text(record.get("output"),
                                                                                             "output")}]}]
    if "input" in record and "output" in record:
        return [{"prompt": _user_prompt(_text(record["input"], "input")),
                 "completion": [{"role": "assistant", "content": _text(record["output"], "output")}]}]
    if "prompt" in record and "completion" in record:
        return [{"prompt": _user_prompt(_text(record["prompt"], "prompt")),
                 "completion": [{"role": "assistant", "content": _text(record["completion"], "completion")}]}]
    raise RecordError("no supervised format fits: expected messages, conversations, instruction+output, "
                      "input+output or prompt+completion")


def _reply(value, what: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    if isinstance(value, dict):
        return _messages([value], what)
    return _messages(value, what)


def to_preference(record: dict) -> list[dict]:
    """A preference record as `{"prompt": [turns], "chosen": [turn], "rejected": [turn]}` pairs."""
    if "conversations" in record:
        prompt = _messages(record["conversations"], "conversations")
    elif "prompt" in record:
        prompt = _user_prompt(record["prompt"]) if isinstance(record["prompt"], str) else _messages(record["prompt"],
                                                                                                     "prompt")
    else:
        raise RecordError("no preference format fits: expected prompt (or conversations) with chosen and "
                          "rejected, or prompt with ranked responses")
    if "responses" in record:
        ranked = record["responses"]
        if not isinstance(ranked, list) or len(ranked) < 2:
            raise RecordError("field 'responses' must list at least two {text, rank} objects")
        for i, r in enumerate(ranked):
            if not isinstance(r, dict) or not isinstance(r.get("rank"), (int, float)):
                raise RecordError(f"responses[{i}].rank must be a number")
            _text(r.get("text"), f"responses[{i}].text")
        pairs = [(a, b) if a["rank"] < b["rank"] else (b, a) for a, b in combinations(ranked, 2) if a["rank"] != b["rank"]]
        return [{"prompt": prompt, "chosen": _reply(better["text"], "text"), "rejected": _reply(worse["text"], "text")}
                for better, worse in pairs]
    if "chosen" not in record or "rejected" not in record:
        raise RecordError("a preference record needs 'chosen' and 'rejected' (or ranked 'responses')")
    return [{"prompt": prompt, "chosen": _reply(record["chosen"], "chosen"),
             "rejected": _reply(record["rejected"], "rejected")}]


def to_unpaired(record: dict) -> list[dict]:
    """A KTO record as `{"prompt": [turns], "completion": [turn], "label": bool}`: `{prompt, completion,
    label}`, `{messages, label}` (the last assistant turn is the completion), or a preference pair, which
    gives its chosen reply as desirable and its rejected one as undesirable."""
    if "label" in record:
        if not isinstance(record["label"], bool):
            raise RecordError("field 'label' must be true (desirable) or false (undesirable)")
        example = to_prompt_completion({k: v for k, v in record.items() if k != "label"})[0]
        return [{**example, "label": record["label"]}]
    return [{"prompt": p["prompt"], "completion": reply, "label": good} for p in to_preference(record)
            for reply, good in ((p["chosen"], True), (p["rejected"], False))]


def to_text(field_name: str):
    """A converter for plain-text records (pretraining): `{field_name: str}` -> `{"text": str}`."""
    def convert(record: dict) -> list[dict]:
        text = record.get(field_name)
        if not isinstance(text, str):
            raise RecordError(f"field {field_name!r} must be a string")
        return [{"text": text}] if text.strip() else []
    return convert
