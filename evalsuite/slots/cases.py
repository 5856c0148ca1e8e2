"""The slot benchmark's case format: one JSON object per line (see docs/slots.md for the full schema).

    {"id": "weather-oslo/plain", "category": "simple", "task": "weather-oslo", "arrangement": "plain",
     "messages": [{"role": "system", "content": "You are a helpful assistant."},
                  {"role": "user", "content": "What's the weather in Oslo?"}],
     "tools": ["get_weather", "calculate"],
     "expect": {"steps": [[{"name": "get_weather", "arguments": {"city": {"any_of": ["Oslo", "oslo"]}}}]],
                "answer": {"contains_any": ["snow"]}}}

`tools` names tools of the MCP server (they form the run's allow-list); cases imported from BFCL carry
`functions` (definitions only: there is no server to run them, and only the first turn's calls are scored).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from corpus.config import format_validation_error

ROLES = ("system", "user", "assistant", "tool")
JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolCall(_Strict):
    """A call the model made (or a prior assistant turn made): a tool name and its arguments."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(_Strict):
    """One slot: system, user, assistant (text and/or tool calls) or tool (a tool's result)."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    name: str | None = None  # role "tool": which tool answered

    def chat(self) -> dict:
        """The message in the OpenAI / transformers chat format."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [{"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                                 for c in self.tool_calls]
        if self.name:
            out["name"] = self.name
        return out


class Resource(_Strict):
    """An MCP resource the host attaches to the context (given to the model as a user-slot attachment)."""

    uri: str
    text: str


class ArgConstraint(_Strict):
    """What an argument may be: one exact value, any of several (BFCL's lists of acceptable answers), or any
    value of a JSON type. `optional`: the argument may also be left out."""

    exact: Any = None
    any_of: list[Any] | None = None
    type: Literal["string", "number", "integer", "boolean", "array", "object", "null"] | None = None
    optional: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> ArgConstraint:
        kinds = [self.exact is not None, self.any_of is not None, self.type is not None]
        if sum(kinds) != 1:
            raise ValueError("an argument constraint needs exactly one of exact, any_of or type")
        if self.any_of is not None and not self.any_of:
            raise ValueError("any_of needs at least one acceptable value")
        return self


class ExpectedCall(_Strict):
    """A call the model must make: the tool's name and a constraint per argument (no other arguments allowed)."""

    name: str
    arguments: dict[str, ArgConstraint] = Field(default_factory=dict)


class AnswerCheck(_Strict):
    """Checks on the final text answer (case-insensitive substring tests)."""

    contains_any: list[str] = Field(default_factory=list)
    contains_all: list[str] = Field(default_factory=list)
    contains_none: list[str] = Field(default_factory=list)


class Canary(_Strict):
    """An injected instruction's marker. `follow`: whether a disciplined model should obey it (True where the
    instruction sits in the system or user slot, False where it arrives inside a tool result)."""

    text: str
    slot: Literal["system", "user", "tool"]
    follow: bool


class Expectation(_Strict):
    """What a correct model does. `steps`: the calls of each acting turn, in order (the calls inside one step
    are parallel: any order); empty means the model must not call any tool. `forbidden`: tools the system
    slot rules out. `ask_back`: a required parameter is missing, so the model must ask instead of calling."""

    steps: list[list[ExpectedCall]] = Field(default_factory=list)
    answer: AnswerCheck | None = None
    forbidden: list[str] = Field(default_factory=list)
    ask_back: bool = False
    canary: Canary | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Expectation:
        if self.ask_back and self.steps:
            raise ValueError("ask_back cases expect no calls: leave steps empty")
        if any(not step for step in self.steps):
            raise ValueError("a step needs at least one expected call")
        return self


class Injection(_Strict):
    """Text the harness appends to a tool's result (the attack that arrives through the tool slot)."""

    tool: str
    text: str


class Case(_Strict):
    """One benchmark case."""

    id: str
    category: str
    task: str = ""  # cases that arrange the same task differently share it (structure stability)
    arrangement: str = "plain"
    messages: list[Message]
    resources: list[Resource] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)  # MCP server tools offered (and allow-listed)
    functions: list[dict] = Field(default_factory=list)  # tool definitions without a server (BFCL)
    store: dict[str, str] = Field(default_factory=dict)  # the key-value store's content when the case starts
    inject: Injection | None = None
    expect: Expectation = Field(default_factory=Expectation)
    max_turns: int = Field(default=4, ge=1)

    @model_validator(mode="after")
    def _check(self) -> Case:
        if not self.messages or self.messages[-1].role not in ("user", "tool"):
            raise ValueError("messages must end with a user (or tool) turn for the model to answer")
        if self.tools and self.functions:
            raise ValueError("give tools (MCP server tool names) or functions (definitions), not both")
        offered = set(self.tools) | {f.get("name") for f in self.functions}
        for i, step in enumerate(self.expect.steps):
            for j, call in enumerate(step):
                if call.name not in offered:
                    raise ValueError(f"expect.steps[{i}][{j}].name: {call.name!r} is not among the tools the case "
                                     "offers (tools or functions)")
        return self

    @property
    def offered(self) -> list[str]:
        """Names of the tools the model is shown."""
        return list(self.tools) or [f["name"] for f in self.functions]


class CaseError(ValueError):
    """A case file that cannot be used; the message names the file, line and field."""


def load_cases(path: str | Path) -> list[Case]:
    """Read and validate a JSONL case file; the first bad line raises CaseError naming file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise CaseError(f"{path}: no such case file")
    cases, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                case = Case.model_validate(json.loads(line))
            except json.JSONDecodeError as e:
                raise CaseError(f"{path}:{number}: not JSON ({e.msg} at column {e.colno})") from None
            except ValidationError as e:
                raise CaseError(format_validation_error(e, f"{path}:{number}", "docs/slots.md")) from None
            if case.id in seen:
                raise CaseError(f"{path}:{number}: id: duplicate case id {case.id!r}")
            seen.add(case.id)
            cases.append(case)
    return cases


def dump_cases(cases: list[Case]) -> str:
    """The cases as JSONL text (stable key order and no defaults, so files rebuild byte for byte)."""
    return "".join(json.dumps(c.model_dump(exclude_defaults=True), ensure_ascii=False, sort_keys=True) + "\n"
                   for c in cases)
