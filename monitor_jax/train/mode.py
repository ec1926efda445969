"""What a run trains: a `TrainMode` (full / LoRA / top-k layers), built once from the config, owns how params split
into trainable and frozen, how they merge back, and the forward from the pair.

- "full": every param is trainable; `frozen` is None.
- "lora": `trainable` is the LoRA tree (`model/lora.py`); `frozen` is the whole base model.
- "top_k_layers": `trainable` = {"layers": the top k layers, "final_norm"}; `frozen` = everything else (the
  embedding, which is also the tied LM head, an untied `lm_head`, and the lower L-k layers) — so cached
  lower-layer activations stay valid while the top trains.
Trainable params are float32; frozen params are stored in `frozen_dtype`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from monitor_jax.model import lora, transformer

MODES = ("full", "lora", "top_k_layers")
FROZEN_DTYPES = ("float32", "bfloat16")


def _cast(tree: Any, dtype: Any) -> Any:
    dtype = jnp.dtype(dtype)
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x).astype(dtype), tree)


def _apply(cfg: transformer.ModelConfig, params: Any, batch: dict, embeddings: jax.Array | None = None,
           final_norm: bool = True) -> jax.Array:
    tokens = batch["tokens"] if embeddings is None else None
    hidden, _ = transformer.Transformer(cfg).apply({"params": params}, tokens, batch["positions"],
                                                    batch["segment_ids"], embeddings=embeddings,
                                                    final_norm=final_norm)
    return hidden


@dataclasses.dataclass(frozen=True)
class TrainMode:
    """The trainable/frozen layout of a run (hashable: it is closed over by jitted steps)."""

    kind: str = "full"
    top_k: int = 0
    lora_rank: int = 0
    lora_alpha: float = 0.0
    lora_targets: tuple[str, ...] = ()
    frozen_dtype: str = "float32"
    seed: int = 0  # seeds fresh LoRA factors

    def __post_init__(self) -> None:
        if self.kind not in MODES:
            raise ValueError(f"config.train.mode must be one of {MODES}, got {self.kind!r}")
        if self.frozen_dtype not in FROZEN_DTYPES:
            raise ValueError(f"config.train.frozen_dtype must be one of {FROZEN_DTYPES}, got {self.frozen_dtype!r}")

    @classmethod
    def from_config(cls, config: Any) -> "TrainMode":
        """The mode of `config.train` (and `config.seed`), checked."""
        t = config.train
        lc = t.get("lora") or {}
        return cls(kind=t.mode, top_k=int(t.get("top_k") or 0), lora_rank=int(lc.get("rank") or 0),
                   lora_alpha=float(lc.get("alpha") or 0.0), lora_targets=tuple(lc.get("targets") or ()),
                   frozen_dtype=t.get("frozen_dtype") or "float32", seed=int(config.get("seed") or 0))

    def n_lower(self, model_cfg: transformer.ModelConfig) -> int:
        """Frozen lower layers below the trained ones (0 unless top_k_layers)."""
        if self.kind != "top_k_layers":
            return 0
        if not 1 <= self.top_k <= model_cfg.n_layers:
            raise ValueError(f"config.train.top_k must be in [1, n_layers={model_cfg.n_layers}], got {self.top_k}")
        return model_cfg.n_layers - self.top_k

    def split(self, params: Any, model_cfg: transformer.ModelConfig) -> tuple[Any, Any]:
        """(trainable float32, frozen in `frozen_dtype` or None). LoRA factors are fresh (B = 0), seeded by `seed`."""
        if self.kind == "full":
            return _cast(params, jnp.float32), None
        if self.kind == "lora":
            rng = jax.random.fold_in(jax.random.key(self.seed), 0x10AA)
            return (lora.init_lora(params, self.lora_targets, self.lora_rank, rng),
                    _cast(params, self.frozen_dtype))
        n_lower = self.n_lower(model_cfg)
        layers = params["layers"]
        trainable = {"layers": jax.tree_util.tree_map(lambda x: x[n_lower:], layers),
                     "final_norm": params["final_norm"]}
        frozen = {k: v for k, v in params.items() if k not in ("layers", "final_norm")}
        if n_lower:
            frozen["layers"] = jax.tree_util.tree_map(lambda x: x[:n_lower], layers)
        return _cast(trainable, jnp.float32), _cast(frozen, self.frozen_dtype)

    def assemble(self, trainable: Any, frozen: Any, model_cfg: transformer.ModelConfig, dtype: Any = None) -> Any:
        """The full model param tree from (trainable, frozen): merged LoRA / re-stacked top-k layers, in `dtype`
        (default `model_cfg.param_dtype`)."""
        dtype = jnp.dtype(dtype or model_cfg.param_dtype)
        if self.kind == "full":
            return _cast(trainable, dtype)
        if self.kind == "lora":
            return _cast(lora.merge(frozen, trainable, self.lora_alpha, self.lora_rank, dtype=dtype), dtype)
        out = {**_cast(frozen, dtype), "final_norm": _cast(trainable["final_norm"], dtype)}
        upper = _cast(trainable["layers"], dtype)
        if "layers" in frozen:
            upper = jax.tree_util.tree_map(lambda lo, up: jnp.concatenate([lo, up], axis=0), out["layers"], upper)
        out["layers"] = upper
        return out

    def lora_shapes(self, boxed: Any) -> Any | None:
        """The abstract LoRA tree of (abstract, boxed) params, with its logical names (None unless lora)."""
        if self.kind != "lora":
            return None
        return jax.eval_shape(lambda: lora.init_lora(boxed, self.lora_targets, self.lora_rank, jax.random.key(0)))

    def hidden_states(self, trainable: Any, frozen: Any, batch: dict,
                      model_cfg: transformer.ModelConfig) -> tuple[jax.Array, Any]:
        """Final hidden states [B, T, D] and the params holding the LM head.

        top_k_layers: the frozen lower stack runs first (no gradient), or `batch["embeddings"]` [B, T, D] — cached
        lower-layer activations (`train/features.py`) — replaces it.
        """
        if self.kind == "full":
            return _apply(model_cfg, trainable, batch), trainable
        if self.kind == "lora":
            params = lora.merge(frozen, trainable, self.lora_alpha, self.lora_rank, dtype=jnp.dtype(model_cfg.dtype))
            return _apply(model_cfg, params, batch), params
        n_lower = model_cfg.n_layers - self.top_k
        x = batch.get("embeddings")
        if x is None and n_lower > 0:
            lower = _apply(model_cfg.replace(n_layers=n_lower), frozen, batch, final_norm=False)
            x = jax.lax.stop_gradient(lower)
        upper = {**{n: v for n, v in frozen.items() if n != "layers"}, **trainable}
        return _apply(model_cfg.replace(n_layers=self.top_k), upper, batch, embeddings=x), upper
