"""Shared fixtures: the bundled real sample corpus and helpers to run `corpus clean`."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "corpus" / "data" / "sample"


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def output_files(out: Path) -> dict[str, bytes]:
    """Every data file a run wrote (shards, removed/, rejects/), by relative path, with its bytes."""
    files = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and not rel.startswith("_work/") and rel not in ("stats.json", "report.html"):
            files[rel] = p.read_bytes()
    return files


def run_cli(*args: str, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, LOGURU_LEVEL="WARNING")
    return subprocess.run([sys.executable, "-m", "corpus.cli", *args], capture_output=True, text=True, check=False,
                          timeout=timeout, env=env, cwd=ROOT, **kwargs)


@contextmanager
def serve_process(folder: Path):
    """`evalsuite serve` serving `folder` in its own process on a free loopback port; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-u", "-m", "evalsuite.cli", "serve", "--model", str(folder),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
        assert found, line + proc.stderr.read()
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def chromium_page(path: Path):
    """The local file `path` open in headless Chromium (the system binary, through playwright); after the
    block, checks that the page raised no script error and requested nothing but local files."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        yield page
        browser.close()
    assert errors == []
    assert all(u.startswith("file://") for u in requests)


# The conversation the `tool_model` fixture is overfitted on: the model calls get_weather, then answers from
# the tool's result (what the real tool server returns for Oslo).
TOOL_MODEL_TURNS = {"system": "You are a helpful assistant.", "user": "What is the weather in Oslo?",
                    "call": '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>',
                    "result": '{"condition": "snow", "temp_c": -3}', "answer": "It is snowing in Oslo, -3 C."}


def tool_model_messages(after_call: bool = False) -> list:
    """The `tool_model` conversation: system and user turns, and with `after_call` the assistant's get_weather
    call and the tool's result too."""
    from evalsuite.slots.cases import Message, ToolCall

    messages = [Message(role="system", content=TOOL_MODEL_TURNS["system"]),
                Message(role="user", content=TOOL_MODEL_TURNS["user"])]
    if after_call:
        messages += [Message(role="assistant", tool_calls=[ToolCall(name="get_weather", arguments={"city": "Oslo"})]),
                     Message(role="tool", name="get_weather", content=TOOL_MODEL_TURNS["result"])]
    return messages


_tool_defs: list[dict] = []


def tool_model_tools() -> list[dict]:
    """The tools the `tool_model` is prompted with: the real MCP server's definitions of calculate and
    get_weather, as its client lists them (server order), fetched once per session."""
    from evalsuite.slots.client import ToolServer

    if not _tool_defs:
        with ToolServer(allow=["get_weather", "calculate"]) as server:
            _tool_defs.extend(server.tools)
    return _tool_defs


@pytest.fixture(scope="session")
def tool_model(tmp_path_factory) -> Path:
    """A tiny GPT-2 (ChatML template that renders tools) overfitted so that, greedily, it answers the weather
    question with a get_weather call in `<tool_call>` markup and, given the tool's result, with
    TOOL_MODEL_TURNS["answer"], each turn closed by <|im_end|>. Trained on prompts rendered by
    `HFChatAgent.prompt`, the rendering used at inference and by `evalsuite serve`. Returns the model folder."""
    torch = pytest.importorskip("torch", reason="the eval extra is part of the dev install (make install-dev)")
    from evalsuite.slots.adapters import HFChatAgent
    from train.hf import DEFAULT_CHAT_TEMPLATE
    from train.tiny import build_tiny_gpt2

    tools, turns = tool_model_tools(), TOOL_MODEL_TURNS
    folder = tmp_path_factory.mktemp("tool_model") / "tool-model"
    pieces = [json.dumps(tools), *turns.values(), "<|im_start|>system\n# Tools\n<tools>\n</tools><|im_end|>\n"]
    build_tiny_gpt2(folder, pieces * 20, seed=0, chat_template=DEFAULT_CHAT_TEMPLATE)
    agent = HFChatAgent(folder)
    encode = agent.model.encode
    examples = [(agent.prompt(tool_model_messages(), tools), encode(turns["call"] + "<|im_end|>")),
                (agent.prompt(tool_model_messages(after_call=True), tools), encode(turns["answer"] + "<|im_end|>"))]
    batch = [(torch.tensor([prompt + target]), torch.tensor([[-100] * len(prompt) + target]))
             for prompt, target in examples]  # the loss is on the replies only
    model = agent.model.model
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(100):  # greedy decoding is right from about step 20 on
        for ids, labels in batch:
            model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(folder)
    return folder
