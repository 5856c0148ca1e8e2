"""The loop definition format: a YAML file of named datasets and stages, validated at load.

    name: loop-demo
    workdir: out/loop-demo
    datasets:
      web: {paths: [../shared/data/raw_web_en/docs.jsonl]}
    stages:
      split_raw: {kind: split, input: web, fractions: {train: 0.95, test: 0.05}}
      train_raw: {kind: train, data: split_raw/train, init: init, config: {max_steps: 200, batch_size: 8}}
      eval_raw:  {kind: eval, model: train_raw, suite: core_permissive}

A stage reads other stages' outputs by reference: `<stage>` (its main output) or `<stage>/<part>` (a named
one: a split's parts), or a dataset's name. The engine runs stages in dependency order and caches each one
under `workdir/<stage>/` keyed by its settings and its inputs (see `pipelines.engine`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from corpus.config import ConfigError, format_validation_error, read_yaml_mapping
from pipelines.scores import KeepRule


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dataset(_Strict):
    """Documents from outside the loop: JSONL (plain or .gz) or Parquet files, folders or globs."""

    paths: list[str] = Field(min_length=1)
    text_field: str = "text"
    id_field: str = "id"


class InitStage(_Strict):
    """A from-scratch causal LM every variant starts from (same weights, same tokenizer), so variants differ
    only in their data. The tokenizer is trained on `tokenizer_data`."""

    kind: Literal["init"]
    tokenizer_data: str
    tokenizer_docs: int = Field(20_000, ge=10)  # documents the tokenizer is trained on (the first ones)
    architecture: Literal["llama", "gpt2"] = "llama"
    vocab_size: int = Field(8000, ge=300)
    hidden_size: int = Field(128, ge=8)
    layers: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    context: int = Field(512, ge=16)
    seed: int = 0


class CleanStage(_Strict):
    """`corpus clean` on a dataset or stage output."""

    kind: Literal["clean"]
    input: str
    config: str | None = None  # a clean config YAML (default: the built-in defaults)
    steps: list[str] | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)


class SplitStage(_Strict):
    """Deterministic train/validation/test parts by a hash of each document's id (and `seed`): a document
    lands in the same part whatever else the input holds."""

    kind: Literal["split"]
    input: str
    fractions: dict[str, float] = Field(default_factory=lambda: {"train": 0.9, "validation": 0.05, "test": 0.05})
    seed: int = 0

    @field_validator("fractions")
    @classmethod
    def _sum_to_one(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or any(f <= 0 for f in value.values()) or abs(sum(value.values()) - 1) > 1e-9:
            raise ValueError("fractions must be positive and sum to 1, e.g. {train: 0.9, test: 0.1}")
        if any("/" in name for name in value):
            raise ValueError("part names cannot contain '/'")
        return value


class TrainStage(_Strict):
    """`train.run` with the `pretrain` method (or another) from the `init` model, at a fixed token budget:
    `config.max_steps` x `batch_size` x `gradient_accumulation` x `max_length` tokens, the same for every
    variant. One model per seed."""

    kind: Literal["train"]
    data: str
    init: str | None = None  # an init stage; None: the method builds its own model (budgets then differ)
    method: str = "pretrain"
    config: dict[str, Any] = Field(default_factory=dict)  # TrainConfig fields (not method, output, data, model)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)

    @field_validator("config")
    @classmethod
    def _budgeted(cls, value: dict[str, Any]) -> dict[str, Any]:
        taken = {"method", "output", "data", "model", "seed"} & set(value)
        if taken:
            raise ValueError(f"config sets {sorted(taken)}, which the stage decides (use data, init, method, seeds)")
        if int(value.get("max_steps", -1)) <= 0:
            raise ValueError("config.max_steps must be set (> 0): variants are compared at an equal token budget")
        return value


class EvalStage(_Strict):
    """`evalsuite run` on every seed's model of a train stage (or on an init stage): the suite, plus
    perplexity on held-out documents (`held_out`, e.g. `split_clean/test`), recorded in the loop's registry
    with the lineage."""

    kind: Literal["eval"]
    model: str
    suite: str | None = "core_permissive"
    held_out: list[str] = Field(default_factory=list)
    held_out_docs: int = Field(300, ge=1)  # the first documents of each held-out set (time on a CPU)
    limit: int | None = Field(None, ge=1)
    device: str = "cpu"
    batch_size: int | Literal["auto"] = 8


class ScoreStage(_Strict):
    """A score table (Parquet, one row per document keyed by id): perplexity under models, classifier scores,
    length, language; filters read it without rescoring."""

    kind: Literal["score"]
    input: str
    perplexity: dict[str, str] = Field(default_factory=dict)  # name -> model reference: column ppl_<name>
    classifiers: list[Literal["quality", "toxicity"]] = Field(default_factory=list)  # the shipped models
    trained: dict[str, str] = Field(default_factory=dict)  # column name -> a classifier stage of the loop
    length: bool = True
    language: bool = False
    max_length: int = Field(512, ge=8)  # tokens scored per document for perplexity


class ClassifierStage(_Strict):
    """A fastText classifier trained on what the loop learned: on the score table `scores`, the documents whose
    perplexity drops most from the `worse` model's column to the `better` one's are the positives, those where
    it drops least the negatives (`fraction` of the documents each); scores later stages can use."""

    kind: Literal["classifier"]
    input: str  # the documents the score table was made from
    scores: str
    better: str  # perplexity column, e.g. ppl_filtered
    worse: str
    fraction: float = Field(0.2, gt=0, le=0.5)


class FilterStage(_Strict):
    """Keep the documents of `input` that pass every rule on the score table `scores`."""

    kind: Literal["filter"]
    input: str
    scores: str
    keep: list[KeepRule] = Field(min_length=1)


class CompareStage(_Strict):
    """Variants against a baseline on one key metric, with the loop's gate: a candidate is accepted only if it
    beats the baseline by more than the standard error of the difference, rolled back if it is worse by more
    than `max_drop`."""

    kind: Literal["compare"]
    baseline: str
    candidates: list[str] = Field(min_length=1)
    key_metric: str  # task/metric, e.g. heldout_ppl/bits_per_byte
    max_drop: float = Field(0.05, ge=0)


Stage = Annotated[InitStage | CleanStage | SplitStage | TrainStage | EvalStage | ScoreStage | ClassifierStage
                  | FilterStage | CompareStage, Field(discriminator="kind")]


class LoopSpec(_Strict):
    """A loop definition: datasets and stages (in any order; dependencies decide the order they run in)."""

    name: str
    workdir: str
    seed: int = 0
    datasets: dict[str, Dataset] = Field(default_factory=dict)
    stages: dict[str, Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _references_resolve(self) -> LoopSpec:
        clash = set(self.datasets) & set(self.stages)
        if clash:
            raise ValueError(f"names used for both a dataset and a stage: {sorted(clash)}")
        for name, stage in self.stages.items():
            if "/" in name:
                raise ValueError(f"stages.{name}: stage names cannot contain '/'")
            for field, ref in references(stage):
                target = ref.split("/", 1)[0]
                if target not in self.datasets and target not in self.stages:
                    raise ValueError(f"stages.{name}.{field}: {ref!r} names no dataset or stage")
                if target == name:
                    raise ValueError(f"stages.{name}.{field}: a stage cannot read its own output")
        return self


REFERENCE_FIELDS = ("input", "data", "init", "model", "tokenizer_data", "scores", "baseline", "candidates", "held_out")


def references(stage: BaseModel) -> list[tuple[str, str]]:
    """(field, reference) for every input the stage reads, in a fixed order."""
    out = []
    for field in REFERENCE_FIELDS:
        value = getattr(stage, field, None)
        if isinstance(value, str):
            out.append((field, value))
        elif isinstance(value, list):
            out += [(field, v) for v in value]
    if isinstance(stage, ScoreStage):
        out += [(f"perplexity.{column}", ref) for column, ref in stage.perplexity.items()]
        out += [(f"trained.{column}", ref) for column, ref in stage.trained.items()]
    return out


def load_loop(path: str | Path) -> LoopSpec:
    """Read and validate a loop YAML; relative paths in it are taken from the current directory. Errors name
    the file and the option."""
    data = read_yaml_mapping(path)
    try:
        return LoopSpec.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(path), "pipelines/loop-demo.yaml")) from None
