"""Training backends on CPU with tiny models built here, on real data from the workspace: the loss falls."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SAMPLE, read_jsonl

pytest.importorskip("trl", reason="the train extra is part of the dev install (make install-dev)")

from corpus.config import ConfigError
from train import TrainConfig, TrainError, available_backends, load_train_config, run
from train.tiny import build_tiny_gpt2

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = Path(__file__).resolve().parent / "data" / "train"


def tiny(folder: Path, texts: list[str]) -> Path:
    return build_tiny_gpt2(folder, texts, vocab_size=800)


def texts_of(path: Path, *fields: str) -> list[str]:
    out = []
    for r in read_jsonl(path):
        out += [json.dumps(r[f], ensure_ascii=False) if not isinstance(r[f], str) else r[f] for f in fields if f in r]
    return out


def common(tmp_path: Path, **kw) -> dict:
    return {"output": str(tmp_path / "out"), "max_steps": 40, "batch_size": 8, "learning_rate": 5e-3,
            "max_length": 128, "logging_steps": 5, "report_to": [], "device": "cpu", **kw}


def test_builtin_backends_are_registered_through_entry_points():
    assert {"sft", "dpo", "pretrain"} <= set(available_backends())


def test_sft_loss_falls_on_instruction_data(tmp_path: Path):
    data = DATA / "self_instruct.jsonl"
    model = tiny(tmp_path / "base", texts_of(data, "instruction", "output"))
    result = run(TrainConfig(method="sft", model=str(model), data=[str(data)], **common(tmp_path)))
    m = result.metrics
    assert m["loss_last"] < m["loss_first"] - 0.5, m
    assert m["steps"] == 40 and m["tokens_per_second"] > 0 and "eval_loss" in m
    manifest = json.loads((result.output / "train.json").read_text())
    assert manifest["config"]["method"] == "sft" and manifest["metrics"] == m
    # the trained folder carries the chat template its data was rendered with
    assert "<|im_start|>" in json.loads((result.output / "tokenizer_config.json").read_text()).get("chat_template", "") \
        or (result.output / "chat_template.jinja").is_file()


def test_dpo_loss_falls_on_preference_data(tmp_path: Path):
    data = DATA / "hh_rlhf.jsonl"
    model = tiny(tmp_path / "base", texts_of(data, "prompt", "chosen", "rejected"))
    result = run(TrainConfig(method="dpo", model=str(model), data=[str(data)],
                             **common(tmp_path, learning_rate=1e-3, max_steps=20, batch_size=4, max_length=384)))
    m = result.metrics
    assert m["loss_first"] == pytest.approx(0.693, abs=0.05)  # DPO starts at ln 2: policy == reference
    assert m["loss_last"] < m["loss_first"] - 0.05, m


def test_pretrain_from_scratch_on_corpus_clean_output(tmp_path: Path):
    """`corpus clean` output folder in, a Llama-style model with its own tokenizer out."""
    from corpus.config import load_config
    from corpus.pipeline import clean

    cleaned = tmp_path / "clean"
    clean([str(SAMPLE / "web_en.jsonl")], cleaned, load_config(overrides={"executor": {"workers": 1}}),
          steps=["normalize", "heuristics"])
    result = run(TrainConfig(method="pretrain", data=[str(cleaned)],
                             options={"architecture": "llama", "vocab_size": 600, "hidden_size": 64, "layers": 2,
                                      "heads": 2}, **common(tmp_path)))
    m = result.metrics
    assert m["loss_last"] < m["loss_first"] - 0.4, m
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(result.output).config.model_type == "llama"


def test_bad_records_are_rejected_with_file_line_and_field(tmp_path: Path):
    data = tmp_path / "mixed.jsonl"
    good = read_jsonl(DATA / "self_instruct.jsonl")[:40]
    lines = [json.dumps(r) for r in good] + ["{not json", json.dumps({"instruction": "hi"}),
                                             json.dumps({"messages": [{"role": "user", "content": 3}]})]
    data.write_text("\n".join(lines) + "\n")
    model = tiny(tmp_path / "base", [r["output"] for r in good])
    result = run(TrainConfig(method="sft", model=str(model), data=[str(data)], **common(tmp_path, max_steps=2)))
    rejects = read_jsonl(result.output / "rejects.jsonl")
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (41, "not valid JSON (unexpected character, expected a string key)"),
        (42, "field 'output' must be a string"),
        (43, "field 'messages[0].content' must be a string")]
    assert result.metrics["rejected"] == 3


def test_config_errors_name_the_option(tmp_path: Path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("method: sft\noutput: out\ndata: x.jsonl\nlerning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"train.yaml: lerning_rate: unknown option"):
        load_train_config(cfg)
    with pytest.raises(TrainError, match="unknown training method 'ppo'; installed: .*dpo.*sft"):
        run(TrainConfig(method="ppo", output=str(tmp_path / "o"), data=["x"]))
    with pytest.raises(ConfigError, match="options of method 'dpo': bta: unknown option"):
        run(TrainConfig(method="dpo", output=str(tmp_path / "o"), data=["x"], options={"bta": 0.1}))
    with pytest.raises(TrainError, match="precision: fp16 needs a GPU"):
        run(TrainConfig(method="sft", model=str(tmp_path), output=str(tmp_path / "o"),
                        data=[str(DATA / "self_instruct.jsonl")], precision="fp16", device="cpu"))


def test_third_party_plugin_package_trains_through_the_registry(tmp_path: Path, monkeypatch):
    """A throwaway package, installed with pip, registers a method through the entry-point group alone."""
    pkg = tmp_path / "src"
    (pkg / "echo_trainer").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "echo-trainer"\nversion = "0.0.1"\n'
        '[project.entry-points."corpusloop.train_backends"]\necho_sft = "echo_trainer:EchoSFT"\n')
    (pkg / "echo_trainer" / "__init__.py").write_text(
        "from pydantic import BaseModel\n"
        "from plugins.sft import SFTBackend\n\n"
        "class EchoOptions(BaseModel):\n    greeting: str = 'hello'\n\n"
        "class EchoSFT(SFTBackend):\n"
        "    name = 'echo_sft'\n    Options = EchoOptions\n\n"
        "    def train(self, cfg, options):\n"
        "        from plugins.sft import SFTOptions\n"
        "        result = super().train(cfg, SFTOptions())\n"
        "        result.metrics['greeting_length'] = float(len(options.greeting))\n"
        "        return result\n")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(pkg)], check=True)
    monkeypatch.syspath_prepend(str(target))
    assert available_backends()["echo_sft"] == "echo_trainer:EchoSFT"
    data = DATA / "self_instruct.jsonl"
    model = tiny(tmp_path / "base", texts_of(data, "instruction", "output"))
    result = run(TrainConfig(method="echo_sft", model=str(model), data=[str(data)], options={"greeting": "hi!"},
                             **common(tmp_path, max_steps=3)))
    assert result.metrics["greeting_length"] == 3.0 and (result.output / "model.safetensors").is_file()


def test_formats_users_have_become_prompt_completion_and_pairs():
    from train.data import RecordError, to_preference, to_prompt_completion

    alpaca = to_prompt_completion({"instruction": "Add.", "input": "2 and 3", "output": "5"})
    assert alpaca == [{"prompt": [{"role": "user", "content": "Add.\n\n2 and 3"}],
                       "completion": [{"role": "assistant", "content": "5"}], "tools": None}]
    sharegpt = to_prompt_completion({"conversations": [{"from": "system", "value": "Be brief."},
                                                       {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]})
    assert [t["role"] for t in sharegpt[0]["prompt"]] == ["system", "user"]
    assert sharegpt[0]["completion"] == [{"role": "assistant", "content": "Hello"}]
    assert to_prompt_completion({"input": "Q", "output": "A"})[0]["completion"][0]["content"] == "A"
    ranked = to_preference({"prompt": "Pick", "responses": [{"text": "b", "rank": 2}, {"text": "a", "rank": 1},
                                                            {"text": "c", "rank": 3}]})
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in ranked] == [("a", "b"), ("b", "c"),
                                                                                           ("a", "c")]
    pair = to_preference({"conversations": [{"from": "human", "value": "Hi"}], "chosen": {"from": "gpt", "value": "Hey"},
                          "rejected": {"from": "gpt", "value": "Go away"}})
    assert pair[0]["rejected"] == [{"role": "assistant", "content": "Go away"}]
    with pytest.raises(RecordError, match="needs 'chosen' and 'rejected'"):
        to_preference({"prompt": "x", "chosen": "y"})


def test_sft_balances_categories_and_mixes_replay_data(tmp_path: Path):
    from plugins.sft import SFTOptions
    from train.backend import load_backend

    data = DATA / "self_instruct.jsonl"
    model = tiny(tmp_path / "base", texts_of(data, "instruction", "output"))
    cfg = TrainConfig(method="sft", model=str(model), data=[str(data)], eval_fraction=0.0,
                      **common(tmp_path, max_steps=1))
    balanced = load_backend("sft").train(cfg, SFTOptions(balance_field="source", balance="downsample"))
    assert balanced.metrics["examples"] == 2 * 125  # both sources cut to the smaller one's 125
    oversampled = load_backend("sft").train(cfg, SFTOptions(balance_field="source", balance="oversample"))
    assert oversampled.metrics["examples"] == 2 * 175
    replay = tmp_path / "general.jsonl"
    replay.write_text("".join(json.dumps({"input": f"say {i}", "output": str(i)}) + "\n" for i in range(50)))
    mixed = load_backend("sft").train(cfg, SFTOptions(replay_data=[str(replay)], replay_ratio=0.2))
    assert mixed.metrics["examples"] == 300 + 75  # 75 / 375 = 20% replay


@pytest.mark.parametrize(("method", "options"), [("orpo", {}), ("simpo", {}), ("kto", {"beta": 0.5})])
def test_reference_free_and_unpaired_preference_methods_lower_their_loss(method: str, options: dict, tmp_path: Path):
    data = DATA / "hh_rlhf.jsonl"
    model = tiny(tmp_path / "base", texts_of(data, "prompt", "chosen", "rejected"))
    result = run(TrainConfig(method=method, model=str(model), data=[str(data)], eval_fraction=0.0, options=options,
                             **common(tmp_path, learning_rate=1e-3, max_steps=60, batch_size=4, max_length=384)))
    m = result.metrics
    assert m["loss_last"] < m["loss_first"] - 0.05, m
    # kto: every pair gives a desirable and an undesirable example
    assert m["examples"] == (2 if method == "kto" else 1) * len(read_jsonl(data))


def test_reward_model_learns_and_reports_held_out_preference_accuracy(tmp_path: Path):
    from transformers import AutoModelForSequenceClassification

    from plugins.reward import preference_accuracy
    from train.data import to_preference
    from train.hf import load_tokenizer

    data = DATA / "hh_rlhf.jsonl"
    model = tiny(tmp_path / "base", texts_of(data, "prompt", "chosen", "rejected"))
    cfg = TrainConfig(method="reward", model=str(model), data=[str(data)], eval_fraction=0.2,
                      **common(tmp_path, learning_rate=1e-3, max_steps=80, batch_size=4, max_length=384))
    result = run(cfg)
    m = result.metrics
    assert m["loss_last"] < m["loss_first"] - 0.1, m
    assert 0.0 <= m["preference_accuracy"] <= 1.0
    scorer = AutoModelForSequenceClassification.from_pretrained(result.output)
    pairs = [p for r in read_jsonl(data)[:40] for p in to_preference(r)]
    # it fits the pairs it was trained on better than chance
    assert preference_accuracy(scorer, load_tokenizer(result.output, cfg), pairs, 384) > 0.6


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_model(tmp_path: Path):
    """SIGKILL a training process after its first checkpoint; `resume: true` finishes it with the same weights
    as a run that was never interrupted."""
    import os
    import signal
    import time

    import torch
    from safetensors.torch import load_file

    data = DATA / "self_instruct.jsonl"
    model = tiny(tmp_path / "base", texts_of(data, "instruction", "output"))
    settings = {"method": "sft", "model": str(model), "data": [str(data)], "save_steps": 10,
                **common(tmp_path, max_steps=30, max_length=256)}
    whole = run(TrainConfig(**{**settings, "output": str(tmp_path / "whole")}))
    broken = tmp_path / "broken"
    script = ("import json, sys\nfrom train import TrainConfig, run\n"
              "run(TrainConfig(**json.loads(sys.argv[1])))\n")
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps({**settings, "output": str(broken)})],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (broken / "checkpoint-10" / "trainer_state.json").is_file() and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL and not (broken / "model.safetensors").is_file()
    resumed = run(TrainConfig(**{**settings, "output": str(broken), "resume": True}))
    assert resumed.metrics["steps"] == 30
    a, b = load_file(whole.output / "model.safetensors"), load_file(resumed.output / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_lora_output_loads_in_evalsuite_and_eval_runs_during_training(tmp_path: Path):
    """LoRA SFT with an evalsuite check every 5 steps; the adapter folder and the merged model both load in
    `evalsuite run`, and merging changes nothing the model computes."""
    pytest.importorskip("lm_eval")
    from evalsuite.run import RunConfig
    from evalsuite.run import run as evaluate

    data = DATA / "self_instruct.jsonl"
    model = tiny(tmp_path / "base", texts_of(data, "instruction", "output"))
    suite = tmp_path / "ppl.yaml"
    suite.write_text("name: ppl\ntasks: [cl_ppl_en]\n")
    settings = {"method": "sft", "model": str(model), "data": [str(data)],
                "eval_suite": {"suite": str(suite), "limit": 3, "every_steps": 5}}
    adapter = run(TrainConfig(**settings, peft={"rank": 8}, **common(tmp_path, max_steps=10)))
    assert (adapter.output / "adapter_config.json").is_file()
    history = json.loads((adapter.output / "checkpoint-10" / "trainer_state.json").read_text())["log_history"]
    logged = [h for h in history if "evalsuite/cl_ppl_en/bits_per_byte" in h]
    assert [h["step"] for h in logged] == [5, 10]
    merged = run(TrainConfig(**settings, peft={"rank": 8, "merge": True},
                             **common(tmp_path, max_steps=10, output=str(tmp_path / "merged"))))
    assert not (merged.output / "adapter_config.json").is_file() and (merged.output / "model.safetensors").is_file()
    figures = [evaluate(RunConfig(model=str(m.output), suite=str(suite), output=str(tmp_path / f"eval-{i}"),
                                  limit=3, batch_size=4)).metrics["cl_ppl_en"]["bits_per_byte,none"]
               for i, m in enumerate((adapter, merged))]
    assert figures[0] == pytest.approx(figures[1], rel=1e-4)
    assert figures[1] == pytest.approx(logged[-1]["evalsuite/cl_ppl_en/bits_per_byte"], rel=1e-4)


def test_gpu_only_options_are_refused_on_cpu_before_loading(tmp_path: Path):
    base = {"model": str(tmp_path), "output": str(tmp_path / "o"), "data": [str(DATA / "self_instruct.jsonl")],
            "device": "cpu"}
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TrainError, match="qlora .* needs a CUDA GPU"):
        run(TrainConfig(method="sft", peft={"method": "qlora"}, **base))
    with pytest.raises(TrainError, match="deepspeed: ZeRO .* on CPU leave deepspeed out"):
        run(TrainConfig(method="sft", deepspeed="zero3", **base))
    with pytest.raises(TrainError, match="neither a shipped template \\(zero2, zero3, zero3_offload\\)"):
        run(TrainConfig(method="sft", deepspeed="zero9", **base))


def test_train_last_layers_freezes_the_rest(tmp_path: Path):
    from train.hf import freeze, load_causal_lm

    data = DATA / "self_instruct.jsonl"
    model_dir = tiny(tmp_path / "base", texts_of(data, "instruction", "output"))
    cfg = TrainConfig(method="sft", model=str(model_dir), output=str(tmp_path / "o"), data=[str(data)],
                      train_last_layers=0.5)
    model = load_causal_lm(cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".h.1." in n or n.startswith("transformer.ln_f") for n in trainable), trainable
    freeze(model, cfg.model_copy(update={"train_last_layers": None}))  # freezing never unfreezes
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable


def test_chat_template_prefix_check(tmp_path: Path):
    from train.hf import load_tokenizer, prefix_preserving

    model_dir = tiny(tmp_path / "base", ["some text to train a tokenizer on"] * 10)
    cfg = TrainConfig(method="sft", model=str(model_dir), output=str(tmp_path / "o"), data=["x"])
    tok = load_tokenizer(model_dir, cfg)
    assert prefix_preserving(tok)  # ChatML, given to a tokenizer without a template
    # a template that renders only the last assistant turn in full, as some reasoning templates do
    tok.chat_template = ("{% for m in messages %}{% if m.role == 'assistant' and not loop.last %}[past]"
                         "{% else %}{{ m.role }}: {{ m.content }}\n{% endif %}{% endfor %}")
    assert not prefix_preserving(tok)


def test_moe_routers_are_frozen_by_default(tmp_path: Path):
    from transformers import MixtralConfig, MixtralForCausalLM

    from train.hf import load_causal_lm

    MixtralForCausalLM(MixtralConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=2, num_key_value_heads=2, num_local_experts=4,
                                     num_experts_per_tok=2)).save_pretrained(tmp_path / "moe")
    cfg = TrainConfig(method="sft", model=str(tmp_path / "moe"), output=str(tmp_path / "o"), data=["x"])
    frozen = {n for n, p in load_causal_lm(cfg).named_parameters() if not p.requires_grad}
    assert frozen == {"model.layers.0.mlp.gate.weight", "model.layers.1.mlp.gate.weight"}
    unfrozen = load_causal_lm(cfg.model_copy(update={"freeze_router": False}))
    assert all(p.requires_grad for p in unfrozen.parameters())


def test_mlm_pretraining_from_scratch(tmp_path: Path):
    from transformers import AutoModelForMaskedLM

    data = tmp_path / "text.jsonl"
    data.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in read_jsonl(SAMPLE / "web_en.jsonl")[:150]))
    result = run(TrainConfig(method="pretrain", data=[str(data)],
                             options={"objective": "mlm", "vocab_size": 600, "hidden_size": 64, "layers": 2,
                                      "heads": 2}, **common(tmp_path)))
    m = result.metrics
    assert m["loss_last"] < m["loss_first"] - 0.4, m
    assert AutoModelForMaskedLM.from_pretrained(result.output).config.model_type == "bert"


def test_early_stopping_overfitting_warning_and_tensorboard(tmp_path: Path, caplog):
    """Memorising 16 examples at a high learning rate: validation loss on other examples climbs, the overfitting
    warning fires, early stopping ends the run before max_steps, and TensorBoard has the curves. Gradient
    checkpointing rides along."""
    import logging

    records = read_jsonl(DATA / "self_instruct.jsonl")
    train_file, eval_file = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in records[:16]))
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in records[200:240]))
    model = tiny(tmp_path / "base", texts_of(DATA / "self_instruct.jsonl", "instruction", "output"))
    with caplog.at_level(logging.WARNING, logger="train"):
        result = run(TrainConfig(method="sft", model=str(model), data=[str(train_file)], eval_data=[str(eval_file)],
                                 early_stopping_patience=3, eval_steps=5, gradient_checkpointing=True,
                                 **common(tmp_path, max_steps=300, learning_rate=5e-3, report_to=["tensorboard"])))
    assert result.metrics["steps"] < 300  # stopped early
    assert "overfitting" in caplog.text
    assert list(result.output.rglob("events.out.tfevents.*"))


def test_dora_adapters_and_rank_auto(tmp_path: Path):
    from train import PeftSettings

    assert [PeftSettings().resolved_rank(n) for n in (999, 1000, 4999, 5000, 19999, 20000)] == [8, 16, 16, 32, 32, 64]
    data = DATA / "self_instruct.jsonl"
    model = tiny(tmp_path / "base", texts_of(data, "instruction", "output"))
    result = run(TrainConfig(method="sft", model=str(model), data=[str(data)], peft={"method": "dora"},
                             **common(tmp_path, max_steps=2)))
    adapter = json.loads((result.output / "adapter_config.json").read_text())
    assert adapter["use_dora"] is True and adapter["r"] == 8  # under 1k samples


def test_tool_schemas_are_rendered_by_the_chat_template_in_training(tmp_path: Path):
    """A record's `tools` reach the tokenizer's chat template, the same rendering evaluation uses."""
    from train.data import RecordError, to_prompt_completion
    from train.hf import load_tokenizer

    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    example = to_prompt_completion({"messages": [{"role": "user", "content": "Weather in Oslo?"},
                                                 {"role": "assistant", "content": "get_weather(city='Oslo')"}],
                                    "tools": [weather]})[0]
    model_dir = tiny(tmp_path / "base", ["some text to train a tokenizer on"] * 10)
    tok = load_tokenizer(model_dir, TrainConfig(method="sft", model=str(model_dir), output="o", data=["x"]))
    rendered = tok.apply_chat_template(example["prompt"], tools=json.loads(example["tools"]), tokenize=False,
                                       add_generation_prompt=True)
    assert rendered.startswith("<|im_start|>system\n# Tools\n<tools>\n{") and '"get_weather"' in rendered
    assert rendered.endswith("<|im_start|>user\nWeather in Oslo?<|im_end|>\n<|im_start|>assistant\n")
    with pytest.raises(RecordError, match="field 'tools' must be a list"):
        to_prompt_completion({"input": "x", "output": "y", "tools": {"name": "f"}})
    data = tmp_path / "tools.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Weather in city {i}?"},
                                                     {"role": "assistant", "content": f"get_weather(city='{i}')"}],
                                        "tools": [weather] if i % 2 else None}) + "\n" for i in range(40)))
    result = run(TrainConfig(method="sft", model=str(model_dir), data=[str(data)], **common(tmp_path, max_steps=2)))
    assert result.metrics["examples"] > 30 and result.metrics["rejected"] == 0


def test_pairs_whose_prompt_fills_max_length_are_rejected(tmp_path: Path):
    """TRL's ORPO does not truncate prompts: without this rule a long prompt overruns the model's positions."""
    data = DATA / "hh_rlhf.jsonl"
    model = tiny(tmp_path / "base", texts_of(data, "prompt", "chosen", "rejected"))
    result = run(TrainConfig(method="orpo", model=str(model), data=[str(data)], eval_fraction=0.0,
                             **common(tmp_path, max_steps=2, batch_size=4, max_length=96)))
    rejects = read_jsonl(result.output / "rejects.jsonl")
    assert rejects and all("leaving too little for the reply" in r["reason"] for r in rejects)
    assert result.metrics["examples"] + len(rejects) == len(read_jsonl(data))
    assert {r["line"] for r in rejects} <= set(range(1, len(read_jsonl(data)) + 1))
