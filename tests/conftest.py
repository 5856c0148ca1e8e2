"""Shared fixtures: the bundled real sample corpus and helpers to run `corpus clean`."""

from __future__ import annotations

import gzip
import json
import os
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
