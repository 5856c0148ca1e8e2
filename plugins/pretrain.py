"""`pretrain`: language-model pretraining on plain text, such as `corpus clean` output.

From scratch (no `model`: a config of the chosen architecture and size, and a byte-level BPE tokenizer
trained on the corpus) or continued from a local model. Texts are tokenized, joined with EOS and cut into
blocks of `max_length` tokens (sequence packing: no padding is trained on). `objective: mlm` pretrains an
encoder (BERT) with 15% of tokens masked.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from train.backend import Backend, TrainError, TrainResult
from train.config import TrainConfig

log = logging.getLogger("train")


class PretrainOptions(BaseModel):
    """Options of the `pretrain` method; the size options apply only when training from scratch."""

    model_config = ConfigDict(extra="forbid")
    objective: Literal["causal", "mlm"] = "causal"
    text_field: str = "text"
    architecture: Literal["llama", "gpt2"] = "llama"  # causal models from scratch; mlm uses BERT
    vocab_size: int = Field(32000, ge=300)
    hidden_size: int = Field(512, ge=8)
    layers: int = Field(8, ge=1)
    heads: int = Field(8, ge=1)
    mlm_probability: float = Field(0.15, gt=0, lt=1)


def scratch_model(options: PretrainOptions, tokenizer, max_length: int):
    """A randomly initialised model of the configured architecture and size for `tokenizer`."""
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if options.hidden_size % options.heads:
        raise TrainError(f"options.hidden_size ({options.hidden_size}) must be a multiple of options.heads "
                         f"({options.heads})")
    size = {"vocab_size": len(tokenizer)}
    if options.objective == "mlm":
        return BertForMaskedLM(BertConfig(**size, hidden_size=options.hidden_size, num_hidden_layers=options.layers,
                                          num_attention_heads=options.heads, intermediate_size=4 * options.hidden_size,
                                          max_position_embeddings=max_length + 2, pad_token_id=tokenizer.pad_token_id))
    ids = {"bos_token_id": tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    if options.architecture == "gpt2":
        return GPT2LMHeadModel(GPT2Config(**size, **ids, n_positions=max_length, n_embd=options.hidden_size,
                                          n_layer=options.layers, n_head=options.heads))
    return LlamaForCausalLM(LlamaConfig(**size, **ids, hidden_size=options.hidden_size,
                                        intermediate_size=int(8 / 3 * options.hidden_size) // 8 * 8,
                                        num_hidden_layers=options.layers, num_attention_heads=options.heads,
                                        num_key_value_heads=options.heads, max_position_embeddings=max_length,
                                        tie_word_embeddings=True))


def pack(texts: list[str], tokenizer, block: int, mlm: bool) -> list[dict]:
    """Token blocks of exactly `block` tokens: texts joined by EOS (causal) or each wrapped in [CLS] ... [SEP]
    (mlm); the remainder shorter than a block is dropped."""
    ids: list[int] = []
    for text in texts:
        if mlm:
            ids += tokenizer(text, add_special_tokens=True)["input_ids"]
        else:
            ids += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return [{"input_ids": ids[i:i + block]} for i in range(0, len(ids) - block + 1, block)]


class PretrainBackend(Backend):
    """Causal- or masked-LM pretraining with transformers' Trainer on packed blocks."""

    name = "pretrain"
    Options = PretrainOptions

    def train(self, cfg: TrainConfig, options: PretrainOptions) -> TrainResult:
        from datasets import Dataset
        from transformers import (
            AutoModelForCausalLM,
            AutoModelForMaskedLM,
            DataCollatorForLanguageModeling,
            Trainer,
            TrainingArguments,
        )

        from train import data as formats
        from train import hf
        from train.tokenizer import train_bpe_tokenizer

        loaded = formats.load(cfg.data, formats.to_text(options.text_field))
        held_out = formats.load(cfg.eval_data, formats.to_text(options.text_field)).examples if cfg.eval_data else None
        train_texts, eval_texts = hf.split(loaded.examples, cfg, held_out)
        loaded.write_rejects(Path(cfg.output))
        mlm = options.objective == "mlm"
        if cfg.model:
            tokenizer = hf.load_tokenizer(cfg.model, cfg)
            auto = AutoModelForMaskedLM if mlm else AutoModelForCausalLM
            model = auto.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code)
        else:
            tokenizer = train_bpe_tokenizer((t["text"] for t in train_texts), options.vocab_size, mlm=mlm)
            if not mlm:
                tokenizer.chat_template = hf.DEFAULT_CHAT_TEMPLATE
            model = scratch_model(options, tokenizer, cfg.max_length)
        train_set = pack([t["text"] for t in train_texts], tokenizer, cfg.max_length, mlm)
        eval_set = pack([t["text"] for t in eval_texts], tokenizer, cfg.max_length, mlm)
        if not train_set:
            raise TrainError(f"the training text of {cfg.data} is shorter than one block of max_length "
                             f"({cfg.max_length}) tokens")
        args = hf.trl_args(cfg, TrainingArguments, 3e-4 if not cfg.model else 5e-5, bool(eval_set))
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=mlm, mlm_probability=options.mlm_probability)
        trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(train_set),
                          eval_dataset=Dataset.from_list(eval_set) if eval_set else None, data_collator=collator,
                          processing_class=tokenizer)
        result = hf.fit(trainer, cfg, tokenizer)
        result.metrics.update(blocks=float(len(train_set)), documents=float(len(train_texts)))
        return result
