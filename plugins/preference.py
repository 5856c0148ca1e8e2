"""Preference optimisation with TRL: `dpo`, `orpo`, `simpo` and `kto`.

Pairwise methods read what `train.data.to_preference` reads: `{prompt, chosen, rejected}`, ShareGPT pairs, and
ranked `{prompt, responses: [{text, rank}]}` turned into pairs. `kto` reads unpaired `{prompt, completion,
label}` or `{messages, label}` records, or pairs split into a desirable and an undesirable reply.

- `dpo`: Direct Preference Optimisation against the starting model as reference (with LoRA, the adapter-free
  base serves as reference and no second copy is loaded).
- `orpo`: odds-ratio preference optimisation, SFT and preference in one loss, no reference model
  (`trl.experimental`).
- `simpo`: SimPO, length-normalised reward with a margin, no reference model: TRL's CPO trainer with
  `loss_type: simpo` and `cpo_alpha: 0` (`trl.experimental`).
- `kto`: Kahneman-Tversky optimisation from single replies labelled good or bad.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from train.backend import Backend, TrainResult
from train.config import TrainConfig


class DPOOptions(BaseModel):
    """Options of `dpo`."""

    model_config = ConfigDict(extra="forbid")
    beta: float = Field(0.1, gt=0)  # strength of the pull towards the reference model
    loss_type: str = "sigmoid"  # TRL's DPO loss variants: sigmoid, ipo, hinge, robust, ...


class ORPOOptions(BaseModel):
    """Options of `orpo`."""

    model_config = ConfigDict(extra="forbid")
    beta: float = Field(0.1, gt=0)  # weight of the odds-ratio term against the SFT term (lambda in the paper)


class SimPOOptions(BaseModel):
    """Options of `simpo`."""

    model_config = ConfigDict(extra="forbid")
    beta: float = Field(2.0, gt=0)  # reward scale; the paper uses 2.0-2.5
    gamma_beta_ratio: float = Field(0.5, ge=0)  # target margin as a fraction of beta (TRL's simpo_gamma)


class KTOOptions(BaseModel):
    """Options of `kto`."""

    model_config = ConfigDict(extra="forbid")
    beta: float = Field(0.1, gt=0)
    desirable_weight: float = Field(1.0, gt=0)  # raise when desirable examples are the rarer kind
    undesirable_weight: float = Field(1.0, gt=0)


def preference_examples(cfg: TrainConfig, convert, tokenizer):
    """(train, eval, loaded) of `cfg`, rejecting examples whose prompt leaves too little room for the reply."""
    from train import hf

    return hf.prepare_examples(cfg, convert, hf.long_prompt(tokenizer, cfg.max_length))


class PreferenceBackend(Backend):
    """A TRL preference trainer on converted records; subclasses name the trainer and its settings."""

    default_lr = 5e-7  # full fine-tuning; LoRA uses ten times this
    converter = "to_preference"

    def trainer_parts(self, options) -> tuple[type, type, dict]:
        """(TRL config class, trainer class, method-specific config arguments)."""
        raise NotImplementedError

    def train(self, cfg: TrainConfig, options) -> TrainResult:
        from datasets import Dataset

        from train import data as formats
        from train import hf

        tokenizer = hf.load_tokenizer(cfg.model, cfg)
        train_set, eval_set, loaded = preference_examples(cfg, getattr(formats, self.converter), tokenizer)
        config_class, trainer_class, extra = self.trainer_parts(options)
        lr = self.default_lr * (10 if cfg.peft is not None else 1)
        args = hf.trl_args(cfg, config_class, lr, bool(eval_set), max_length=cfg.max_length, **extra)
        model = hf.load_causal_lm(cfg)
        trainer = trainer_class(model=model, args=args, train_dataset=Dataset.from_list(train_set),
                                eval_dataset=Dataset.from_list(eval_set) if eval_set else None,
                                processing_class=tokenizer, peft_config=hf.lora_config(cfg, len(train_set), model=model))
        result = hf.fit(trainer, cfg, tokenizer)
        history = [h for h in trainer.state.log_history if "rewards/accuracies" in h]
        if history:
            result.metrics["reward_accuracy_last"] = float(history[-1]["rewards/accuracies"])
        result.metrics.update(examples=float(len(train_set)), rejected=float(len(loaded.rejects)))
        return result


class DPOBackend(PreferenceBackend):
    name = "dpo"
    Options = DPOOptions

    def trainer_parts(self, options: DPOOptions):
        from trl import DPOConfig, DPOTrainer

        return DPOConfig, DPOTrainer, {"beta": options.beta, "loss_type": [options.loss_type]}


class ORPOBackend(PreferenceBackend):
    name = "orpo"
    Options = ORPOOptions
    default_lr = 8e-6  # the ORPO paper's; it also does SFT, so it needs an SFT-like rate

    def trainer_parts(self, options: ORPOOptions):
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        return ORPOConfig, ORPOTrainer, {"beta": options.beta}


class SimPOBackend(PreferenceBackend):
    name = "simpo"
    Options = SimPOOptions
    default_lr = 5e-7

    def trainer_parts(self, options: SimPOOptions):
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        return CPOConfig, CPOTrainer, {"loss_type": "simpo", "cpo_alpha": 0.0, "beta": options.beta,
                                       "simpo_gamma": options.gamma_beta_ratio}


class KTOBackend(PreferenceBackend):
    name = "kto"
    Options = KTOOptions
    converter = "to_unpaired"

    def trainer_parts(self, options: KTOOptions):
        from trl import KTOConfig, KTOTrainer

        return KTOConfig, KTOTrainer, {"beta": options.beta, "desirable_weight": options.desirable_weight,
                                       "undesirable_weight": options.undesirable_weight}
