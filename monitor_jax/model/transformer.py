"""Llama-family decoder (Llama/SmolLM2, Qwen2/2.5, Qwen3, Mistral) as a pure-functional Flax linen module.

The forward returns final hidden states; callers pick positions and vocabulary rows with `logits`.
Layers run under `nn.scan` (params stacked on a leading "layers" axis) and `nn.remat`. Every parameter and
key activation carries logical axis names, mapped to a mesh by `core/sharding.py`.

Attention masks come from three things: slot causality, a per-slot validity mask (right padding / packing
segments) and, for Mistral, a sliding window measured in token positions. The KV cache is an explicit pytree
(`init_cache`): a forward with a cache writes the new keys/values at `cache["index"]` and attends over all
slots, which makes prefill and one-token decode the same code path.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Cache = dict[str, Array]

FAMILIES = ("llama", "qwen2", "qwen3", "mistral")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The few numbers a decoder needs. `family` only documents provenance; the flags decide behaviour."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5
    tie_embeddings: bool = True
    qkv_bias: bool = False
    qk_norm: bool = False
    sliding_window: int | None = None
    # Llama-3 style RoPE frequency scaling: (factor, low_freq_factor, high_freq_factor, original_max_pos).
    rope_llama3_scaling: tuple[float, float, float, int] | None = None
    family: str = "llama"
    dtype: str = "float32"  # compute dtype
    # Operand dtype of the matmuls (None: `dtype`). "bfloat16" under a float32 `dtype`: bf16 operands, float32
    # products and activations, which XLA:CPU runs on AMX where the CPU has it (bench/notes.md).
    matmul_dtype: str | None = None
    param_dtype: str = "float32"
    remat: str = "full"  # "none" | "full" | "dots" (save matmul outputs)

    def __post_init__(self):
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")
        if self.remat not in ("none", "full", "dots"):
            raise ValueError(f"remat must be none|full|dots, got {self.remat!r}")
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")

    def replace(self, **kw: Any) -> "ModelConfig":
        return dataclasses.replace(self, **kw)

    @property
    def precision(self) -> str:
        """The compute dtype, with the matmul operand dtype where it differs ("float32/bfloat16-matmul"): what
        names computed activations (feature store, cached base scores)."""
        name = jnp.dtype(self.dtype).name
        if self.matmul_dtype is None or jnp.dtype(self.matmul_dtype) == jnp.dtype(self.dtype):
            return name
        return f"{name}/{jnp.dtype(self.matmul_dtype).name}-matmul"


def _dense_init(std: float = 0.02):
    return nn.initializers.normal(stddev=std)


def _param_dtype(cfg: ModelConfig):
    return jnp.dtype(cfg.param_dtype)


def _matmul_dtype(cfg: ModelConfig):
    return None if cfg.matmul_dtype is None else jnp.dtype(cfg.matmul_dtype)


def matmul(a: Array, b: Array, out_dtype: Any, operand_dtype: Any = None) -> Array:
    """a @ b in `out_dtype`; with an `operand_dtype` other than `out_dtype`, the operands are cast to it and the
    product accumulates in float32 before the cast to `out_dtype`."""
    if operand_dtype is None or jnp.dtype(operand_dtype) == jnp.dtype(out_dtype):
        return jnp.matmul(a.astype(out_dtype), b.astype(out_dtype))
    return jnp.matmul(a.astype(operand_dtype), b.astype(operand_dtype),
                      preferred_element_type=jnp.float32).astype(out_dtype)


class RMSNorm(nn.Module):
    """Root-mean-square norm computed in fp32; `scale` has the given logical axis."""

    eps: float
    axis_name: str = "norm"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        scale = self.param(
            "scale",
            nn.with_logical_partitioning(nn.initializers.ones, (self.axis_name,)),
            (x.shape[-1],),
            self.param_dtype,
        )
        xf = x.astype(jnp.float32)
        xf = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        return (xf * scale.astype(jnp.float32)).astype(self.dtype)


def rope_inv_freq(cfg: ModelConfig) -> Array:
    """Inverse RoPE frequencies (head_dim // 2,), with Llama-3 scaling when configured."""
    inv = 1.0 / (cfg.rope_theta ** (jnp.arange(0, cfg.head_dim, 2, dtype=jnp.float32) / cfg.head_dim))
    if cfg.rope_llama3_scaling is None:
        return inv
    factor, low, high, orig = cfg.rope_llama3_scaling
    wavelen = 2 * math.pi / inv
    low_wavelen, high_wavelen = orig / low, orig / high
    scaled = jnp.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (orig / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return jnp.where(is_medium, smoothed, scaled)


def apply_rope(x: Array, positions: Array, inv_freq: Array) -> Array:
    """Rotate-half RoPE (HF convention). x: [B, T, N, hd]; positions: [B, T]."""
    freqs = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, T, hd/2]
    cos = jnp.cos(freqs)[:, :, None, :]
    sin = jnp.sin(freqs)[:, :, None, :]
    xf = x.astype(jnp.float32)
    x1, x2 = jnp.split(xf, 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


class Proj(nn.Module):
    """Linear map of the last `n_in` axes of x to `features`, computed as ONE 2-D matmul [rows, in] x [in, out].

    Params match flax's DenseGeneral/Dense ("kernel" [*in, *features], "bias" [*features]) so checkpoints load
    unchanged. The 2-D form matters on XLA:CPU: the weight gradient of a 3-D dot (contracting batch and length)
    took 1.5x longer than the same product on flattened rows (bench/results/train_step.md).
    """

    features: tuple[int, ...]
    axes: tuple[str, ...]  # logical names of the kernel, input axes first
    n_in: int = 1
    use_bias: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    matmul_dtype: Any = None  # operand dtype of the matmul (None: dtype)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        in_shape = x.shape[x.ndim - self.n_in:]
        kernel = self.param("kernel", nn.with_logical_partitioning(_dense_init(), self.axes),
                            (*in_shape, *self.features), self.param_dtype)
        lead = x.shape[: x.ndim - self.n_in]
        n_in, n_out = math.prod(in_shape), math.prod(self.features)
        y = matmul(x.reshape(-1, n_in), kernel.reshape(n_in, n_out), self.dtype, self.matmul_dtype)
        if self.use_bias:
            bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, self.axes[self.n_in:]),
                              self.features, self.param_dtype)
            y = y + bias.astype(self.dtype).reshape(n_out)
        return y.reshape(*lead, *self.features)


class Attention(nn.Module):
    """GQA self-attention with RoPE, optional qkv bias, q/k RMSNorm and sliding window. `fresh_cache`: the KV
    cache passed in is empty (index 0), so the new tokens attend among themselves only (prefill)."""

    cfg: ModelConfig
    fresh_cache: bool = False

    def _proj(self, features, axes, use_bias, name):
        cfg = self.cfg
        return Proj(features, ("embed",) + axes, use_bias=use_bias, dtype=jnp.dtype(cfg.dtype),
                    param_dtype=_param_dtype(cfg), matmul_dtype=_matmul_dtype(cfg), name=name)

    @nn.compact
    def __call__(self, x: Array, positions: Array, attn: dict[str, Array], kv: Cache | None):
        cfg = self.cfg
        dt = jnp.dtype(cfg.dtype)
        q = self._proj((cfg.n_heads, cfg.head_dim), ("heads", "head_dim"), cfg.qkv_bias, "q")(x)
        k = self._proj((cfg.n_kv_heads, cfg.head_dim), ("kv_heads", "head_dim"), cfg.qkv_bias, "k")(x)
        v = self._proj((cfg.n_kv_heads, cfg.head_dim), ("kv_heads", "head_dim"), cfg.qkv_bias, "v")(x)
        if cfg.qk_norm:
            norm = dict(eps=cfg.rms_eps, axis_name="head_dim", dtype=dt, param_dtype=_param_dtype(cfg))
            q = RMSNorm(name="q_norm", **norm)(q)
            k = RMSNorm(name="k_norm", **norm)(k)
        inv_freq = rope_inv_freq(cfg)
        q = apply_rope(q, positions, inv_freq)
        k = apply_rope(k, positions, inv_freq)
        q = nn.with_logical_constraint(q, ("batch", "length", "heads", "head_dim"))
        k = nn.with_logical_constraint(k, ("batch", "length", "kv_heads", "head_dim"))
        v = nn.with_logical_constraint(v, ("batch", "length", "kv_heads", "head_dim"))

        new_kv = None
        causal = True  # the mask is slot-causal over these keys: query block i needs key slots < its end only
        if kv is not None and "layer" in kv:  # the whole stacked cache: write this layer's new slots in place
            idx, layer = attn["cache_index"], kv["layer"]
            at = (layer, jnp.int32(0), idx, jnp.int32(0), jnp.int32(0))
            stacked = {n: jax.lax.dynamic_update_slice(kv[n], new[None].astype(kv[n].dtype), at)
                       for n, new in (("k", k), ("v", v))}
            new_kv = {**stacked, "layer": layer}
            k_all, v_all = (jax.lax.dynamic_index_in_dim(stacked[n], layer, 0, keepdims=False) for n in ("k", "v"))
            k, v, causal = k_all.astype(dt), v_all.astype(dt), False
        elif kv is not None:  # write the new keys/values into the cache, then attend over every slot
            idx = attn["cache_index"]
            k_all = jax.lax.dynamic_update_slice_in_dim(kv["k"], k.astype(kv["k"].dtype), idx, axis=1)
            v_all = jax.lax.dynamic_update_slice_in_dim(kv["v"], v.astype(kv["v"].dtype), idx, axis=1)
            new_kv = {"k": k_all, "v": v_all}
            if self.fresh_cache:  # an empty cache: slots >= t hold nothing, attend over the new keys only
                attn = {**attn, "mask": attn["mask"][:, :, : k.shape[1]]}
            else:
                k, v, causal = k_all.astype(dt), v_all.astype(dt), False

        out = blocked_attention(q, k, v, attn["mask"], causal=causal, matmul_dtype=_matmul_dtype(cfg))
        out = nn.with_logical_constraint(out, ("batch", "length", "heads", "head_dim"))
        out = Proj((cfg.d_model,), ("heads", "head_dim", "embed"), n_in=2, dtype=dt, param_dtype=_param_dtype(cfg),
                   matmul_dtype=_matmul_dtype(cfg), name="o")(out)
        return out, new_kv


ATTENTION_BLOCK = 128  # query rows per block (bench: 2.7x faster than unblocked at T=256, 3.4x at T=1024 on CPU)


def attention_core(q: Array, k: Array, v: Array, mask: Array, matmul_dtype: Any = None) -> Array:
    """Softmax attention, GQA. q [B, T, H, hd]; k, v [B, S, KV, hd]; mask [B, T, S] bool -> [B, T, H, hd].

    Head-major batched matmuls (the G query heads of a KV head stacked along rows, contraction last), scores and
    softmax in fp32; `matmul_dtype`: the operand dtype of both matmuls (None: q's and v's own).
    """
    b, t, h, d = q.shape
    kv = k.shape[2]
    g = h // kv
    qh = q.reshape(b, t, kv, g, d).transpose(0, 2, 3, 1, 4).reshape(b, kv, g * t, d)
    kh, vh = k.transpose(0, 2, 3, 1), v.transpose(0, 2, 1, 3)  # [B, KV, hd, S], [B, KV, S, hd]
    if matmul_dtype is not None:
        qh, kh = qh.astype(matmul_dtype), kh.astype(matmul_dtype)
    scores = jnp.matmul(qh, kh, preferred_element_type=jnp.float32).reshape(b, kv, g, t, -1) / math.sqrt(d)
    scores = jnp.where(mask[:, None, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype).reshape(b, kv, g * t, -1)
    out = matmul(probs, vh, v.dtype, matmul_dtype)  # [B, KV, G*T, hd]
    return out.reshape(b, kv, g, t, d).transpose(0, 3, 1, 2, 4).reshape(b, t, h, d)


def blocked_attention(q: Array, k: Array, v: Array, mask: Array, *, causal: bool,
                      block: int | None = None, matmul_dtype: Any = None) -> Array:
    """`attention_core` over query blocks of `block` rows (static slices: bounded fp32 score memory). With
    `causal` (query slot i only sees key slots <= i, and queries/keys share slots), block j skips the keys after
    its last row: about half the work of full attention on long rows. `block` defaults to ATTENTION_BLOCK."""
    block = block or ATTENTION_BLOCK
    t = q.shape[1]
    if t <= block:
        return attention_core(q, k, v, mask, matmul_dtype)
    outs = []
    for start in range(0, t, block):
        end = min(start + block, t)
        stop = end if causal else k.shape[1]
        outs.append(attention_core(q[:, start:end], k[:, :stop], v[:, :stop], mask[:, start:end, :stop],
                                   matmul_dtype))
    return jnp.concatenate(outs, axis=1)


class MLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x: Array) -> Array:
        cfg = self.cfg
        dense = dict(dtype=jnp.dtype(cfg.dtype), param_dtype=_param_dtype(cfg), matmul_dtype=_matmul_dtype(cfg))
        gate = Proj((cfg.d_ff,), ("embed", "mlp"), name="gate", **dense)(x)
        up = Proj((cfg.d_ff,), ("embed", "mlp"), name="up", **dense)(x)
        h = nn.with_logical_constraint(nn.silu(gate) * up, ("batch", "length", "mlp"))
        return Proj((cfg.d_model,), ("mlp", "embed"), name="down", **dense)(h)


class DecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)); x + mlp(norm(x)). Scan-compatible: (carry, xs) -> (carry, ys)."""

    cfg: ModelConfig
    fresh_cache: bool = False

    @nn.compact
    def __call__(self, x: Array | tuple[Array, Cache], positions: Array, attn: dict[str, Array], kv: Any):
        """(x, this layer's cache slice or None) -> (x, its new slice); in place (`Transformer(in_place=True)`):
        ((x, the stacked cache), this layer's index) -> ((x, the stacked cache updated), None)."""
        cfg = self.cfg
        in_place = isinstance(x, tuple)
        if in_place:
            x, kv = x[0], {**x[1], "layer": kv}
        norm = dict(eps=cfg.rms_eps, axis_name="embed", dtype=jnp.dtype(cfg.dtype), param_dtype=_param_dtype(cfg))
        attention = Attention(cfg, self.fresh_cache, name="attn")
        h, new_kv = attention(RMSNorm(name="attn_norm", **norm)(x), positions, attn, kv)
        x = x + h
        x = x + MLP(cfg, name="mlp")(RMSNorm(name="mlp_norm", **norm)(x))
        x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
        if in_place:
            return (x, {"k": new_kv["k"], "v": new_kv["v"]}), None
        return x, new_kv


def _remat_policy(name: str):
    if name == "dots":
        return jax.checkpoint_policies.dots_with_no_batch_dims_saveable
    return None


def attention_mask(
    cfg: ModelConfig,
    q_slot: Array,
    q_pos: Array,
    q_seg: Array,
    k_slot: Array,
    k_pos: Array,
    k_seg: Array,
) -> Array:
    """Boolean [B, T, S]: key slot not after query slot, same non-zero segment, inside the sliding window."""
    mask = (k_slot[:, None, :] <= q_slot[:, :, None]) & (k_seg[:, None, :] == q_seg[:, :, None])
    mask &= (k_seg[:, None, :] > 0)
    if cfg.sliding_window is not None:
        mask &= (q_pos[:, :, None] - k_pos[:, None, :]) < cfg.sliding_window
    return mask


class Transformer(nn.Module):
    """Decoder returning final-normed hidden states [B, T, D] (and the updated cache when one is given).

    tokens: [B, T] int. positions: [B, T] (default arange). segment_ids: [B, T], 0 = padding; tokens attend
    only within their own segment (default: all ones, i.e. no padding). With `cache`, the tokens are written at
    slots [cache["index"], cache["index"] + T) and a per-row validity mask is kept, so right-padded prompts of
    different lengths can be decoded together (the caller passes each row's own positions).

    `fresh_cache=True` promises that `cache` is empty (index 0, e.g. the prefill of generation): the tokens then
    attend among themselves with the blocked causal kernel instead of over every cache slot. Same result.
    `in_place=True` (a decode step): the layer scan carries the whole stacked cache and each layer writes its new
    slots into it with one dynamic update (no per-layer copy of its cache slice out of the scan). Same result.

    Split stacks (top-k training): `embeddings` replaces the token lookup with hidden states from lower layers,
    and `final_norm=False` returns the residual stream un-normed, so running layers [0, n) then [n, L) with
    the stacked `layers` params sliced on their leading axis equals the full forward (`split_params`).
    """

    cfg: ModelConfig

    @nn.compact
    def __call__(
        self,
        tokens: Array | None,
        positions: Array | None = None,
        segment_ids: Array | None = None,
        cache: Cache | None = None,
        embeddings: Array | None = None,
        final_norm: bool = True,
        fresh_cache: bool = False,
        in_place: bool = False,
    ) -> tuple[Array, Cache | None]:
        cfg = self.cfg
        b, t = tokens.shape if embeddings is None else embeddings.shape[:2]
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        if segment_ids is None:
            segment_ids = jnp.ones((b, t), jnp.int32)
        positions = positions.astype(jnp.int32)
        segment_ids = segment_ids.astype(jnp.int32)

        embedding = self.param(
            "embed",
            nn.with_logical_partitioning(_dense_init(), ("vocab", "embed")),
            (cfg.vocab_size, cfg.d_model),
            _param_dtype(cfg),
        )
        if not cfg.tie_embeddings:  # stored like the embedding: [V, D]
            self.param(
                "lm_head",
                nn.with_logical_partitioning(_dense_init(), ("vocab", "embed")),
                (cfg.vocab_size, cfg.d_model),
                _param_dtype(cfg),
            )
        if embeddings is None:
            x = jnp.take(embedding, tokens, axis=0).astype(jnp.dtype(cfg.dtype))
        else:  # hidden states from a lower stack of layers (top-k training on cached features)
            x = embeddings.astype(jnp.dtype(cfg.dtype))
        x = nn.with_logical_constraint(x, ("batch", "length", "embed"))

        q_slot = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        new_cache = None
        if cache is None:
            mask = attention_mask(cfg, q_slot, positions, segment_ids, q_slot, positions, segment_ids)
            attn = {"mask": mask}
            kv = None
        else:
            idx = cache["index"]
            q_slot = q_slot + idx
            valid = jax.lax.dynamic_update_slice_in_dim(cache["valid"], (segment_ids > 0).astype(jnp.int32), idx, 1)
            k_pos = jax.lax.dynamic_update_slice_in_dim(cache["pos"], positions, idx, 1)
            s = valid.shape[1]
            k_slot = jnp.broadcast_to(jnp.arange(s, dtype=jnp.int32), (b, s))
            q_seg = (segment_ids > 0).astype(jnp.int32)
            attn = {"mask": attention_mask(cfg, q_slot, positions, q_seg, k_slot, k_pos, valid), "cache_index": idx}
            kv = {"k": cache["k"], "v": cache["v"]}
            new_cache = {"valid": valid, "pos": k_pos, "index": idx + t}

        block = DecoderLayer
        if cfg.remat != "none":
            block = nn.remat(block, prevent_cse=False, policy=_remat_policy(cfg.remat))
        layers = nn.scan(
            block,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(nn.broadcast, nn.broadcast, 0),
            length=cfg.n_layers,
            metadata_params={nn.PARTITION_NAME: "layers"},
        )(cfg, fresh_cache, name="layers")
        if in_place and kv is not None and not fresh_cache:
            (x, new_kv), _ = layers((x, kv), positions, attn, jnp.arange(cfg.n_layers, dtype=jnp.int32))
        else:
            x, new_kv = layers(x, positions, attn, kv)
        if new_cache is not None:
            new_cache.update(new_kv)
        norm = RMSNorm(
            cfg.rms_eps, axis_name="embed", dtype=jnp.dtype(cfg.dtype), param_dtype=_param_dtype(cfg), name="final_norm"
        )
        if final_norm:
            x = norm(x)
        return x, new_cache


def split_params(params: dict, n_lower: int) -> tuple[dict, dict]:
    """Params of the lower n layers (embedding, no final norm use) and of the upper ones (head, final norm)."""
    lower = {**params, "layers": jax.tree_util.tree_map(lambda x: x[:n_lower], params["layers"])}
    upper = {**params, "layers": jax.tree_util.tree_map(lambda x: x[n_lower:], params["layers"])}
    return lower, upper


def head_matrix(params: dict) -> Array:
    """The LM head as a [V, D] matrix (the embedding when tied)."""
    return params["lm_head"] if "lm_head" in params else params["embed"]


def logits(params: dict, hidden: Array, rows: Array | None = None) -> Array:
    """Logits for `hidden` [..., D] over all vocabulary rows, or only `rows` (int array [R]) -> [..., R]."""
    w = head_matrix(params)
    if rows is not None:
        w = jnp.take(w, rows, axis=0)
    return jnp.einsum("...d,vd->...v", hidden, w.astype(hidden.dtype), preferred_element_type=jnp.float32)


def init_cache(cfg: ModelConfig, batch: int, max_len: int, dtype: Any = None) -> Cache:
    """An empty KV cache for `batch` rows and `max_len` slots."""
    dtype = jnp.dtype(dtype or cfg.dtype)
    shape = (cfg.n_layers, batch, max_len, cfg.n_kv_heads, cfg.head_dim)
    return {
        "k": jnp.zeros(shape, dtype),
        "v": jnp.zeros(shape, dtype),
        "valid": jnp.zeros((batch, max_len), jnp.int32),
        "pos": jnp.zeros((batch, max_len), jnp.int32),
        "index": jnp.zeros((), jnp.int32),
    }


def init_params(cfg: ModelConfig, rng: Array | int = 0) -> dict:
    """Random params for tiny test models: N(0, 0.02) weights, unit norm scales, zero biases.

    Filled on the host from the abstract shapes (an XLA-compiled Flax init costs seconds per config on CPU).
    """
    seed = int(jax.random.randint(rng, (), 0, 2**31 - 1)) if isinstance(rng, jax.Array) else int(rng)
    gen = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "scale" in name:
            return jnp.ones(leaf.shape, leaf.dtype)
        if "bias" in name:
            return jnp.zeros(leaf.shape, leaf.dtype)
        return jnp.asarray(gen.normal(0.0, 0.02, leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, nn.meta.unbox(abstract_params(cfg)))


def abstract_params(cfg: ModelConfig) -> Any:
    """Shapes/dtypes of the params with their logical-partitioning metadata, without allocating."""
    return jax.eval_shape(lambda: Transformer(cfg).init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32)))["params"]
