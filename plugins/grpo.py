"""`grpo` and `rloo`: online RL with verifier rewards, on TRL's GRPOTrainer and RLOOTrainer.

Both sample `num_generations` completions per prompt, score them with the reward functions (`train.rewards`:
built-in `math_answer`, `format_answer`, or a user's `"module:function"`) and push the policy towards the
completions that scored above their group. They share the options and the data: JSONL records with a prompt
field (a string, or a list of messages) and a reference answer field, GSM8K's `{question, answer}` as it is. A
string prompt becomes the conversation `[{"role": "user", "content": ...}]`, rendered by the tokenizer's chat
template, as SFT and evaluation render it. The answer reaches the reward functions as the `answer` column.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from train.backend import Backend, TrainError, TrainResult
from train.config import TrainConfig


class RLOptions(BaseModel):
    """Options of the `grpo` and `rloo` methods."""

    model_config = ConfigDict(extra="forbid")
    rewards: list[str] = Field(["math_answer", "format_answer"], min_length=1)  # built-in names or "module:function"
    reward_weights: list[float] | None = None  # one per reward; None: all 1.0
    num_generations: int = Field(4, ge=2)  # completions sampled per prompt (the group)
    max_completion_length: int = Field(64, ge=1)  # tokens
    temperature: float = Field(1.0, gt=0)
    beta: float | None = Field(None, ge=0)  # KL coefficient; None: TRL's default (grpo 0.0, rloo 0.05)
    prompt_field: str = "question"
    answer_field: str = "answer"

    @model_validator(mode="after")
    def _one_weight_per_reward(self):
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(f"reward_weights has {len(self.reward_weights)} values for {len(self.rewards)} rewards")
        return self


def prompt_sets(cfg: TrainConfig, options: RLOptions, tokenizer):
    """(train, eval, loaded) `{prompt, answer}` examples of a config, rejects written to the output folder.

    Records lacking the prompt, with a reference `math_answer` cannot read, or whose rendered prompt leaves no room
    for `max_completion_length` tokens within `max_length` are rejected, with file, line and reason."""
    from train import data as formats
    from train import hf, rewards

    needs_number = "math_answer" in options.rewards
    room = cfg.max_length - options.max_completion_length
    if room < 1:
        raise TrainError(f"max_length ({cfg.max_length}) leaves no room for a prompt next to "
                         f"options.max_completion_length ({options.max_completion_length}); raise max_length")

    def convert(record: dict) -> list[dict]:
        value = record.get(options.prompt_field)
        if isinstance(value, str):
            prompt = [{"role": "user", "content": value}]
        elif isinstance(value, list):
            prompt = formats._messages(value, options.prompt_field)
        else:
            raise formats.RecordError(f"field {options.prompt_field!r} (prompt_field) must be a string or a list "
                                      "of messages")
        answer = record.get(options.answer_field)
        if needs_number:
            try:
                rewards.reference_number(answer)
            except rewards.RewardError as e:
                raise formats.RecordError(f"field {options.answer_field!r} (answer_field): {e}") from None
        rendered = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        length = len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        if length > room:
            raise formats.RecordError(f"prompt is {length} tokens; with max_completion_length "
                                      f"{options.max_completion_length} it exceeds max_length {cfg.max_length}")
        return [{"prompt": prompt, "answer": None if answer is None else str(answer)}]

    return hf.prepare_examples(cfg, convert)


def check_batch(cfg: TrainConfig, options: RLOptions, has_eval: bool) -> None:
    """Refuse a batch that cannot hold whole groups of `num_generations` completions (TRL's rule: the
    completions generated at once, batch_size × gradient_accumulation, and with evaluation the batch itself)."""
    n, batch = options.num_generations, cfg.batch_size
    per_step = batch * cfg.gradient_accumulation  # what TRL generates at once
    if per_step % n == 0 and not (has_eval and batch % n):
        return
    what = f"batch_size ({batch})" if cfg.gradient_accumulation == 1 or has_eval else \
        f"batch_size × gradient_accumulation ({batch} × {cfg.gradient_accumulation})"
    sizes = " or ".join(str(b) for b in sorted({max(n, batch // n * n), (batch // n + 1) * n}))
    divisors = [d for d in range(2, batch + 1) if batch % d == 0]
    other = f", or num_generations to one of {divisors}" if divisors else ""
    if per_step % n == 0:  # only evaluation, which generates one batch at a time, is in the way
        other += " (or evaluate nothing: eval_fraction: 0 and no eval_data)"
    raise TrainError(f"{what} must be a multiple of options.num_generations ({n}): the {n} completions of each "
                     f"prompt are scored as one group within one batch. Set batch_size to {sizes}{other}")


class OnlineRLBackend(Backend):
    """What `grpo` and `rloo` share: options, data, reward functions, the fit; subclasses name the TRL classes."""

    Options = RLOptions
    config_class: ClassVar[str]  # the TRL config and trainer, by name in `trl`
    trainer_class: ClassVar[str]

    def train(self, cfg: TrainConfig, options: RLOptions) -> TrainResult:
        import trl
        from datasets import Dataset

        from train import hf, rewards

        # before anything loads: no starting model, a wrong reward name or batch size fails at once
        if not cfg.model:
            raise TrainError(f"method {cfg.method!r} needs a starting model: set model to a local model folder")
        reward_funcs = rewards.resolve_all(options.rewards)
        check_batch(cfg, options, bool(cfg.eval_data) or cfg.eval_fraction > 0)
        tokenizer = hf.load_tokenizer(cfg.model, cfg)
        train_set, eval_set, loaded = prompt_sets(cfg, options, tokenizer)
        extra = {"beta": options.beta} if options.beta is not None else {}
        args = hf.trl_args(cfg, getattr(trl, self.config_class), 1e-6 if cfg.peft is None else 1e-5, bool(eval_set),
                           num_generations=options.num_generations,
                           max_completion_length=options.max_completion_length, temperature=options.temperature,
                           reward_weights=options.reward_weights, **extra)
        args.include_num_input_tokens_seen = "no"  # the trainer counts prompt and completion tokens itself
        model = hf.load_causal_lm(cfg)
        trainer = getattr(trl, self.trainer_class)(
            model=model, reward_funcs=reward_funcs, args=args, train_dataset=Dataset.from_list(train_set),
            eval_dataset=Dataset.from_list(eval_set) if eval_set else None, processing_class=tokenizer,
            peft_config=hf.lora_config(cfg, len(train_set), model=model))
        result = hf.fit(trainer, cfg, tokenizer)
        logged = [float(h["reward"]) for h in trainer.state.log_history if "reward" in h]
        if logged:
            k = max(1, len(logged) // 5)
            result.metrics.update(reward_first=sum(logged[:k]) / k, reward_last=sum(logged[-k:]) / k)
        result.metrics.update(prompts=float(len(train_set)), rejected=float(len(loaded.rejects)))
        return result


class GRPOBackend(OnlineRLBackend):
    """TRL GRPO: advantages relative to the group's mean (and spread) of rewards."""

    name = "grpo"
    config_class = "GRPOConfig"
    trainer_class = "GRPOTrainer"


class RLOOBackend(OnlineRLBackend):
    """TRL RLOO: REINFORCE with each completion's baseline the mean reward of the others in its group."""

    name = "rloo"
    config_class = "RLOOConfig"
    trainer_class = "RLOOTrainer"
