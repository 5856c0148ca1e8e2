"""The slot benchmarks' size and wall time: the built-in `cl_slots` cases (against the real MCP tool server
over stdio) and BFCL (the shipped slice, or a whole BFCL folder with --bfcl), run by the oracle and by a tiny
local chat model.

    .venv/bin/python benchmarks/bench_slots.py [--bfcl ../shared/data/tool_calling/bfcl_v4] [--max-new-tokens 64]

The tiny model is a 2-layer GPT-2 with random weights, 4096 positions and a ChatML template that renders
tools, built on the fly: its scores are near zero, its wall time is what the harness, prompting with tools and parsing
cost per case with a model that writes `--max-new-tokens` tokens per turn. No peer runs the same cases
(BFCL's own harness needs its simulators and API keys), so the table reports our figures only, plus the
oracle's scores, which must all be 1.0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evalsuite.slots.bfcl import build_slice, load_bfcl
from evalsuite.slots.cases import load_cases
from evalsuite.slots.reference import OracleAgent
from evalsuite.slots.task import BUILTIN, evaluate


def tiny_chat_model(folder: Path) -> Path:
    from train.hf import DEFAULT_CHAT_TEMPLATE
    from train.tiny import build_tiny_gpt2

    texts = [c.model_dump_json() for c in load_cases(BUILTIN["cl_slots"])]
    return build_tiny_gpt2(folder, texts, chat_template=DEFAULT_CHAT_TEMPLATE, context=4096)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bfcl", type=Path, default=None, help="a BFCL v4 folder (default: the shipped slice)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    from evalsuite.slots.adapters import HFChatAgent

    if args.bfcl:
        rebuilt = build_slice(args.bfcl) == BUILTIN["cl_bfcl"].read_text(encoding="utf-8")
        print(f"shipped BFCL slice rebuilt from {args.bfcl}: {'identical' if rebuilt else 'DIFFERENT'}\n")
    sets = {"cl_slots": load_cases(BUILTIN["cl_slots"]),
            "bfcl": load_bfcl(args.bfcl) if args.bfcl else load_cases(BUILTIN["cl_bfcl"])}
    with tempfile.TemporaryDirectory() as tmp:
        tiny = HFChatAgent(tiny_chat_model(Path(tmp) / "tiny"), max_new_tokens=args.max_new_tokens)
        print("| set | category | cases |\n|---|---|---|")
        for name, cases in sets.items():
            for category, n in sorted(Counter(c.category for c in cases).items()):
                print(f"| {name} | {category} | {n} |")
            print(f"| {name} | all | {len(cases)} |")
        print("\n| set | agent | wall s | s per case | accuracy | tool_selection | argument_accuracy |\n"
              "|---|---|---|---|---|---|---|")
        for name, cases in sets.items():
            for agent in (OracleAgent(), tiny):
                started = time.perf_counter()
                metrics, _ = evaluate(cases, agent, progress=False)
                seconds = time.perf_counter() - started
                o = metrics["overall"]
                print(f"| {name} | {agent.name} | {seconds:.1f} | {seconds / len(cases):.3f} | {o['accuracy']:.3f} | "
                      f"{o.get('tool_selection', float('nan')):.3f} | {o.get('argument_accuracy', float('nan')):.3f} |")


if __name__ == "__main__":
    main()
