"""What the harness asks of a model under test: given the conversation so far and the offered tools, reply
with text and/or tool calls. Adapters (local chat models, OpenAI-compatible endpoints) and the scripted
reference agents all implement `Agent`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from evalsuite.slots.cases import Case, Message, ToolCall


@dataclass
class Reply:
    """One assistant turn: its text, the tool calls it made, and what it cost."""

    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    error: str | None = None  # the model could not answer (e.g. the conversation outgrew its context): a failure


class Agent(Protocol):
    """A model under test. `tools` are OpenAI-style definitions:
    [{"type": "function", "function": {"name", "description", "parameters" (JSON Schema)}}]."""

    name: str

    def respond(self, case: Case, messages: list[Message], tools: list[dict], trial: int = 0) -> Reply:
        """The next assistant turn. Real models ignore `case` and seed their sampling with `trial` (repeated
        trials differ, re-runs do not); scripted reference agents read the case's expectation."""
        ...
