"""`sft`: supervised fine-tuning with TRL's SFTTrainer, loss on the completion only.

Accepts `{input, output}`, Alpaca, chat `messages` and ShareGPT records as they are (see `train.data`), and can
mix in general "replay" data at a ratio (the field's advice against catastrophic forgetting is 10-30%) and
balance the data by a category field.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from train.backend import Backend, TrainError, TrainResult
from train.config import TrainConfig

log = logging.getLogger("train")


class SFTOptions(BaseModel):
    """Options of the `sft` method."""

    model_config = ConfigDict(extra="forbid")
    replay_data: list[str] = []  # general supervised data mixed in against forgetting
    replay_ratio: float = Field(0.0, ge=0, lt=1)  # share of replay examples in the final mix
    balance_field: str | None = None  # a record field naming its category
    balance: Literal["none", "oversample", "downsample"] = "none"  # every category to the largest / smallest size
    packing: bool = False


def _mix(examples: list[dict], replay: list[dict], ratio: float, rng: random.Random) -> list[dict]:
    if not ratio or not replay:
        return examples
    wanted = round(len(examples) * ratio / (1 - ratio))
    picked = rng.sample(replay, wanted) if wanted <= len(replay) else [rng.choice(replay) for _ in range(wanted)]
    mixed = examples + picked
    rng.shuffle(mixed)
    return mixed


def _balance(records: list[tuple[str, dict]], how: str, rng: random.Random) -> list[dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for category, example in records:
        groups[category].append(example)
    target = (max if how == "oversample" else min)(len(g) for g in groups.values())
    out = []
    for category in sorted(groups):
        group = groups[category]
        out += rng.sample(group, target) if target <= len(group) else group + [rng.choice(group) for _ in
                                                                               range(target - len(group))]
    rng.shuffle(out)
    return out


class SFTBackend(Backend):
    """TRL SFT on prompt/completion pairs."""

    name = "sft"
    Options = SFTOptions

    def train(self, cfg: TrainConfig, options: SFTOptions) -> TrainResult:
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        from train import data as formats
        from train import hf

        rng = random.Random(cfg.seed)
        categories: list[str] = []

        def convert(record: dict) -> list[dict]:
            examples = formats.to_prompt_completion(record)
            if options.balance != "none":
                if options.balance_field not in record:
                    raise formats.RecordError(f"field {options.balance_field!r} (balance_field) is missing")
                categories.extend([str(record[options.balance_field])] * len(examples))
            return examples

        if options.balance != "none" and not options.balance_field:
            raise TrainError("options.balance needs options.balance_field, the field naming each record's category")
        loaded = formats.load(cfg.data, convert)
        examples = loaded.examples
        if options.balance != "none":
            examples = _balance(list(zip(categories, examples)), options.balance, rng)
        if options.replay_ratio and not options.replay_data:
            raise TrainError("options.replay_ratio needs options.replay_data, the general data to mix in")
        replay = formats.load(options.replay_data, formats.to_prompt_completion) if options.replay_data else None
        held_out = formats.load(cfg.eval_data, formats.to_prompt_completion).examples if cfg.eval_data else None
        train_set, eval_set = hf.split(examples, cfg, held_out)
        train_set = _mix(train_set, replay.examples if replay else [], options.replay_ratio, rng)
        if not train_set:
            raise TrainError(f"no usable training examples in {cfg.data} ({len(loaded.rejects)} rejected)")
        loaded.rejects += replay.rejects if replay else []
        loaded.write_rejects(Path(cfg.output))
        if loaded.rejects:
            log.warning("%d records fit no supervised format; see %s/rejects.jsonl", len(loaded.rejects), cfg.output)
        tokenizer = hf.load_tokenizer(cfg.model, cfg)
        model = hf.load_causal_lm(cfg)
        args = hf.trl_args(cfg, SFTConfig, 2e-5, bool(eval_set), max_length=cfg.max_length, packing=options.packing,
                           completion_only_loss=True)
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(train_set),
                             eval_dataset=Dataset.from_list(eval_set) if eval_set else None, processing_class=tokenizer,
                             peft_config=hf.lora_config(cfg, len(train_set), model=model))
        result = hf.fit(trainer, cfg, tokenizer)
        result.metrics.update(examples=float(len(train_set)), rejected=float(len(loaded.rejects)))
        return result

