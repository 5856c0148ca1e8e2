"""Memory preflight of a training run: how much GPU (or CPU) memory a `TrainConfig` needs, and which of gradient
checkpointing, ZeRO-2, ZeRO-3, ZeRO-3 with CPU offload, LoRA or QLoRA makes it fit the visible devices, said
before anything loads instead of failing out of memory an hour in.

    from train.memory import preflight_report
    print(preflight_report(cfg))

The model is read from its `config.json` only: built on the meta device (no weights, instant even for a 70B
config) to count its parameters and its linear layers. The figures are estimates per device, in GiB:

* weights, gradients and optimizer states per parameter, AdamW, by the regime the run actually gets:
  - DeepSpeed (any ZeRO stage) in bf16/fp16: 2 + 2 + 12 bytes (half weights and gradients; fp32 master
    weights, m and v), the 16 bytes/param of the ZeRO paper (Rajbhandari et al. 2020, arXiv:1910.02054);
  - no DeepSpeed, checkpoint stored in fp32: 4 + 4 + 8 bytes (fp32 weights, gradients, m and v; bf16 only as
    autocast), again 16 bytes/param;
  - no DeepSpeed, checkpoint stored in bf16/fp16: 2 + 2 + 4 bytes. transformers 5 loads a checkpoint in its
    own dtype (`dtype="auto"`) and the Trainer trains those weights in place, AdamW keeping m and v in the
    weights' dtype with no fp32 master copy (checked in tests/test_train_memory.py);
* ZeRO stage 1 divides the optimizer states by the number of GPUs, stage 2 the gradients too, stage 3 the
  weights too (plus about two layers of gathered weights); CPU offload moves the optimizer states and the fp32
  gradients (and with stage 3 the weights) to CPU RAM, shared by all GPUs of the machine;
* activations: the tensors each decoder layer keeps for the backward pass, counted tensor by tensor as
  Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models", arXiv:2205.05198,
  section 4.1) count them, s·b·h·(34 + 5·a·s/h) bytes per layer in half precision for GPT-3 (s tokens, b
  sequences, h hidden, a heads: 11·sbh attention, 19·sbh MLP, 4·sbh layer norms, 5·a·s²·b attention scores),
  but for the blocks as transformers implements them (`layer_activation_bytes`), matched in
  tests/test_train_memory.py to the bytes autograd actually saves:
    attention  (8 + 4·kv/a)·sbh: the QKV input, Q, K and V (grouped-query K and V smaller), the attention
               output and the output projection's input;
    MLP        (2 + 4·i/h)·sbh, gated (SwiGLU: gate, up, activation, product) (2 + 8·i/h)·sbh, i the
               intermediate size (times the experts per token for a mixture of experts); gelu_new, written
               out in Python, keeps 6·i/h·sbh more;
    norms      4·sbh for two LayerNorms, 12·sbh for two RMSNorms (transformers computes them in fp32);
    scores     6·a·s/h·sbh (fp32 softmax and its half copy; 2·a·s/h for GPT-2, which keeps the softmax in
               half), only with eager attention or attention dropout (SDPA with dropout counted as eager):
               SDPA's flash and memory-efficient kernels keep none; with dropout, 3·a·s/h·sbh more for the
               attention dropout's mask and output, 6·sbh for the residual dropouts.
  Doubled in fp32. With gradient checkpointing (transformers checkpoints every decoder layer) each layer keeps
  only its 2·sbh input, plus one layer's activations recomputed during the backward pass. Plus the logits,
  s·b·V·(2 + 8) bytes (half logits, their fp32 copy for the loss, its gradient), except for the TRL trainers
  (sft, dpo, kto, grpo, rloo), whose fused LM head never materialises them;
  With `train_last_layers`, only the top layers keep activations and have gradients and optimizer states;
* preference methods: dpo and kto keep a frozen reference model (not with LoRA, whose adapter-free base is the
  reference); dpo, orpo, cpo, simpo and reward (a score head, no vocabulary logits) run chosen and rejected
  through the model in one batch (2x activations); kto's KL completions run without gradient (1x);
* grpo and rloo: the generation's KV cache, K and V of L layers, 2·L·kv_heads·head_dim half-precision values
  per token, for batch_size x steps_per_generation (default gradient_accumulation) sequences of s tokens (and under ZeRO-3 the whole gathered model while generating:
  TRL's `ds3_gather_for_generation`); generation and the training step do not overlap, the larger counts;
  a reference model when `beta` > 0 (TRL's default: 0 for grpo, 0.05 for rloo);
* LoRA: frozen base weights, and weights (fp32, as peft keeps them), gradients and AdamW states only for the
  adapters, r·(in + out) parameters per targeted linear layer; QLoRA: the linear weights in 4-bit NF4 with
  double quantisation as train.hf loads them (0.5 + 1/64 + 4/16384 byte per weight, Dettmers et al. 2023,
  arXiv:2305.14314), the rest (embeddings, norms, head) in the stored dtype.

A plan fits when its total stays below 90% of the smallest visible GPU (and of CPU RAM for offloaded state):
the 10% covers the CUDA context, allocator fragmentation and communication buffers.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from train.backend import TrainError
from train.config import TrainConfig

GiB = 2**30
HEADROOM = 0.9  # a plan fits in 90% of a device's memory
DEFAULT_LORA_RANK = 16  # peft rank "auto" depends on the sample count, unknown before the data is read
PAIRED_METHODS = {"dpo", "orpo", "cpo", "simpo", "reward"}  # chosen and rejected in one forward pass
REFERENCE_METHODS = {"dpo", "kto"}  # a frozen copy of the starting model (full fine-tuning only)
RL_METHODS = {"grpo", "rloo"}  # generate, then train; reference model when beta > 0
RL_DEFAULT_BETA = {"grpo": 0.0, "rloo": 0.05}  # TRL 1.x defaults
FUSED_HEAD_METHODS = {"sft", "dpo", "kto", "grpo", "rloo"}  # TRL trainers computing log-probs in tiles
SCALAR_HEAD_METHODS = {"reward"}  # a score head instead of the LM head: no vocabulary logits
HALF = {"bfloat16", "float16"}
# NF4 weight (4 bits) + its absmax per block of 64, double-quantised as train.hf loads QLoRA: an 8-bit absmax
# per block and one fp32 scale per 256 blocks (Dettmers et al. 2023)
QLORA_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
LAYER_INDEX = re.compile(r"\.(?:layers|h|layer|blocks)\.(\d+)\.")  # as train.hf.freeze finds a layer
DEEPSPEED_TEMPLATES = Path(__file__).resolve().parent / "deepspeed"


def _layer_of(name: str) -> int | None:
    """The decoder layer a module or parameter name is in (None outside the layers)."""
    found = LAYER_INDEX.search(name + ".")
    return int(found.group(1)) if found else None


def gib(n: float) -> str:
    """Bytes as GiB with one decimal."""
    return f"{n / GiB:.1f} GiB"


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a model, from its config.json: parameter count and architecture numbers."""

    params: int
    hidden: int
    layers: int
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    dtype: str | None = None  # the checkpoint's dtype (config.json `dtype`/`torch_dtype`); None: float32
    attention: str = "sdpa"  # attn_implementation transformers picks for it
    linear: tuple[tuple[str, int, int], ...] = ()  # (name, in, out) of every linear layer but the output head
    block_params: int = 0  # parameters inside the decoder layers, all of them
    head_params: int = 0  # the output head's, 0 when tied to the input embeddings
    rms_norm: bool = False  # RMSNorm (transformers upcasts it to fp32) rather than LayerNorm
    gated_mlp: bool = False  # SwiGLU-style gate and up projections
    activation: str = ""  # hidden_act
    experts_per_token: int = 1  # mixture of experts: experts each token goes through
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0

    @property
    def linear_weights(self) -> int:
        """Parameters in the weight matrices of the linear layers (the ones LoRA targets, QLoRA quantises)."""
        return sum(i * o for _, i, o in self.linear)

    @property
    def layer_params(self) -> int:
        """Parameters of one decoder layer, about."""
        return (self.block_params or self.linear_weights) // max(self.layers, 1)

    def adapter_params(self, rank: int, targets: list[str] | str = "auto", layers: set[int] | None = None) -> int:
        """LoRA parameters, r·(in + out) per targeted linear layer; targets as peft matches them (a name or the
        end of a dotted name), "auto" being peft's "all-linear": every linear layer but the output head;
        `layers`: only in the decoder layers of these indices (peft's layers_to_transform)."""
        def targeted(name: str) -> bool:
            if layers is not None and _layer_of(name) not in layers:
                return False
            return targets == "auto" or any(name == t or name.endswith("." + t) for t in targets)

        return sum(rank * (i + o) for name, i, o in self.linear if targeted(name))

    def describe(self) -> str:
        count = f"{self.params / 1e9:.2f}B" if self.params >= 1e9 else f"{self.params / 1e6:.1f}M"
        return (f"{count} parameters ({self.layers} layers, hidden {self.hidden}, {self.heads} heads,"
                f" vocab {self.vocab}, stored in {self.dtype or 'float32'})")


def layer_activation_bytes(shape: ModelShape, seq: int, batch: int) -> float:
    """Bytes one decoder layer keeps for the backward pass in half precision, for `batch` sequences of `seq`
    tokens (see the module docstring; Korthikanti et al. 2022's accounting on transformers' blocks)."""
    h, a = shape.hidden, shape.heads
    i = shape.intermediate * shape.experts_per_token
    attention = 8 + 4 * shape.kv_heads / a
    mlp = 2 + (8 if shape.gated_mlp else 4) * i / h + (6 * i / h if shape.activation == "gelu_new" else 0)
    norms = 12 if shape.rms_norm else 4
    dropout = 6 if shape.hidden_dropout else 0  # two residual dropouts: 1-byte mask and half output each
    scores = 0.0
    if shape.attention == "eager" or shape.attention_dropout:  # SDPA with dropout counted as eager
        softmax = 6 if shape.rms_norm else 2  # Llama-style blocks upcast the softmax to fp32, GPT-2 does not
        scores = (softmax + (3 if shape.attention_dropout else 0)) * a * seq / h
    return seq * batch * h * (attention + mlp + norms + dropout + scores)


def count_parameters(model_folder: str | Path, trust_remote_code: bool = False) -> ModelShape:
    """The parameter count and architecture of the causal LM in `model_folder`, from its config.json only: the
    model is built under accelerate's `init_empty_weights` (meta tensors, no memory, no weights read)."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    folder = Path(model_folder)
    if not (folder / "config.json").is_file():
        raise TrainError(f"model: {str(model_folder)!r} has no config.json; the memory preflight reads it")
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
        with init_empty_weights():
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
        # init_empty_weights re-creates every registered parameter, so the tied output head got a copy of the
        # embedding: tie again outside it, where the assignment shares the tensor (GPT-2, small Llamas, Gemma)
        model.tie_weights()
    except (ValueError, KeyError, OSError) as e:
        raise TrainError(f"model: cannot build {folder}/config.json as a causal LM for the memory preflight: {e}") from e
    params = sum(p.numel() for p in model.parameters())  # shared (tied) parameters once
    head = model.get_output_embeddings()
    linear = []
    for name, module in model.named_modules():
        if module is head:
            continue
        if isinstance(module, torch.nn.Linear):
            linear.append((name, module.in_features, module.out_features))
        elif isinstance(module, Conv1D):  # GPT-2's transposed linear: weight (in, out)
            linear.append((name, module.weight.shape[0], module.weight.shape[1]))
    block = sum(p.numel() for name, p in model.named_parameters() if LAYER_INDEX.search(name))
    rms_norm = any("rmsnorm" in type(m).__name__.lower() for m in model.modules())
    first = [(name, i, o) for name, i, o in linear if _layer_of(name) == 0]  # the linear layers of layer 0
    embeddings = model.get_input_embeddings()
    tied = head is not None and embeddings is not None and head.weight is embeddings.weight
    head_params = head.weight.numel() if head is not None and not tied else 0
    text = config.get_text_config()
    hidden, heads = text.hidden_size, text.num_attention_heads
    intermediate = (getattr(text, "moe_intermediate_size", None) or getattr(text, "intermediate_size", None)
                    or getattr(text, "n_inner", None) or 4 * hidden)
    gated = any("gate" in name.rsplit(".", 1)[-1] for name, _, _ in first) or \
        sum(1 for _, i, o in first if i == hidden and o == intermediate) >= 2

    def number(*names: str) -> float:
        return next((float(v) for v in (getattr(text, n, None) for n in names) if isinstance(v, int | float)), 0.0)

    dtype = getattr(config, "dtype", None) or getattr(text, "dtype", None)
    dtype = str(dtype).removeprefix("torch.") if dtype is not None else None
    return ModelShape(
        params=params, hidden=hidden, layers=text.num_hidden_layers, vocab=text.vocab_size, heads=heads,
        kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=getattr(text, "head_dim", None) or hidden // heads, intermediate=intermediate, dtype=dtype,
        attention=getattr(model.config, "_attn_implementation", None) or "sdpa", linear=tuple(linear),
        block_params=block, head_params=head_params, rms_norm=rms_norm, gated_mlp=gated,
        activation=str(getattr(text, "hidden_act", None) or getattr(text, "activation_function", None) or ""),
        experts_per_token=int(number("num_experts_per_tok", "moe_topk", "num_selected_experts") or 1),
        attention_dropout=number("attention_dropout", "attn_pdrop"),
        hidden_dropout=number("hidden_dropout", "resid_pdrop"))


@dataclass
class MemoryPlan:
    """Bytes per device (per GPU; the whole machine on CPU) of one way to run the config."""

    label: str  # "full fine-tuning in bf16 + gradient checkpointing", "LoRA rank 16", ...
    gpus: int  # GPUs the run uses (0: CPU)
    device_bytes: int  # memory of the smallest GPU (CPU RAM for a CPU run)
    cpu_bytes: int  # CPU RAM of the machine
    weights: int = 0
    gradients: int = 0
    optimizer: int = 0
    activations: int = 0
    reference: int = 0  # frozen reference model (dpo, kto; grpo/rloo with beta > 0)
    generation: int = 0  # grpo/rloo: KV cache (+ weights gathered under ZeRO-3) while generating
    buffers: int = 0  # ZeRO-3 gathered layers, reduce buckets under offload
    offloaded: int = 0  # bytes in CPU RAM (the whole machine) with CPU offload
    adapters: bool = False  # LoRA, DoRA or QLoRA
    regime: str = ""  # how the weights are held
    states: str = ""  # what the optimizer holds
    activation_bytes: int = 2  # bytes per activation element: 2 in half precision, 4 in fp32
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Peak bytes per device: generation and the training step do not overlap."""
        return (self.weights + self.gradients + self.optimizer + self.reference + self.buffers
                + max(self.activations, self.generation))

    @property
    def fits(self) -> bool:
        """Within 90% of the device (and of CPU RAM for what is offloaded)."""
        return self.total <= HEADROOM * self.device_bytes and self.offloaded <= HEADROOM * self.cpu_bytes

    def summary(self) -> str:
        """'LoRA rank 16 + gradient checkpointing: 15.3 GiB per GPU', plus the CPU RAM it offloads if any."""
        where = "per GPU" if self.gpus else "in CPU RAM"
        extra = f" + {gib(self.offloaded)} CPU RAM" if self.offloaded else ""
        return f"{self.label}: {gib(self.total)} {where}{extra}"


def _precision(cfg: TrainConfig, on_gpu: bool) -> str:
    if cfg.precision == "auto":
        return "bf16" if on_gpu else "fp32"
    return cfg.precision


def deepspeed_settings(cfg: TrainConfig) -> tuple[int, bool, bool]:
    """(ZeRO stage, optimizer offloaded, parameters offloaded) of `cfg.deepspeed`: a template shipped in
    train/deepspeed/ by name, or a DeepSpeed JSON file; (0, False, False) without one or unreadable."""
    name = getattr(cfg, "deepspeed", None)
    if not name:
        return 0, False, False
    path = DEEPSPEED_TEMPLATES / f"{name}.json"
    try:
        zero = json.loads((path if path.is_file() else Path(name)).read_text()).get("zero_optimization", {})
    except (OSError, ValueError):
        return 0, False, False

    def offloaded(key: str) -> bool:
        return (zero.get(key) or {}).get("device", "none") in ("cpu", "nvme")

    stage = zero.get("stage", 0)
    return (int(stage) if str(stage).isdigit() else 0), offloaded("offload_optimizer"), offloaded("offload_param")


def estimate(cfg: TrainConfig, params: ModelShape, devices: list[int], cpu_bytes: int, *, zero: int | None = None,
             offload: bool | None = None, qlora: bool | None = None) -> MemoryPlan:
    """Per-device memory of `cfg` on `devices` (bytes per visible GPU; empty for CPU). `zero` (ZeRO stage, 0:
    none), `offload` (optimizer states to CPU, and the weights too under stage 3) and `qlora` (4-bit base
    with LoRA adapters of cfg.peft's rank) override what `cfg.deepspeed` and `cfg.peft` say."""
    gpus = len(devices)
    notes: list[str] = []
    stage, offload_optimizer, offload_param = deepspeed_settings(cfg)
    if zero is not None:
        stage, offload_optimizer, offload_param = zero, bool(offload), bool(offload) and zero >= 3
    elif offload is not None:
        offload_optimizer, offload_param = offload, offload and stage >= 3
    if qlora is None:
        qlora = cfg.peft is not None and cfg.peft.method == "qlora"
    if not gpus:
        if stage or qlora:
            notes.append("deepspeed and qlora need a GPU: estimated without them")
        stage, offload_optimizer, offload_param, qlora = 0, False, False, False
    zero = stage
    precision = _precision(cfg, bool(gpus))
    half = precision in ("bf16", "fp16")
    stored_half = params.dtype in HALF
    method = cfg.method.lower()
    P, L, h, V = params.params, params.layers, params.hidden, params.vocab
    if method in SCALAR_HEAD_METHODS:  # a sequence classifier: the LM head is replaced by a score head
        P -= params.head_params

    # bytes per parameter of weights, gradients, optimizer states (see the module docstring)
    if zero:
        w, g, o = (2, 2, 12) if half else (4, 4, 8)
        regime = f"DeepSpeed {precision}" + (" mixed precision" if half else "")
        states = "AdamW m and v, fp32 master weights" if half else "AdamW m and v in fp32"
    elif stored_half:
        w, g, o = 2, 2, 4
        regime = f"{params.dtype} as stored, trained in place"
        states = f"AdamW m and v in {params.dtype}, no fp32 master copy"
        if precision == "fp16":
            notes.append("fp16 loss scaling refuses half-precision weights (\"Attempting to unscale FP16 "
                         "gradients\"): use precision bf16")
    else:
        w, g, o = 4, 4, 8
        regime = "fp32 as stored" + (f", {precision} autocast" if half else "")
        states = "AdamW m and v in fp32"
    act = 2 if half or stored_half else 4  # bytes of an activation

    # what trains: all weights, the top layers (train_last_layers), or adapters
    fraction = getattr(cfg, "train_last_layers", None)
    top = max(1, round(L * fraction)) if fraction else L  # layers that backpropagate and keep activations
    top_layers = set(range(L - top, L)) if fraction else None
    lora = cfg.peft is not None or qlora
    if lora:
        rank = DEFAULT_LORA_RANK if cfg.peft is None or cfg.peft.rank == "auto" else cfg.peft.rank
        targets = cfg.peft.target_modules if cfg.peft is not None else "auto"
        trainable = params.adapter_params(rank, targets, top_layers)
        # QLoRA: linear weights in NF4, the rest as stored; LoRA: the base as the regime holds it
        rest = (P - params.linear_weights) * (2 if stored_half else 4)
        base = int(params.linear_weights * QLORA_BYTES + rest) if qlora else P * w
        weights, gradients, optimizer = base + trainable * 4, trainable * 4, trainable * 8  # fp32 adapters
        regime = f"{'NF4' if qlora else 'frozen'} base + {trainable / 1e6:.1f}M fp32 adapter parameters"
        states = "AdamW m and v of the adapters"
        dora = cfg.peft is not None and cfg.peft.method == "dora"
        label = f"{'QLoRA' if qlora else 'DoRA' if dora else 'LoRA'} rank {rank}"
        if cfg.peft is not None and cfg.peft.rank == "auto":
            notes.append(f"rank auto taken as {rank}")
        optimizer_bytes = 8  # per trainable parameter
    else:
        # train_last_layers: the top layers, the final norm and an untied head train (train.hf.freeze)
        trainable = P if not fraction else top * params.layer_params + params.head_params
        weights, gradients, optimizer = P * w, trainable * g, trainable * o
        label = f"full fine-tuning in {precision}"
        optimizer_bytes = o
    if fraction:
        label += f", top {top} of {L} layers"
    if cfg.gradient_checkpointing:
        label += " + gradient checkpointing"

    # reference model
    options = cfg.options or {}
    if method in RL_METHODS:
        beta = options.get("beta")
        has_reference = (RL_DEFAULT_BETA[method] if beta is None else beta) > 0
    else:
        has_reference = method in REFERENCE_METHODS
    has_reference = has_reference and not lora and not options.get("precompute_ref_log_probs", False)
    reference = P * (2 if (zero and half) or stored_half else 4) if has_reference else 0

    # ZeRO partitioning and offload
    buffers = offloaded = 0
    if zero >= 1:
        optimizer //= gpus
    if zero >= 2:
        gradients //= gpus
    if zero >= 3:
        weights //= gpus
        reference //= gpus
        buffers += 2 * params.layer_params * w  # the layer being computed and the one prefetched
    if zero and offload_optimizer:
        offloaded += trainable * (optimizer_bytes + 4)  # optimizer states and fp32 gradient partitions, all GPUs
        optimizer = gradients = 0  # gradients are reduced then streamed to CPU in buckets
        buffers += params.layer_params * w
    if zero >= 3 and offload_param:
        offloaded += (weights + reference) * gpus
        weights = reference = 0
    if zero:
        moved = " + CPU offload" if offload_optimizer and (offload_param or zero < 3) else \
            " + optimizer offload" if offload_optimizer else " + parameter offload" if offload_param else ""
        label += f", ZeRO-{zero}{moved} over {gpus} GPU{'s' * (gpus > 1)}"

    # activations (Korthikanti et al. 2022; see the module docstring), of the layers that backpropagate
    s = cfg.max_length
    b = cfg.batch_size * (2 if method in PAIRED_METHODS else 1)
    per_layer = layer_activation_bytes(params, s, b) * act / 2
    # checkpointed: each layer keeps its input (2·sbh), one layer's activations are recomputed at a time
    activations = top * 2 * s * b * h * act / 2 + per_layer if cfg.gradient_checkpointing else top * per_layer
    if method not in FUSED_HEAD_METHODS | SCALAR_HEAD_METHODS:
        activations += s * b * V * (act + 8)

    # generation (grpo, rloo)
    generation = 0
    if method in RL_METHODS:
        if options.get("use_vllm"):
            notes.append("generation runs in vLLM and is not counted")
        else:
            sequences = cfg.batch_size * (options.get("steps_per_generation") or cfg.gradient_accumulation)
            generation = 2 * L * params.kv_heads * params.head_dim * act * s * sequences
            if zero >= 3 and options.get("ds3_gather_for_generation", True):
                generation += P * w - P * w // gpus  # the whole model is gathered on every GPU to generate

    if method == "kto":
        notes.append("kto's KL completions run without gradient: 1x activations")
    return MemoryPlan(label=label, gpus=gpus, device_bytes=min(devices) if devices else cpu_bytes,
                      cpu_bytes=cpu_bytes, weights=int(weights), gradients=int(gradients),
                      optimizer=int(optimizer), activations=int(activations), reference=int(reference),
                      generation=int(generation), buffers=int(buffers), offloaded=int(offloaded), adapters=lora,
                      regime=regime, states=states, activation_bytes=act, notes=notes)


def _settable(field: str, value) -> bool:
    """Whether this TrainConfig accepts `field: value` (so a recommendation can name the setting)."""
    from pydantic import ValidationError

    from train.config import PeftSettings

    try:
        if field == "peft.method":
            PeftSettings(method=value)
            return True
        return field in TrainConfig.model_fields
    except ValidationError:
        return False


def _options(cfg: TrainConfig, params: ModelShape, devices: list[int],
             cpu_bytes: int) -> list[tuple[str, str, MemoryPlan]]:
    """(name, the setting that selects it, plan) of the alternatives to the config as given, least intrusive
    first; gradient checkpointing stays on in all of them."""
    from train.config import PeftSettings

    gpus = len(devices)
    on = f" over {gpus} GPU{'s' * (gpus > 1)}"
    checkpointed = cfg.model_copy(update={"gradient_checkpointing": True})
    lora = checkpointed if cfg.peft is not None else checkpointed.model_copy(update={"peft": PeftSettings()})
    rank = DEFAULT_LORA_RANK if lora.peft.rank == "auto" else lora.peft.rank
    stage, offload_optimizer, _ = deepspeed_settings(cfg)
    configured = 2 * stage + offload_optimizer  # ZeRO options no further than the config are left out

    def hint(field: str, text: str, value=None) -> str:
        return text if _settable(field, value) else ""

    options = []
    if not cfg.gradient_checkpointing:
        options.append(("gradient checkpointing", hint("gradient_checkpointing", "gradient_checkpointing: true"),
                        checkpointed, {}))
    zero_options = [(4, "ZeRO-2" + on, "zero2", {"zero": 2}), (6, "ZeRO-3" + on, "zero3", {"zero": 3}),
                    (7, "ZeRO-3 + CPU offload" + on, "zero3_offload", {"zero": 3, "offload": True})]
    for level, name, template, kw in zero_options:
        if level > configured and gpus > (1 if level < 7 else 0):
            options.append((name, hint("deepspeed", f"deepspeed: {template}"), checkpointed, kw))
    if cfg.peft is None:
        options.append((f"LoRA rank {rank}", hint("peft", f"peft: {{rank: {rank}}}"), lora, {}))
    if gpus and lora.peft.method != "qlora":
        options.append((f"QLoRA rank {rank}", hint("peft.method", f"peft: {{method: qlora, rank: {rank}}}", "qlora"),
                        lora, {"qlora": True}))
    return [(name, setting, estimate(base, params, devices, cpu_bytes, **kw)) for name, setting, base, kw in options]


def recommend(cfg: TrainConfig, params: ModelShape, devices: list[int], cpu_bytes: int) -> list[str]:
    """Readable lines: the estimate of the config as given, whether it fits (10% headroom), and else the
    alternatives, least intrusive first, then the first that fits among the full fine-tuning ones (gradient
    checkpointing, ZeRO) and among the adapter ones (LoRA, QLoRA)."""
    plan = estimate(cfg, params, devices, cpu_bytes)
    gpus = len(devices)
    per_layer = (layer_activation_bytes(params, cfg.max_length, 1) / (cfg.max_length * params.hidden)
                 * plan.activation_bytes / 2)
    where = (f"{gpus} GPU{'s' * (gpus > 1)} {'have' if gpus > 1 else 'has'} {gib(min(devices))}{' each' * (gpus > 1)}"
             if gpus else f"CPU RAM is {gib(cpu_bytes)}")
    unit = "per GPU" if gpus else "in CPU RAM"
    lines = [f"memory preflight, {cfg.method} of {cfg.model}: {params.describe()}",
             f"{plan.label}, batch {cfg.batch_size} x {cfg.max_length} tokens{' per GPU' * bool(gpus)}:"]
    rows = [("weights", plan.weights, plan.regime), ("gradients", plan.gradients, ""),
            ("optimizer", plan.optimizer, plan.states),
            ("activations", plan.activations, f"{per_layer:.1f}·s·b·h bytes per layer (Korthikanti et al. 2022)"
             + ", checkpointed" * cfg.gradient_checkpointing)]
    if plan.reference:
        rows.append(("reference model", plan.reference, f"frozen starting model for {cfg.method}"))
    if plan.generation:
        rows.append(("generation", plan.generation, "KV cache; not at the same time as the activations"))
    if plan.buffers:
        rows.append(("buffers", plan.buffers, "ZeRO gathered layers and buckets"))
    lines += [f"  {name:<16}{gib(size):>11}  {note}".rstrip() for name, size, note in rows]
    lines.append(f"  {'total':<16}{gib(plan.total):>11}  {unit}")
    lines += [f"  note: {n}" for n in plan.notes]
    verdict = "fits" if plan.fits else "does not fit"
    lines.append(f"{plan.label} needs ~{gib(plan.total)} {unit}; {where} "
                 f"({gib(HEADROOM * plan.device_bytes)} usable): {verdict}")
    if plan.fits:
        return lines
    alternatives = _options(cfg, params, devices, cpu_bytes)
    lines.append("alternatives, each with gradient checkpointing:")
    for name, setting, alt in alternatives:
        offloaded = f" + {gib(alt.offloaded)} of {gib(alt.cpu_bytes)} CPU RAM" if alt.offloaded else ""
        lines.append(f"  {name}: {gib(alt.total)} {unit}{offloaded}: {'fits' if alt.fits else 'does not fit'}"
                     + (f" ({setting})" if setting else ""))
    chosen = []
    for adapters in (False, True):
        fitting = [(name, alt) for name, _, alt in alternatives if alt.adapters == adapters and alt.fits]
        if fitting:
            chosen.append(fitting[0])
    if chosen:
        lines.append("fits with: " + ", or ".join(
            f"{name} ({gib(alt.total)}{' each' * (alt.gpus > 1)}"
            f"{f' + {gib(alt.offloaded)} CPU RAM' if alt.offloaded else ''})" for name, alt in chosen))
    else:
        lines.append("nothing fits: lower batch_size (raising gradient_accumulation keeps the batch) or max_length, "
                     "or use more or larger GPUs")
    return lines


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            return int(value)
    return None


def visible_devices() -> tuple[list[int], int]:
    """(bytes of each visible GPU, empty without one; bytes of system RAM, within the container's limit)."""
    import torch

    gpus = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())]
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = _cgroup_limit()
    return gpus, min(ram, limit) if limit else ram


def _on_this_machine(cfg: TrainConfig) -> tuple[TrainConfig, ModelShape, list[int], int]:
    """(cfg with `precision: auto` resolved, the model's shape, GPU bytes, RAM bytes) as the run would see them."""
    params = count_parameters(cfg.model, trust_remote_code=cfg.trust_remote_code)
    gpus, ram = visible_devices()
    if cfg.device == "cpu":
        gpus = []
    if cfg.precision == "auto" and gpus:
        import torch

        cfg = cfg.model_copy(update={"precision": "bf16" if torch.cuda.is_bf16_supported() else "fp32"})
    return cfg, params, gpus, ram


def preflight(cfg: TrainConfig) -> tuple[bool, str]:
    """(whether `cfg` as configured is estimated to fit this machine, the report of what fits), from one
    reading of the model's config."""
    if not cfg.model:
        return True, f"memory preflight: {cfg.method} without a starting model builds its own; not estimated"
    cfg, params, gpus, ram = _on_this_machine(cfg)
    lines = recommend(cfg, params, gpus, ram)
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    zero_chosen = deepspeed_settings(cfg)[0] or (lines[-1].startswith("fits with: ") and "ZeRO" in lines[-1])
    if len(gpus) > 1 and processes < len(gpus) and zero_chosen:
        lines.append(f"note: ZeRO shards over processes, one per GPU: start the run with `torchrun --nproc_per_node "
                     f"{len(gpus)}` or `accelerate launch`; this process alone ({processes}) would use one GPU")
    return estimate(cfg, params, gpus, ram).fits, "\n".join(lines)


def preflight_report(cfg: TrainConfig) -> str:
    """The memory estimate of `cfg` on this machine and what fits, as text to print or log."""
    return preflight(cfg)[1]
