"""`evalsuite serve`: a local model folder behind a small OpenAI-compatible HTTP server.

Why our own: log-likelihood tasks over an endpoint need the legacy completions API with `echo` and
`logprobs` (the prompt's own token log-probabilities), which `transformers serve` does not implement, and
vLLM or TGI need a GPU. This server is small, runs on a CPU, and is what the endpoint tests (and users without
a GPU inference server) evaluate against. It serves one model, one request at a time, on loopback by default.

Routes:
    GET  /v1/models             the served model, with its weights fingerprint
    POST /v1/completions        prompt as text, token ids or a list of either; max_tokens, temperature,
                                seed, stop, echo, logprobs (top-k per position)
    POST /v1/chat/completions   messages rendered with the model's chat template; with `tools` (and
                                `tool_choice` "auto" or "none"), tool calls parsed out of the reply and
                                returned as `message.tool_calls`
    Both take `stream: true` (one prompt, no echo, logprobs or tools): server-sent events in OpenAI's chunk
    format, `data: {chunk}` per piece of text as the tokens are generated, then `data: [DONE]`; with
    `stream_options: {"include_usage": true}`, a last chunk with no choices and the token counts.
    GET  /tokenizer_info, POST /tokenize, POST /detokenize
                                the tokenizer, as vLLM exposes it (lm-eval's `remote` tokenizer backend)
    GET  /health

Prompts and generations are never logged.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from evalsuite.slots.cases import ToolCall
from evalsuite.slots.parsing import parse_tool_calls, render_tool_calls

MAX_BODY_BYTES = 64 << 20
# markers chat templates close an assistant turn with, when it is not the EOS token itself (ChatML, Llama 3,
# Gemma, Phi-3, Command R); a model whose tokenizer has no such special token still writes them as text
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "<|END_OF_TURN_TOKEN|>")
TOOL_INSTRUCTION = ("You can call these tools (JSON Schema definitions, one per line):\n{tools}\n\n"
                    'To call a tool, reply with <tool_call>{{"name": <tool name>, "arguments": <JSON object>}}'
                    "</tool_call>, one per call; the results come back in the next turn. Otherwise answer in text.")


class RequestError(ValueError):
    """A request the server cannot answer; sent back as an OpenAI-style error with status 400."""


@dataclass
class Completion:
    """One generated continuation and, when asked, the log-probabilities of its tokens (or, streamed, a piece of
    one: the text since the previous piece, no finish reason until the last)."""

    text: str
    finish_reason: str | None
    tokens: list[str] | None = None
    token_logprobs: list[float | None] | None = None
    top_logprobs: list[dict[str, float] | None] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LocalModel:
    """A causal LM and its tokenizer, loaded from a local folder (safetensors; no remote code unless asked)."""

    def __init__(self, folder: str | Path, device: str = "cpu", trust_remote_code: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from evalsuite.run import EvalError, model_fingerprint

        self.folder = Path(folder)
        if not (self.folder / "config.json").is_file():
            raise EvalError(f"model folder not found or not a Hugging Face model (no config.json): {self.folder}")
        self.name = self.folder.resolve().name
        self.fingerprint = model_fingerprint(self.folder)
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder, trust_remote_code=trust_remote_code)
        self.model = AutoModelForCausalLM.from_pretrained(self.folder, trust_remote_code=trust_remote_code)
        self.model.to(device).eval()
        self.device = device
        self.max_length = int(getattr(self.model.config, "max_position_embeddings", 0)
                              or getattr(self.model.config, "n_positions", 0) or 2048)
        self.lock = threading.Lock()  # one forward pass at a time: torch on CPU already uses every core
        self._torch = torch

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]

    def chat_ids(self, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
        """The prompt for the assistant's next turn: `messages` (chat dicts, tool-call arguments as dicts) and the
        offered `tools` (OpenAI format) rendered with the chat template. A template that ignores tools gets them
        in a system instruction asking for `<tool_call>` markup; past tool calls a template cannot render go into
        the assistant's content as that markup."""
        if not self.tokenizer.chat_template:
            raise RequestError(f"model {self.name} has no chat template; use /v1/completions")
        if not self.renders_tool_calls:
            messages = [_calls_as_markup(m) for m in messages]
        text = self._render(messages, tools)
        if tools and text == self._render(messages, None):
            text = self._render(_with_tool_instruction(messages, tools), None)
        return self.encode(text)

    def _render(self, messages: list[dict], tools: list[dict] | None, add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    @cached_property
    def renders_tool_calls(self) -> bool:
        """Whether the chat template writes out an assistant turn's tool calls (many templates drop them)."""
        from jinja2 import TemplateError

        probe = [{"role": "user", "content": "?"}, {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call00000", "type": "function", "function": {"name": "probe_tool_7f3a", "arguments": {"x": 1}}}]}]
        try:
            return "probe_tool_7f3a" in self._render(probe, None, add_generation_prompt=False)
        except TemplateError:  # a template that refuses tool calls renders none
            return False

    @cached_property
    def end_of_turn(self) -> list[str]:
        """Stop strings that close an assistant turn: the end-of-turn markers the chat template writes (the EOS
        token stops generation anyway)."""
        template = str(self.tokenizer.chat_template or "")
        return [m for m in END_OF_TURN if m in template and m != self.tokenizer.eos_token]

    def chat(self, messages: list[dict], tools: list[dict] | None = None, max_tokens: int = 256,
             temperature: float = 0.0, seed: int = 0, stop: list[str] | None = None) -> Completion:
        """The assistant's next turn (see `chat_ids`), ending where the turn ends."""
        return self.complete(self.chat_ids(messages, tools), max_tokens, temperature, seed,
                             [*(stop or []), *self.end_of_turn])

    def _logits(self, ids: list[int]):
        torch = self._torch
        with torch.inference_mode():
            return self.model(input_ids=torch.tensor([ids], device=self.device)).logits[0].float()

    def complete(self, ids: list[int], max_tokens: int, temperature: float = 0.0, seed: int = 0,
                 stop: list[str] | None = None, logprobs: int | None = None, echo: bool = False) -> Completion:
        """Continue `ids` by up to `max_tokens` tokens (greedy at temperature 0); with `logprobs`, the
        log-probability of every returned token (the prompt's too with `echo`) and the top-k at each position."""
        self._check_room(ids, max_tokens)
        torch = self._torch
        with self.lock:
            new, finish = self._generate(ids, max_tokens, temperature, seed, stop)
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            for s in stop or []:  # the stop sequence itself is not returned
                if s and s in text:
                    text, finish = text[: text.index(s)], "stop"
            result = Completion(text=text, finish_reason=finish, prompt_tokens=len(ids), completion_tokens=len(new))
            if logprobs is None:
                return result
            full = ids + new
            logp = torch.log_softmax(self._logits(full), dim=-1)
            first = 0 if echo else len(ids)
            picked = [None if i == 0 else float(logp[i - 1, full[i]]) for i in range(first, len(full))]
            top = []
            for i in range(first, len(full)):
                if i == 0:
                    top.append(None)
                    continue
                values, indices = torch.topk(logp[i - 1], max(1, logprobs))
                top.append({self.tokenizer.decode([int(t)]): float(v) for v, t in zip(values, indices)})
        result.tokens = [self.tokenizer.decode([t]) for t in full[first:]]
        result.token_logprobs, result.top_logprobs = picked, top
        if echo:
            result.text = self.tokenizer.decode(ids) + result.text
        return result

    def _check_room(self, ids: list[int], max_tokens: int) -> None:
        if not ids:
            raise RequestError("the prompt is empty")
        if len(ids) + max_tokens > self.max_length:
            raise RequestError(f"prompt ({len(ids)} tokens) plus max_tokens ({max_tokens}) exceeds the model's "
                               f"context of {self.max_length} tokens")

    def stream(self, ids: list[int], max_tokens: int, temperature: float = 0.0, seed: int = 0,
               stop: list[str] | None = None) -> Iterator[Completion]:
        """`complete` (without logprobs) piece by piece as the tokens are generated: each piece has the text since
        the previous one and the tokens so far, the last one the finish reason. Text that may be the start of a
        stop string, or of a character whose bytes are still coming, is held back, so the pieces join up to
        what `complete` returns. The request is checked before the first piece is asked for."""
        self._check_room(ids, max_tokens)
        return self._stream(ids, max_tokens, temperature, seed, [s for s in stop or [] if s])

    def _stream(self, ids: list[int], max_tokens: int, temperature: float, seed: int,
                stop: list[str]) -> Iterator[Completion]:
        from transformers import StoppingCriteriaList

        if max_tokens <= 0:
            yield Completion("", "length", prompt_tokens=len(ids))
            return
        tokens, cancel = _TokenQueue(), threading.Event()
        new: list[int] = []
        text, sent, finish = "", 0, None
        with self.lock:
            kwargs = self._generate_kwargs(max_tokens, temperature, seed, stop)
            kwargs.update(streamer=tokens, stopping_criteria=StoppingCriteriaList([_Cancelled(cancel)]))
            worker = threading.Thread(target=self._generate_into, args=(ids, kwargs, tokens), daemon=True)
            worker.start()
            try:
                for token in iter(tokens.queue.get, None):
                    if token == self.tokenizer.eos_token_id:
                        finish = "stop"
                        break
                    new.append(token)
                    text = self.tokenizer.decode(new, skip_special_tokens=True)
                    cut = min((text.index(s) for s in stop if s in text), default=None)
                    if cut is not None:
                        text, finish = text[:cut], "stop"
                        break
                    ready = _ready(text, stop)
                    if ready > sent:
                        yield Completion(text[sent:ready], None, prompt_tokens=len(ids), completion_tokens=len(new))
                        sent = ready
                if tokens.error is not None:
                    raise tokens.error
                finish = finish or ("length" if len(new) == max_tokens else "stop")
                yield Completion(text[sent:], finish, prompt_tokens=len(ids), completion_tokens=len(new))
            finally:  # also when the reader stops early (a client that hung up): end the generation first
                cancel.set()
                worker.join()

    def _generate_into(self, ids: list[int], kwargs: dict, tokens: _TokenQueue) -> None:
        try:
            self._call_generate(ids, kwargs)
        except Exception as e:  # noqa: BLE001 - any error of generate: the reading thread raises it
            tokens.error = e
            tokens.end()

    def _call_generate(self, ids: list[int], kwargs: dict):
        torch = self._torch
        with torch.inference_mode():
            return self.model.generate(torch.tensor([ids], device=self.device),
                                       attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=self.device),
                                       **kwargs)

    def _generate_kwargs(self, max_tokens: int, temperature: float, seed: int, stop: list[str] | None) -> dict:
        """`generate`'s arguments for a request (seeds torch's generator: sampling repeats with the seed)."""
        self._torch.manual_seed(seed)
        kwargs = {"do_sample": temperature > 0, "max_new_tokens": max_tokens,
                  "pad_token_id": self.tokenizer.eos_token_id}
        if temperature > 0:
            kwargs["temperature"] = temperature
        if stop:
            kwargs.update(stop_strings=[s for s in stop if s], tokenizer=self.tokenizer)
        return kwargs

    def _generate(self, ids: list[int], max_tokens: int, temperature: float, seed: int,
                  stop: list[str] | None) -> tuple[list[int], str]:
        if max_tokens <= 0:
            return [], "length"
        eos = self.tokenizer.eos_token_id
        if max_tokens == 1 and temperature == 0:  # the log-likelihood request: one forward pass
            token = int(self._logits(ids)[-1].argmax())
            return [token], "stop" if token == eos else "length"
        out = self._call_generate(ids, self._generate_kwargs(max_tokens, temperature, seed, stop))
        new = [int(t) for t in out[0, len(ids):]]
        if eos is not None and eos in new:
            return new[: new.index(eos)], "stop"
        return new, "length" if len(new) == max_tokens else "stop"


class _TokenQueue:
    """A `generate` streamer that hands the new token ids, one at a time, to the thread reading `queue`; None
    marks the end (after an error in `generate`, kept in `error`)."""

    def __init__(self):
        self.queue: queue.Queue[int | None] = queue.Queue()
        self.error: Exception | None = None
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:  # `generate` puts the prompt first
            self._prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.queue.put(int(token))

    def end(self) -> None:
        self.queue.put(None)


class _Cancelled:
    """A `generate` stopping criterion: stop once `event` is set."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def _ready(text: str, stop: list[str]) -> int:
    """How much of the text generated so far can be sent: not a last character still missing bytes (decoded
    as U+FFFD), nor an ending that may be the start of a stop string."""
    end = len(text.rstrip("\ufffd"))
    held = max((k for s in stop for k in range(1, len(s)) if text[:end].endswith(s[:k])), default=0)
    return end - held


def _prompts(model: LocalModel, prompt) -> list[list[int]]:
    """The legacy API's four prompt shapes (text, token ids, and a list of either) as token-id lists."""
    if isinstance(prompt, str):
        return [model.encode(prompt)]
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return [prompt]
    if isinstance(prompt, list) and prompt:
        out = []
        for p in prompt:
            if isinstance(p, str):
                out.append(model.encode(p))
            elif isinstance(p, list) and p and all(isinstance(t, int) for t in p):
                out.append(p)
            else:
                raise RequestError("each prompt must be a string or a non-empty list of token ids")
        return out
    raise RequestError("'prompt' must be a string, a list of token ids, or a non-empty list of either")


def _number(body: dict, key: str, default, kind=float):
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"'{key}' must be a number")
    return kind(value)


def _stop(body: dict) -> list[str]:
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RequestError("'stop' must be a string or a list of strings")
    return stop


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _include_usage(body: dict) -> bool:
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise RequestError("'stream_options' must be an object")
    return bool(options.get("include_usage"))


def _chunks(head: dict, pieces: Iterator[Completion], choice, include_usage: bool,
            opening: dict | None = None) -> Iterator[dict]:
    """A streamed response's chunks: `head` (id, object, created, model) with one choice per piece of text
    (`choice(piece)`), after `opening` if given; with `include_usage`, a last chunk with the token counts."""
    if opening:
        yield {**head, "choices": [opening]}
    last = None
    try:
        for last in pieces:
            if last.text or last.finish_reason:
                yield {**head, "choices": [choice(last)]}
    finally:  # a reader that stops early stops the generation
        pieces.close()
    if include_usage and last is not None:
        yield {**head, "choices": [], "usage": _usage(last.prompt_tokens, last.completion_tokens)}


def completion_chunks(model: LocalModel, body: dict) -> Iterator[dict]:
    """The chunks of POST /v1/completions with `stream: true` (checked before the first chunk is asked for)."""
    if body.get("echo") or body.get("logprobs") is not None:
        raise RequestError("'stream' does not combine with 'echo' or 'logprobs'")
    prompts = _prompts(model, body.get("prompt"))
    if len(prompts) != 1:
        raise RequestError("'stream' takes one prompt")
    pieces = model.stream(prompts[0], _number(body, "max_tokens", 16, int), _number(body, "temperature", 0.0),
                          _number(body, "seed", 0, int), _stop(body))
    head = {"id": f"cmpl-{time.time_ns()}", "object": "text_completion", "created": int(time.time()),
            "model": model.name}
    return _chunks(head, pieces, lambda c: {"index": 0, "text": c.text, "logprobs": None,
                                            "finish_reason": c.finish_reason}, _include_usage(body))


def chat_chunks(model: LocalModel, body: dict) -> Iterator[dict]:
    """The chunks of POST /v1/chat/completions with `stream: true`: the assistant role first, then the reply's
    text in pieces (checked before the first chunk is asked for)."""
    if _tools(body):
        raise RequestError("'stream' does not combine with 'tools' on this server")
    messages = _messages(body)
    max_tokens = _number(body, "max_completion_tokens", None, int) or _number(body, "max_tokens", 256, int)
    pieces = model.stream(model.chat_ids(messages), max_tokens, _number(body, "temperature", 0.0),
                          _number(body, "seed", 0, int), [*_stop(body), *model.end_of_turn])
    head = {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model.name}
    return _chunks(head, pieces, lambda c: {"index": 0, "delta": {"content": c.text} if c.text else {},
                                            "finish_reason": c.finish_reason}, _include_usage(body),
                   opening={"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})


def completions(model: LocalModel, body: dict) -> dict:
    """The response to POST /v1/completions."""
    logprobs = body.get("logprobs")
    if logprobs is not None and (isinstance(logprobs, bool) or not isinstance(logprobs, int) or logprobs < 0):
        raise RequestError("'logprobs' must be a non-negative integer")
    max_tokens = _number(body, "max_tokens", 16, int)
    args = {"max_tokens": max_tokens, "temperature": _number(body, "temperature", 0.0),
            "seed": _number(body, "seed", 0, int), "stop": _stop(body), "logprobs": logprobs,
            "echo": bool(body.get("echo", False))}
    choices, prompt_tokens, completion_tokens = [], 0, 0
    for index, ids in enumerate(_prompts(model, body.get("prompt"))):
        c = model.complete(ids, **args)
        choice = {"index": index, "text": c.text, "finish_reason": c.finish_reason, "logprobs": None}
        if logprobs is not None:
            offsets, at = [], 0
            for token in c.tokens:
                offsets.append(at)
                at += len(token)
            choice["logprobs"] = {"tokens": c.tokens, "token_logprobs": c.token_logprobs,
                                  "top_logprobs": c.top_logprobs, "text_offset": offsets}
        choices.append(choice)
        prompt_tokens += c.prompt_tokens
        completion_tokens += c.completion_tokens
    return {"id": f"cmpl-{time.time_ns()}", "object": "text_completion", "created": int(time.time()),
            "model": model.name, "choices": choices, "usage": _usage(prompt_tokens, completion_tokens)}


def _messages(body: dict) -> list[dict]:
    """The request's messages as the chat template takes them: tool-call arguments decoded from JSON strings."""
    messages = body.get("messages")
    malformed = "'messages' must be a non-empty list of {role, content} objects with string content"
    if not isinstance(messages, list) or not messages:
        raise RequestError(malformed)
    out = []
    for index, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise RequestError(malformed)
        calls = m.get("tool_calls") or []
        if not isinstance(m.get("content"), str) and not (m.get("content") is None and calls):
            raise RequestError(malformed)  # null content is for assistant turns that only call tools
        if not isinstance(calls, list):
            raise RequestError(f"messages[{index}].tool_calls must be a list")
        message = {"role": m["role"], "content": m.get("content") or ""}
        if calls:
            message["tool_calls"] = [_incoming_call(call, index) for call in calls]
        message.update({k: m[k] for k in ("tool_call_id", "name") if isinstance(m.get(k), str)})
        out.append(message)
    return out


def _incoming_call(call, index: int) -> dict:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise RequestError(f"messages[{index}].tool_calls: each call needs a function with a name")
    arguments = function.get("arguments") or "{}"
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            raise RequestError(f"messages[{index}].tool_calls: the arguments of {function['name']!r} are not "
                               "valid JSON") from None
    if not isinstance(arguments, dict):
        raise RequestError(f"messages[{index}].tool_calls: the arguments of {function['name']!r} must be an object")
    out = {"type": "function", "function": {"name": function["name"], "arguments": arguments}}
    if isinstance(call.get("id"), str):
        out["id"] = call["id"]
    return out


def _tools(body: dict) -> list[dict] | None:
    """The offered tools; none when there are none or `tool_choice` is "none" (the model then sees no tools)."""
    tools, choice = body.get("tools") or None, body.get("tool_choice") or "auto"
    if choice not in ("auto", "none"):
        raise RequestError("'tool_choice' must be \"auto\" or \"none\" (this server cannot force a call)")
    if tools is not None and (not isinstance(tools, list) or not all(
            isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
            and isinstance(t["function"].get("name"), str) for t in tools)):
        raise RequestError("'tools' must be a list of {\"type\": \"function\", \"function\": {name, description, "
                           "parameters}} objects")
    return None if choice == "none" else tools


def chat_completions(model: LocalModel, body: dict) -> dict:
    """The response to POST /v1/chat/completions (one choice)."""
    messages, tools = _messages(body), _tools(body)
    max_tokens = _number(body, "max_completion_tokens", None, int) or _number(body, "max_tokens", 256, int)
    c = model.chat(messages, tools, max_tokens=max_tokens, temperature=_number(body, "temperature", 0.0),
                   seed=_number(body, "seed", 0, int), stop=_stop(body))
    message: dict = {"role": "assistant", "content": c.text}
    finish_reason = c.finish_reason
    if tools:
        text, calls = parse_tool_calls(c.text, {t["function"]["name"] for t in tools})
        if calls:
            message = {"role": "assistant", "content": text or None, "tool_calls": [
                {"id": f"call_{i}", "type": "function",
                 "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}}
                for i, call in enumerate(calls)]}
            finish_reason = "tool_calls"
    return {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
            "model": model.name,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": _usage(c.prompt_tokens, c.completion_tokens)}


def _calls_as_markup(message: dict) -> dict:
    """An assistant message with its tool calls moved into the content as `<tool_call>` markup."""
    calls = message.get("tool_calls")
    if not calls:
        return message
    markup = render_tool_calls([ToolCall(name=c["function"]["name"], arguments=c["function"]["arguments"])
                                for c in calls])
    content = message.get("content") or ""
    return {**{k: v for k, v in message.items() if k != "tool_calls"},
            "content": f"{content}\n{markup}" if content else markup}


def _with_tool_instruction(messages: list[dict], tools: list[dict]) -> list[dict]:
    """`messages` with the tools and how to call them stated in the system message (prepended if none)."""
    instruction = TOOL_INSTRUCTION.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in tools))
    if messages and messages[0]["role"] == "system":
        first = messages[0]
        return [{**first, "content": f"{first['content']}\n\n{instruction}" if first["content"] else instruction},
                *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


def _handler(model: LocalModel, api_key: str | None):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

        def log_message(self, format, *args):  # quiet: requests carry user text
            pass

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_events(self, events: Iterator[dict]) -> None:
            """Server-sent events as OpenAI streams them: `data: {chunk}` each, then `data: [DONE]`, in chunked
            transfer encoding (the connection stays usable)."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def write(data: bytes) -> None:
                self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

            try:
                for event in events:
                    write(b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n")
                write(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
            except ConnectionError:  # the client hung up: stop generating
                self.close_connection = True
            finally:
                events.close()

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error", "code": status}})

        def _authorised(self) -> bool:
            if api_key and self.headers.get("Authorization") != f"Bearer {api_key}":
                self._error(HTTPStatus.UNAUTHORIZED, "missing or wrong API key")
                return False
            return True

        def do_GET(self):
            if not self._authorised():
                return
            path = self.path.rstrip("/")
            if path == "/health":
                self._send(200, {"status": "ok"})
            elif path == "/v1/models":
                self._send(200, {"object": "list", "data": [
                    {"id": model.name, "object": "model", "owned_by": "local", "fingerprint": model.fingerprint,
                     "max_model_len": model.max_length}]})
            elif path == "/tokenizer_info":
                tok = model.tokenizer
                self._send(200, {"eos_token": tok.eos_token, "bos_token": tok.bos_token, "pad_token": tok.pad_token,
                                 "chat_template": tok.chat_template, "model_max_length": model.max_length})
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}")

        def do_POST(self):
            if not self._authorised():
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body over {MAX_BODY_BYTES} bytes")
                return
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise RequestError("the request body must be a JSON object")
                path = self.path.rstrip("/")
                if path == "/v1/completions" and body.get("stream"):
                    self._send_events(completion_chunks(model, body))
                elif path == "/v1/completions":
                    self._send(200, completions(model, body))
                elif path == "/v1/chat/completions" and body.get("stream"):
                    self._send_events(chat_chunks(model, body))
                elif path == "/v1/chat/completions":
                    self._send(200, chat_completions(model, body))
                elif path == "/tokenize":
                    text = body.get("prompt")
                    if not isinstance(text, str):
                        raise RequestError("'prompt' must be a string")
                    tokens = model.encode(text, bool(body.get("add_special_tokens", False)))
                    self._send(200, {"tokens": tokens, "count": len(tokens), "max_model_len": model.max_length})
                elif path == "/detokenize":
                    tokens = body.get("tokens")
                    if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
                        raise RequestError("'tokens' must be a list of token ids")
                    self._send(200, {"prompt": model.tokenizer.decode(tokens)})
                else:
                    self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}")
            except json.JSONDecodeError as e:
                self._error(HTTPStatus.BAD_REQUEST, f"the request body is not valid JSON ({e.msg})")
            except RequestError as e:
                self._error(HTTPStatus.BAD_REQUEST, str(e))

    return Handler


def make_server(model: LocalModel, host: str = "127.0.0.1", port: int = 8000,
                api_key: str | None = None) -> ThreadingHTTPServer:
    """An HTTP server for `model`, bound but not yet serving (port 0 picks a free port)."""
    server = ThreadingHTTPServer((host, port), _handler(model, api_key))
    server.daemon_threads = True
    return server


@contextmanager
def serving(folder: str | Path, device: str = "cpu", trust_remote_code: bool = False,
            api_key: str | None = None) -> Iterator[str]:
    """Serve a model folder on a free loopback port in a background thread; yields the base URL
    (`http://127.0.0.1:PORT/v1`), and stops the server on exit."""
    server = make_server(LocalModel(folder, device, trust_remote_code), port=0, api_key=api_key)
    thread = threading.Thread(target=server.serve_forever, name="evalsuite-serve", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
