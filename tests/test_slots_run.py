"""Slot benchmarks as tasks of `evalsuite run` and the `evalsuite bfcl` command, end to end through the CLI:
run folder, samples, registry and the regression gate."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the eval extra is part of the dev install (make install-dev)")

from conftest import ROOT, read_jsonl

BFCL = Path(__file__).parent / "data" / "bfcl"


def evalsuite(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalsuite.cli", *args], capture_output=True, text=True, check=False,
                          timeout=600, cwd=ROOT)


def test_slot_suite_runs_into_the_registry_and_compare_gates_on_injection(tmp_path: Path):
    for agent in ("oracle", "follows_injection"):
        done = evalsuite("run", "--model", f"scripted:{agent}", "--suite", "slots", "-o",
                       str(tmp_path / agent))
        assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "oracle" / "results.json").read_text())["results"]
    assert results["cl_slots"]["accuracy,none"] == 1.0 and results["cl_bfcl"]["accuracy,none"] == 1.0
    assert results["cl_slots:injection"]["attack_success_rate,none"] == 0.0
    assert "accuracy_stderr,none" in results["cl_slots"]
    samples = read_jsonl(tmp_path / "oracle" / "samples" / "cl_slots.jsonl")
    assert len(samples) == 175 and {"verdict", "transcript"} <= set(samples[0])
    manifest = json.loads((tmp_path / "oracle" / "run.json").read_text())
    assert any(k.endswith("slots.jsonl") for k in manifest["data_fingerprints"])
    runs = evalsuite("runs", str(tmp_path))
    assert "follows_injection" in runs.stdout and "cl_slots/accuracy 1" in runs.stdout
    gate = evalsuite("compare", str(tmp_path / "oracle"), str(tmp_path / "follows_injection"),
                   "--metric", "cl_slots:injection/attack_success_rate")
    assert gate.returncode == 1
    assert "REGRESSION cl_slots:injection/attack_success_rate: 0 -> 1" in gate.stdout


def test_bfcl_command_scores_a_folder_and_the_oracle_gets_everything(tmp_path: Path):
    done = evalsuite("bfcl", str(BFCL), "--model", "scripted:oracle", "-o", str(tmp_path / "oracle"))
    assert done.returncode == 0, done.stderr
    assert "skipped multi_turn_base: multi-turn" in done.stderr
    results = json.loads((tmp_path / "oracle" / "results.json").read_text())["results"]
    task = f"bfcl:{BFCL.resolve()}"
    assert results[task]["accuracy,none"] == 1.0
    assert {k.split(":")[-1] for k in results if k.startswith(f"{task}:bfcl_")} == {
        "bfcl_simple_python", "bfcl_parallel_multiple", "bfcl_irrelevance"}
    wrong = evalsuite("bfcl", str(BFCL), "--model", "scripted:wrong_tool", "-o", str(tmp_path / "wrong"))
    assert json.loads((tmp_path / "wrong" / "results.json").read_text())["results"][task]["accuracy,none"] == 0.0
    assert wrong.returncode == 0


def test_bad_case_file_names_file_line_and_field(tmp_path: Path):
    cases = tmp_path / "cases.jsonl"
    good = {"id": "a", "category": "simple", "messages": [{"role": "user", "content": "hi"}]}
    cases.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "b", "expect": {"steps": [[{"name": "x"}]]}})
                     + "\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: mine\ntasks: ['slots:{cases}']\n")
    done = evalsuite("run", "--model", "scripted:oracle", "--suite", str(suite), "-o", str(tmp_path / "r"))
    assert done.returncode == 2
    assert f"{cases}:2:" in done.stderr and "expect.steps[0][0].name: 'x' is not among the tools" in done.stderr
    scripted_lm = evalsuite("run", "--model", "scripted:oracle", "--suite", "core", "-o", str(tmp_path / "c"))
    assert scripted_lm.returncode == 2 and "answers slot tasks only" in scripted_lm.stderr


@pytest.mark.slow
def test_tiny_local_model_end_to_end_against_the_stdio_server(tool_model: Path, tmp_path: Path):
    """A tiny chat model, trained to call get_weather, runs a case through `evalsuite run`: its call goes to the
    real MCP server over stdio and the server's answer comes back into the tool slot for its final answer."""
    case = {"id": "oslo", "category": "simple", "task": "oslo",
            "messages": [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": "What is the weather in Oslo?"}],
            "tools": ["calculate", "get_weather"],
            "expect": {"steps": [[{"name": "get_weather", "arguments": {"city": {"any_of": ["Oslo"]}}}]],
                       "answer": {"contains_any": ["snowing"]}}}
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps(case) + "\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: tiny\ntasks: ['slots:{cases}']\n")
    from evalsuite.serve import serving

    with serving(tool_model) as url:  # the same model behind an OpenAI-compatible endpoint with native tool calls
        for name, model in (("local", str(tool_model)), ("served", f"{url}/chat/completions")):
            done = evalsuite("run", "--model", model, "--suite", str(suite), "-o", str(tmp_path / name),
                             "--max-new-tokens", "64")  # the tiny model's context is 512 tokens
            assert done.returncode == 0, done.stderr
            oslo = read_jsonl(next((tmp_path / name / "samples").glob("*.jsonl")))[0]
            assert oslo["verdict"]["passed"], oslo["verdict"]["reason"]
            tool_turn = next(m for m in oslo["transcript"]["messages"] if m["role"] == "tool")
            assert tool_turn["content"] == '{"condition": "snow", "temp_c": -3}'  # what the MCP server answered
            assert oslo["transcript"]["prompt_tokens"] > 0 and len(oslo["transcript"]["tool_seconds"]) == 1


@pytest.mark.slow
def test_sampled_trials_differ_and_a_rerun_repeats_them(tool_model: Path):
    """pass^k needs trials that can differ; determinism needs a re-run to give the same trials."""
    from evalsuite.slots.adapters import HFChatAgent
    from evalsuite.slots.cases import Case
    from evalsuite.slots.task import evaluate

    case = Case.model_validate({
        "id": "oslo", "category": "simple", "tools": ["calculate", "get_weather"],
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": "What is the weather in Oslo?"}],
        "expect": {"steps": [[{"name": "get_weather", "arguments": {"city": {"any_of": ["Oslo"]}}}]]}})
    agent = HFChatAgent(tool_model, max_new_tokens=24, temperature=3.0)
    first, rows = evaluate([case], agent, repeats=4, progress=False)
    again, rows_again = evaluate([case], agent, repeats=4, progress=False)
    conversations = [json.dumps(r["transcript"]["messages"]) for r in rows]
    assert conversations == [json.dumps(r["transcript"]["messages"]) for r in rows_again]
    assert len(set(conversations)) > 1
    assert first["overall"]["pass^4"] == again["overall"]["pass^4"] <= first["overall"]["accuracy"]
