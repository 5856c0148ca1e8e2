"""Shared fixtures: the bundled real sample corpus and helpers to run `corpus clean`."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
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
