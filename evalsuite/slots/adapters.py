"""Models under test for the slot benchmarks (see `evalsuite.slots.agent.Agent`):

    HFChatAgent(folder)                       a local Hugging Face chat model, greedy, prompted exactly as
                                              `evalsuite serve` prompts it (one rendering for both)
    EndpointAgent("http://host:port/v1")      an OpenAI-compatible chat endpoint with native tool calling

Both read tool calls out of the reply text with `parse_tool_calls` when the model (or server) gives no native
ones, so a model's calls are scored the same whichever way it is served.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from evalsuite.run import endpoint_url
from evalsuite.serve import LocalModel
from evalsuite.slots.agent import Reply
from evalsuite.slots.cases import Case, Message, ToolCall
from evalsuite.slots.parsing import parse_tool_calls

log = logging.getLogger("evalsuite")


def chat_messages(messages: list[Message]) -> list[dict]:
    """The conversation as chat-template dicts (tool-call arguments as dicts): each call gets an id, and each
    tool result the id of the call it answers (the first unanswered call to its tool, else the first one)."""
    out, pending, count = [], [], 0
    for message in messages:
        chat = message.chat()
        if message.role == "assistant":
            pending = []
            for call in chat.get("tool_calls", []):
                call["id"] = f"call{count:05d}"  # Mistral's templates refuse ids that are not 9 alphanumerics
                count += 1
                pending.append((call["id"], call["function"]["name"]))
        elif message.role == "tool" and pending:
            answered = next((p for p in pending if p[1] == message.name), pending[0])
            pending.remove(answered)
            chat["tool_call_id"] = answered[0]
        out.append(chat)
    return out


def turn_seed(seed: int, trial: int, turn: int) -> int:
    """The sampling seed of one reply: trials of a case differ (what pass^k needs), a re-run repeats them."""
    return seed + 1_000_003 * trial + turn


def _tool_names(tools: list[dict]) -> set[str]:
    return {t["function"]["name"] for t in tools}


class HFChatAgent:
    """A local chat model (a Hugging Face folder) under test; greedy, each turn ending at its end-of-turn token."""

    def __init__(self, folder: str | Path, device: str = "cpu", max_new_tokens: int = 256,
                 trust_remote_code: bool = False, seed: int = 0, temperature: float = 0.0):
        self.model = LocalModel(folder, device, trust_remote_code)
        self.name = self.model.name
        self.max_new_tokens = max_new_tokens
        self.seed, self.temperature = seed, temperature

    @property
    def chat_template(self) -> str | None:
        """The template the model is prompted with (its hash goes into the run manifest)."""
        return self.model.tokenizer.chat_template

    def prompt(self, messages: list[Message], tools: list[dict]) -> list[int]:
        """The token ids the model continues for its next turn."""
        return self.model.chat_ids(chat_messages(messages), tools)

    def respond(self, case: Case, messages: list[Message], tools: list[dict], trial: int = 0) -> Reply:
        """The model's next turn: its text (call markup removed) and the tool calls in it."""
        start = time.perf_counter()
        ids = self.prompt(messages, tools)
        room = self.model.max_length - len(ids)
        if room <= 0:  # the conversation no longer fits: the model cannot answer, so the case fails, the run goes on
            return Reply(prompt_tokens=len(ids), seconds=time.perf_counter() - start,
                         error=f"the prompt ({len(ids)} tokens) fills the context of {self.name} "
                               f"({self.model.max_length} tokens)")
        # a long conversation gets a shorter reply rather than an error (what a serving stack would do)
        completion = self.model.complete(ids, min(self.max_new_tokens, room), self.temperature,
                                         turn_seed(self.seed, trial, len(messages)), self.model.end_of_turn)
        text, calls = parse_tool_calls(completion.text, _tool_names(tools))
        return Reply(text=text, calls=calls, prompt_tokens=completion.prompt_tokens,
                     completion_tokens=completion.completion_tokens, seconds=time.perf_counter() - start)


class EndpointError(RuntimeError):
    """An endpoint that cannot be reached or refused a request; the message names the URL and the reason."""


class EndpointAgent:
    """A model behind an OpenAI-compatible `/v1/chat/completions` (vLLM, TGI, `evalsuite serve`, hosted APIs).
    `url`: the base (`.../v1`) or the full chat URL; `model`: the served model (default: the first listed)."""

    def __init__(self, url: str, model: str | None = None, api_key: str | None = None, max_tokens: int = 256,
                 timeout: float = 120, seed: int = 0, temperature: float = 0.0):
        base, _, _ = endpoint_url(url)
        self.base, self.url = base, f"{base}/chat/completions"
        self.max_tokens, self.timeout, self.seed, self.temperature = max_tokens, timeout, seed, temperature
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.model = model or self._first_model()
        self.name = self.model

    def _first_model(self) -> str:
        listed = self._request(f"{self.base}/models").get("data") or []
        if not listed or not isinstance(listed[0], dict) or not listed[0].get("id"):
            raise EndpointError(f"{self.base}/models: the endpoint lists no model; pass model=")
        return str(listed[0]["id"])

    def _request(self, url: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        request = urllib.request.Request(url, data=data, headers=self._headers, method="GET" if data is None else "POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as e:
            raise EndpointError(f"{url}: HTTP {e.code}: {_server_message(e)}") from None
        except OSError as e:  # URLError (refused, unresolvable) and timeouts
            raise EndpointError(f"{url}: cannot reach the endpoint ({getattr(e, 'reason', e)})") from None
        except json.JSONDecodeError:
            raise EndpointError(f"{url}: the response is not JSON") from None
        if not isinstance(answer, dict):
            raise EndpointError(f"{url}: the response is not a JSON object")
        return answer

    def respond(self, case: Case, messages: list[Message], tools: list[dict], trial: int = 0) -> Reply:
        """The model's next turn: its native tool calls, or those parsed out of its text when it gave none."""
        names = wire_names(tools)
        body = {"model": self.model, "messages": [_wire(m, names) for m in chat_messages(messages)],
                "max_tokens": self.max_tokens, "temperature": self.temperature,
                "seed": turn_seed(self.seed, trial, len(messages))}
        if tools:
            body.update(tools=[{**t, "function": {**t["function"], "name": names[t["function"]["name"]]}}
                               for t in tools], tool_choice="auto")
        start = time.perf_counter()
        answer = self._request(self.url, body)
        seconds = time.perf_counter() - start
        try:
            message = answer["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{self.url}: the response has no choices[0].message") from None
        content = message.get("content") or ""
        calls = [self._call(c) for c in message.get("tool_calls") or []]
        if calls:
            text = content.strip()
        else:
            text, calls = parse_tool_calls(content, set(names.values()))
        original = {wire: name for name, wire in names.items()}
        calls = [ToolCall(name=original.get(c.name, c.name), arguments=c.arguments) for c in calls]
        usage = answer.get("usage") or {}
        return Reply(text=text, calls=calls, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                     completion_tokens=int(usage.get("completion_tokens") or 0), seconds=seconds)

    def _call(self, wire: dict) -> ToolCall:
        function = wire.get("function") or {}
        name, arguments = str(function.get("name") or ""), function.get("arguments") or {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                arguments = None
        if not isinstance(arguments, dict):
            # the call still counts (and is scored with no arguments); its text is not logged: it may hold
            # what the conversation holds
            log.warning("%s: the arguments of a call to %r are not a JSON object; kept with none", self.url, name)
            arguments = {}
        return ToolCall(name=name, arguments=arguments)


def wire_names(tools: list[dict]) -> dict[str, str]:
    """Tool name -> the name sent to the endpoint. OpenAI's API takes only `[A-Za-z0-9_-]{1,64}`, so BFCL's
    dotted names (`math.factorial`) go out as `math_factorial` and the calls are mapped back; names are kept
    as they are where the mapping would make two tools one."""
    names = [t["function"]["name"] for t in tools]
    mapped = {name: re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] for name in names}
    return mapped if len(set(mapped.values())) == len(mapped) else {name: name for name in names}


def _wire(message: dict, names: dict[str, str]) -> dict:
    """A chat-template dict in the OpenAI wire format: call arguments as JSON strings, tool names as `names`
    maps them, tool results naming only their call id (OpenAI refuses other fields there)."""
    if message["role"] == "tool":
        return {k: v for k, v in message.items() if k in ("role", "content", "tool_call_id")}
    if not message.get("tool_calls"):
        return message
    calls = [{"id": c["id"], "type": "function", "function": {
        "name": names.get(c["function"]["name"], c["function"]["name"]),
        "arguments": json.dumps(c["function"]["arguments"], ensure_ascii=False)}} for c in message["tool_calls"]]
    return {**message, "content": message["content"] or None, "tool_calls": calls}


def _server_message(error: urllib.error.HTTPError) -> str:
    """The reason an OpenAI-style server gives (`error.message`), else the start of its reply."""
    raw = error.read().decode("utf-8", "replace")
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError:
        return raw[:500] or error.reason
    found = payload.get("error", payload.get("detail")) if isinstance(payload, dict) else None
    if isinstance(found, dict):
        found = found.get("message")
    return str(found) if found else raw[:500]
