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

from collections.abc import Callable
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
    only in their data. The tokenizer is trained on `tokenizer_docs` documents spread over `tokenizer_data`."""

    kind: Literal["init"]
    tokenizer_data: str
    tokenizer_docs: int = Field(20_000, ge=10)  # documents the tokenizer is trained on (spread over the set)
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
    held_out_docs: int = Field(300, ge=1)  # documents of each held-out set, spread over it (time on a CPU)
    limit: int | None = Field(None, ge=1)
    device: str = "cpu"
    batch_size: int | Literal["auto"] = 8


class Influence(_Strict):
    """How a trained model's held-out loss would move if it trained on each document (see
    `pipelines.scores.InfluenceScorer`): `model` a train stage (its first seed) or a model reference,
    `held_out` the documents the metric is measured on (a validation part: never the gate's test part)."""

    model: str
    held_out: str
    held_out_docs: int = Field(300, ge=1)  # documents of `held_out`, spread over it


class ScoreStage(_Strict):
    """A score table (Parquet, one row per document keyed by id): perplexity under models, classifier scores,
    evaluation-aware influence, length, language; filters read it without rescoring."""

    kind: Literal["score"]
    input: str
    perplexity: dict[str, str] = Field(default_factory=dict)  # name -> model reference: column ppl_<name>
    classifiers: list[Literal["quality", "toxicity"]] = Field(default_factory=list)  # the shipped models
    trained: dict[str, str] = Field(default_factory=dict)  # column name -> a classifier stage of the loop
    influence: dict[str, Influence] = Field(default_factory=dict)  # name -> column influence_<name>
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

PREVIOUS = "prev:"  # in a repeated stage: the same stage's output in the last accepted iteration


class Repeat(_Strict):
    """Iterations of a group of stages (`stages`), each built on the last accepted one, until the gate stops
    accepting. Inside the group, `prev:<stage>` reads that stage's output in the last accepted iteration
    (before any, what `start` names for it: a stage outside the group, a `stage/part`, or a dataset); a plain
    reference to a group stage reads the current iteration's. The `gate` is a compare stage of the group with
    one candidate, the iteration's evaluation, against `prev:` of it: an iteration is accepted when it beats the
    last accepted one beyond the standard error, rolled back (never built on) when it drops by more than the
    gate's `max_drop`.

    The loop stops at the first iteration not accepted, after an accepted one that gained less than `min_gain`
    (relative), or after `max_iterations`. Iteration k's stages run as `<stage>@k`."""

    stages: list[str] = Field(min_length=1)
    start: dict[str, str] = Field(default_factory=dict)
    gate: str
    max_iterations: int = Field(3, ge=1)
    min_gain: float = Field(0.0, ge=0)


class LoopSpec(_Strict):
    """A loop definition: datasets and stages (in any order; dependencies decide the order they run in), and
    optionally a group of them repeated."""

    name: str
    workdir: str
    seed: int = 0
    datasets: dict[str, Dataset] = Field(default_factory=dict)
    stages: dict[str, Stage] = Field(min_length=1)
    repeat: Repeat | None = None

    @model_validator(mode="after")
    def _references_resolve(self) -> LoopSpec:
        clash = set(self.datasets) & set(self.stages)
        if clash:
            raise ValueError(f"names used for both a dataset and a stage: {sorted(clash)}")
        body = set(self.repeat.stages) if self.repeat else set()
        for name, stage in self.stages.items():
            if "/" in name or "@" in name or name.startswith(PREVIOUS):
                raise ValueError(f"stages.{name}: stage names cannot contain '/' or '@' or start with {PREVIOUS!r}")
            for field, ref in references(stage):
                target = head(ref)
                if ref.startswith(PREVIOUS) and name not in body:
                    raise ValueError(f"stages.{name}.{field}: {ref!r}: only stages under repeat.stages read "
                                     f"{PREVIOUS!r}")
                if target not in self.datasets and target not in self.stages:
                    raise ValueError(f"stages.{name}.{field}: {ref!r} names no dataset or stage")
                if target == name and not ref.startswith(PREVIOUS):
                    raise ValueError(f"stages.{name}.{field}: a stage cannot read its own output")
                if target in body and name not in body:
                    raise ValueError(f"stages.{name}.{field}: {ref!r} is repeated (repeat.stages); only stages "
                                     "repeated with it can read it")
                if ref.startswith(PREVIOUS) and (target not in body or target not in (self.repeat.start or {})):
                    raise ValueError(f"stages.{name}.{field}: {ref!r}: {target!r} must be a repeated stage with "
                                     "a start (repeat.start)")
        if self.repeat:
            self._check_repeat(self.repeat)
        return self

    def _check_repeat(self, repeat: Repeat) -> None:
        unknown = [s for s in [*repeat.stages, *repeat.start] if s not in self.stages]
        if unknown:
            raise ValueError(f"repeat: {unknown} name no stage")
        for stage, first in repeat.start.items():
            if stage not in repeat.stages:
                raise ValueError(f"repeat.start.{stage}: not one of repeat.stages")
            if head(first) not in self.datasets and (head(first) not in self.stages or head(first) in repeat.stages):
                raise ValueError(f"repeat.start.{stage}: {first!r} must name a dataset or a stage outside "
                                 "repeat.stages")
            if "/" in first and any(ref.startswith(f"{PREVIOUS}{stage}/") for s in repeat.stages
                                    for _, ref in references(self.stages[s])):
                raise ValueError(f"repeat.start.{stage}: {first!r} names a part, so prev:{stage} cannot name one")
        gate = self.stages.get(repeat.gate)
        if repeat.gate not in repeat.stages or not isinstance(gate, CompareStage):
            raise ValueError(f"repeat.gate: {repeat.gate!r} must be a compare stage in repeat.stages")
        if len(gate.candidates) != 1 or head(gate.candidates[0]) not in repeat.stages:
            raise ValueError(f"repeat.gate: {repeat.gate!r} must have one candidate, a repeated eval stage")
        if gate.baseline != PREVIOUS + gate.candidates[0]:
            raise ValueError(f"stages.{repeat.gate}.baseline: must be {PREVIOUS + gate.candidates[0]!r}: each "
                             "iteration is judged against the last accepted one")


REFERENCE_FIELDS = ("input", "data", "init", "model", "tokenizer_data", "scores", "baseline", "candidates", "held_out")


def head(ref: str) -> str:
    """The dataset or stage a reference reads: `clean` of `clean/docs`, `train_it` of `prev:train_it/seed0`."""
    return ref.removeprefix(PREVIOUS).split("/", 1)[0]


def map_references(stage: BaseModel, change: Callable[[str, str], str]) -> BaseModel:
    """A copy of `stage` with each reference `ref` in option `field` replaced by `change(field, ref)` (called
    in a fixed order)."""
    data = stage.model_dump()
    for field in REFERENCE_FIELDS:
        value = data.get(field)
        if isinstance(value, str):
            data[field] = change(field, value)
        elif isinstance(value, list):
            data[field] = [change(field, v) for v in value]
    if isinstance(stage, ScoreStage):
        for option in ("perplexity", "trained"):
            data[option] = {column: change(f"{option}.{column}", ref) for column, ref in data[option].items()}
        for name, spec in data["influence"].items():
            spec["model"] = change(f"influence.{name}.model", spec["model"])
            spec["held_out"] = change(f"influence.{name}.held_out", spec["held_out"])
    return type(stage).model_validate(data)


def references(stage: BaseModel) -> list[tuple[str, str]]:
    """(field, reference) for every input the stage reads, in a fixed order."""
    out: list[tuple[str, str]] = []
    map_references(stage, lambda field, ref: out.append((field, ref)) or ref)
    return out


def load_loop(path: str | Path) -> LoopSpec:
    """Read and validate a loop YAML; relative paths in it are taken from the current directory. Errors name
    the file and the option."""
    data = read_yaml_mapping(path)
    try:
        return LoopSpec.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(path), "pipelines/loop-demo.yaml")) from None
