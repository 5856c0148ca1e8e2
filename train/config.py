"""Typed configuration of a training run (`train.run`), loadable from YAML and validated at load.

One `TrainConfig` for what every method shares (model, data, steps, precision, PEFT, logging); the method's
own options live under `options` and are validated by the backend's `Options` model, one per trainer, as TRL
keeps one config class per trainer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from corpus.config import ConfigError, format_validation_error, read_yaml_mapping

REFERENCE = "the TrainConfig fields in README.md"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PeftSettings(_Section):
    """LoRA, DoRA or QLoRA adapters instead of full fine-tuning (QLoRA: the base in 4-bit, GPU only)."""

    method: Literal["lora", "dora", "qlora"] = "lora"
    rank: int | Literal["auto"] = "auto"  # auto: 8 below 1k samples, 16 to 5k, 32 to 20k, 64 above
    alpha: int | None = None  # default: twice the rank
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["auto"] = "auto"  # auto: every linear layer but the output head
    merge: bool = False  # save the merged full model instead of the adapter

    def resolved_rank(self, samples: int) -> int:
        if self.rank != "auto":
            return self.rank
        return 8 if samples < 1_000 else 16 if samples < 5_000 else 32 if samples < 20_000 else 64


class EvalDuringTraining(_Section):
    """A fixed, small subset of an evalsuite suite run on the model being trained every `every_steps` steps."""

    suite: str = "core"
    limit: int = Field(20, ge=1)  # documents per task
    every_steps: int = Field(100, ge=1)


class TrainConfig(_Section):
    """One training run. `method` names a backend (`sft`, `dpo`, `pretrain`, or a plugin's)."""

    method: str
    output: str
    model: str | None = None  # a local model folder; pretrain from scratch leaves it out
    data: list[str] = Field(min_length=1)  # JSONL (plain or .gz) or Parquet files, or folders of them
    eval_data: list[str] = []  # held-out files; none: `eval_fraction` of `data` is held out
    eval_fraction: float = Field(0.05, ge=0, le=0.5)
    max_steps: int = -1  # > 0 overrides epochs
    epochs: float = Field(1.0, gt=0)
    learning_rate: float | None = Field(None, gt=0)  # None: the backend's default
    batch_size: int = Field(8, ge=1)
    gradient_accumulation: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=8)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on a GPU that has it, else fp32
    gradient_checkpointing: bool = False
    max_grad_norm: float = Field(1.0, gt=0)
    peft: PeftSettings | None = None
    train_last_layers: float | None = Field(None, gt=0, le=1)  # train only this fraction of the top layers
    freeze_router: bool = True  # MoE models: keep the expert routers as they are
    deepspeed: str | None = None  # zero2, zero3, zero3_offload (shipped templates) or a DeepSpeed JSON file
    early_stopping_patience: int | None = Field(None, ge=1)  # evaluations without a better eval loss
    eval_suite: EvalDuringTraining | None = None  # a cheap evalsuite check every N steps, logged with the loss
    logging_steps: int = Field(10, ge=1)
    eval_steps: int | None = Field(None, ge=1)  # None: evaluate every `logging_steps` * 5
    save_steps: int = Field(500, ge=1)
    memory_check: bool = True  # on a GPU, refuse a run estimated not to fit (train.memory), naming what would
    resume: bool = False  # continue from the newest checkpoint in `output`
    trust_remote_code: bool = False
    report_to: list[str] = ["tensorboard"]
    options: dict[str, Any] = {}  # the backend's own options (see its Options model)

    @field_validator("data", "eval_data", "report_to", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [value] if isinstance(value, str) else value


def load_train_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A TrainConfig from a YAML file (read with `yaml.safe_load`) and/or overrides; a mistake is a
    ConfigError naming the file and the option."""
    data = read_yaml_mapping(path) if path is not None else {}
    data.update(overrides or {})
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(path) if path else "config", REFERENCE)) from None
