"""Parity of `weights.load_hf`/`save_hf`/`load_gguf` + our `Transformer` against transformers' PyTorch models."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from monitor_jax.model import weights  # noqa: E402
from monitor_jax.model.transformer import Transformer, logits  # noqa: E402

DIMS = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, intermediate_size=96, rms_norm_eps=1e-5)
LLAMA3 = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
CONFIGS = {  # name -> (config class, extra kwargs)
    "llama_untied": ("LlamaConfig", dict(tie_word_embeddings=False)),
    "llama_tied": ("LlamaConfig", dict(tie_word_embeddings=True)),
    "llama3_rope": ("LlamaConfig", dict(tie_word_embeddings=False, rope_parameters=LLAMA3)),
    "qwen2": ("Qwen2Config", dict(tie_word_embeddings=False)),
    "qwen3": ("Qwen3Config", dict(tie_word_embeddings=True)),
    "mistral_window4": ("MistralConfig", dict(tie_word_embeddings=False, sliding_window=4)),
    "qwen2_window4": ("Qwen2Config", dict(tie_word_embeddings=True, use_sliding_window=True, sliding_window=4,
                                          max_window_layers=0)),
}
LENGTHS = (16, 9, 13)  # right-padded batch; the longest rows exceed the 4-token sliding window many times over


def _torch_model(name: str, tmp_path) -> tuple["torch.nn.Module", str]:
    """A tiny random HF model with weights large enough that a layout mistake shows in the logits, saved."""
    cls, extra = CONFIGS[name]
    torch.manual_seed(0)
    config = getattr(transformers, cls)(**DIMS, **extra)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager").float().eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif pname.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            elif "embed_tokens" in pname:
                p.normal_(0.0, 1.0)
            else:
                p.normal_(0.0, 0.2)
    path = tmp_path / name
    model.save_pretrained(path, safe_serialization=True)
    return model, str(path)


def _batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = max(LENGTHS)
    tokens = np.zeros((len(LENGTHS), t), np.int32)
    seg = np.zeros((len(LENGTHS), t), np.int32)
    for i, n in enumerate(LENGTHS):
        tokens[i, :n] = rng.integers(1, DIMS["vocab_size"], n)
        seg[i, :n] = 1
    tokens[seg == 0] = 7  # padding ids after the real tokens
    return tokens, seg


def _ours(cfg, params, tokens, seg) -> np.ndarray:
    hidden, _ = Transformer(cfg).apply({"params": params}, jnp.asarray(tokens), segment_ids=jnp.asarray(seg))
    return np.asarray(logits(params, hidden))


def _theirs(model, tokens, seg) -> np.ndarray:
    with torch.no_grad():
        out = model(input_ids=torch.tensor(tokens, dtype=torch.long), attention_mask=torch.tensor(seg))
    return out.logits.float().numpy()


def _max_diff(a: np.ndarray, b: np.ndarray, seg: np.ndarray) -> float:
    real = seg.astype(bool)
    return float(np.max(np.abs(a[real] - b[real])))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_load_hf_matches_torch(name, tmp_path):
    model, path = _torch_model(name, tmp_path)
    cfg, params = weights.load_hf(path)
    tokens, seg = _batch()
    ours = _ours(cfg, params, tokens, seg)
    theirs = _theirs(model, tokens, seg)
    assert np.abs(theirs).max() > 1.0  # logits far from zero, so the tolerance below means something
    diff = _max_diff(ours, theirs, seg)
    print(f"{name}: max |ours - torch| = {diff:.2e}")
    assert diff <= 1e-4
    # the shortest padded row equals the same row run alone (no padding): padding really is masked
    n = LENGTHS[1]
    alone = _ours(cfg, params, tokens[1:2, :n], seg[1:2, :n])
    np.testing.assert_allclose(alone[0], ours[1, :n], atol=1e-4)


def test_config_flags_are_exercised(tmp_path):
    """The features under test really change the logits (so the parity tests above could fail)."""
    tokens, seg = _batch()
    for name, field, off in (("mistral_window4", "sliding_window", None), ("qwen2_window4", "sliding_window", None),
                             ("llama3_rope", "rope_llama3_scaling", None), ("qwen2", "qkv_bias", False)):
        _, path = _torch_model(name, tmp_path)
        cfg, params = weights.load_hf(path)
        assert getattr(cfg, field) not in (None, False)
        plain_params = jax.tree.map(lambda x: x, params)
        if field == "qkv_bias":
            for p in ("q", "k", "v"):
                plain_params["layers"]["attn"][p].pop("bias")
        plain = _ours(cfg.replace(**{field: off}), plain_params, tokens, seg)
        assert _max_diff(plain, _ours(cfg, params, tokens, seg), seg) > 1e-2, name
    _, path = _torch_model("qwen3", tmp_path)
    cfg, _ = weights.load_hf(path)
    assert cfg.qk_norm and cfg.tie_embeddings and cfg.family == "qwen3"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_save_hf_round_trip(name, tmp_path):
    _, path = _torch_model(name, tmp_path)
    cfg, params = weights.load_hf(path)
    out = tmp_path / "saved"
    (out / "stale.txt").parent.mkdir()
    (out / "stale.txt").write_text("replaced atomically")
    weights.save_hf(params, cfg, out)
    assert not (out / "stale.txt").exists() and not list(tmp_path.glob(".saved.*"))
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), framework="numpy") as f:
        assert ("lm_head.weight" in f.keys()) == (not cfg.tie_embeddings)
    model = transformers.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager", dtype=torch.float32)
    assert type(model).__name__ == json.loads((out / "config.json").read_text())["architectures"][0]
    tokens, seg = _batch(1)
    diff = _max_diff(_ours(cfg, params, tokens, seg), _theirs(model.eval(), tokens, seg), seg)
    assert diff <= 1e-4
    cfg2, params2 = weights.load_hf(out)
    assert cfg2 == cfg
    jax.tree.map(np.testing.assert_array_equal, params, params2)


def test_save_hf_sharded_and_bf16(tmp_path):
    _, path = _torch_model("qwen2", tmp_path)
    cfg, params = weights.load_hf(path)
    weights.save_hf(params, cfg, tmp_path / "sharded", max_shard_bytes=40_000)
    assert len(list((tmp_path / "sharded").glob("model-*-of-*.safetensors"))) > 2
    _, params2 = weights.load_hf(tmp_path / "sharded")
    jax.tree.map(np.testing.assert_array_equal, params, params2)
    cfg16, p16 = weights.load_hf(tmp_path / "sharded", dtype=jnp.bfloat16)
    assert cfg16.param_dtype == "bfloat16" and p16["embed"].dtype == jnp.bfloat16
    weights.save_hf(p16, cfg16, tmp_path / "bf16")
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["dtype"] == "bfloat16"
    _, p16b = weights.load_hf(tmp_path / "bf16", dtype=jnp.bfloat16)
    jax.tree.map(np.testing.assert_array_equal, p16, p16b)


def test_save_hf_calls_tokenizer_save(tmp_path):
    _, path = _torch_model("llama_tied", tmp_path)
    cfg, params = weights.load_hf(path)

    class Tok:
        def save(self, d):
            (__import__("pathlib").Path(d) / "tokenizer.json").write_text("{}")

    weights.save_hf(params, cfg, tmp_path / "with_tok", tokenizer=Tok())
    assert (tmp_path / "with_tok" / "tokenizer.json").exists()


def _hf_dict(model_type="llama", **kw):
    base = dict(model_type=model_type, **DIMS, tie_word_embeddings=True, hidden_act="silu",
                torch_dtype="bfloat16", bos_token_id=1, eos_token_id=2, max_position_embeddings=2048, use_cache=True)
    return {**base, **kw}


def test_config_from_hf_v4_and_v5_rope_formats():
    v5 = weights.config_from_hf(_hf_dict(rope_parameters=LLAMA3))
    v4 = weights.config_from_hf(_hf_dict(rope_theta=10000.0, rope_scaling={k: v for k, v in LLAMA3.items()
                                                                            if k != "rope_theta"}))
    assert v4 == v5 and v5.rope_llama3_scaling == (8.0, 1.0, 4.0, 64) and v5.rope_theta == 10000.0
    smol = weights.config_from_hf(_hf_dict(rope_theta=100000, rope_scaling=None, is_llama_config=True,
                                           rope_interleaved=False, pretraining_tp=1, head_dim=None))
    assert smol.rope_theta == 1e5 and smol.head_dim == 16 and smol.rope_llama3_scaling is None
    # qwen2: sliding_window is ignored unless use_sliding_window (transformers' rule); all-sliding is supported
    assert weights.config_from_hf(_hf_dict("qwen2", sliding_window=4096, use_sliding_window=False)).sliding_window is None
    q = weights.config_from_hf(_hf_dict("qwen2", sliding_window=8, use_sliding_window=True, max_window_layers=0))
    assert q.sliding_window == 8 and q.qkv_bias
    assert weights.config_from_hf(_hf_dict("mistral", sliding_window=None)).sliding_window is None


@pytest.mark.parametrize("kw, named", [
    (dict(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}), "linear"),
    (dict(rope_scaling={"type": "yarn", "factor": 4.0}), "yarn"),
    (dict(rope_scaling={"rope_type": "dynamic", "factor": 4.0}), "dynamic"),
    (dict(rope_parameters={**LLAMA3, "beta_fast": 32}), "beta_fast"),
    (dict(some_future_flag=True), "some_future_flag"),
    (dict(mlp_bias=True), "mlp_bias"),
    (dict(attention_bias=True), "attention_bias"),
    (dict(hidden_act="gelu"), "hidden_act"),
    (dict(sliding_window=4), "sliding_window"),
    (dict(model_type="gemma"), "model_type"),
    (dict(model_type="qwen2", use_sliding_window=True, sliding_window=4, max_window_layers=1), "max_window_layers"),
    (dict(model_type="qwen3", layer_types=["full_attention", "sliding_attention"], use_sliding_window=True,
          sliding_window=4), "layer_types"),
    (dict(model_type="qwen3", attention_bias=True), "attention_bias"),
    (dict(model_type="qwen2", attention_bias=True), "attention_bias"),
    (dict(model_type="mistral", layer_types=["full_attention"] * 2), "layer_types"),
    (dict(quantization_config={"quant_method": "gptq"}), "quantization_config"),
])
def test_config_from_hf_refuses(kw, named):
    with pytest.raises(ValueError, match=named):
        weights.config_from_hf(_hf_dict(**kw))


def _llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py `LlamaModel.permute` (HF rotate-half rows -> interleaved pairs)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _write_gguf(path, arch, tensors: dict, n_layers=2):
    gguf = pytest.importorskip("gguf")
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(n_layers)
    w.add_embedding_length(DIMS["hidden_size"])
    w.add_feed_forward_length(DIMS["intermediate_size"])
    w.add_head_count(DIMS["num_attention_heads"])
    w.add_head_count_kv(DIMS["num_key_value_heads"])
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(DIMS["rms_norm_eps"])
    w.add_rope_dimension_count(DIMS["head_dim"])
    for name, t in tensors.items():
        w.add_tensor(name, np.ascontiguousarray(t, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_load_gguf_undoes_llama_cpp_permutation(tmp_path):
    model, path = _torch_model("llama_tied", tmp_path)
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    names = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
             "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    tensors = {"token_embd.weight": sd["model.embed_tokens.weight"], "output_norm.weight": sd["model.norm.weight"]}
    for i in range(DIMS["num_hidden_layers"]):
        for g, h in names.items():
            t = sd[f"model.layers.{i}.{h}.weight"]
            if g in ("attn_q", "attn_k"):
                t = _llama_cpp_permute(t, DIMS["num_attention_heads" if g == "attn_q" else "num_key_value_heads"])
            tensors[f"blk.{i}.{g}.weight"] = t
    _write_gguf(tmp_path / "tiny.gguf", "llama", tensors)
    cfg, params = weights.load_gguf(tmp_path / "tiny.gguf")
    ref_cfg, ref = weights.load_hf(path)
    assert cfg == ref_cfg
    jax.tree.map(np.testing.assert_array_equal, params, ref)
    (tmp_path / "qwen").mkdir()
    _write_gguf(tmp_path / "qwen" / "q.gguf", "qwen2", {"token_embd.weight": sd["model.embed_tokens.weight"]})
    with pytest.raises(ValueError, match="general.architecture"):
        weights.load_gguf(tmp_path / "qwen" / "q.gguf")
