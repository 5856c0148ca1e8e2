"""The memory preflight (`train.memory`): parameter counts from config.json against real models, the estimate
of a Llama-7B-shaped config against the well-known figures, the recommendations, and the report."""

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the train extra is part of the dev install (make install-dev)")

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from train import memory
from train.backend import TrainError
from train.config import PeftSettings, TrainConfig
from train.memory import GiB, count_parameters, estimate, preflight_report, recommend

CPU_RAM = 64 * GiB


def small_gpt2() -> GPT2LMHeadModel:
    return GPT2LMHeadModel(GPT2Config(vocab_size=500, n_positions=128, n_embd=64, n_layer=3, n_head=4))


def small_llama() -> LlamaForCausalLM:
    return LlamaForCausalLM(LlamaConfig(vocab_size=700, hidden_size=96, intermediate_size=256, num_hidden_layers=2,
                                        num_attention_heads=6, num_key_value_heads=2, tie_word_embeddings=False))


def small_llama_tied() -> LlamaForCausalLM:
    return LlamaForCausalLM(LlamaConfig(vocab_size=700, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, tie_word_embeddings=True))


def llama_7b(folder: Path, dtype: str | None = None) -> Path:
    """A config.json shaped as Llama-2-7B, no weights (only ever built on the meta device)."""
    LlamaConfig(hidden_size=4096, num_hidden_layers=32, vocab_size=32000, intermediate_size=11008,
                num_attention_heads=32, dtype=dtype).save_pretrained(folder)
    assert [p.name for p in folder.iterdir()] == ["config.json"]
    return folder


@pytest.fixture(scope="module")
def shape7b(tmp_path_factory):
    return count_parameters(llama_7b(tmp_path_factory.mktemp("llama7b")))


@pytest.fixture(scope="module")
def shape7b_bf16(tmp_path_factory):
    return count_parameters(llama_7b(tmp_path_factory.mktemp("llama7b_bf16"), "bfloat16"))


def config(method: str = "sft", **kw) -> TrainConfig:
    return TrainConfig(**{"method": method, "model": "models/llama-7b", "data": ["data.jsonl"], "output": "out",
                          "precision": "bf16", "batch_size": 4, "max_length": 1024, **kw})


def weight_state_bytes(plan) -> int:
    return plan.weights + plan.gradients + plan.optimizer


# (a) parameter counts from config.json equal the instantiated models'


@pytest.mark.parametrize("build", [small_gpt2, small_llama, small_llama_tied], ids=["gpt2", "llama", "llama-tied"])
def test_count_parameters_equals_the_real_model(tmp_path: Path, build):
    torch.manual_seed(0)
    model = build()
    model.save_pretrained(tmp_path)
    shape = count_parameters(tmp_path)
    assert shape.params == sum(p.numel() for p in model.parameters())
    cfg = model.config
    assert (shape.hidden, shape.layers, shape.vocab, shape.heads) == (
        cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size, cfg.num_attention_heads)
    assert shape.dtype == "float32"


@pytest.mark.parametrize("build", [small_gpt2, small_llama], ids=["gpt2", "llama"])
def test_adapter_parameters_equal_peft(tmp_path: Path, build):
    from peft import LoraConfig, get_peft_model

    model = build()
    model.save_pretrained(tmp_path)
    shape = count_parameters(tmp_path)
    for rank, targets in ((8, "auto"), (4, ["c_attn"] if isinstance(model, GPT2LMHeadModel) else ["q_proj", "v_proj"])):
        peft_model = get_peft_model(build(), LoraConfig(r=rank, target_modules="all-linear" if targets == "auto"
                                                        else targets, task_type="CAUSAL_LM"))
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        assert shape.adapter_params(rank, targets) == trainable > 0


def saved_activation_bytes(model, seq: int, batch: int) -> int:
    """Bytes autograd keeps for the backward pass of the decoder (weights left out), one forward in training."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model.base_model(input_ids=torch.randint(0, 500, (batch, seq)))
    return sum(saved.values())


# not gpt2-dropout with SDPA: with dropout on CPU, SDPA falls back to the math kernel, which keeps more than on a GPU
@pytest.mark.parametrize(("arch", "attention"), [("gpt2", "sdpa"), ("gpt2", "eager"), ("gpt2-dropout", "eager"),
                                                 ("llama-gqa", "sdpa"), ("llama-gqa", "eager"), ("llama-gelu", "sdpa"),
                                                 ("llama-gelu", "eager")])
def test_layer_activations_match_what_autograd_saves(tmp_path: Path, arch, attention):
    """The per-layer activation estimate against the tensors autograd keeps for a real bf16 forward: the
    difference between a 4- and a 2-layer model is two layers' worth, whatever the embeddings keep."""
    def build(layers: int):
        torch.manual_seed(0)
        if arch.startswith("gpt2"):  # LayerNorm, gelu_new MLP, with or without GPT-2's default dropout 0.1
            drop = 0.1 if arch == "gpt2-dropout" else 0.0
            return GPT2LMHeadModel(GPT2Config(vocab_size=500, n_positions=256, n_embd=128, n_layer=layers, n_head=4,
                                              resid_pdrop=drop, attn_pdrop=drop, embd_pdrop=drop))
        return LlamaForCausalLM(LlamaConfig(  # RMSNorm, gated MLP, grouped-query attention
            vocab_size=500, hidden_size=128, intermediate_size=344, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2 if arch == "llama-gqa" else 4, hidden_act="silu" if arch == "llama-gqa" else "gelu"))

    seq, batch, measured = 128, 2, {}
    for layers in (2, 4):
        model = build(layers)
        model.config._attn_implementation = attention
        model.save_pretrained(tmp_path / str(layers))
        measured[layers] = saved_activation_bytes(model.to(torch.bfloat16).train(), seq, batch)
    per_layer = (measured[4] - measured[2]) / 2
    shape = count_parameters(tmp_path / "4")
    shape = replace(shape, attention=attention)
    assert memory.layer_activation_bytes(shape, seq, batch) == pytest.approx(per_layer, rel=0.08)


def test_count_parameters_of_a_7b_config_reads_no_weights(tmp_path: Path):
    started = time.time()
    shape = count_parameters(llama_7b(tmp_path))
    assert time.time() - started < 60
    assert shape.params == 6_738_415_616  # Llama-2-7B
    assert (shape.hidden, shape.layers, shape.vocab, shape.heads, shape.kv_heads) == (4096, 32, 32000, 32, 32)


def test_count_parameters_without_config_is_a_train_error(tmp_path: Path):
    with pytest.raises(TrainError, match="config.json"):
        count_parameters(tmp_path)


# (b) the estimate against the well-known figures


def test_full_finetuning_is_16_bytes_per_parameter(shape7b, shape7b_bf16):
    # fp32 checkpoint with bf16 autocast: fp32 weights, gradients, m and v
    plan = estimate(config(), shape7b, [80 * GiB], CPU_RAM)
    assert weight_state_bytes(plan) == 16 * shape7b.params
    assert 100 <= weight_state_bytes(plan) / GiB <= 115
    # DeepSpeed bf16: half weights and gradients, fp32 master weights, m and v
    plan = estimate(config(), shape7b_bf16, [80 * GiB], CPU_RAM, zero=1)
    assert (plan.weights, plan.gradients, plan.optimizer) == tuple(n * shape7b.params for n in (2, 2, 12))
    # a bf16 checkpoint without DeepSpeed is trained in place in bf16 (see the next test): 8 bytes/param
    plan = estimate(config(), shape7b_bf16, [80 * GiB], CPU_RAM)
    assert weight_state_bytes(plan) == 8 * shape7b.params
    assert plan.activations > 0 and plan.total == weight_state_bytes(plan) + plan.activations


def test_a_bf16_checkpoint_trains_in_bf16_without_master_weights(tmp_path: Path):
    """What the 8 bytes/param above rests on: transformers loads the stored dtype and AdamW keeps m and v in it."""
    from transformers import Trainer, TrainingArguments

    from train import hf

    small_gpt2().to(torch.bfloat16).save_pretrained(tmp_path / "model")
    model = hf.load_causal_lm(TrainConfig(method="sft", model=str(tmp_path / "model"), data=["x"], output="o"))
    assert next(model.parameters()).dtype == torch.bfloat16
    batch = [{"input_ids": torch.arange(16) % 500, "labels": torch.arange(16) % 500}] * 2
    args = TrainingArguments(output_dir=str(tmp_path / "out"), bf16=True, use_cpu=True, max_steps=1, report_to=[],
                             per_device_train_batch_size=2, save_strategy="no")
    trainer = Trainer(model=model, args=args, train_dataset=batch)
    trainer.train()
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    state = next(iter(optimizer.state.values()))
    assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == torch.bfloat16
    assert next(trainer.model.parameters()).dtype == torch.bfloat16


def test_zero_stages_divide_the_states_and_offload_moves_them_to_cpu(shape7b):
    eight = [80 * GiB] * 8
    plans = [estimate(config(), shape7b, eight, 1024 * GiB, zero=z) for z in (0, 1, 2, 3)]
    P = shape7b.params
    assert plans[1].optimizer == 12 * P // 8 and plans[1].gradients == 2 * P
    assert plans[2].gradients == 2 * P // 8 and plans[2].weights == 2 * P
    assert plans[3].weights == 2 * P // 8
    assert [p.total for p in plans] == sorted((p.total for p in plans), reverse=True)
    assert plans[3].fits and not plans[0].fits  # ZeRO-3 over 8x80 GiB fits, plain data parallel does not
    offload = estimate(config(), shape7b, eight, 1024 * GiB, zero=3, offload=True)
    assert offload.weights == offload.optimizer == 0 and offload.offloaded >= 16 * P
    assert offload.total < plans[3].total
    assert not estimate(config(), shape7b, eight, 64 * GiB, zero=3, offload=True).fits  # CPU RAM too small


def test_one_24gib_gpu_does_not_fit_full_finetuning_but_lora_or_qlora(shape7b, shape7b_bf16):
    for shape in (shape7b, shape7b_bf16):
        assert not estimate(config(), shape, [24 * GiB], CPU_RAM).fits
        assert not estimate(config(gradient_checkpointing=True), shape, [24 * GiB], CPU_RAM).fits
        lines = recommend(config(), shape, [24 * GiB], CPU_RAM)
        assert any("does not fit" in line for line in lines)
        fits_with = lines[-1]
        assert fits_with.startswith("fits with: ") and "LoRA rank 16" in fits_with, lines
    # a bf16 checkpoint fits with plain LoRA; an fp32 one (25 GiB of frozen fp32 weights) only with QLoRA
    assert recommend(config(), shape7b_bf16, [24 * GiB], CPU_RAM)[-1].startswith("fits with: LoRA rank 16 (")
    assert recommend(config(), shape7b, [24 * GiB], CPU_RAM)[-1].startswith("fits with: QLoRA rank 16 (")
    qlora = estimate(config(peft=PeftSettings(rank=16)), shape7b_bf16, [24 * GiB], CPU_RAM, qlora=True)
    lora = estimate(config(peft=PeftSettings(rank=16)), shape7b_bf16, [24 * GiB], CPU_RAM)
    assert qlora.weights < 0.35 * lora.weights and qlora.gradients == lora.gradients > 0
    assert 3.5 * GiB < qlora.weights < 4.5 * GiB  # ~0.56 byte per linear weight, bf16 embeddings and head


def test_on_cpu_qlora_is_never_recommended(shape7b, shape7b_bf16):
    for shape in (shape7b, shape7b_bf16):
        for ram in (8 * GiB, 64 * GiB, 512 * GiB):
            for cfg in (config(precision="auto"), config(precision="auto", peft=PeftSettings(rank=8))):
                report = "\n".join(recommend(cfg, shape, [], ram))
                assert "QLoRA" not in report and "ZeRO" not in report
                assert "in CPU RAM" in report
    assert estimate(config(), shape7b, [], CPU_RAM, qlora=True, zero=3).adapters is False


def test_preference_methods_and_their_reference_model(shape7b_bf16):
    gpu, P = [80 * GiB], shape7b_bf16.params
    sft, dpo = (estimate(config(m), shape7b_bf16, gpu, CPU_RAM) for m in ("sft", "dpo"))
    assert sft.reference == 0 and dpo.reference == 2 * P
    assert dpo.activations == 2 * sft.activations  # chosen and rejected
    assert dpo.total - sft.total == dpo.reference + sft.activations
    assert estimate(config("orpo"), shape7b_bf16, gpu, CPU_RAM).reference == 0  # reference-free
    kto = estimate(config("kto"), shape7b_bf16, gpu, CPU_RAM)
    assert kto.reference == 2 * P and kto.activations == sft.activations
    # with LoRA the adapter-free base is the reference: no second copy
    assert estimate(config("dpo", peft=PeftSettings(rank=8)), shape7b_bf16, gpu, CPU_RAM).reference == 0
    # under ZeRO-3 the reference is sharded too
    assert estimate(config("dpo"), shape7b_bf16, gpu * 8, CPU_RAM, zero=3).reference == 2 * P // 8


def test_gradient_checkpointing_lowers_activations(shape7b):
    plain, checkpointed = (estimate(config(gradient_checkpointing=g), shape7b, [80 * GiB], CPU_RAM)
                           for g in (False, True))
    assert checkpointed.activations < plain.activations / 5
    s, b, h, L = 1024, 4, 4096, 32
    layer = memory.layer_activation_bytes(shape7b, s, b)
    assert layer == s * b * h * (8 + 4 + 2 + 8 * 11008 / 4096 + 12)  # attention, gated MLP, RMSNorms; SDPA
    assert plain.activations == int(L * layer)
    assert checkpointed.activations == int(L * 2 * s * b * h + layer)
    # an fp32 checkpoint trained in fp32 keeps fp32 activations
    assert estimate(config(precision="auto"), shape7b, [], CPU_RAM).activations == 2 * plain.activations
    # eager attention keeps the scores: 6·a·s/h more per layer
    eager = replace(shape7b, attention="eager")
    assert memory.layer_activation_bytes(eager, s, b) == layer + s * b * h * 6 * 32 * s / h


def test_grpo_counts_the_generation_kv_cache(shape7b_bf16):
    cfg = config("grpo", gradient_accumulation=2)
    plan = estimate(cfg, shape7b_bf16, [80 * GiB], CPU_RAM)
    assert plan.generation == 2 * 32 * 32 * 128 * 2 * 1024 * (4 * 2)  # K and V, bf16, batch x steps_per_generation
    assert plan.reference == 0  # TRL's grpo beta defaults to 0
    assert estimate(config("grpo", options={"beta": 0.04}), shape7b_bf16, [80 * GiB], CPU_RAM).reference > 0
    assert estimate(config("rloo"), shape7b_bf16, [80 * GiB], CPU_RAM).reference > 0


def test_the_configured_deepspeed_is_what_is_estimated(tmp_path: Path, shape7b_bf16):
    eight = [80 * GiB] * 8
    for template, kw in (("zero2", {"zero": 2}), ("zero3", {"zero": 3}), ("zero3_offload", {"zero": 3, "offload": True})):
        assert estimate(config(deepspeed=template), shape7b_bf16, eight, 1024 * GiB) == \
            estimate(config(), shape7b_bf16, eight, 1024 * GiB, **kw)
    own = tmp_path / "ds.json"  # a user's file: stage 2, optimizer on CPU
    own.write_text(json.dumps({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}}))
    plan = estimate(config(deepspeed=str(own)), shape7b_bf16, eight, 1024 * GiB)
    assert plan.optimizer == 0 and plan.weights == 2 * shape7b_bf16.params and plan.offloaded > 0
    assert "ZeRO-2 + CPU offload over 8 GPUs" in plan.label
    # what the config already does is not offered again
    lines = recommend(config(deepspeed="zero3"), shape7b_bf16, [16 * GiB] * 8, 1024 * GiB)
    assert not any(line.startswith(("  ZeRO-2", "  ZeRO-3 over")) for line in lines)
    assert any(line.startswith("  ZeRO-3 + CPU offload over 8 GPUs") for line in lines), lines


def test_training_the_top_layers_only(shape7b_bf16):
    full, top = (estimate(config(train_last_layers=f), shape7b_bf16, [80 * GiB], CPU_RAM) for f in (None, 0.25))
    assert top.weights == full.weights
    assert top.gradients == pytest.approx(full.gradients / 4, rel=0.05)
    assert top.activations == full.activations / 4 and "top 8 of 32 layers" in top.label
    lora = estimate(config(train_last_layers=0.25, peft=PeftSettings(rank=8, target_modules=["q_proj", "v_proj"])),
                    shape7b_bf16, [80 * GiB], CPU_RAM)
    assert lora.gradients == 4 * 8 * (4096 + 4096) * 2 * 8  # fp32, rank 8, q and v, 8 layers


def test_qlora_from_the_config_and_the_rl_beta_default(shape7b_bf16):
    gpu = [24 * GiB]
    try:
        qlora_cfg = config(peft=PeftSettings(method="qlora", rank=16))
    except ValueError:
        qlora_cfg = None
    if qlora_cfg is not None:
        assert estimate(qlora_cfg, shape7b_bf16, gpu, CPU_RAM) == \
            estimate(config(peft=PeftSettings(rank=16)), shape7b_bf16, gpu, CPU_RAM, qlora=True)
    assert estimate(config("grpo", options={"beta": None}), shape7b_bf16, gpu, CPU_RAM).reference == 0
    assert estimate(config("rloo", options={"beta": None}), shape7b_bf16, gpu, CPU_RAM).reference > 0
    reward, pretrain = (estimate(config(m), shape7b_bf16, gpu, CPU_RAM) for m in ("reward", "pretrain"))
    assert reward.reference == 0 and reward.weights < pretrain.weights  # a score head instead of the LM head
    layer = memory.layer_activation_bytes(shape7b_bf16, 1024, 4)
    assert reward.activations == int(32 * 2 * layer)  # pairs, no vocabulary logits
    assert pretrain.activations == int(32 * layer + 1024 * 4 * 32000 * 10)  # plain Trainer: full logits


# (c) the report


def test_report_is_readable_and_carries_the_numbers(tmp_path: Path, monkeypatch, shape7b_bf16):
    folder = llama_7b(tmp_path / "llama", "bfloat16")
    monkeypatch.setattr(memory, "visible_devices", lambda: ([24 * GiB], CPU_RAM))
    cfg = config(model=str(folder))
    report = preflight_report(cfg)
    plan = estimate(cfg, shape7b_bf16, [24 * GiB], CPU_RAM)
    lora = estimate(config(model=str(folder), gradient_checkpointing=True, peft=PeftSettings(rank=16)),
                    shape7b_bf16, [24 * GiB], CPU_RAM)
    assert "6.74B parameters" in report and "32 layers" in report
    assert f"full fine-tuning in bf16 needs ~{plan.total / GiB:.1f} GiB per GPU; 1 GPU has 24.0 GiB" in report
    assert "does not fit" in report
    assert f"fits with: LoRA rank 16 ({lora.total / GiB:.1f} GiB)" in report
    for line in report.splitlines()[2:7]:  # the table: weights, gradients, optimizer, activations, total
        assert line.split()[1].replace(".", "").isdigit() and line.split()[2] == "GiB", line

    monkeypatch.setattr(memory, "visible_devices", lambda: ([40 * GiB] * 8, 1024 * GiB))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    report = preflight_report(cfg)
    assert "8 GPUs have 40.0 GiB each" in report and "fits with: ZeRO-2 over 8 GPUs (" in report
    assert "torchrun --nproc_per_node 8" in report  # ZeRO needs a process per GPU


def test_report_of_a_small_model_that_fits(tmp_path: Path, monkeypatch):
    small_gpt2().save_pretrained(tmp_path)
    monkeypatch.setattr(memory, "visible_devices", lambda: ([], 16 * GiB))
    report = preflight_report(TrainConfig(method="sft", model=str(tmp_path), data=["x"], output="o"))
    assert report.splitlines()[-1].endswith("CPU RAM is 16.0 GiB (14.4 GiB usable): fits"), report
    assert "alternatives" not in report
    assert "not estimated" in preflight_report(TrainConfig(method="pretrain", data=["x"], output="o"))


def test_visible_devices_on_this_machine():
    gpus, ram = memory.visible_devices()
    assert ram > 256 * 2**20 and all(g > 0 for g in gpus)
    assert len(gpus) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


def test_the_7b_config_written_is_plain_json(tmp_path: Path):
    data = json.loads((llama_7b(tmp_path, "bfloat16") / "config.json").read_text())
    assert data["hidden_size"] == 4096 and data["dtype"] == "bfloat16"
