"""Scripted reference agents: each behaves in one known way, so its scores are known before it runs. The
tests check every metric against them; `oracle` also scores a BFCL directory at 100% (it reads the answers).

    oracle          the expected calls with satisfying arguments, then an answer that passes every check
    wrong_tool      calls a tool the case does not expect (every case, even where none is needed)
    corrupt_args    the oracle's tools with every argument replaced by a value of the wrong type
    follows_injection  the oracle, but it also obeys any instruction it reads, tool results included
    never_calls     answers in text and never calls a tool
"""

from __future__ import annotations

from evalsuite.slots.agent import Reply
from evalsuite.slots.cases import Case, Message, ToolCall
from evalsuite.slots.harness import slots
from evalsuite.slots.matching import satisfying_call

CORRUPT = "corrupted"


def _acting_turns(case: Case, messages: list[Message]) -> int:
    """How many times the agent has called tools in this trial so far."""
    return sum(1 for m in messages[len(slots(case)):] if m.role == "assistant" and m.tool_calls)


def _answer(case: Case, messages: list[Message], obey_all: bool) -> str:
    """A final answer meeting the case's answer check, asking back when asked to, and including the canary
    where a disciplined model should (or wherever it appears, with `obey_all`)."""
    exp = case.expect
    parts = list(exp.answer.contains_all) + exp.answer.contains_any[:1] if exp.answer else []
    if exp.ask_back:
        parts.append("Which value should I use for the missing detail?")
    if exp.canary and (exp.canary.follow or (obey_all and any(exp.canary.text in m.content for m in messages))):
        parts.append(exp.canary.text)
    return " ".join(parts) or "Done."


class OracleAgent:
    """Answers every case perfectly."""

    name = "oracle"
    obey_all = False

    def calls(self, case: Case, step: int) -> list[ToolCall]:
        return [satisfying_call(e) for e in case.expect.steps[step]]

    def respond(self, case: Case, messages: list[Message], tools: list[dict], trial: int = 0) -> Reply:
        step = _acting_turns(case, messages)
        if step < len(case.expect.steps):
            return Reply(calls=self.calls(case, step))
        return Reply(text=_answer(case, messages, self.obey_all))


class CorruptArgsAgent(OracleAgent):
    """The right tools at the right time, every argument of the wrong type (so no constraint can match)."""

    name = "corrupt_args"

    def calls(self, case: Case, step: int) -> list[ToolCall]:
        return [ToolCall(name=c.name, arguments={k: 0 if isinstance(v, str) else CORRUPT for k, v in c.arguments.items()})
                for c in super().calls(case, step)]


class FollowsInjectionAgent(OracleAgent):
    """The oracle, except that it obeys instructions wherever it reads them, tool results included."""

    name = "follows_injection"
    obey_all = True


class WrongToolAgent:
    """Calls, in its first turn, the first offered tool the case does not expect; then says it is done."""

    name = "wrong_tool"

    def respond(self, case: Case, messages: list[Message], tools: list[dict], trial: int = 0) -> Reply:
        if _acting_turns(case, messages):
            return Reply(text="Done.")
        expected = {e.name for e in case.expect.steps[0]} if case.expect.steps else set()
        wrong = next((t["function"]["name"] for t in tools if t["function"]["name"] not in expected), "no_such_tool")
        return Reply(calls=[ToolCall(name=wrong, arguments={})])


class NeverCallsAgent:
    """Never calls a tool."""

    name = "never_calls"

    def respond(self, case: Case, messages: list[Message], tools: list[dict], trial: int = 0) -> Reply:
        return Reply(text="I will answer without tools.")


REFERENCE_AGENTS = {a.name: a for a in (OracleAgent, WrongToolAgent, CorruptArgsAgent, FollowsInjectionAgent,
                                        NeverCallsAgent)}
