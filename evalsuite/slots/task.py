"""Slot benchmarks as tasks of `evalsuite run`: `cl_slots` (the built-in benchmark), `cl_bfcl` (a BFCL slice),
`slots:<cases.jsonl>` (your own cases) or `bfcl:<directory>` (BFCL question and possible_answer files) in a
suite, scored into the same results, registry and comparisons.

Metrics land in lm-eval's shape: task -> "metric,none" -> value, the task itself holding the overall figures
and `<task>:<category>` each category's (rates get a binomial `_stderr`, which `evalsuite compare` uses to
tell a regression from noise).
"""

from __future__ import annotations

import math
from pathlib import Path

from evalsuite.slots.agent import Agent
from evalsuite.slots.cases import Case, load_cases
from evalsuite.slots.harness import run_cases
from evalsuite.slots.metrics import judge, score, verdict_row

DATA = Path(__file__).resolve().parent / "data"
BUILTIN = {"cl_slots": DATA / "slots.jsonl", "cl_bfcl": DATA / "bfcl_slice.jsonl"}
PREFIX = "slots:"
BFCL_PREFIX = "bfcl:"
SCRIPTED = "scripted:"
RATES = ("accuracy", "tool_selection", "argument_accuracy", "call_timing", "attack_success_rate")


class SlotTaskError(ValueError):
    """A slot task or agent that cannot be used."""


def is_slot_task(name: str) -> bool:
    return name in BUILTIN or name.startswith((PREFIX, BFCL_PREFIX))


def task_cases(name: str) -> tuple[list[Case], list[Path]]:
    """The cases behind a slot task name, and the files they come from."""
    if name.startswith(BFCL_PREFIX):
        from evalsuite.slots.bfcl import SUPPORTED, load_bfcl

        folder = Path(name[len(BFCL_PREFIX):])
        files = [folder / sub / f"BFCL_v4_{c}.json" for c in SUPPORTED for sub in ("", "possible_answer")]
        return load_bfcl(folder), [f for f in files if f.is_file()]
    path = BUILTIN.get(name) or Path(name[len(PREFIX):])
    return load_cases(path), [path]


def load_agent(model: str, device: str = "cpu", trust_remote_code: bool = False, seed: int = 0,
               served_model: str | None = None, max_new_tokens: int = 256, temperature: float = 0.0) -> Agent:
    """`scripted:<name>` (a reference agent), an OpenAI-compatible URL, or a local chat model folder."""
    if model.startswith(SCRIPTED):
        from evalsuite.slots.reference import REFERENCE_AGENTS

        name = model[len(SCRIPTED):]
        if name not in REFERENCE_AGENTS:
            raise SlotTaskError(f"unknown scripted agent {name!r}; known: {', '.join(REFERENCE_AGENTS)}")
        return REFERENCE_AGENTS[name]()
    if model.startswith(("http://", "https://")):
        import os

        from evalsuite.slots.adapters import EndpointAgent

        return EndpointAgent(model, model=served_model, api_key=os.environ.get("OPENAI_API_KEY"),
                             max_tokens=max_new_tokens, seed=seed, temperature=temperature)
    from evalsuite.slots.adapters import HFChatAgent

    return HFChatAgent(model, device=device, max_new_tokens=max_new_tokens, trust_remote_code=trust_remote_code,
                       seed=seed, temperature=temperature)


def evaluate(cases: list[Case], agent: Agent, repeats: int = 1, workdir: Path | None = None,
             progress: bool = True) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """Run and score the cases: (metrics by "overall"/category/"arrangement:<name>", one sample row per trial)."""
    transcripts = run_cases(cases, agent, repeats=repeats, workdir=workdir, progress=progress)
    by_id = {c.id: c for c in cases}
    rows, verdicts = [], []
    for t in transcripts:
        case = by_id[t.case_id]
        verdict = judge(case, t)
        verdicts.append(verdict)
        rows.append({"case": case.id, "verdict": verdict_row(verdict), "transcript": t.to_json()})
    return score(verdicts), rows


def lm_eval_shaped(task: str, metrics: dict[str, dict[str, float]], n_by_group: dict[str, int]) -> dict[str, dict]:
    """{task: {"metric,none": value, "metric_stderr,none": se}, "task:category": {...}, ...}."""
    out = {}
    for group, values in metrics.items():
        name = task if group == "overall" else f"{task}:{group}"
        entry = {}
        n = n_by_group.get(group, 0)
        for metric, value in values.items():
            entry[f"{metric},none"] = value
            if metric in RATES and n > 1:
                entry[f"{metric}_stderr,none"] = round(math.sqrt(value * (1 - value) / (n - 1)), 6)
        out[name] = entry
    return out


def run_slot_task(name: str, agent: Agent, repeats: int = 1, limit: int | None = None,
                  workdir: Path | None = None) -> tuple[dict[str, dict], list[dict], list[Path]]:
    """One slot task of a suite: (lm-eval-shaped results, sample rows, the files of its cases)."""
    try:
        cases, files = task_cases(name)
    except ValueError as e:
        raise SlotTaskError(str(e)) from None
    if limit:
        cases = cases[:limit]
    metrics, rows = evaluate(cases, agent, repeats=repeats, workdir=workdir)
    counts = {"overall": len(rows)}
    for row in rows:
        counts[row["verdict"]["category"]] = counts.get(row["verdict"]["category"], 0) + 1
    return lm_eval_shaped(name, metrics, counts), rows, files
