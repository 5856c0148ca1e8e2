"""GRPO on GSM8K with the math verifier: the reward is 1 when the completion's last number is the reference answer
(`math_answer`), plus 1 for ending on an explicit `#### N` / `The answer is N` line (`format_answer`).

    python examples/grpo_gsm8k.py models/my-instruct-model data/gsm8k_train.jsonl --output out/grpo-gsm8k

The model is a local folder (nothing is downloaded); the data GSM8K's train JSONL, `{question, answer}` as
published. Evaluate the result with `evalsuite run --model out/grpo-gsm8k --suite core --apply-chat-template -o
runs/grpo` (the core suite includes gsm8k): training rendered the questions with the same chat template.
"""

import argparse
import logging

from train import TrainConfig, run

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("model", help="local model folder")
parser.add_argument("data", help="GSM8K train JSONL")
parser.add_argument("--output", default="out/grpo-gsm8k")
parser.add_argument("--steps", type=int, default=200)
parser.add_argument("--lora", action="store_true", help="train LoRA adapters (merged into the saved model)")
args = parser.parse_args()

logging.basicConfig(level=logging.INFO)
result = run(TrainConfig(
    method="grpo", model=args.model, data=[args.data], output=args.output, max_steps=args.steps,
    batch_size=8, eval_fraction=0, logging_steps=5, max_length=1024,
    peft={"merge": True} if args.lora else None,
    options={"rewards": ["math_answer", "format_answer"], "reward_weights": [1.0, 0.2], "num_generations": 8,
             "max_completion_length": 256, "temperature": 0.9, "beta": 0.0},
))
print(f"saved to {result.output}")
print(f"reward: {result.metrics.get('reward_first', 0):.3f} -> {result.metrics.get('reward_last', 0):.3f}")
