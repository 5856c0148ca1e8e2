"""Training throughput of every built-in backend on CPU, and of `sft` and `dpo` against plain TRL on the same
configuration in the same run.

    .venv/bin/python benchmarks/bench_train.py [--steps 30] [--data-root ../shared/data] [--methods sft,dpo]

A small GPT-2 (4 layers, 256 wide, BPE tokenizer of 4,000 tokens trained on the data) on real data from
../shared/data: Self-Instruct (SFT), HH-RLHF harmlessness pairs (preference methods and the reward model),
the raw English web text (pretraining), GSM8K (GRPO, RLOO). Tokens per second = input tokens seen by the
trainer / training wall time (transformers' `num_input_tokens_seen`). For the comparison, plain TRL gets the
already-converted dataset (the same examples) and the same TRL config, so the ratio is what the wrapper costs;
the two alternate ours, TRL, TRL, ours and each side's figure is the mean of its two runs. (TRL's ORPO and CPO do not count tokens; for
them tokens/s is the mean tokenized example length times the examples trained on.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_model(folder: Path, texts: list[str]) -> str:
    from transformers import GPT2Config, GPT2LMHeadModel

    from train.tokenizer import train_bpe_tokenizer

    tok = train_bpe_tokenizer(texts, 4000)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=512, n_embd=256, n_layer=4, n_head=4,
                                       bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def first(path: Path, n: int) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line))
            if len(out) == n:
                break
    return out


def plain_trl(method: str, model_dir: str, data: Path, steps: int, out: Path, precision: str) -> float:
    """tokens/s of TRL's own trainer on the same converted data and settings as `train.run`."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from train import data as formats
    from train.hf import DEFAULT_CHAT_TEMPLATE, long_prompt

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.chat_template = DEFAULT_CHAT_TEMPLATE
    convert = formats.to_prompt_completion if method == "sft" else formats.to_preference
    loaded = formats.load([str(data)], convert)
    if method == "dpo":  # the examples `train.run` keeps: the same data on both sides
        loaded.reject_where(long_prompt(tok, 512))
    examples = loaded.examples
    common = {"output_dir": str(out), "max_steps": steps, "per_device_train_batch_size": 8, "learning_rate": 1e-4,
              "max_length": 512, "logging_steps": 10, "report_to": [], "use_cpu": True, "save_strategy": "no",
              "include_num_input_tokens_seen": "all", "seed": 0,
              "gradient_checkpointing": False,  # TRL's configs default to True; train.run's default is off
              "bf16": precision == "bf16"}  # TRL's configs default to bf16, even on a CPU
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if method == "sft":
        trainer = SFTTrainer(model=model, args=SFTConfig(**common, completion_only_loss=True),
                             train_dataset=Dataset.from_list(examples), processing_class=tok)
    else:
        trainer = DPOTrainer(model=model, args=DPOConfig(**common, beta=0.1), train_dataset=Dataset.from_list(examples),
                             processing_class=tok)
    output = trainer.train()
    return trainer.state.num_input_tokens_seen / output.metrics["train_runtime"]


def ours(method: str, model_dir: str | None, data: Path, steps: int, out: Path, precision: str = "fp32",
         **extra) -> float:
    from train import TrainConfig, available_backends, run

    if method not in available_backends():
        return float("nan")
    cfg = TrainConfig(method=method, model=model_dir, data=[str(data)], output=str(out), max_steps=steps,
                      batch_size=extra.pop("batch_size", 8), learning_rate=1e-4, max_length=512, logging_steps=10,
                      report_to=[], device="cpu", eval_fraction=0.0, save_steps=10**6, precision=precision, **extra)
    return run(cfg).metrics.get("tokens_per_second", float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--methods", default="pretrain,sft,dpo,orpo,simpo,kto,reward,grpo,rloo")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    root = args.data_root
    sft = work / "sft.jsonl"
    sft.write_text("".join(json.dumps(r) + "\n" for r in first(root / "sft" / "self_instruct_human_written.jsonl", 400)))
    pairs = work / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({k: r[k] for k in ("prompt", "chosen", "rejected")}) + "\n"
                             for r in first(root / "preference" / "hh_rlhf_harmless_base.jsonl", 400)))
    web = work / "web.jsonl"
    web.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in first(root / "raw_web_en" / "docs.jsonl", 400)))
    math = work / "gsm8k.jsonl"
    math.write_text("".join(json.dumps(r) + "\n" for r in first(root / "eval_benchmarks" / "en" / "gsm8k_train.jsonl",
                                                                 200)))
    texts = [json.loads(line).get("output", "") for line in sft.read_text().splitlines()]
    texts += [json.loads(line)["chosen"] for line in pairs.read_text().splitlines()]
    texts += [json.loads(line)["text"][:2000] for line in web.read_text().splitlines()]
    model = build_model(work / "model", texts)
    rows, compared = [], []
    for method, data, extra in [("pretrain", web, {"model_dir": model}), ("sft", sft, {}), ("dpo", pairs, {}),
                                ("orpo", pairs, {}), ("simpo", pairs, {}), ("kto", pairs, {}), ("reward", pairs, {}),
                                ("grpo", math, {"batch_size": 4}), ("rloo", math, {"batch_size": 4})]:
        if method not in args.methods.split(","):
            continue
        model_dir = extra.pop("model_dir", model)
        start = time.perf_counter()
        tps = ours(method, model_dir, data, args.steps, work / f"ours-{method}", **dict(extra))
        seconds = time.perf_counter() - start
        rows.append((method, tps, seconds))
        if method not in ("sft", "dpo"):
            continue
        for precision in ("fp32", "bf16"):  # ABBA: the first run in a process pays one-time costs
            a = ours(method, model_dir, data, args.steps, work / f"ours-{method}-{precision}-a", precision, **extra)
            b = plain_trl(method, model, data, args.steps, work / f"trl-{method}-{precision}-a", precision)
            b += plain_trl(method, model, data, args.steps, work / f"trl-{method}-{precision}-b", precision)
            a += ours(method, model_dir, data, args.steps, work / f"ours-{method}-{precision}-b", precision, **extra)
            compared.append((method, precision, a / 2, b / 2))
    print(f"\n{args.steps} steps each, batch 8 (GRPO/RLOO: 4 prompts), max_length 512, CPU, "
          f"{torch.get_num_threads()} threads\n")
    print("| method | tokens/s | wall s |\n|---|---:|---:|")
    for method, tps, seconds in rows:
        print(f"| {method} | {tps:,.0f} | {seconds:.1f} |")
    print("\nagainst plain TRL, same examples and config, ours-TRL-TRL-ours, mean of two each:\n")
    print("| method | precision | corpusloop tokens/s | plain TRL tokens/s | ratio (ours / TRL) |\n|---|---|---:|---:|---:|")
    for method, precision, a, b in compared:
        print(f"| {method} | {precision} | {a:,.0f} | {b:,.0f} | {a / b:.2f} |")


if __name__ == "__main__":
    main()
