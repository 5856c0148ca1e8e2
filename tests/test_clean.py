import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, SAMPLE, output_files, read_jsonl, run_cli
from corpus.config import load_config
from corpus.pipeline import clean

INPUTS = [str(SAMPLE / "web_en.jsonl"), str(SAMPLE / "web_zh.jsonl")]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[str]:
    """The sample plus re-posted copies of 20 of its C4 pages (new ids, other case and spacing)."""
    c4 = [r for r in read_jsonl(SAMPLE / "web_en.jsonl") if r["source"].startswith("c4")][:20]
    path = tmp_path_factory.mktemp("dups") / "reposts.jsonl"
    with open(path, "w") as f:
        f.writelines(json.dumps({"id": "repost-" + r["id"], "text": r["text"].upper().replace(" ", "  ")}) + "\n" for r in c4)
    return INPUTS + [str(path)]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, inputs):
    out = tmp_path_factory.mktemp("run") / "out"
    cfg = load_config(overrides={"reader": {"split_mb": 0.25}, "executor": {"workers": 2}})
    return clean(inputs, out, cfg), cfg, inputs


def test_two_runs_give_byte_identical_outputs(demo_run, tmp_path: Path):
    result, cfg, inputs = demo_run
    again = clean(inputs, tmp_path / "again", cfg.model_copy(update={"executor": cfg.executor.model_copy(update={"workers": 1})}))
    first, second = output_files(result.output_dir), output_files(again.output_dir)
    assert any(name.startswith("shard-") for name in first)
    assert first == second


def test_every_document_is_accounted_for(demo_run):
    result, _, paths = demo_run
    out, stats = result.output_dir, result.stats
    inputs = {r["id"]: r for p in paths for r in read_jsonl(Path(p))}
    kept = [r for p in sorted(out.glob("shard-*.jsonl.gz")) for r in read_jsonl(p)]
    removed = [r for p in sorted((out / "removed").rglob("*.jsonl.gz")) for r in read_jsonl(p)]
    # outputs keep their input ids and carry what each step learned under the step's name
    assert {r["id"] for r in kept} <= set(inputs)
    assert all("langid" in r["metadata"] and "balance" in r["metadata"] for r in kept)
    assert all(r["metadata"].get("source") == inputs[r["id"]].get("source") for r in kept)
    dups = [r for r in removed if r["metadata"]["removed_by"]["step"] == "exact_dedup"]
    partner = lambda i: i[len("repost-"):] if i.startswith("repost-") else "repost-" + i
    kept_ids = {r["id"] for r in kept}
    assert dups and all(partner(r["id"]) in kept_ids for r in dups)  # one copy of each text survives
    # removed documents say which step removed them and why, in the folder of that step
    assert removed and all(set(r["metadata"]["removed_by"]) == {"step", "reason"} for r in removed)
    assert {r["metadata"]["removed_by"]["step"] for r in removed} >= {"heuristics", "exact_dedup"}
    # nothing lost: each input is kept (balance copies aside) or removed exactly once
    originals = [r for r in kept if r["metadata"]["balance"]["copy"] == 0]
    assert len(originals) + len(removed) == len(inputs)
    assert {r["id"] for r in originals} | {r["id"] for r in removed} == set(inputs)
    # and stats.json agrees with the files
    assert stats["output"]["docs"] == len(kept)
    assert stats["removed_total"] == len(removed)
    assert stats["steps"][0]["docs_out"] == len(inputs)
    assert set(stats["languages"]["before_balance"]) >= {"en", "zh"}


def test_steps_option_runs_only_the_named_steps(tmp_path: Path):
    r = run_cli("clean", INPUTS[1], "-o", str(tmp_path / "o"), "--steps", "normalize,langid", "--format", "parquet",
                "--no-progress")
    assert r.returncode == 0, r.stderr
    table = pq.read_table(tmp_path / "o" / "shard-00000.parquet").to_pylist()
    assert len(table) == 300
    assert set(json.loads(table[0]["metadata"])) >= {"langid", "source"}
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert [s["step"] for s in stats["steps"]] == ["read", "normalize", "langid", "write"]


def test_a_finished_run_is_not_redone_and_a_different_config_is_refused(tmp_path: Path):
    args = ["clean", INPUTS[1], "-o", str(tmp_path / "o"), "--steps", "normalize", "--no-progress"]
    assert run_cli(*args).returncode == 0
    shard = tmp_path / "o" / "shard-00000.jsonl.gz"
    mtime = shard.stat().st_mtime_ns
    assert run_cli(*args).returncode == 0
    assert shard.stat().st_mtime_ns == mtime
    r = run_cli("clean", INPUTS[1], "-o", str(tmp_path / "o"), "--steps", "langid")
    assert r.returncode == 2 and "other inputs or settings" in r.stderr


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_same_bytes_as_an_unbroken_run(tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("reader: {split_mb: 0.03}\n")
    args = [*INPUTS, "--config", str(cfg), "--no-progress"]
    reference = run_cli("clean", *args, "-o", str(tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "corpus.cli", "clean", *args, "-o", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    completions = out / "_work" / "logs" / "process" / "completions"
    deadline = time.time() + 120
    while time.time() < deadline and (not completions.is_dir() or len(os.listdir(completions)) < 4):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 4 <= len(os.listdir(completions)) < 30, "the kill must land mid-run"
    assert not (out / "stats.json").exists()
    # whatever has a final name is complete; unfinished work only exists as .tmp
    for p in out.rglob("*.gz"):
        with gzip.open(p) as f:
            f.read()
    resumed = run_cli("clean", *args, "-o", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert not list(out.rglob("*.tmp"))
    assert output_files(out) == output_files(tmp_path / "ref")


def test_balance_without_langid_falls_back_to_the_script(tmp_path: Path):
    cfg = load_config(overrides={"balance": {"mode": "proportions", "proportions": {"zh": 1, "und": 1}}})
    result = clean(INPUTS, tmp_path / "o", cfg, steps=["balance"])
    before, after = result.stats["languages"]["before_balance"], result.stats["languages"]["after_balance"]
    assert before["zh"] == 300 and before["und"] == 527  # Chinese by its script, the rest unknown
    assert abs(after["und"] - after["zh"]) < 30  # proportions 1:1 by down-sampling the larger side
