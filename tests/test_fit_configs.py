"""How ``dlready fit`` reads a Hugging Face ``config.json``: parameter counts checked against
the published ones, and refusals (exit 2) for what cannot be counted exactly.

The configs below are the published config.json files (their URL beside each), cut to the
keys that shape the model; the cuts keep every key that transformers reads for the count.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dlready.cli import app
from dlready.fit.catalog import (
    MAX_PARAMETERS,
    ModelLookupError,
    parameter_count,
    resolve_model,
)
from dlready.fit.estimate import Request, estimate
from dlready.model import to_jsonable
from machines import replay_snapshot

runner = CliRunner()

# https://huggingface.co/Qwen/Qwen1.5-MoE-A2.7B/blob/main/config.json
QWEN15_MOE_A27B: dict[str, Any] = {
    "architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe",
    "hidden_size": 2048, "intermediate_size": 5632, "moe_intermediate_size": 1408,
    "shared_expert_intermediate_size": 5632, "num_experts": 60, "num_experts_per_tok": 4,
    "decoder_sparse_step": 1, "num_hidden_layers": 24, "num_attention_heads": 16,
    "num_key_value_heads": 16, "vocab_size": 151936, "max_position_embeddings": 8192,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}  # fmt: skip
# https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json
DEEPSEEK_V3: dict[str, Any] = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
    "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8,
    "num_hidden_layers": 61, "first_k_dense_replace": 3, "num_attention_heads": 128,
    "num_key_value_heads": 128, "kv_lora_rank": 512, "q_lora_rank": 1536,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "vocab_size": 129280,
}  # fmt: skip
# https://huggingface.co/google/flan-t5-xxl/blob/main/config.json
FLAN_T5_XXL: dict[str, Any] = {
    "architectures": ["T5ForConditionalGeneration"], "model_type": "t5", "d_model": 4096,
    "d_ff": 10240, "d_kv": 64, "num_heads": 64, "num_layers": 24, "num_decoder_layers": 24,
    "vocab_size": 32128, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False,
    "is_encoder_decoder": True,
}  # fmt: skip
# https://huggingface.co/facebook/opt-1.3b/blob/main/config.json
OPT_13B: dict[str, Any] = {
    "architectures": ["OPTForCausalLM"], "model_type": "opt", "hidden_size": 2048,
    "ffn_dim": 8192, "num_hidden_layers": 24, "num_attention_heads": 32, "vocab_size": 50272,
    "max_position_embeddings": 2048, "word_embed_proj_dim": 2048, "do_layer_norm_before": True,
    "dropout": 0.1, "activation_function": "relu", "torch_dtype": "float16",
}  # fmt: skip
# https://huggingface.co/openai-community/gpt2-xl/blob/main/config.json ("n_inner": null)
GPT2_XL: dict[str, Any] = {
    "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 1600, "n_layer": 48,
    "n_head": 25, "n_inner": None, "n_positions": 1024, "n_ctx": 1024, "vocab_size": 50257,
}  # fmt: skip
# https://huggingface.co/tiiuae/falcon-7b/blob/main/config.json (no ffn_hidden_size key)
FALCON_7B: dict[str, Any] = {
    "architectures": ["FalconForCausalLM"], "model_type": "falcon", "hidden_size": 4544,
    "num_hidden_layers": 32, "num_attention_heads": 71, "multi_query": True,
    "parallel_attn": True, "new_decoder_architecture": False, "bias": False, "alibi": False,
    "vocab_size": 65024, "torch_dtype": "bfloat16",
}  # fmt: skip
# https://huggingface.co/google/gemma-7b/blob/main/config.json (no tie_word_embeddings key)
GEMMA_7B: dict[str, Any] = {
    "architectures": ["GemmaForCausalLM"], "model_type": "gemma", "hidden_size": 3072,
    "intermediate_size": 24576, "num_hidden_layers": 28, "num_attention_heads": 16,
    "num_key_value_heads": 16, "head_dim": 256, "vocab_size": 256000,
    "max_position_embeddings": 8192, "torch_dtype": "bfloat16",
}  # fmt: skip
# https://huggingface.co/google/gemma-2-27b/blob/main/config.json (no tie_word_embeddings key)
GEMMA2_27B: dict[str, Any] = {
    "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 4608,
    "intermediate_size": 36864, "num_hidden_layers": 46, "num_attention_heads": 32,
    "num_key_value_heads": 16, "head_dim": 128, "vocab_size": 256000,
    "max_position_embeddings": 8192, "torch_dtype": "float32",
}  # fmt: skip
# https://huggingface.co/Qwen/Qwen3-8B/blob/main/config.json
QWEN3_8B: dict[str, Any] = {
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 4096,
    "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
    "max_position_embeddings": 40960, "attention_bias": False, "tie_word_embeddings": False,
}  # fmt: skip
# https://huggingface.co/google/gemma-3-1b-pt/blob/main/config.json
GEMMA3_1B: dict[str, Any] = {
    "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 1152,
    "intermediate_size": 6912, "num_hidden_layers": 26, "num_attention_heads": 4,
    "num_key_value_heads": 1, "head_dim": 256, "vocab_size": 262144,
    "max_position_embeddings": 32768,
}  # fmt: skip
# https://huggingface.co/meta-llama/Llama-2-7b-hf/blob/main/config.json
LLAMA_2_7B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
}  # fmt: skip


def _write(folder: Path, config: dict[str, Any], name: str = "config.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(config))
    return path


def _count(folder: Path, config: dict[str, Any]) -> int:
    return parameter_count(resolve_model(str(_write(folder, config))))


def _refusal(folder: Path, config: dict[str, Any]) -> ModelLookupError:
    with pytest.raises(ModelLookupError) as raised:
        resolve_model(str(_write(folder, config)))
    assert raised.value.code == "bad_model_config"
    return raised.value


# --- counts against the published ones -------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "published", "rel"),
    [
        # Gemma paper (Gemma Team 2024, arXiv:2403.08295, Table 2): 7B = 786,432,000 embedding
        # + 7,751,248,896 non-embedding parameters.
        (GEMMA_7B, 8_537_680_896, 0.0),
        # Gemma 2 paper (arXiv:2408.00118, Table 2): 27B = 1,179,648,000 embedding
        # + 26,047,480,320 non-embedding parameters.
        (GEMMA2_27B, 27_227_128_320, 0.0),
        # https://huggingface.co/Qwen/Qwen1.5-MoE-A2.7B: "14.3B parameters in total".
        (QWEN15_MOE_A27B, 14.3e9, 0.005),
        # OPT paper (Zhang et al. 2022, arXiv:2205.01068, Table 1): 1.3B.
        (OPT_13B, 1.3e9, 0.015),
        # https://huggingface.co/openai-community/gpt2-xl: "the 1.5B parameter version".
        (GPT2_XL, 1.5e9, 0.04),
        (LLAMA_2_7B, 6.74e9, 0.001),  # Llama 2 paper, Table 1 / the model card: 6.74B
        # https://huggingface.co/Qwen/Qwen3-8B: "Number of Parameters: 8.2B"
        (QWEN3_8B, 8.2e9, 0.005),
        # Gemma 3 report (arXiv:2503.19786, Table 1): 1B = 302M embedding + 698M non-embedding
        (GEMMA3_1B, 1.0e9, 0.001),
        # https://huggingface.co/tiiuae/falcon-7b: "a 7B parameters causal decoder-only model"
        (FALCON_7B, 7e9, 0.015),
    ],
)
def test_config_counts_match_the_published_ones(
    tmp_path: Path, config: dict[str, Any], published: float, rel: float
) -> None:
    assert _count(tmp_path, config) == pytest.approx(published, rel=rel, abs=0)


def test_qwen2_moe_counts_experts_of_their_own_width_and_the_shared_expert(
    tmp_path: Path,
) -> None:
    spec = resolve_model(str(_write(tmp_path, QWEN15_MOE_A27B)))
    h, layers = 2048, 24
    attention = 4 * h * h + 3 * h  # Q, K, V with biases, output without
    experts = 60 * 3 * h * 1408 + 3 * h * 5632 + h * 60 + h  # routed, shared, router, gate
    expected = layers * (attention + experts + 2 * h) + h + 2 * 151936 * h
    assert parameter_count(spec) == expected
    # a token passes through 4 experts of 1,408 and the shared one of 5,632
    assert spec.active_mlp_width == 4 * 1408 + 5632
    # the intermediate_size of a dense layer (5,632) is not the experts' width
    assert parameter_count(spec) < 15e9


def test_mixtral_experts_keep_the_intermediate_size() -> None:
    spec = resolve_model("mixtral-8x7b")
    assert spec.expert_width == 14336
    assert spec.active_mlp_width == 2 * 14336


def test_qwen3_counts_its_query_and_key_norms(tmp_path: Path) -> None:
    with_norms = resolve_model(str(_write(tmp_path, QWEN3_8B)))
    without = resolve_model(str(_write(tmp_path, {**QWEN3_8B, "model_type": "llama"})))
    assert parameter_count(with_norms) - parameter_count(without) == 36 * 2 * 128
    request = Request(task="train")
    assert (
        estimate(with_norms, request).activations_bytes
        > estimate(without, request).activations_bytes
    )


def test_opt_mlp_is_ungated_with_learned_positions_offset_by_two(tmp_path: Path) -> None:
    spec = resolve_model(str(_write(tmp_path, OPT_13B)))
    assert spec.intermediate_size == 8192  # ffn_dim
    assert not spec.gated_mlp
    h = 2048
    block = 4 * h * h + 4 * h + 2 * h * 8192 + 8192 + h + 4 * h
    assert parameter_count(spec) == 50272 * h + 2050 * h + 24 * block + 2 * h


def test_falcon_counts_one_layernorm_a_shared_kv_head_and_an_ungated_mlp(
    tmp_path: Path,
) -> None:
    spec = resolve_model(str(_write(tmp_path, FALCON_7B)))
    h, head = 4544, 64
    assert (spec.num_kv_heads, spec.norms_per_layer, spec.intermediate_size) == (1, 1, 4 * h)
    assert not spec.gated_mlp
    block = h * (71 + 2) * head + h * h + 2 * h * 4 * h + 2 * h  # QKV, dense, MLP, LayerNorm
    assert parameter_count(spec) == 65024 * h + 32 * block + 2 * h  # tied head, ln_f
    assert any("ffn_hidden_size" in note for note in spec.notes)
    # Falcon-40B's layout (tiiuae/falcon-40b config.json): grouped KV heads, two LayerNorms
    new = {**FALCON_7B, "hidden_size": 8192, "num_attention_heads": 128, "num_kv_heads": 8,
           "new_decoder_architecture": True, "ffn_hidden_size": 32768}  # fmt: skip
    spec = resolve_model(str(_write(tmp_path, new)))
    assert (spec.num_kv_heads, spec.norms_per_layer, spec.notes) == (8, 2, ())


def test_gpt2_default_mlp_width_is_used_and_said(tmp_path: Path) -> None:
    spec = resolve_model(str(_write(tmp_path, GPT2_XL)))
    assert spec.intermediate_size == 4 * 1600
    (note,) = spec.notes
    assert "n_inner" in note
    assert "6,400" in note
    notes = estimate(spec, Request()).notes
    assert note in notes


@pytest.mark.parametrize(
    ("config", "tied"),
    [
        (GEMMA_7B, True),  # GemmaConfig: tie_word_embeddings=True
        ({**GEMMA_7B, "tie_word_embeddings": False}, False),
        ({k: v for k, v in LLAMA_2_7B.items() if k != "tie_word_embeddings"}, False),
        ({**LLAMA_2_7B, "tie_word_embeddings": True}, True),
        (OPT_13B, True),  # OPTConfig: tie_word_embeddings=True
    ],
)
def test_an_absent_tie_word_embeddings_is_the_config_class_default(
    tmp_path: Path, config: dict[str, Any], tied: bool
) -> None:
    assert resolve_model(str(_write(tmp_path, config))).tied_embeddings is tied


def test_repository_llama_fixtures_keep_their_explicit_untied_head() -> None:
    folder = Path(__file__).parent / "fixtures" / "hf_configs"
    for name in ("llama-65b.json", "tinyllama-1.1b.json"):
        assert resolve_model(str(folder / name)).tied_embeddings is False


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "words"),
    [
        (DEEPSEEK_V3, "multi-head latent attention (kv_lora_rank)"),
        ({**DEEPSEEK_V3, "kv_lora_rank": None, "q_lora_rank": None}, "first_k_dense_replace"),
        (FLAN_T5_XXL, "encoder-decoder"),
        ({k: v for k, v in FLAN_T5_XXL.items() if k != "is_encoder_decoder"}, "encoder-decoder"),
        (
            {
                "model_type": "whisper",
                "d_model": 1280,
                "encoder_layers": 32,
                "decoder_layers": 32,
                "vocab_size": 51866,
            },
            "encoder-decoder",
        ),
        (
            {
                "architectures": ["LlavaForConditionalGeneration"],
                "model_type": "llava",
                "text_config": LLAMA_2_7B,
                "vision_config": {"hidden_size": 1024, "num_hidden_layers": 24},
            },
            "vision tower (vision_config)",
        ),
        ({k: v for k, v in LLAMA_2_7B.items() if k != "vocab_size"}, "no vocab_size"),
        ({k: v for k, v in LLAMA_2_7B.items() if k != "intermediate_size"}, "intermediate_size"),
        (
            {
                **LLAMA_2_7B,
                "model_type": "mixtral",
                "num_local_experts": 2,
                "num_experts_per_tok": 8,
            },
            "num_experts_per_tok 8 is more than the 2 experts",
        ),
        ({**QWEN15_MOE_A27B, "decoder_sparse_step": 2}, "decoder_sparse_step"),
        ({**QWEN15_MOE_A27B, "mlp_only_layers": [0]}, "mlp_only_layers"),
        (
            {k: v for k, v in QWEN15_MOE_A27B.items() if k != "moe_intermediate_size"},
            "moe_intermediate_size",
        ),
        ({**LLAMA_2_7B, "num_local_experts": 8}, "experts (num_local_experts)"),
        ({**LLAMA_2_7B, "attention_bias": True}, "attention_bias"),
        ({**OPT_13B, "word_embed_proj_dim": 512}, "word_embed_proj_dim"),
        ({**OPT_13B, "do_layer_norm_before": False}, "do_layer_norm_before"),
        ({**FALCON_7B, "bias": True}, "falcon with bias true"),
        (
            {
                "model_type": "gpt_neox",
                "hidden_size": 2560,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "intermediate_size": 10240,
                "vocab_size": 50432,
            },
            "model type 'gpt_neox' is not one dlready can count exactly",
        ),
        ({k: v for k, v in LLAMA_2_7B.items() if k != "model_type"}, "(none given)"),
        ({**LLAMA_2_7B, "tie_word_embeddings": "yes"}, 'tie_word_embeddings is "yes"'),
        ({k: v for k, v in QWEN3_8B.items() if k != "head_dim"}, "no head_dim"),
        ({**LLAMA_2_7B, "hidden_size": 10**30}, "more than 100 trillion parameters"),
    ],
)
def test_what_cannot_be_counted_exactly_is_refused_by_name(
    tmp_path: Path, config: dict[str, Any], words: str
) -> None:
    assert words in str(_refusal(tmp_path, config))


def test_a_5000_digit_number_is_refused_in_plain_words(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama", "hidden_size": ' + "9" * 5000 + "}")
    with pytest.raises(ModelLookupError) as raised:
        resolve_model(str(path))
    message = str(raised.value)
    assert "more than 4,300 digits" in message
    assert "sys.set_int_max_str_digits" not in message


@pytest.mark.parametrize("text", ["99999999T", "101T", "9" * 400 + "T"])
def test_an_implausible_bare_count_is_refused(text: str) -> None:
    with pytest.raises(ModelLookupError, match="more than 100 trillion") as raised:
        resolve_model(text)
    assert raised.value.code == "bad_parameter_count"


def test_the_bound_is_far_above_published_models_and_accepts_it() -> None:
    assert parameter_count(resolve_model("100T")) == MAX_PARAMETERS
    assert parameter_count(resolve_model("1.6T")) == 1_600_000_000_000


def test_a_local_folder_named_like_a_built_in_model_is_read_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gpt2").mkdir()
    _write(tmp_path / "gpt2", GPT2_XL)
    monkeypatch.chdir(tmp_path)
    spec = resolve_model("gpt2")
    assert spec.origin == "config.json"
    assert spec.num_layers == 48
    assert any("folder here" in note and "built-in gpt2" in note for note in spec.notes)
    monkeypatch.chdir(tmp_path / "gpt2")  # no ./gpt2 here: the built-in model
    assert resolve_model("gpt2").origin == "built-in"


# --- the command ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def h200(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("snapshot") / "h200.json"
    path.write_text(json.dumps(to_jsonable(replay_snapshot("h200-141gb"))))
    return path


def test_cli_counts_qwen_moe_and_refuses_deepseek_v3_with_exit_2(
    tmp_path: Path, h200: Path
) -> None:
    moe = _write(tmp_path, QWEN15_MOE_A27B, "qwen-moe.json")
    result = runner.invoke(app, ["fit", str(moe), "--snapshot", str(h200), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"]["model"]["parameters"] == pytest.approx(
        14.3e9, rel=0.005
    )
    deepseek = _write(tmp_path, DEEPSEEK_V3, "deepseek.json")
    result = runner.invoke(app, ["fit", str(deepseek), "--snapshot", str(h200), "--json"])
    assert result.exit_code == 2
    (error,) = json.loads(result.stdout)["errors"]
    assert error["code"] == "bad_model_config"
    assert "kv_lora_rank" in error["message"]
    assert "parameter count" in error["hint"]  # the way out: a count, estimated by size


def test_cli_refuses_an_absurd_count_in_one_line(h200: Path) -> None:
    result = runner.invoke(app, ["fit", "99999999T", "--snapshot", str(h200)])
    assert result.exit_code == 2
    assert "TiB" not in result.output
    assert "more than 100 trillion parameters" in result.stderr
