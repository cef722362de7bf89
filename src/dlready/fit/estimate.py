"""Bytes per item for one request on one GPU (or the CPU): pure functions (docs/fit.md).

Every formula is written down, with its source, in docs/fit.md; the names here follow it.
"""

from __future__ import annotations

import msgspec
from msgspec import Struct

from dlready.fit.catalog import (
    ModelSpec,
    builtin_models,
    layer_linear_shapes,
    layer_parameters,
    linear_parameters,
    parameter_count,
)

TASKS = ("infer", "train", "lora", "qlora")
DTYPES = ("fp32", "bf16", "fp16", "int8", "int4")
OPTIMIZERS = ("adamw", "adamw-8bit", "sgd")
ATTENTIONS = ("sdpa", "eager")
SHARDINGS = ("none", "zero2", "zero3", "split")

DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0}
NF4_DOUBLE_QUANT_BITS = 4 + 0.127
"""QLoRA (Dettmers et al. 2023, section 3): 4-bit NormalFloat plus 8/64 + 32/(64*256) = 0.127
bits of quantisation constants per parameter with double quantisation."""
ADAM_8BIT_STATE_BYTES = 2 + 2 * 4 / 2048
"""bitsandbytes 8-bit Adam (Dettmers et al. 2022): two 1-byte states per parameter and one
float32 absmax per block of 2048 values per state."""
CHECKPOINT_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}
CUDA_CONTEXT_BYTES = 512 * 2**20
"""CUDA context and kernels of a PyTorch process (assumption, docs/fit.md; --measure reads it)."""
ALLOCATOR_OVERHEAD = 0.05
"""Caching-allocator rounding and fragmentation, as a share of the tensors (assumption)."""
LOG_SOFTMAX_BYTES = 4
"""The loss is computed in float32 (Korthikanti et al.: 4sbv for the cross entropy)."""
FLOAT32_BYTES = 4.0
"""Optimizer states and master weights are float32; so are the loss's gradients."""
DEFAULT_LORA_RANK = 16
MIB = 2**20
GIB = 2**30


class RequestError(ValueError):
    """A request that cannot be estimated (bad combination); a usage error."""


class Request(Struct, frozen=True):
    """What the user wants to run. ``batch`` is per GPU (a micro-batch)."""

    task: str = "infer"
    dtype: str = "bf16"
    batch: int = 1
    seq: int = 0
    """Tokens per sequence (0: the model's default); for inference the whole context."""
    optimizer: str = "adamw"
    recompute: bool = False
    attention: str = "sdpa"
    lora_rank: int = DEFAULT_LORA_RANK
    sharding: str = "none"
    gpus: int = 1
    """GPUs the model states are spread over (ZeRO-2/3, or a split model for inference)."""
    offload: bool = False
    """Optimizer states (and gradients) kept in CPU RAM (ZeRO-Offload); inference: layers."""
    device: str = "cuda"

    def with_(self, **changes: object) -> Request:
        """A copy with some fields changed."""
        return msgspec.structs.replace(self, **changes)


class Breakdown(Struct, frozen=True):
    """Bytes per GPU (or in RAM, on the CPU) for one request, item by item."""

    weights_bytes: float
    gradients_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    kv_cache_bytes: float
    transient_bytes: float
    """What exists only for a moment at the peak, beyond the kept items (docs/fit.md)."""
    context_bytes: float
    allocator_bytes: float
    host_load_bytes: float
    """Host RAM to read the checkpoint once (per process that loads it)."""
    host_offload_bytes: float
    """Host RAM that holds offloaded states (all GPUs together)."""
    parameters: int
    trainable_parameters: int
    notes: tuple[str, ...] = ()

    @property
    def device_bytes(self) -> float:
        """Everything on one GPU (or in RAM for a CPU run, except the checkpoint load)."""
        return (
            self.weights_bytes
            + self.gradients_bytes
            + self.optimizer_bytes
            + self.activations_bytes
            + self.kv_cache_bytes
            + self.transient_bytes
            + self.context_bytes
            + self.allocator_bytes
        )

    def items(self) -> dict[str, float]:
        """The items by name, in display order."""
        return {
            "weights": self.weights_bytes,
            "gradients": self.gradients_bytes,
            "optimizer": self.optimizer_bytes,
            "activations": self.activations_bytes,
            "kv_cache": self.kv_cache_bytes,
            "transient": self.transient_bytes,
            "cuda_context": self.context_bytes,
            "allocator": self.allocator_bytes,
        }


def validate(spec: ModelSpec, request: Request) -> None:
    """Reject combinations that make no sense.

    Raises:
        RequestError: with a one-line reason.
    """
    if request.task not in TASKS:
        raise RequestError(f"unknown task {request.task!r}; choose one of {', '.join(TASKS)}")
    if request.dtype not in DTYPES:
        raise RequestError(f"unknown dtype {request.dtype!r}; choose one of {', '.join(DTYPES)}")
    if request.optimizer not in OPTIMIZERS:
        raise RequestError(f"unknown optimizer {request.optimizer!r}")
    if request.batch < 1 or request.seq < 0 or request.gpus < 1:
        raise RequestError(
            "batch and GPU count must be at least 1, the sequence length not negative"
        )
    if request.task == "train" and request.dtype in ("int8", "int4"):
        raise RequestError(
            f"full training cannot keep {request.dtype} weights; use --task qlora (4-bit base "
            "weights with LoRA adapters) or --dtype bf16"
        )
    if request.task in ("lora", "qlora") and not shape_stand_in(spec).is_transformer:
        raise RequestError("LoRA and QLoRA are estimated for transformer models only")
    hidden = shape_stand_in(spec).hidden_size
    if request.task in ("lora", "qlora") and hidden and request.lora_rank > hidden:
        raise RequestError(
            f"--lora-rank {request.lora_rank} is above the model's hidden size ({hidden}): an "
            "adapter of that rank is larger than the layer it adapts"
        )
    if request.task == "qlora" and request.dtype in ("int8", "fp32"):
        raise RequestError("QLoRA keeps 4-bit base weights and computes in bf16 or fp16")
    if (
        request.seq
        and spec.max_positions
        and request.seq > spec.max_positions
        and spec.family != "decoder"
    ):
        raise RequestError(
            f"{spec.id} takes at most {spec.max_positions} tokens (learned positions); "
            f"--seq {request.seq} is longer"
        )


def compute_dtype(request: Request) -> str:
    """The dtype activations and the KV cache are kept in."""
    if request.dtype in ("int8", "int4") or request.task == "qlora":
        return "bf16" if request.dtype in ("int8", "int4", "fp32") else request.dtype
    return request.dtype


def _activation_bytes_per_value(request: Request) -> float:
    return DTYPE_BYTES[compute_dtype(request)]


def lora_parameters(spec: ModelSpec, rank: int) -> int:
    """LoRA adapters on every linear layer of every block: rank x (in + out) each."""
    shape = shape_stand_in(spec)
    adapters = shape.num_layers * sum(rank * (i + o) for i, o in layer_linear_shapes(shape))
    if shape is not spec:  # a bare count: scale the stand-in's adapters to the count
        return round(adapters * parameter_count(spec) / parameter_count(shape))
    return adapters


def shape_stand_in(spec: ModelSpec) -> ModelSpec:
    """For a bare count: the built-in dense decoder-only model (GPT-2 or a Llama-style
    decoder, no mixture of experts) closest in size, by ratio: the smallest
    max(P / count, count / P), the first in the table on a tie (a guess; docs/fit.md)."""
    if spec.family != "unknown":
        return spec
    count = spec.given_parameters
    decoders = [
        m for m in builtin_models() if m.family in ("decoder", "gpt2") and m.num_experts == 1
    ]
    return min(
        decoders,
        key=lambda m: max(parameter_count(m) / count, count / parameter_count(m)),
    )


# --- weights, gradients, optimizer ----------------------------------------------------------


def _weight_bytes(spec: ModelSpec, request: Request) -> float:
    params = parameter_count(spec)
    shape = shape_stand_in(spec)
    if not shape.is_transformer:
        linear = params
    else:  # a bare count takes the stand-in's share of linear weights
        linear = round(params * linear_parameters(shape) / parameter_count(shape))
    rest = params - linear
    if request.task == "qlora" or request.dtype == "int4":
        # bitsandbytes quantises the blocks' nn.Linear layers; embeddings, norms and the output
        # head stay in 16 bits.
        return linear * NF4_DOUBLE_QUANT_BITS / 8 + rest * 2
    if request.dtype == "int8":
        return linear * 1 + rest * 2
    return params * DTYPE_BYTES[request.dtype]


def _state_bytes(spec: ModelSpec, request: Request) -> tuple[float, float, int]:
    """Gradients and optimizer states (all of them, before sharding) and trainable count."""
    if request.task == "infer":
        return 0.0, 0.0, 0
    mixed = request.dtype in ("bf16", "fp16")
    state = {"adamw": 8.0, "adamw-8bit": ADAM_8BIT_STATE_BYTES, "sgd": 4.0}[request.optimizer]
    if request.task == "train":
        trainable = parameter_count(spec)
        grad = trainable * DTYPE_BYTES[request.dtype]
        # ZeRO (Rajbhandari et al. 2020): mixed precision adds a float32 master copy (K = 12).
        optimizer = trainable * (state + (4.0 if mixed else 0.0))
        return grad, optimizer, trainable
    trainable = lora_parameters(spec, request.lora_rank)
    adapter_bytes = DTYPE_BYTES[compute_dtype(request)]
    return trainable * adapter_bytes, trainable * state, trainable


# --- activations ----------------------------------------------------------------------------


def norm_input_bytes(spec: ModelSpec, request: Request) -> float:
    """Bytes a norm keeps per value of its input.

    LayerNorm (fused) keeps its input. Llama-style RMSNorm (Hugging Face's ``LlamaRMSNorm``)
    computes in float32: it keeps the float32 input and the normalised value in the compute dtype.
    """
    value = _activation_bytes_per_value(request)
    return 4.0 + value if spec.family == "decoder" and not spec.layer_norm else value


def transformer_layer_activation_bytes(spec: ModelSpec, request: Request, seq: int) -> float:
    """Tensors one block keeps for the backward pass (Korthikanti et al. 2022, generalised)."""
    value = _activation_bytes_per_value(request)
    b, s, h = request.batch, seq, spec.hidden_size
    heads, head_dim = spec.num_heads, spec.attention_head_dim
    sbh = s * b * h
    sbq = s * b * heads * head_dim
    sbi = s * b * spec.active_mlp_width  # the routed experts and a shared one, per token
    # the attention input and the MLP input, and what each norm keeps of its input
    total = value * 2 * sbh + spec.norms_per_layer * sbh * norm_input_bytes(spec, request)
    dropout = spec.dropout > 0 and request.task != "infer"
    # PyTorch's fused SDPA kernels on the CPU take no dropout: it falls back to the math path,
    # which keeps the attention probabilities like eager attention does, in float32.
    fallback = request.attention != "eager" and dropout and request.device == "cpu"
    materialised = request.attention == "eager" or fallback
    inner_value = 4.0 if fallback else value
    # Q, K, V (K and V repeated to every query head before attention) and the output
    # projection's input (a fused kernel's output, already laid out for it, is the same tensor).
    total += inner_value * 3 * sbq + value * sbq
    if spec.qk_norm:  # Qwen3's and Gemma 3's RMSNorm over each head of Q and K keeps its input
        sbk = s * b * spec.num_kv_heads * head_dim
        total += (sbq + sbk) * norm_input_bytes(spec, request)
    total += value * (4 if spec.gated_mlp else 2) * sbi
    # A dropout mask is one byte per value on a GPU; on the CPU PyTorch keeps a float mask.
    mask = 1.0 if request.device == "cuda" else value
    if dropout:
        total += 2 * sbh * mask  # after the attention output and after the MLP
    scores = heads * s * s * b
    if materialised:
        # softmax output, and with dropout its mask and the dropped copy
        scores_mask = inner_value if fallback else mask
        total += scores * (inner_value + ((scores_mask + inner_value) if dropout else 0))
    else:
        total += heads * s * b * 4  # the float32 log-sum-exp kept by fused kernels
    if request.task in ("lora", "qlora"):
        linears = len(layer_linear_shapes(spec))
        total += value * linears * s * b * request.lora_rank  # each adapter's A output
    return total


def loss_head_activation_bytes(spec: ModelSpec, request: Request, seq: int) -> float:
    """A decoder's final norm input, output projection input and the float32 log-softmax over
    the vocabulary (Korthikanti et al., section 4.3)."""
    sbh = seq * request.batch * spec.hidden_size
    value = _activation_bytes_per_value(request)
    out = (norm_input_bytes(spec, request) + value) * sbh
    return out + LOG_SOFTMAX_BYTES * seq * request.batch * spec.vocab_size


def _outside_layers_bytes(spec: ModelSpec, request: Request, seq: int) -> float:
    value = _activation_bytes_per_value(request)
    mask = 1.0 if request.device == "cuda" else value
    b, h = request.batch, spec.hidden_size
    sbh = seq * b * h
    if spec.family in ("decoder", "gpt2"):
        out = loss_head_activation_bytes(spec, request, seq)
        return out + (sbh * mask if spec.dropout > 0 else 0)  # the embeddings' dropout
    if spec.family == "encoder":  # embedding LayerNorm input and dropout mask; pooler
        return value * sbh + (sbh * mask if spec.dropout > 0 else 0) + value * 2 * b * h
    # vit: the image kept by the patch convolution, the final norm input
    return value * (b * 3 * spec.image_size**2 + sbh)


def _resnet_feature_maps(spec: ModelSpec) -> list[tuple[int, int]]:
    """(elements per image, times kept) of every feature map in training (docs/fit.md)."""
    side = spec.image_size // 2
    maps = [
        (3 * spec.image_size**2, 1),  # the image, kept by the first convolution
        (64 * side * side, 2),  # stem conv output and its BatchNorm output (ReLU in place)
    ]
    side //= 2
    maps.append((64 * side * side, 1))  # the max pool's output, the first block's input
    channels = 64
    for stage, blocks in enumerate(spec.stage_blocks):
        width = 64 * 2**stage
        for block in range(blocks):
            out_side = side // 2 if (block == 0 and stage > 0) else side
            maps.append((width * side * side, 2))  # 1x1 conv and BN outputs
            maps.append((width * out_side * out_side, 2))  # 3x3 conv and BN outputs
            maps.append((4 * width * out_side * out_side, 2))  # 1x1 conv and BN(+add, ReLU)
            if block == 0:
                maps.append((4 * width * out_side * out_side, 1))  # downsample conv output
            side = out_side
            channels = 4 * width
    del channels
    return maps


def _resnet_inference_working_elements(spec: ModelSpec) -> int:
    """The most values alive at once in inference (per image): the image (the caller holds
    it) and, in a bottleneck, its input (kept for the residual add), the downsample's output,
    the 3x3 stage's output, and the last convolution's output beside its BatchNorm's; or the
    stem's convolution and BatchNorm outputs."""
    image = 3 * spec.image_size**2
    side = spec.image_size // 2
    working = 2 * 64 * side * side
    side //= 2
    channels = 64
    for stage, blocks in enumerate(spec.stage_blocks):
        width = 64 * 2**stage
        for block in range(blocks):
            out_side = side // 2 if (block == 0 and stage > 0) else side
            outputs = 4 * width * out_side * out_side
            downsample = outputs if block == 0 else 0
            block_input = channels * side * side
            working = max(working, block_input + downsample + width * out_side**2 + 2 * outputs)
            side, channels = out_side, 4 * width
    return image + working


def resnet_activation_bytes(spec: ModelSpec, request: Request) -> float:
    """Training: every conv and BatchNorm output is kept; inference: the working set."""
    value = _activation_bytes_per_value(request)
    maps = _resnet_feature_maps(spec)
    if request.task == "infer":
        return value * request.batch * _resnet_inference_working_elements(spec)
    kept = sum(elements * times for elements, times in maps)
    pool_indices = 64 * (spec.image_size // 4) ** 2 * 8  # max pool keeps int64 indices
    return request.batch * (value * kept + pool_indices)


def activation_bytes(spec: ModelSpec, request: Request) -> float:
    """Activations per GPU for one micro-batch (training: kept for backward)."""
    spec = shape_stand_in(spec)
    if spec.family == "resnet":
        return resnet_activation_bytes(spec, request)
    seq = effective_seq(spec, request)
    value = _activation_bytes_per_value(request)
    if request.task == "infer":
        b = request.batch
        width = spec.expert_width + spec.shared_expert_intermediate_size
        inner = (3 if spec.gated_mlp else 2) * seq * b * width
        working = value * (inner + 4 * seq * b * spec.hidden_size)
        if request.attention == "eager":
            working += value * 2 * spec.num_heads * seq * seq * b
        if spec.family in ("decoder", "gpt2"):
            working += LOG_SOFTMAX_BYTES * b * spec.vocab_size  # next-token logits
        return working
    layer = transformer_layer_activation_bytes(spec, request, seq)
    outside = _outside_layers_bytes(spec, request, seq)
    if request.recompute:
        # Full recomputation keeps each block's input and rebuilds one block at a time.
        layer_inputs = spec.num_layers * value * seq * request.batch * spec.hidden_size
        return layer_inputs + layer + outside
    return spec.num_layers * layer + outside


def effective_seq(spec: ModelSpec, request: Request) -> int:
    """The sequence length used (the model's default when none is asked; ViT: its patches)."""
    spec = shape_stand_in(spec)
    if spec.family == "vit":
        return spec.vit_tokens
    return request.seq or spec.default_seq


def kv_cache_bytes(spec: ModelSpec, request: Request) -> float:
    """2 x layers x KV heads x head size x tokens x bytes (inference with a decoder only)."""
    spec = shape_stand_in(spec)
    if request.task != "infer" or spec.family not in ("decoder", "gpt2"):
        return 0.0
    tokens = request.batch * effective_seq(spec, request)
    value = _activation_bytes_per_value(request)
    return 2 * spec.num_layers * spec.num_kv_heads * spec.attention_head_dim * tokens * value


# --- transients: what exists only for a moment at the peak --------------------------------


def block_backward_transient_bytes(spec: ModelSpec, request: Request, seq: int) -> float:
    """The largest set of gradients one block's backward pass holds at once, beyond what it
    keeps: the gradient handed down from above plus the largest step inside (docs/fit.md)."""
    value = _activation_bytes_per_value(request)
    b, s, h = request.batch, seq, spec.hidden_size
    sbi = s * b * spec.active_mlp_width  # the routed experts and a shared one, per token
    full = request.task == "train"
    steps = []
    for fan_in, fan_out in set(layer_linear_shapes(spec)):
        # a linear layer's backward: the gradient of its input and of its weight (added into
        # the kept gradient afterwards); a frozen 4-bit weight is dequantised to 16 bits
        weight = fan_in * fan_out * (value if full else 2.0 if request.task == "qlora" else 0)
        steps.append(value * s * b * fan_in + weight)
    # the MLP's element-wise step: GELU's gradient beside its input's, or the gated product's
    # gradient beside those of both factors
    steps.append(value * (3 if spec.gated_mlp else 2) * sbi)
    dropout = spec.dropout > 0 and request.task != "infer"
    fallback = request.attention != "eager" and dropout and request.device == "cpu"
    # The attention's backward runs after the MLP's, whose intermediates are freed by then.
    mlp_freed = value * (4 if spec.gated_mlp else 2) * sbi
    if request.attention == "eager" or fallback:
        # the gradients of the probabilities and of the scores, one value per head and pair
        inner_value = 4.0 if fallback else value
        steps.append(inner_value * 2 * spec.num_heads * s * s * b - mlp_freed)
    else:  # fused attention's backward: the gradients of Q, K and V
        steps.append(value * 3 * s * b * spec.num_heads * spec.attention_head_dim - mlp_freed)
    return value * s * b * h + max(steps)


def loss_backward_transient_bytes(spec: ModelSpec, request: Request, seq: int) -> float:
    """Decoders at the start of backward: the logits (held by the model's output) and two
    float32 gradients over the vocabulary (of the log-softmax's output and input); then, with
    the log-softmax's kept output freed, the output head's backward: the logits and their
    gradient, and the head's weight gradient."""
    if spec.family not in ("decoder", "gpt2"):
        return 0.0
    value = _activation_bytes_per_value(request)
    sbv = seq * request.batch * spec.vocab_size
    head_gradient = value * spec.vocab_size * spec.hidden_size if request.task == "train" else 0
    return max(
        (value + 2 * FLOAT32_BYTES) * sbv,
        max(2 * value - LOG_SOFTMAX_BYTES, 0) * sbv + head_gradient,
    )


def _largest_parameters(spec: ModelSpec, whole_model: bool = True) -> tuple[int, int]:
    """The largest parameter and the one PyTorch registers just before it (elements)."""
    if spec.family == "resnet":  # convolutions alternate with BatchNorm parameters
        widest = 64 * 2 ** max(len(spec.stage_blocks) - 1, 0)
        return max(widest * widest * 9, 4 * widest * spec.num_classes), 4 * widest
    shapes = [i * o for i, o in layer_linear_shapes(spec)]
    biased = spec.family != "decoder"
    pairs = [
        (size, 0 if biased else previous)
        for previous, size in zip([0, *shapes], shapes, strict=False)
    ]
    if spec.vocab_size and whole_model:
        # the token embeddings (the first parameter) and the output head (after a norm)
        pairs.append((spec.vocab_size * spec.hidden_size, spec.hidden_size))
    return max(pairs, key=lambda pair: 2 * pair[0] + pair[1])


def optimizer_step_transient_bytes(
    spec: ModelSpec, request: Request, parameters: int, whole_model: bool = True
) -> float:
    """What the optimizer step allocates for ``parameters`` trainable parameters beyond the
    kept states (before sharding): PyTorch's AdamW on CUDA (foreach) takes the square root of
    every second-moment state at once; on the CPU (one parameter at a time) the root and the
    denominator of the largest parameter, while the previous one's denominator still lives.
    SGD with momentum and bitsandbytes' 8-bit AdamW update in place. Mixed precision first
    makes float32 gradients for the float32 master weights. ``whole_model`` False: one block."""
    if request.task == "infer":
        return 0.0
    temporaries = 0.0
    if request.optimizer == "adamw":
        if request.device == "cuda":
            temporaries = FLOAT32_BYTES * parameters
        elif request.task == "train":
            largest, previous = _largest_parameters(shape_stand_in(spec), whole_model)
            temporaries = FLOAT32_BYTES * min(2 * largest + previous, parameters)
        else:  # LoRA on the CPU: the adapters' largest matrix, rank x the wider side
            widest = max(max(shape) for shape in layer_linear_shapes(shape_stand_in(spec)))
            temporaries = FLOAT32_BYTES * min(3 * request.lora_rank * widest, parameters)
    if request.task == "train" and request.dtype in ("bf16", "fp16"):
        temporaries += FLOAT32_BYTES * parameters
    return temporaries


def backward_transient_bytes(spec: ModelSpec, request: Request) -> float:
    """The forward and backward passes' transient peak for the whole model (training)."""
    spec = shape_stand_in(spec)
    if request.task == "infer":
        return 0.0
    if spec.family == "resnet":
        return resnet_backward_transient_bytes(spec, request)
    seq = effective_seq(spec, request)
    return max(
        block_backward_transient_bytes(spec, request, seq),
        loss_backward_transient_bytes(spec, request, seq),
    )


def resnet_backward_transient_bytes(spec: ModelSpec, request: Request) -> float:
    """A BatchNorm's backward: the gradients of its output and input of the largest feature
    map; or a convolution's: the largest weight's gradient."""
    value = _activation_bytes_per_value(request)
    largest_map = max(elements for elements, _ in _resnet_feature_maps(spec)[1:])
    largest_weight, _ = _largest_parameters(spec)
    return value * max(2 * request.batch * largest_map, largest_weight)


def peak_transient_bytes(activations: float, backward: float, step: float) -> float:
    """Peak over the phases, beyond the kept items: the backward pass (activations held) or
    the optimizer step (activations freed)."""
    return max(backward, step - activations, 0.0)


# --- one request ----------------------------------------------------------------------------


def estimate(spec: ModelSpec, request: Request) -> Breakdown:
    """Bytes per GPU for ``request`` (sharding and offload applied)."""
    validate(spec, request)
    params = parameter_count(spec)
    weights = _weight_bytes(spec, request)
    gradients, optimizer, trainable = _state_bytes(spec, request)
    activations = activation_bytes(spec, request)
    step = optimizer_step_transient_bytes(spec, request, trainable)
    kv_cache = kv_cache_bytes(spec, request)
    notes: list[str] = list(spec.notes)
    if spec.family == "unknown":
        notes.append(
            f"only the parameter count is known: activations and the KV cache are a guess "
            f"from {shape_stand_in(spec).id}'s shape"
        )
    host_offload = 0.0
    shards = request.gpus
    if request.sharding in ("zero2", "zero3") and request.task != "infer":
        gradients /= shards
        optimizer /= shards
        step /= shards  # each GPU steps its own part
        if request.sharding == "zero3":
            # ZeRO-3 / FSDP keeps 1/N of the weights and gathers whole blocks as they run
            # (this one and the one prefetched).
            gathered = 2 * layer_parameters(shape_stand_in(spec)) * weights / max(params, 1)
            weights = weights / shards + (gathered if shape_stand_in(spec).is_transformer else 0)
    elif request.sharding == "split" and request.task == "infer":
        weights /= shards
        kv_cache /= shards
    if request.offload:
        if request.task == "infer":
            # Layers stream in from CPU RAM: the GPU holds about two blocks at a time.
            per_layer = weights / max(shape_stand_in(spec).num_layers, 1)
            # Every GPU's share of a split model is in RAM: all of the weights.
            host_offload = weights * (shards if request.sharding == "split" else 1)
            weights = min(weights, 2 * per_layer) if spec.is_transformer else weights
        else:
            # ZeRO-Offload (Ren et al. 2021): gradients and optimizer states live in CPU RAM.
            host_offload = (gradients + optimizer) * (shards if request.sharding != "none" else 1)
            gradients = optimizer = step = 0.0  # the step runs on the CPU
    backward = backward_transient_bytes(spec, request)
    transient = peak_transient_bytes(activations, backward, step)
    if step - activations > backward and step > 0:
        notes.append(
            "the peak comes in the optimizer step, after the activations are freed: fewer "
            "activations (gradient checkpointing, a smaller batch) do not lower it; fewer "
            "optimizer bytes (8-bit AdamW, sharding, offload) do"
        )
    on_gpu = request.device == "cuda"
    tensors = weights + gradients + optimizer + activations + kv_cache + transient
    host_load = params * CHECKPOINT_DTYPE_BYTES.get(spec.checkpoint_dtype, 4)
    return Breakdown(
        weights_bytes=weights,
        gradients_bytes=gradients,
        optimizer_bytes=optimizer,
        activations_bytes=activations,
        kv_cache_bytes=kv_cache,
        transient_bytes=transient,
        context_bytes=CUDA_CONTEXT_BYTES if on_gpu else 0.0,
        allocator_bytes=ALLOCATOR_OVERHEAD * tensors if on_gpu else 0.0,
        host_load_bytes=host_load,
        host_offload_bytes=host_offload,
        parameters=params,
        trainable_parameters=trainable,
        notes=tuple(notes),
    )


def largest_batch(
    spec: ModelSpec, request: Request, budget_bytes: float, limit: int = 1 << 16
) -> int:
    """The largest per-GPU batch whose estimate stays within ``budget_bytes`` (0: none)."""
    if estimate(spec, request.with_(batch=1)).device_bytes > budget_bytes:
        return 0
    low, high = 1, 2
    while high <= limit and estimate(spec, request.with_(batch=high)).device_bytes <= budget_bytes:
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:
        middle = (low + high) // 2
        if estimate(spec, request.with_(batch=middle)).device_bytes <= budget_bytes:
            low = middle
        else:
            high = middle
    return low
