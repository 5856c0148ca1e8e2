"""Plumbing shared by the backends built on transformers and TRL: device and precision, model and tokenizer
loading, the held-out split, TRL config arguments from a TrainConfig, LoRA settings, and the fit-and-save step
with its figures. Each backend stays a few lines: its data conversion, its TRL trainer, its defaults."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

from train.backend import TrainError, TrainResult
from train.config import TrainConfig

log = logging.getLogger("train")

# ChatML, for tokenizers that come without a chat template: saved with the trained model, so evaluation
# (`evalsuite run --apply-chat-template`) prompts it exactly as training rendered its data. Tool schemas, when a
# record has them, go first, as JSON inside <tools>...</tools>, as Qwen's templates put them
DEFAULT_CHAT_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\n# Tools\n<tools>\n' }}{% for tool in tools %}{{ tool | tojson }}{{ '\n' }}"
    "{% endfor %}{{ '</tools><|im_end|>\n' }}{% endif %}"
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def device(cfg: TrainConfig) -> str:
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise TrainError("device: cuda was asked for but no GPU is visible; use device: cpu or auto")
    return "cuda" if cfg.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu"


def precision_flags(cfg: TrainConfig) -> dict[str, bool]:
    """The trainer's bf16/fp16 flags. `auto` is bf16 on a GPU that has it and fp32 on a CPU: the same figures
    on every CPU (TRL's own configs default to bf16 everywhere; CPUs with AMX or AVX512-BF16 run it faster,
    so `precision: bf16` is allowed on a CPU too). fp16 needs a GPU."""
    import torch

    on_gpu = device(cfg) == "cuda"
    if cfg.precision == "fp16" and not on_gpu:
        raise TrainError("precision: fp16 needs a GPU; on CPU use fp32, auto, or bf16")
    if cfg.precision == "auto":
        return {"bf16": on_gpu and torch.cuda.is_bf16_supported(), "fp16": False}
    return {"bf16": cfg.precision == "bf16", "fp16": cfg.precision == "fp16"}


DEEPSPEED_TEMPLATES = Path(__file__).resolve().parent / "deepspeed"


def deepspeed_config(cfg: TrainConfig) -> str | None:
    """The DeepSpeed JSON for `cfg.deepspeed`: a shipped template by name, or the user's file."""
    if cfg.deepspeed is None:
        return None
    shipped = DEEPSPEED_TEMPLATES / f"{cfg.deepspeed}.json"
    if shipped.is_file():
        return str(shipped)
    if Path(cfg.deepspeed).is_file():
        return cfg.deepspeed
    names = ", ".join(sorted(p.stem for p in DEEPSPEED_TEMPLATES.glob("*.json")))
    raise TrainError(f"deepspeed: {cfg.deepspeed!r} is neither a shipped template ({names}) nor a file")


def preflight(cfg: TrainConfig) -> None:
    """Refuse, before anything loads, what this machine or these paths cannot do."""
    on_gpu = device(cfg) == "cuda"
    precision_flags(cfg)
    if cfg.model and not (Path(cfg.model) / "config.json").is_file():
        raise TrainError(f"model: {cfg.model!r} is not a local model folder (no config.json); models are never "
                         "downloaded")
    if cfg.peft is not None and cfg.peft.method == "qlora":
        if not on_gpu:
            raise TrainError("peft.method: qlora loads the base model in 4 bits with bitsandbytes, which needs a "
                             "CUDA GPU; on CPU use lora")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise TrainError("peft.method: qlora needs bitsandbytes: pip install bitsandbytes") from None
    if deepspeed_config(cfg) and not on_gpu:
        raise TrainError("deepspeed: ZeRO shards training state across CUDA GPUs; on CPU leave deepspeed out")
    if cfg.early_stopping_patience and not cfg.eval_data and cfg.eval_fraction == 0:
        raise TrainError("early_stopping_patience needs a validation split: set eval_data or eval_fraction")


def load_tokenizer(folder: str | Path, cfg: TrainConfig):
    """The model's tokenizer, with a pad token (its EOS when it has none) and a chat template (ChatML when it
    has none)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=cfg.trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        tok.chat_template = DEFAULT_CHAT_TEMPLATE
    if not prefix_preserving(tok):
        log.warning("the chat template of %s renders earlier turns differently once a turn is appended (e.g. it "
                    "drops reasoning from past turns): multi-turn training and evaluation prompts will not share "
                    "prefixes", folder)
    return tok


def prefix_preserving(tokenizer) -> bool:
    """Whether appending a turn to a conversation leaves its earlier rendering intact (what multi-turn
    training, RL rollouts and evaluation rely on to see the same text)."""
    short = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    longer = [*short, {"role": "user", "content": "and 3+3?"}]
    render = lambda messages: tokenizer.apply_chat_template(messages, tokenize=False)
    return render(longer).startswith(render(short))


def load_causal_lm(cfg: TrainConfig):
    """The starting model (4-bit for QLoRA), with the layers the config keeps fixed frozen."""
    from transformers import AutoModelForCausalLM

    if not cfg.model:
        raise TrainError(f"method {cfg.method!r} needs a starting model: set model to a local model folder")
    kwargs = {}
    if cfg.peft is not None and cfg.peft.method == "qlora":
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if precision_flags(cfg)["bf16"] else torch.float16)
    model = AutoModelForCausalLM.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code, **kwargs)
    freeze(model, cfg)
    return model


def top_layers(model, fraction: float) -> list[int]:
    """Indices of the top `fraction` of the model's transformer layers (at least one)."""
    n = int(getattr(model.config, "num_hidden_layers", 0) or getattr(model.config, "n_layer", 0))
    if not n:
        raise TrainError("train_last_layers: cannot tell how many layers this architecture has")
    keep = max(1, round(n * fraction))
    return list(range(n - keep, n))


def freeze(model, cfg: TrainConfig) -> None:
    """Freeze MoE routers (`freeze_router`) and, in full fine-tuning with `train_last_layers`, every parameter
    outside the top layers but the output head and final norm (a head tied to the input embeddings stays
    frozen with them). With LoRA, `lora_config` places adapters on the top layers only instead."""
    import re

    layer = re.compile(r"\.(?:layers|h|layer|blocks)\.(\d+)\.")
    keep = set(top_layers(model, cfg.train_last_layers)) if cfg.train_last_layers and cfg.peft is None else None
    for name, param in model.named_parameters():
        if cfg.freeze_router and re.search(r"(router|\.gate)\.(weight|bias)$", name) and "gate_proj" not in name:
            param.requires_grad = False
        if keep is not None:
            found = layer.search(name)
            in_kept_layer = found is not None and int(found.group(1)) in keep
            head_or_final_norm = found is None and not any(k in name for k in ("embed", "wte", "wpe"))
            if not (in_kept_layer or head_or_final_norm):
                param.requires_grad = False


def long_prompt(tokenizer, max_length: int):
    """A reject rule for preference examples: a prompt that leaves less than a quarter of `max_length` for the
    reply. Trainers would otherwise truncate the replies to nothing (DPO, KTO keep the start) or overrun the
    model's positions (TRL's experimental ORPO and CPO do not truncate prompts)."""
    def reason(example: dict) -> str | None:
        n = len(tokenizer.apply_chat_template(example["prompt"], tokenize=True, add_generation_prompt=True,
                                              return_dict=False))
        if n > max_length * 3 // 4:
            return f"the prompt takes {n} of max_length {max_length} tokens, leaving too little for the reply"
        return None
    return reason


def prepare_examples(cfg: TrainConfig, convert, reject_rule=None) -> tuple[list[dict], list[dict], object]:
    """(train, eval, loaded): the converted examples of `cfg.data` (and `cfg.eval_data`), minus those
    `reject_rule(example) -> reason | None` turns away, split; the rejects written to the output folder.
    A run with nothing left to train on stops here."""
    from train import data as formats

    loaded = formats.load(cfg.data, convert)
    held_out = None
    if cfg.eval_data:
        held = formats.load(cfg.eval_data, convert)
        if reject_rule is not None:
            held.reject_where(reject_rule)
        held_out = held.examples
    if reject_rule is not None:
        loaded.reject_where(reject_rule)
    train, evaluation = split(loaded.examples, cfg, held_out)
    if not train:
        raise TrainError(f"no usable examples in {cfg.data} ({len(loaded.rejects)} rejected; see rejects.jsonl)")
    loaded.write_rejects(Path(cfg.output))
    if loaded.rejects:
        log.warning("%d records rejected; see %s/rejects.jsonl", len(loaded.rejects), cfg.output)
    return train, evaluation, loaded


def split(examples: list[dict], cfg: TrainConfig, held_out: list[dict] | None = None) -> tuple[list[dict], list[dict]]:
    """(train, eval): `held_out` when given, else the examples whose content hash falls in the lowest
    `eval_fraction` (deterministic, and stable when examples are added or reordered)."""
    if held_out:
        return examples, held_out
    if cfg.eval_fraction == 0:
        return examples, []

    def bucket(example: dict) -> float:
        digest = hashlib.sha256(json.dumps(example, sort_keys=True, ensure_ascii=False).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    train = [e for e in examples if bucket(e) >= cfg.eval_fraction]
    evaluation = [e for e in examples if bucket(e) < cfg.eval_fraction]
    return train, evaluation


def trl_args(cfg: TrainConfig, config_class, default_lr: float, has_eval: bool, **extra):
    """A TRL (or transformers) config object from the shared settings, plus the backend's `extra`."""
    eval_steps = cfg.eval_steps or cfg.logging_steps * 5
    save_steps = cfg.save_steps
    if cfg.early_stopping_patience:  # the best checkpoint is reloaded at the end: save at every evaluation
        extra.update(load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False)
        save_steps = eval_steps
    return config_class(
        output_dir=cfg.output, max_steps=cfg.max_steps, num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate or default_lr, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.gradient_accumulation,
        seed=cfg.seed, data_seed=cfg.seed, max_grad_norm=cfg.max_grad_norm,
        gradient_checkpointing=cfg.gradient_checkpointing, logging_steps=cfg.logging_steps,
        eval_strategy="steps" if has_eval else "no", eval_steps=eval_steps if has_eval else None,
        save_steps=save_steps, save_total_limit=2, report_to=cfg.report_to, deepspeed=deepspeed_config(cfg),
        use_cpu=device(cfg) == "cpu", include_num_input_tokens_seen="all", **precision_flags(cfg), **extra)


def lora_config(cfg: TrainConfig, samples: int, task_type: str = "CAUSAL_LM", model=None):
    """peft's LoraConfig from `cfg.peft` (None when training all weights); with `train_last_layers`, adapters
    on the top layers of `model` only."""
    if cfg.peft is None:
        return None
    from peft import LoraConfig

    rank = cfg.peft.resolved_rank(samples)
    targets = "all-linear" if cfg.peft.target_modules == "auto" else cfg.peft.target_modules
    layers = top_layers(model, cfg.train_last_layers) if cfg.train_last_layers and model is not None else None
    if layers is not None and targets == "all-linear":
        raise TrainError("train_last_layers with LoRA needs peft.target_modules named (e.g. [q_proj, v_proj]); "
                         "peft cannot restrict 'all-linear' to some layers")
    return LoraConfig(r=rank, lora_alpha=cfg.peft.alpha or 2 * rank, lora_dropout=cfg.peft.dropout,
                      target_modules=targets, use_dora=cfg.peft.method == "dora", task_type=task_type,
                      layers_to_transform=layers)


def last_checkpoint(output: str) -> str | None:
    """The newest complete checkpoint in `output`: the trainer writes `trainer_state.json` last, so a run
    killed while saving leaves a folder without it, which is passed over."""
    folders = [p for p in Path(output).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
               and (p / "trainer_state.json").is_file()] if Path(output).is_dir() else []
    return str(max(folders, key=lambda p: int(p.name.split("-")[-1]))) if folders else None


def _tokens_trained(trainer) -> float:
    """Tokens the run went through, for trainers that do not count them (TRL's ORPO and CPO build their own
    batches): the mean tokenized length of a training example times the examples the steps consumed."""
    dataset = trainer.train_dataset
    columns = [c for c in getattr(dataset, "column_names", None) or [] if c.endswith("input_ids")]
    if not columns or not len(dataset):
        return 0.0
    sample = dataset.select(range(min(len(dataset), 1000)))
    per_example = sum(len(ids) for c in columns for ids in sample[c]) / len(sample)
    args = trainer.args
    consumed = trainer.state.global_step * args.per_device_train_batch_size * args.gradient_accumulation_steps
    return per_example * consumed * max(1, args.world_size)


def fit(trainer, cfg: TrainConfig, tokenizer) -> TrainResult:
    """Train (from the newest checkpoint with `cfg.resume`), save the model and tokenizer to `cfg.output`
    (LoRA merged into the weights with `peft.merge`), and return the run's figures."""
    from transformers import EarlyStoppingCallback

    resume = last_checkpoint(cfg.output) if cfg.resume else None
    if cfg.resume and resume is None:
        log.warning("resume: no checkpoint in %s, starting from the beginning", cfg.output)
    from train.callbacks import EvalSuiteCallback, OverfittingWarning

    trainer.add_callback(OverfittingWarning())
    if cfg.early_stopping_patience:
        trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    if cfg.eval_suite is not None:
        trainer.add_callback(EvalSuiteCallback(cfg.eval_suite, tokenizer, trainer))
    output = trainer.train(resume_from_checkpoint=resume)
    model = trainer.model
    if cfg.peft is not None and cfg.peft.merge:
        model = model.merge_and_unload()
    model.save_pretrained(cfg.output)
    tokenizer.save_pretrained(cfg.output)
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    metrics = {"train_loss": float(output.training_loss), "steps": float(trainer.state.global_step),
               "seconds": float(output.metrics.get("train_runtime", 0.0))}
    if losses:
        head, tail = losses[: max(1, len(losses) // 5)], losses[-max(1, len(losses) // 5):]
        metrics.update(loss_first=sum(head) / len(head), loss_last=sum(tail) / len(tail))
    if evals:
        metrics["eval_loss"] = evals[-1]
    tokens = getattr(trainer.state, "num_input_tokens_seen", 0) or _tokens_trained(trainer)
    if tokens and metrics["seconds"] > 0:
        metrics["tokens_per_second"] = tokens / metrics["seconds"]
    return TrainResult(Path(cfg.output), {k: v for k, v in metrics.items() if math.isfinite(v)})
