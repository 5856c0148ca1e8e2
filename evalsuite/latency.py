"""Serving figures of a model: time to first token, decode speed and end-to-end latency of streamed generations.

Each of N fixed prompts (the run's generation prompts in task and document order, then a built-in list) is
sent once, greedily, after one warm-up request that is not counted; a prompt goes as the run sent it (text,
or lm-eval's JSON chat messages to a chat route; text to a chat route becomes one user message):

    an endpoint     a streamed request (`stream: true`, server-sent events in OpenAI's chunk format) to its
                    completions or chat completions route, timed on arrival of each chunk
    a local model   generation with a streamer (`evalsuite.serve.LocalModel.stream`), timed on each piece

Time to first token is the time until the first piece of generated text arrives; decode speed is the tokens
after the first over the time after it (all requests together); latency is the whole request. Reported in
lm-eval's results shape as the `serving` task: `ttft_ms_p50`, `ttft_ms_p95`, `ttft_ms_p99`, `latency_ms_p50`,
`latency_ms_p95`, `latency_ms_p99` (lower is better) and `tokens_per_second`. Timings are measurements: unlike
the other figures of a run, they differ between re-runs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from evalsuite.outputs import as_messages, chat_prompt, generations
from evalsuite.run import EvalError, RunConfig, endpoint_url, is_endpoint

PERCENTILES = (50, 95, 99)
# used when the run has fewer generation prompts than asked for: short everyday requests, English and Chinese
BUILTIN_PROMPTS = (
    "Explain in two sentences why the sky is blue.",
    "Write a short, polite email asking a colleague to move a meeting to Thursday.",
    "List three things to check before publishing a dataset.",
    "Summarise the plot of a detective story in one paragraph.",
    "请用两句话解释为什么要定期备份数据。",
    "写一段简短的产品介绍，介绍一款节能台灯。",
    "What is the difference between a list and a tuple in Python?",
    "给出三条提高阅读效率的建议。",
)


@dataclass(frozen=True)
class Timing:
    """One streamed request: seconds until the first generated text, seconds in all, tokens generated."""

    ttft: float
    total: float
    tokens: int


@dataclass
class ServingFigures:
    """Percentiles of time to first token and of latency (milliseconds), and decode tokens per second."""

    target: str  # the endpoint URL or the model folder
    requests: int
    max_tokens: int
    ttft_ms: dict[str, float]
    latency_ms: dict[str, float]
    tokens_per_second: float | None  # None when no request generated two tokens or more
    timings: list[dict] = field(default_factory=list)  # per request: ttft_ms, latency_ms, tokens

    def results(self) -> dict:
        """The figures as an lm-eval results entry (the `serving` task)."""
        values: dict = {f"{name}_ms_p{q},none": ms for name, figures in (("ttft", self.ttft_ms),
                                                                          ("latency", self.latency_ms))
                        for q, ms in ((int(k[1:]), v) for k, v in figures.items())}
        if self.tokens_per_second is not None:
            values["tokens_per_second,none"] = self.tokens_per_second
        return {**values, "sample_len": self.requests}


def percentiles(values: list[float], qs: tuple[int, ...] = PERCENTILES) -> dict[str, float]:
    """{"p50": ..., ...} of `values`, linearly interpolated between the closest ranks (NumPy's default, the
    "type 7" estimate of Hyndman and Fan)."""
    import numpy as np

    if not values:
        raise ValueError("no values to take percentiles of")
    return {f"p{q}": float(np.percentile(np.asarray(values, dtype=float), q)) for q in qs}


def summarise(timings: list[Timing], target: str, max_tokens: int) -> ServingFigures:
    """The serving figures of the timed requests."""
    decoded = [(t.tokens - 1, t.total - t.ttft) for t in timings if t.tokens >= 2 and t.total > t.ttft]
    rate = sum(n for n, _ in decoded) / sum(s for _, s in decoded) if decoded else None
    return ServingFigures(
        target=target, requests=len(timings), max_tokens=max_tokens,
        ttft_ms={k: v * 1000 for k, v in percentiles([t.ttft for t in timings]).items()},
        latency_ms={k: v * 1000 for k, v in percentiles([t.total for t in timings]).items()},
        tokens_per_second=rate,
        timings=[{"ttft_ms": t.ttft * 1000, "latency_ms": t.total * 1000, "tokens": t.tokens} for t in timings])


def run_prompts(samples: dict[str, list[dict]], n: int) -> list[str]:
    """`n` prompts: the run's generation prompts (distinct, task then document order), then the built-in ones."""
    found = list(dict.fromkeys(g.prompt for g in generations(samples)[0]))[:n]
    return found + [BUILTIN_PROMPTS[i % len(BUILTIN_PROMPTS)] for i in range(n - len(found))]


def stream_endpoint(client, url: str, prompt: str, model: str, max_tokens: int,
                    api_key: str | None = None) -> Iterator[tuple[float, dict]]:
    """(arrival time, chunk) of each server-sent event of one streamed, greedy request to `url` (a base
    `.../v1`, which gets the completions route, or a full route) through an `httpx.Client`; stops at
    `data: [DONE]`."""
    import httpx

    _, route, chat = endpoint_url(url)
    body = {"model": model, "max_tokens": max_tokens, "temperature": 0.0, "seed": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    if chat:
        body["messages"] = as_messages(prompt)
    else:
        body["prompt"] = prompt
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with client.stream("POST", route, json=body, headers=headers) as response:
            if response.status_code != 200:
                response.read()
                raise EvalError(f"{route}: HTTP {response.status_code}: {response.text[:500]}")
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments, `event:` lines
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    yield time.perf_counter(), json.loads(data)
                except json.JSONDecodeError:
                    raise EvalError(f"{route}: a streamed chunk is not JSON: {data[:200]}") from None
    except httpx.HTTPError as e:
        raise EvalError(f"{route}: cannot stream from the endpoint ({e})") from None


def _chunk_text(chunk: dict) -> str:
    choices = chunk.get("choices") or [{}]
    return choices[0].get("text") or (choices[0].get("delta") or {}).get("content") or ""


def time_endpoint(url: str, prompts: list[str], model: str, max_tokens: int,
                  api_key: str | None = None) -> list[Timing]:
    """Each prompt's timing as a streamed request; the token count is the server's (`usage`), else the chunks
    that carried text."""
    import httpx

    timings = []
    with httpx.Client(timeout=600) as client:
        for prompt in [prompts[0], *prompts]:  # the first is a warm-up
            start, first, pieces, usage = time.perf_counter(), None, 0, None
            for arrived, chunk in stream_endpoint(client, url, prompt, model, max_tokens, api_key):
                if _chunk_text(chunk):
                    first = first or arrived
                    pieces += 1
                usage = chunk.get("usage") or usage
            end = time.perf_counter()
            tokens = int(usage["completion_tokens"]) if usage and "completion_tokens" in usage else pieces
            timings.append(Timing(ttft=(first or end) - start, total=end - start, tokens=tokens))
    return timings[1:]


def time_local(folder: str | Path, prompts: list[str], max_tokens: int, device: str = "cpu",
               trust_remote_code: bool = False) -> list[Timing]:
    """Each prompt's timing on a local model folder, generated with a streamer (text prompts as they are, JSON
    chat messages through the model's chat template, ending where the turn ends)."""
    from evalsuite.serve import LocalModel, RequestError

    model = LocalModel(folder, device, trust_remote_code)
    timings = []
    for prompt in [prompts[0], *prompts]:  # the first is a warm-up
        start, first, tokens = time.perf_counter(), None, 0
        chat = chat_prompt(prompt)
        try:
            ids = model.chat_ids(chat) if chat else model.encode(prompt)
            for piece in model.stream(ids, max_tokens, stop=model.end_of_turn if chat else None):
                if piece.text:
                    first = first or time.perf_counter()
                tokens = piece.completion_tokens
        except RequestError as e:
            raise EvalError(f"{folder}: cannot time a generation: {e}") from None
        end = time.perf_counter()
        timings.append(Timing(ttft=(first or end) - start, total=end - start, tokens=tokens))
    return timings[1:]


def measure(model: str, prompts: list[str], max_tokens: int, served_model: str = "", api_key: str | None = None,
            device: str = "cpu", trust_remote_code: bool = False) -> ServingFigures:
    """The serving figures of `model` (an endpoint URL, serving `served_model`, or a local model folder) on
    `prompts`."""
    if not prompts:
        raise EvalError("no prompts to time")
    if is_endpoint(model):
        timings = time_endpoint(model, prompts, served_model, max_tokens, api_key)
    else:
        timings = time_local(model, prompts, max_tokens, device, trust_remote_code)
    return summarise(timings, model, max_tokens)


def measure_run(cfg: RunConfig, samples: dict[str, list[dict]], served_model: str | None) -> ServingFigures:
    """`evalsuite run --latency N`: the figures of the run's model on N prompts (`run_prompts`), replies of up
    to `max_new_tokens` tokens; an endpoint's API key from OPENAI_API_KEY, as for the run."""
    from evalsuite.slots.task import SCRIPTED

    if cfg.model.startswith(SCRIPTED):
        raise EvalError(f"{cfg.model} is a scripted agent: there is no model to time")
    return measure(cfg.model, run_prompts(samples, cfg.latency), cfg.max_new_tokens, served_model or "",
                   os.environ.get("OPENAI_API_KEY"), cfg.device, cfg.trust_remote_code)
