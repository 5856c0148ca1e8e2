"""`reward`: a reward model trained with TRL's RewardTrainer (pairwise Bradley-Terry ranking loss), from the
same preference data as `dpo`, reporting its preference accuracy on the held-out split: the share of held-out
pairs where it scores the chosen reply above the rejected one."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from plugins.preference import preference_examples
from train.backend import Backend, TrainResult
from train.config import TrainConfig


class RewardOptions(BaseModel):
    """Options of `reward`."""

    model_config = ConfigDict(extra="forbid")
    center_rewards_coefficient: float | None = Field(None, ge=0)  # pull mean rewards to 0 (0.01 is common)


def preference_accuracy(model, tokenizer, pairs: list[dict], max_length: int) -> float:
    """Share of `pairs` whose chosen conversation the reward model scores above the rejected one."""
    import torch

    def score(messages: list[dict]) -> float:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        ids = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt").to(model.device)
        with torch.inference_mode():
            return float(model(**ids).logits[0, 0])

    model.eval()
    wins = sum(score(p["prompt"] + p["chosen"]) > score(p["prompt"] + p["rejected"]) for p in pairs)
    return wins / len(pairs)


class RewardBackend(Backend):
    """A sequence-classification head (one score) on the starting model, trained on chosen/rejected pairs."""

    name = "reward"
    Options = RewardOptions

    def train(self, cfg: TrainConfig, options: RewardOptions) -> TrainResult:
        from datasets import Dataset
        from transformers import AutoModelForSequenceClassification
        from trl import RewardConfig, RewardTrainer

        from train import data as formats
        from train import hf

        tokenizer = hf.load_tokenizer(cfg.model, cfg)
        train_set, eval_set, loaded = preference_examples(cfg, formats.to_preference, tokenizer)
        model = AutoModelForSequenceClassification.from_pretrained(cfg.model, num_labels=1,
                                                                   trust_remote_code=cfg.trust_remote_code)
        model.config.pad_token_id = tokenizer.pad_token_id
        args = hf.trl_args(cfg, RewardConfig, 1e-5, bool(eval_set), max_length=cfg.max_length,
                           center_rewards_coefficient=options.center_rewards_coefficient)
        trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(train_set),
                                eval_dataset=Dataset.from_list(eval_set) if eval_set else None,
                                processing_class=tokenizer, peft_config=hf.lora_config(cfg, len(train_set), "SEQ_CLS"))
        result = hf.fit(trainer, cfg, tokenizer)
        if eval_set:
            result.metrics["preference_accuracy"] = preference_accuracy(trainer.model, tokenizer, eval_set,
                                                                        cfg.max_length)
        result.metrics.update(pairs=float(len(train_set)), rejected=float(len(loaded.rejects)))
        return result
