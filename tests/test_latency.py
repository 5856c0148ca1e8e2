"""Serving figures: percentiles on known timings; `stream: true` on `evalsuite serve` (a real server process on
loopback, read with a plain httpx client) against OpenAI's chunk format and the non-streamed reply; and
`evalsuite run --latency` storing the figures with the run, for an endpoint and for a local model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SAMPLE, read_jsonl, serve_process

torch = pytest.importorskip("torch", reason="the eval extra is part of the dev install (make install-dev)")
httpx = pytest.importorskip("httpx")

from evalsuite.compare import compare_runs
from evalsuite.latency import BUILTIN_PROMPTS, Timing, percentiles, run_prompts, summarise
from evalsuite.outputs import read_samples
from evalsuite.registry import run_metrics
from evalsuite.run import RunConfig, run
from train.hf import DEFAULT_CHAT_TEMPLATE
from train.tiny import build_tiny_gpt2


def test_percentiles_interpolate_between_ranks():
    # ten timings 0.1 .. 1.0 s in shuffled order: rank (n - 1) * q, interpolated linearly between neighbours:
    # P50 at rank 4.5 = 0.55, P95 at 8.55 = 0.9 + 0.55 * 0.1, P99 at 8.91 = 0.9 + 0.91 * 0.1
    timings = [0.4, 1.0, 0.1, 0.7, 0.3, 0.9, 0.2, 0.6, 0.8, 0.5]
    assert percentiles(timings) == pytest.approx({"p50": 0.55, "p95": 0.955, "p99": 0.991})
    assert percentiles([0.25]) == {"p50": 0.25, "p95": 0.25, "p99": 0.25}
    with pytest.raises(ValueError, match="no values"):
        percentiles([])


def test_summary_of_known_requests():
    timings = [Timing(ttft=0.1, total=1.1, tokens=11),  # 10 tokens after the first in 1.0 s
               Timing(ttft=0.2, total=0.7, tokens=6),  # 5 in 0.5 s
               Timing(ttft=0.3, total=0.3, tokens=1)]  # one token: no decode time, left out of tokens/s
    figures = summarise(timings, "http://127.0.0.1:1/v1", max_tokens=16)
    assert figures.tokens_per_second == pytest.approx(15 / 1.5)
    assert figures.ttft_ms["p50"] == pytest.approx(200) and figures.latency_ms["p50"] == pytest.approx(700)
    assert figures.latency_ms["p99"] == pytest.approx(700 + 0.98 * 400)  # rank 1.98 between 0.7 and 1.1 s
    assert figures.results() == pytest.approx({
        "ttft_ms_p50,none": 200, "ttft_ms_p95,none": 290, "ttft_ms_p99,none": 298, "latency_ms_p50,none": 700,
        "latency_ms_p95,none": 1060, "latency_ms_p99,none": 1092, "tokens_per_second,none": 10, "sample_len": 3})


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny GPT-2, briefly trained on English web text so that it writes words, with a ChatML template."""
    corpus = [r["text"] for r in read_jsonl(SAMPLE / "web_en.jsonl")[:200]]
    return build_tiny_gpt2(tmp_path_factory.mktemp("latency") / "model", corpus, corpus[:40], steps=60, seed=0,
                           chat_template=DEFAULT_CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def served(model):
    with serve_process(model) as url:
        yield url


def events(url: str, body: dict) -> tuple[httpx.Response, list[str]]:
    """A streamed request's response and its non-empty lines, read as they come."""
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=60) as response:
        return response, [line for line in response.iter_lines() if line]


def test_streaming_follows_openais_chunk_format(served):
    body = {"prompt": "The city council", "max_tokens": 24}
    reply = httpx.post(served + "/completions", json=body, timeout=60).json()
    text = reply["choices"][0]["text"]
    assert len(text) >= 6, text  # words to stream, and to take a stop string from
    response, lines = events(served + "/completions", {**body, "stream_options": {"include_usage": True}})
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: "):]) for line in lines[:-1]]
    assert len({c["id"] for c in chunks}) == 1 and {c["object"] for c in chunks} == {"text_completion"}
    *pieces, usage = chunks
    assert len(pieces) > 1 and all(set(c["choices"][0]) == {"index", "text", "logprobs", "finish_reason"}
                                   for c in pieces)
    assert [c["choices"][0]["finish_reason"] for c in pieces] == [None] * (len(pieces) - 1) + [
        reply["choices"][0]["finish_reason"]]
    assert "".join(c["choices"][0]["text"] for c in pieces) == text  # the same greedy reply, in pieces
    assert usage["choices"] == [] and usage["usage"] == reply["usage"]

    # a stop string inside the reply: the stream ends just before it, as the non-streamed reply does
    stop = text[len(text) // 2: len(text) // 2 + 3]
    stopped = httpx.post(served + "/completions", json={**body, "stop": [stop]}, timeout=60).json()["choices"][0]
    _, lines = events(served + "/completions", {**body, "stop": [stop]})
    streamed = "".join(json.loads(line[6:])["choices"][0]["text"] for line in lines[:-1])
    assert streamed == stopped["text"] == text[: text.index(stop)] and stop not in streamed

    messages = [{"role": "user", "content": "Tell me about the city council."}]
    said = httpx.post(served + "/chat/completions", json={"messages": messages, "max_tokens": 24}, timeout=60).json()
    _, lines = events(served + "/chat/completions", {"messages": messages, "max_tokens": 24})
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == said["choices"][0]["message"][
        "content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == said["choices"][0]["finish_reason"]


def test_stream_errors_and_a_client_that_hangs_up(served):
    for body, message in [({"prompt": ["a", "b"]}, "one prompt"), ({"prompt": "a", "logprobs": 1}, "logprobs"),
                          ({"prompt": "word " * 600}, "context of 512 tokens")]:
        said = httpx.post(served + "/completions", json={**body, "stream": True}, timeout=60)
        assert said.status_code == 400 and message in said.json()["error"]["message"]
    with httpx.stream("POST", served + "/completions", json={"prompt": "The", "max_tokens": 400, "stream": True},
                      timeout=60) as response:
        next(response.iter_lines())  # hang up after the first chunk
    # the server let go of the model: the next request is answered
    assert httpx.post(served + "/completions", json={"prompt": "The", "max_tokens": 2}, timeout=20).status_code == 200


def test_run_stores_serving_figures_for_an_endpoint_and_a_local_model(model, served, tmp_path: Path):
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: gen\ntasks: [cl_nq_open]\n", encoding="utf-8")
    runs = {}
    for name, target in (("endpoint", served), ("local", str(model))):
        runs[name] = run(RunConfig(model=target, suite=str(suite), output=str(tmp_path / name), limit=3,
                                   batch_size=1, latency=4, max_new_tokens=8))
        serving = json.loads((runs[name].output / "run.json").read_text())["serving"]
        assert serving["requests"] == 4 and serving["target"] == target and len(serving["timings"]) == 4
        for t in serving["timings"]:
            assert 0 < t["ttft_ms"] <= t["latency_ms"] and 1 <= t["tokens"] <= 8
        for figure in ("ttft_ms", "latency_ms"):
            seen = sorted(t[figure] for t in serving["timings"])
            p = serving[figure]
            assert seen[0] <= p["p50"] <= p["p95"] <= p["p99"] <= seen[-1]
        entry = json.loads((runs[name].output / "results.json").read_text())["results"]["serving"]
        assert entry["latency_ms_p95,none"] == serving["latency_ms"]["p95"] and entry["tokens_per_second,none"] > 0
        assert ("serving", "ttft_ms_p50,none") in run_metrics(tmp_path / "registry.sqlite", name)
    # the run's three generation prompts, then the built-in list
    prompts = run_prompts(read_samples(runs["local"].output), 4)
    assert prompts[:3] == [r["arguments"][0][0] for r in read_jsonl(runs["local"].output / "samples" /
                                                                    "cl_nq_open.jsonl")]
    assert prompts[3] == BUILTIN_PROMPTS[0]
    compared = {(c.task, c.metric) for c in compare_runs(runs["local"].output, runs["endpoint"].output)}
    assert {("serving", "ttft_ms_p99,none"), ("serving", "tokens_per_second,none")} <= compared
