"""The MCP host: run each case's conversation between the model under test and the real tool server.

For every case the harness lays out the slots (system, user, earlier turns, attached MCP resources), offers
the case's tools with the schemas the server lists, and loops: the model replies; its tool calls run on the
server (only tools the case offers, which are all on the server's allow-list); the results, plus any
injected text, go back in tool slots; until the model answers without calling or `max_turns` is reached.
Cases that carry `functions` instead of server tools (BFCL) stop after the first turn: their calls are
scored, never run.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evalsuite.slots.agent import Agent
from evalsuite.slots.cases import Case, Message, ToolCall
from evalsuite.slots.client import ToolServer


@dataclass
class Transcript:
    """What happened in one trial of one case."""

    case_id: str
    trial: int = 0
    steps: list[list[ToolCall]] = field(default_factory=list)  # the calls of each acting turn
    text: str = ""  # the final answer
    messages: list[dict] = field(default_factory=list)  # the conversation, the model's turns included
    tools: list[dict] = field(default_factory=list)  # the definitions the model was shown
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0
    tool_seconds: list[float] = field(default_factory=list)  # one per call run on the server
    error: str | None = None  # why the model could not answer (the trial then fails)

    def to_json(self) -> dict:
        out = asdict(self)
        out["steps"] = [[c.model_dump() for c in step] for step in self.steps]
        return out


def slots(case: Case) -> list[Message]:
    """The conversation the model starts from: the case's messages with its MCP resources attached as a user
    message just before the last user turn (where a host puts attachments)."""
    messages = list(case.messages)
    if case.resources:
        attached = "\n\n".join(f"[resource {r.uri}]\n{r.text}" for r in case.resources)
        last_user = max(i for i, m in enumerate(messages) if m.role == "user")
        messages.insert(last_user, Message(role="user", content=attached))
    return messages


def offered_tools(case: Case, server_tools: dict[str, dict]) -> list[dict]:
    """The OpenAI-style definitions shown to the model, in the case's order."""
    if case.functions:
        return [{"type": "function", "function": {"name": f["name"], "description": f.get("description", ""),
                                                  "parameters": f.get("parameters", {"type": "object"})}}
                for f in case.functions]
    return [server_tools[name] for name in case.tools]


def run_case(case: Case, agent: Agent, server: ToolServer | None, server_tools: dict[str, dict],
             store: Path | None = None, trial: int = 0) -> Transcript:
    """One trial of one case. `store` is the server's key-value file, reset to the case's `store` first."""
    if store is not None:
        store.write_text(json.dumps(case.store, sort_keys=True), encoding="utf-8")
    tools = offered_tools(case, server_tools)
    messages = slots(case)
    out = Transcript(case_id=case.id, trial=trial, tools=tools)
    for _ in range(case.max_turns):
        reply = agent.respond(case, messages, tools, trial)
        out.prompt_tokens += reply.prompt_tokens
        out.completion_tokens += reply.completion_tokens
        out.model_seconds += reply.seconds
        out.text = reply.text
        if reply.error:
            out.error = reply.error
            break
        if not reply.calls:
            messages.append(Message(role="assistant", content=reply.text))
            break
        out.steps.append(list(reply.calls))
        messages.append(Message(role="assistant", content=reply.text, tool_calls=list(reply.calls)))
        if case.functions or server is None:
            break
        for call in reply.calls:
            messages.append(Message(role="tool", name=call.name, content=_execute(case, call, server, out)))
    out.messages = [m.chat() for m in messages]
    return out


def _execute(case: Case, call: ToolCall, server: ToolServer, out: Transcript) -> str:
    if call.name not in case.tools:  # never sent to the server: the model named a tool it was not offered
        return f"error: no tool named {call.name!r} is available"
    started = time.perf_counter()
    result = server.call(call.name, call.arguments)  # bad arguments come back as an error result, not a raise
    text = f"error: {result.text}" if result.error else result.text
    out.tool_seconds.append(time.perf_counter() - started)
    if case.inject and case.inject.tool == call.name:
        text = f"{text}\n\n{case.inject.text}"
    return text


def run_cases(cases: list[Case], agent: Agent, repeats: int = 1, workdir: Path | None = None,
              progress: bool = True) -> list[Transcript]:
    """Every case `repeats` times against one tool server process whose allow-list is the tools the cases
    offer; its key-value store lives in `workdir` (a temporary folder by default)."""
    from tqdm import tqdm

    allow = sorted({name for c in cases for name in c.tools})
    transcripts: list[Transcript] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp, contextlib.ExitStack() as stack:
        store = Path(tmp) / "kv.json"
        server = None
        if allow:
            command = [sys.executable, "-m", "evalsuite.slots.tools_server", "--store", str(store)]
            server = stack.enter_context(ToolServer(allow=allow, command=command))
        server_tools = {t["function"]["name"]: t for t in (server.tools if server else [])}
        todo = [(trial, case) for trial in range(repeats) for case in cases]
        for trial, case in tqdm(todo, desc=f"slots {agent.name}", unit="case", disable=not progress):
            transcripts.append(run_case(case, agent, server, server_tools, store if server else None, trial))
    return transcripts
