"""Model shapes: the built-in table (``data/models.json``), a Hugging Face ``config.json``, or
a bare parameter count. Parameter counts are derived from the shape (docs/fit.md)."""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from msgspec import Struct, field

from dlready.bounded_read import read_json_file
from dlready.package_data import read_data_text

MAX_CONFIG_FILE_BYTES = 16 * 1024 * 1024
"""A Hugging Face config.json is a few kilobytes; anything larger is not one."""
TRANSFORMER_FAMILIES = ("encoder", "gpt2", "decoder", "vit")
FAMILIES = (*TRANSFORMER_FAMILIES, "resnet", "unknown")


class ModelLookupError(ValueError):
    """The model could not be resolved; ``suggestions`` are the closest known names.

    ``code`` (the JSON error code, docs/json-schema.md): ``unknown_model`` for a name that is
    neither known nor a file, ``bad_parameter_count`` for a count that is not above zero,
    ``bad_model_config`` for a config file that cannot be read or used.
    """

    def __init__(
        self, message: str, suggestions: tuple[str, ...] = (), code: str = "bad_model_config"
    ) -> None:
        super().__init__(message)
        self.suggestions = suggestions
        self.code = code


class ModelSpec(Struct, frozen=True):
    """The shape of one model. Transformer fields are 0 for a CNN or a bare count."""

    id: str
    family: str
    hidden_size: int = 0
    num_layers: int = 0
    num_heads: int = 0
    num_kv_heads: int = 0
    head_dim: int = 0
    intermediate_size: int = 0
    vocab_size: int = 0
    max_positions: int = 0
    type_vocab_size: int = 0
    num_experts: int = 1
    experts_per_token: int = 1
    expert_intermediate_size: int = 0
    """Each routed expert's MLP width when it differs from ``intermediate_size`` (Qwen2-MoE's
    ``moe_intermediate_size``); 0: the same."""
    shared_expert_intermediate_size: int = 0
    """Qwen2-MoE's shared expert (a gated MLP every token visits, with a one-output gate)."""
    ungated_mlp: bool = False
    """A decoder whose MLP is up/down without a gate (Falcon)."""
    layer_norm: bool = False
    """A decoder with LayerNorm (scale and bias) instead of RMSNorm (Falcon)."""
    qk_norm: bool = False
    """An RMSNorm over each head of Q and K (Qwen3, Gemma 3): 2 x head size per block."""
    extra_positions: int = 0
    """Learned position rows beyond ``max_positions`` (OPT keeps 2 for its offset)."""
    qkv_bias: bool = False
    tied_embeddings: bool = False
    norms_per_layer: int = 2
    dropout: float = 0.0
    image_size: int = 0
    patch_size: int = 0
    num_classes: int = 0
    stage_blocks: tuple[int, ...] = ()
    checkpoint_dtype: str = "float32"
    given_parameters: int = 0
    """Only for a bare count: the number the user gave."""
    hf_id: str | None = None
    stated_parameters: int | None = None
    stated_as: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    origin: str = "built-in"
    notes: tuple[str, ...] = ()
    """What the user should know about how the shape was read (a default assumed)."""

    @property
    def is_transformer(self) -> bool:
        """Whether the transformer formulas apply."""
        return self.family in TRANSFORMER_FAMILIES

    @property
    def attention_head_dim(self) -> int:
        """Per-head size: explicit (Gemma 2) or hidden / heads."""
        return self.head_dim or (self.hidden_size // self.num_heads if self.num_heads else 0)

    @property
    def gated_mlp(self) -> bool:
        """Llama-style gate/up/down MLP (three matrices) instead of up/down."""
        return self.family == "decoder" and not self.ungated_mlp

    @property
    def norm_parameters(self) -> int:
        """One norm's parameters: a decoder's RMSNorm has a scale, a LayerNorm a bias too."""
        return self.hidden_size * (2 if self.layer_norm or self.family != "decoder" else 1)

    @property
    def expert_width(self) -> int:
        """The MLP width of one expert (of the one MLP of a dense model)."""
        return self.expert_intermediate_size or self.intermediate_size

    @property
    def active_mlp_width(self) -> int:
        """The MLP width one token passes through: its routed experts plus a shared expert."""
        routed = self.experts_per_token if self.num_experts > 1 else 1
        return self.expert_width * routed + self.shared_expert_intermediate_size

    @property
    def default_seq(self) -> int:
        """A sequence length to assume when none is asked."""
        if self.family == "vit":
            return self.vit_tokens
        if self.family == "decoder":
            return min(self.max_positions or 4096, 4096)
        return self.max_positions or 512

    @property
    def vit_tokens(self) -> int:
        """Patches plus the class token."""
        return (self.image_size // self.patch_size) ** 2 + 1 if self.patch_size else 0


# --- parameter counts -----------------------------------------------------------------------


def layer_linear_shapes(spec: ModelSpec) -> tuple[tuple[int, int], ...]:
    """(in, out) of every weight matrix in one transformer block (experts counted each)."""
    h = spec.hidden_size
    q_dim = spec.num_heads * spec.attention_head_dim
    kv_dim = spec.num_kv_heads * spec.attention_head_dim
    attention = ((h, q_dim), (h, kv_dim), (h, kv_dim), (q_dim, h))
    inner = spec.intermediate_size
    if spec.gated_mlp:
        width = spec.expert_width
        mlp = ((h, width), (h, width), (width, h)) * spec.num_experts
        shared = spec.shared_expert_intermediate_size
        if shared:
            mlp += ((h, shared), (h, shared), (shared, h))
    else:
        mlp = ((h, inner), (inner, h))
    return attention + mlp


def layer_parameters(spec: ModelSpec) -> int:
    """Parameters of one transformer block."""
    weights = sum(i * o for i, o in layer_linear_shapes(spec))
    h = spec.hidden_size
    q_dim = spec.num_heads * spec.attention_head_dim
    kv_dim = spec.num_kv_heads * spec.attention_head_dim
    if spec.family == "decoder":
        biases = (q_dim + 2 * kv_dim) if spec.qkv_bias else 0
        norms = spec.norms_per_layer * spec.norm_parameters
        norms += 2 * spec.attention_head_dim if spec.qk_norm else 0
        router = h * spec.num_experts if spec.num_experts > 1 else 0
        if spec.shared_expert_intermediate_size:
            router += h  # the shared expert's gate: one output (Qwen2-MoE)
        return weights + biases + norms + router
    # encoder, gpt2, vit: every linear has a bias; LayerNorm has scale and bias.
    biases = q_dim + 2 * kv_dim + h + spec.intermediate_size + h
    return weights + biases + 2 * h * spec.norms_per_layer


def linear_parameters(spec: ModelSpec) -> int:
    """Weights of the blocks' linear layers (what LoRA targets and 8/4-bit loading quantises)."""
    return spec.num_layers * sum(i * o for i, o in layer_linear_shapes(spec))


def _resnet_parameters(spec: ModelSpec) -> int:
    total = 7 * 7 * 3 * 64 + 2 * 64  # stem conv (no bias) and its BatchNorm
    channels = 64
    for stage, blocks in enumerate(spec.stage_blocks):
        width = 64 * 2**stage
        for block in range(blocks):
            total += channels * width + 2 * width  # 1x1 conv + BN
            total += 9 * width * width + 2 * width  # 3x3 conv + BN
            total += width * 4 * width + 2 * 4 * width  # 1x1 conv + BN
            if block == 0:
                total += channels * 4 * width + 2 * 4 * width  # downsample conv + BN
            channels = 4 * width
    return total + channels * spec.num_classes + spec.num_classes


def parameter_count(spec: ModelSpec) -> int:
    """All parameters, derived from the shape (docs/fit.md, "Parameters")."""
    if spec.family == "unknown":
        return spec.given_parameters
    if spec.family == "resnet":
        return _resnet_parameters(spec)
    h = spec.hidden_size
    blocks = spec.num_layers * layer_parameters(spec)
    if spec.family == "vit":
        patch = 3 * spec.patch_size**2 * h + h
        return (
            patch
            + h
            + spec.vit_tokens * h
            + blocks
            + 2 * h
            + h * spec.num_classes
            + spec.num_classes
        )
    embeddings = spec.vocab_size * h
    head = 0 if spec.tied_embeddings else spec.vocab_size * h
    if spec.family == "decoder":
        return embeddings + head + blocks + spec.norm_parameters
    positions = (spec.max_positions + spec.extra_positions) * h
    if spec.family == "gpt2":
        return embeddings + head + positions + blocks + 2 * h
    # encoder (BERT): token types, embedding LayerNorm, pooler
    return embeddings + positions + spec.type_vocab_size * h + 2 * h + blocks + h * h + h


def embedding_parameters(spec: ModelSpec) -> int:
    """Parameters outside the blocks' linear layers that 8/4-bit loading keeps in 16 bits."""
    return parameter_count(spec) - linear_parameters(spec)


# --- the built-in table ---------------------------------------------------------------------

_INT_FIELDS = (
    "hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "intermediate_size",
    "vocab_size", "max_positions", "type_vocab_size", "num_experts", "experts_per_token",
    "norms_per_layer", "image_size", "patch_size", "num_classes",
)  # fmt: skip


def _spec_from_entry(entry: dict[str, Any]) -> ModelSpec:
    kwargs: dict[str, Any] = {name: int(entry[name]) for name in _INT_FIELDS if name in entry}
    return ModelSpec(
        id=entry["id"],
        family=entry["family"],
        qkv_bias=bool(entry.get("qkv_bias", False)),
        tied_embeddings=bool(entry.get("tied_embeddings", False)),
        dropout=float(entry.get("dropout", 0.0)),
        stage_blocks=tuple(entry.get("stage_blocks", ())),
        checkpoint_dtype=entry.get("checkpoint_dtype", "float32"),
        hf_id=entry.get("hf_id"),
        stated_parameters=entry.get("stated_parameters"),
        stated_as=entry.get("stated_as"),
        sources=dict(entry.get("sources", {})),
        **kwargs,
    )


@cache
def builtin_models() -> tuple[ModelSpec, ...]:
    """Every model of the built-in table."""
    text = read_data_text("models.json")
    return tuple(_spec_from_entry(entry) for entry in json.loads(text)["models"])


@cache
def _name_index() -> dict[str, ModelSpec]:
    index: dict[str, ModelSpec] = {}
    text = read_data_text("models.json")
    entries = json.loads(text)["models"]
    for spec, entry in zip(builtin_models(), entries, strict=True):
        for name in (spec.id, spec.hf_id, *entry.get("aliases", ())):
            if name:
                index[name.lower()] = spec
                # a Hugging Face id without its organisation ("vit-b/16" is no organisation)
                basename = name.lower().rsplit("/", 1)[-1]
                if "/" in name and not basename.isdigit():
                    index[basename] = index.get(basename, spec)
    return index


_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmbt])\s*$", re.IGNORECASE)
_SCALE = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def parse_parameter_count(text: str) -> int | None:
    """``7B``, ``110M``, ``1.5b`` -> a count; anything else -> None."""
    match = _COUNT.match(text)
    if not match:
        return None
    value = float(match.group(1)) * _SCALE[match.group(2).lower()]
    # A count too large for a float is beyond any bound: the plausibility check refuses it.
    return round(value) if value < 1e300 else MAX_PARAMETERS + 1


def resolve_model(text: str) -> ModelSpec:
    """A built-in name or HF id, a path to a ``config.json``, or a bare count like ``7B``.

    Raises:
        ModelLookupError: unknown name (with the closest names), unreadable or unusable config.
    """
    key = text.strip().lower()
    index = _name_index()
    spaced = re.sub(r"[\s_]+", "-", key)  # "llama 3 8b" is llama-3-8b
    builtin = index.get(key) or index.get(spaced)
    local = Path(text).expanduser()
    if builtin is not None and (local / "config.json").is_file():
        # transformers' from_pretrained takes an existing local folder before a Hub id
        return load_hf_config(
            local / "config.json",
            notes=(
                f"{text} is a folder here: its config.json is read, not the built-in "
                f"{builtin.id} (as transformers' from_pretrained does)",
            ),
        )
    if builtin is not None:
        return builtin
    count = parse_parameter_count(text)
    if count is not None:
        if count <= 0:
            raise ModelLookupError(
                f"{text!r}: a parameter count must be above zero", code="bad_parameter_count"
            )
        check_plausible_count(count, repr(text.strip()), "bad_parameter_count")
        return ModelSpec(
            id=f"{text.strip()} parameters",
            family="unknown",
            given_parameters=count,
            # Only the count is known: assume 16-bit files, as the large checkpoints of today
            # ship (Llama, Mistral, Qwen, Phi-3 publish bfloat16 or float16; docs/fit.md).
            checkpoint_dtype="bfloat16",
            origin="count",
        )
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelLookupError(f"{path}: a folder without a config.json in it")
        path = path / "config.json"
    if path.exists() or text.endswith(".json"):
        return load_hf_config(path)
    bare = _bare_number_counts(text)
    if bare:
        raise ModelLookupError(
            f"{text!r}: a parameter count needs its unit (K, M, B or T)", bare,
            code="unknown_model",
        )  # fmt: skip
    close = difflib.get_close_matches(spaced, list(index), n=8, cutoff=0.5)
    # A known name that the text extends ("gpt2" for "gpt2-xl") is another model, often of
    # another size: not what was meant.
    extended = {spec.id for name, spec in index.items() if spaced.startswith(f"{name}-")}
    suggestions = tuple(
        dict.fromkeys(index[name].id for name in close if index[name].id not in extended)
    )[:3]
    raise ModelLookupError(f"unknown model {text!r}", suggestions, code="unknown_model")


_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)?(?:e\d+)?\s*$", re.IGNORECASE)


def _bare_number_counts(text: str) -> tuple[str, ...]:
    """``7`` -> 7B, 7M; ``7e9`` -> 7B: the counts a number without a unit may have meant.

    Raises:
        ModelLookupError: a number that is not above zero.
    """
    if not _NUMBER.match(text):
        return ()
    value = float(text)
    if value <= 0:
        raise ModelLookupError(
            f"{text!r}: a parameter count must be above zero", code="bad_parameter_count"
        )
    if value < 1000:
        return (f"{value:g}B", f"{value:g}M")
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return (f"{value / scale:.4g}{unit}",)
    return ()


# --- Hugging Face config.json ---------------------------------------------------------------


def _first(config: dict[str, Any], *names: str) -> Any:
    for name in names:
        if config.get(name) is not None:
            return config[name]
    return None


def _check_positive(
    path: Path, config: dict[str, Any], values: tuple[tuple[str, Any], ...]
) -> None:
    """Every value given must be a whole number above zero (JSON's 4096, not "4096" or 0).

    Raises:
        ModelLookupError: naming the first invalid value.
    """
    for name, value in values:
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ModelLookupError(
                f"{path}: invalid config: {name} is {json.dumps(value)}; a whole number above "
                "zero is expected"
            )


@cache
def _model_types() -> dict[str, dict[str, Any]]:
    """The model types dlready counts exactly, with their config class's defaults."""
    table: dict[str, dict[str, Any]] = json.loads(read_data_text("hf_model_types.json"))[
        "model_types"
    ]
    return table


_ENCODER_DECODER_KEYS = ("num_decoder_layers", "decoder_layers", "encoder_layers")
_TOWER_KEYS = ("vision_config", "audio_config", "vision_tower", "mm_vision_tower", "visual")
_UNMODELLED_FEATURES = (
    ("kv_lora_rank", "multi-head latent attention (kv_lora_rank)"),
    ("q_lora_rank", "multi-head latent attention (q_lora_rank)"),
    ("first_k_dense_replace", "dense layers before the experts (first_k_dense_replace)"),
    ("n_shared_experts", "shared experts (n_shared_experts)"),
    ("mlp_only_layers", "dense layers among the experts (mlp_only_layers)"),
)
_EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_top_k")
MAX_PARAMETERS = 100 * 10**12
"""Far above the largest published models (Switch-C, 1.6 trillion parameters: Fedus et al.
2021, arXiv:2101.03961); a larger count is a typo or a broken config, not a model."""


def check_plausible_count(count: int, what: str, code: str) -> None:
    """Refuse a parameter count beyond :data:`MAX_PARAMETERS`.

    Raises:
        ModelLookupError: with ``code``, naming the bound.
    """
    if count > MAX_PARAMETERS:
        raise ModelLookupError(
            f"{what}: more than 100 trillion parameters is not a real model (the largest "
            "published ones have about 1.6 trillion); check the numbers given",
            code=code,
        )


def _unmodelled(path: Path, layout: str) -> ModelLookupError:
    """A layout the formulas do not cover, named: refused rather than partly counted."""
    return ModelLookupError(
        f"{path}: {layout} is a layout dlready does not count exactly; it refuses rather than guess"
    )


def _refuse_unmodelled(path: Path, config: dict[str, Any], model_type: str) -> None:
    """Refuse what the formulas do not cover, naming it, rather than count part of it.

    Raises:
        ModelLookupError: an encoder-decoder, a vision or audio tower, or an attention or
            expert layout that dlready does not model.
    """
    encoder_decoder = [key for key in _ENCODER_DECODER_KEYS if key in config]
    if config.get("is_encoder_decoder") is True or encoder_decoder:
        named = encoder_decoder[0] if encoder_decoder else "is_encoder_decoder"
        raise ModelLookupError(
            f"{path}: an encoder-decoder model ({model_type or 'no model_type'}, {named}): "
            "dlready counts decoder-only and encoder-only transformers only"
        )
    towers = [key for key in _TOWER_KEYS if config.get(key)]
    if towers:
        raise ModelLookupError(
            f"{path}: a multimodal model with a {towers[0].split('_')[0]} tower ({towers[0]}): "
            "dlready counts the language model only; give its text model's config.json instead"
        )
    for key, feature in _UNMODELLED_FEATURES:
        if config.get(key) not in (None, 0, []):
            raise _unmodelled(path, feature)
    if config.get("decoder_sparse_step") not in (None, 1):
        step = json.dumps(config["decoder_sparse_step"])
        raise _unmodelled(path, f"dense layers among the experts (decoder_sparse_step {step})")


def _falcon_attention(path: Path, config: dict[str, Any], heads: int) -> tuple[int, int]:
    """Falcon's key/value heads and LayerNorms per block, as transformers' FalconAttention and
    FalconDecoderLayer build them (multi_query and parallel_attn default to true).

    Raises:
        ModelLookupError: Falcon with biases, which the formulas do not count.
    """
    if config.get("bias") is True:
        raise _unmodelled(path, "falcon with bias true")
    new_architecture = config.get("new_decoder_architecture") is True
    if new_architecture:
        kv_heads = config.get("num_kv_heads") or heads
    elif config.get("multi_query", True) is not False:
        kv_heads = 1
    else:
        kv_heads = heads
    norms_in_parallel = config.get("num_ln_in_parallel_attn") or (2 if new_architecture else 1)
    if new_architecture and norms_in_parallel == 2:
        return kv_heads, 2  # ln_attn and ln_mlp
    return kv_heads, 1 if config.get("parallel_attn", True) is not False else 2


def _refuse_family_layout(path: Path, config: dict[str, Any], model_type: str) -> None:
    """Options of a known model type that its formulas do not cover: biases beyond Qwen's
    Q, K and V (Llama's ``attention_bias`` also biases the output projection), OPT's variants.

    Raises:
        ModelLookupError: naming the option.
    """
    for key in ("attention_bias", "mlp_bias"):
        if config.get(key) is True:
            raise _unmodelled(path, f"{model_type} with {key} true")
    if model_type != "opt":
        return
    hidden = config.get("hidden_size")
    layout = (
        ("word_embed_proj_dim", config.get("word_embed_proj_dim") not in (None, hidden)),
        ("do_layer_norm_before", config.get("do_layer_norm_before") is False),
        ("_remove_final_layer_norm", config.get("_remove_final_layer_norm") is True),
        ("enable_bias", config.get("enable_bias") is False),
        ("layer_norm_elementwise_affine", config.get("layer_norm_elementwise_affine") is False),
    )
    for key, unusual in layout:
        if unusual:
            raise _unmodelled(path, f"OPT with {key} {json.dumps(config[key])}")


def load_hf_config(path: Path, notes: tuple[str, ...] = ()) -> ModelSpec:
    """The shape from a Hugging Face ``config.json`` (read locally; nothing is downloaded).

    Only the model types of ``data/hf_model_types.json`` are counted, each field read as
    transformers reads it; a missing field is refused, except where transformers' default is
    well known (GPT-2's ``n_inner``), which a note then names.

    Raises:
        ModelLookupError: unreadable, not JSON, missing the numbers the estimate needs, or a
            model whose parameters dlready cannot count exactly.
    """
    try:
        config = read_json_file(path, MAX_CONFIG_FILE_BYTES, ModelLookupError)
    except RecursionError:
        raise ModelLookupError(f"{path}: not JSON: nested too deeply") from None
    if not isinstance(config, dict):
        raise ModelLookupError(f"{path}: not a Hugging Face config (a JSON object is expected)")
    model_type = str(config.get("model_type") or "").lower()
    _refuse_unmodelled(path, config, model_type)
    if isinstance(config.get("text_config"), dict):  # a wrapper with no other tower
        config = config["text_config"]
        model_type = str(config.get("model_type") or "").lower()
        _refuse_unmodelled(path, config, model_type)
    hidden = _first(config, "hidden_size", "n_embd", "d_model", "dim")
    layers = _first(config, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    heads = _first(config, "num_attention_heads", "n_head", "num_heads", "n_heads")
    required = (("hidden_size", hidden), ("num_hidden_layers", layers),
                ("num_attention_heads", heads))  # fmt: skip
    missing = [name for name, value in required if value is None]
    if missing:
        raise ModelLookupError(
            f"{path}: not a transformer config dlready understands: no {', '.join(missing)}"
        )
    _check_positive(path, config, required)
    kind = _model_types().get(model_type)
    if kind is None:
        known = ", ".join(sorted(_model_types()))
        raise ModelLookupError(
            f"{path}: model type {model_type or '(none given)'!r} is not one dlready can count "
            f"exactly; it reads {known}"
        )
    _refuse_family_layout(path, config, model_type)
    family = str(kind["family"])
    spec_notes = list(notes)
    kv_heads = _first(config, "num_key_value_heads", "num_kv_heads", "multi_query_group_num")
    if config.get("multi_query") is True:
        kv_heads = 1
    norms_per_layer = int(kind.get("norms_per_layer", 2))
    if model_type == "falcon":
        kv_heads, norms_per_layer = _falcon_attention(path, config, heads)
    vocab = _first(config, "vocab_size")
    if family == "vit":
        vocab = 0
    elif vocab is None:
        raise ModelLookupError(f"{path}: no vocab_size: the embeddings cannot be counted")
    inner = _first(config, "intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size", "d_ff")
    if inner is None and model_type in ("gpt2", "falcon"):
        # GPT2Config's n_inner and FalconConfig's ffn_hidden_size: None means 4 x the hidden
        # size (transformers' GPT2Block, FalconConfig.__init__)
        inner = 4 * hidden
        width_key = "n_inner" if model_type == "gpt2" else "ffn_hidden_size"
        spec_notes.append(
            f"{width_key} is not set: the default MLP width of {model_type}, 4 x {hidden:,} = "
            f"{inner:,}, is assumed (as transformers does)"
        )
    elif inner is None:
        raise ModelLookupError(
            f"{path}: no intermediate_size (the MLP width): the MLP cannot be counted"
        )
    moe = model_type in ("mixtral", "qwen2_moe")
    experts = _first(config, "num_local_experts", "num_experts") if moe else 1
    per_token = _first(config, "num_experts_per_tok") if moe else 1
    expert_inner = config.get("moe_intermediate_size") if model_type == "qwen2_moe" else 0
    shared_inner = config.get("shared_expert_intermediate_size") if model_type == "qwen2_moe" else 0
    if moe:
        absent = [name for name, value in (("num_experts", experts),
                                           ("num_experts_per_tok", per_token),
                                           ("moe_intermediate_size", expert_inner),
                                           ("shared_expert_intermediate_size", shared_inner))
                  if value is None]  # fmt: skip
        if absent:
            raise ModelLookupError(f"{path}: no {', '.join(absent)}: the experts cannot be counted")
    else:
        stray = [key for key in _EXPERT_KEYS if config.get(key) not in (None, 0, 1)]
        if (
            stray
            or config.get("moe_intermediate_size")
            or config.get("shared_expert_intermediate_size")
        ):
            named = stray[0] if stray else "moe_intermediate_size"
            raise ModelLookupError(
                f"{path}: experts ({named}) in a {model_type} config: a layout dlready does not "
                "count exactly; it refuses rather than guess"
            )
    head_dim = config.get("head_dim") or 0
    if not head_dim and kind.get("head_dim_required"):
        raise ModelLookupError(
            f"{path}: no head_dim: {model_type}'s default is not hidden_size / heads, so the "
            "attention cannot be counted"
        )
    _check_positive(
        path,
        config,
        tuple(
            (name, value)
            for name, value in (("num_key_value_heads", kv_heads), ("intermediate_size", inner),
                                ("vocab_size", vocab or None), ("num_experts", experts),
                                ("num_experts_per_tok", per_token),
                                ("moe_intermediate_size", expert_inner or None),
                                ("shared_expert_intermediate_size", shared_inner or None),
                                ("head_dim", head_dim or None))
            if value is not None
        ),
    )  # fmt: skip
    if per_token > experts:
        raise ModelLookupError(
            f"{path}: invalid config: num_experts_per_tok {per_token} is more than the "
            f"{experts} experts there are"
        )
    if not head_dim and hidden % heads:
        raise ModelLookupError(
            f"{path}: invalid config: hidden_size {hidden} is not divisible by "
            f"num_attention_heads {heads}"
        )
    if heads % (kv_heads or heads):
        raise ModelLookupError(
            f"{path}: invalid config: num_attention_heads {heads} is not a multiple of "
            f"num_key_value_heads {kv_heads}"
        )
    positions = _first(config, "max_position_embeddings", "n_positions", "n_ctx", "seq_length")
    if family in ("gpt2", "encoder") and positions is None:
        raise ModelLookupError(
            f"{path}: no max_position_embeddings: the learned positions cannot be counted"
        )
    type_vocab = config.get("type_vocab_size")
    if family == "encoder" and type_vocab is None:
        raise ModelLookupError(f"{path}: no type_vocab_size: the embeddings cannot be counted")
    tied = config.get("tie_word_embeddings")
    if tied is None:
        tied = kind["tie_word_embeddings"]  # the config class's default (hf_model_types.json)
    elif not isinstance(tied, bool):
        raise ModelLookupError(
            f"{path}: invalid config: tie_word_embeddings is {json.dumps(tied)}; true or false "
            "is expected"
        )
    torch_dtype = str(_first(config, "torch_dtype", "dtype") or "float32")
    if family == "vit":
        extra: dict[str, Any] = {
            "image_size": int(config.get("image_size", 224)),
            "patch_size": int(config.get("patch_size", 16)),
            "num_classes": len(config.get("id2label") or {}) or 1000,
        }
    else:
        extra = {}
    spec = ModelSpec(
        id=str(config.get("_name_or_path") or path),
        family=family,
        hidden_size=int(hidden),
        num_layers=int(layers),
        num_heads=int(heads),
        num_kv_heads=int(kv_heads or heads),
        head_dim=int(head_dim),
        intermediate_size=int(inner),
        vocab_size=int(vocab),
        max_positions=int(positions or 0),
        type_vocab_size=int(type_vocab or 0),
        num_experts=int(experts),
        experts_per_token=int(per_token),
        expert_intermediate_size=int(expert_inner or 0),
        shared_expert_intermediate_size=int(shared_inner or 0),
        extra_positions=int(kind.get("extra_positions", 0)),
        qkv_bias=qkv_bias
        if isinstance(qkv_bias := config.get("qkv_bias"), bool)
        else bool(kind.get("qkv_bias", False)),
        tied_embeddings=tied,
        norms_per_layer=norms_per_layer,
        ungated_mlp=bool(kind.get("ungated_mlp", False)),
        layer_norm=bool(kind.get("layer_norm", False)),
        qk_norm=bool(kind.get("qk_norm", False)),
        dropout=float(
            _first(config, "hidden_dropout_prob", "resid_pdrop", "hidden_dropout", "dropout") or 0.0
        ),
        checkpoint_dtype=torch_dtype,
        origin="config.json",
        sources={"config": str(path), "model_type": str(kind["source"])},
        notes=tuple(spec_notes),
        **extra,
    )
    check_plausible_count(parameter_count(spec), str(path), "bad_model_config")
    return spec
