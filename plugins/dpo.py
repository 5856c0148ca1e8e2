"""`dpo`: Direct Preference Optimisation with TRL's DPOTrainer, from pairwise or ranked preference data.

Records as `train.data.to_preference` reads them: `{prompt, chosen, rejected}`, ShareGPT pairs, and ranked
`{prompt, responses: [{text, rank}]}` turned into pairs. The reference model is the starting model (TRL
builds it); with LoRA, the adapter-free base serves as reference and no second copy is loaded.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from train.backend import Backend, TrainError, TrainResult
from train.config import TrainConfig

log = logging.getLogger("train")


class DPOOptions(BaseModel):
    """Options of the `dpo` method."""

    model_config = ConfigDict(extra="forbid")
    beta: float = Field(0.1, gt=0)  # strength of the pull towards the reference model
    loss_type: str = "sigmoid"  # TRL's DPO loss variants: sigmoid, ipo, hinge, robust, ...


def preference_sets(cfg: TrainConfig):
    """(train, eval, loaded) preference pairs of a config, rejects written to the output folder."""
    from train import data as formats
    from train import hf

    loaded = formats.load(cfg.data, formats.to_preference)
    held_out = formats.load(cfg.eval_data, formats.to_preference).examples if cfg.eval_data else None
    train_set, eval_set = hf.split(loaded.examples, cfg, held_out)
    if not train_set:
        raise TrainError(f"no usable preference pairs in {cfg.data} ({len(loaded.rejects)} rejected)")
    loaded.write_rejects(Path(cfg.output))
    if loaded.rejects:
        log.warning("%d records fit no preference format; see %s/rejects.jsonl", len(loaded.rejects), cfg.output)
    return train_set, eval_set, loaded


class DPOBackend(Backend):
    """TRL DPO on prompt/chosen/rejected pairs."""

    name = "dpo"
    Options = DPOOptions

    def train(self, cfg: TrainConfig, options: DPOOptions) -> TrainResult:
        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer

        from train import hf

        train_set, eval_set, loaded = preference_sets(cfg)
        tokenizer = hf.load_tokenizer(cfg.model, cfg)
        args = hf.trl_args(cfg, DPOConfig, 5e-7 if cfg.peft is None else 5e-6, bool(eval_set),
                           max_length=cfg.max_length, beta=options.beta, loss_type=[options.loss_type])
        trainer = DPOTrainer(model=hf.load_causal_lm(cfg), args=args, train_dataset=Dataset.from_list(train_set),
                             eval_dataset=Dataset.from_list(eval_set) if eval_set else None,
                             processing_class=tokenizer, peft_config=hf.lora_config(cfg, len(train_set)))
        result = hf.fit(trainer, cfg, tokenizer)
        history = [h for h in trainer.state.log_history if "rewards/accuracies" in h]
        if history:
            result.metrics["reward_accuracy_last"] = float(history[-1]["rewards/accuracies"])
        result.metrics.update(pairs=float(len(train_set)), rejected=float(len(loaded.rejects)))
        return result
