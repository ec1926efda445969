"""LoRA as a pure transform of the param tree: low-rank factors beside chosen kernels, merged on demand.

Each target kernel is stacked on the leading "layers" axis, [L, *in_dims, *out_dims], and is treated per layer
as a matrix (prod(in_dims) x prod(out_dims)):

    q/k/v  [L, D, N, hd]   in (D,)       out (N, hd)
    o      [L, H, hd, D]   in (H, hd)    out (D,)
    gate/up[L, D, F]       in (D,)       out (F,)
    down   [L, F, D]       in (F,)       out (D,)

The factors keep those dims unflattened, A: [L, *in_dims, r] and B: [L, r, *out_dims], so they carry the
kernel's logical axis names (plus "lora_rank", replicated) and shard like it; `merge` adds
(alpha / rank) * A @ B to each kernel. A ~ N(0, 1/fan_in) and B = 0, so a fresh adapter leaves the model
unchanged. LoRA params are a nested dict mirroring the param paths: {"layers": {"attn": {"q": {"a", "b"}}}}.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

TARGETS: dict[str, tuple[tuple[str, ...], int]] = {  # target -> (path of its kernel, number of input dims)
    "q": (("layers", "attn", "q", "kernel"), 1),
    "k": (("layers", "attn", "k", "kernel"), 1),
    "v": (("layers", "attn", "v", "kernel"), 1),
    "o": (("layers", "attn", "o", "kernel"), 2),
    "gate": (("layers", "mlp", "gate", "kernel"), 1),
    "up": (("layers", "mlp", "up", "kernel"), 1),
    "down": (("layers", "mlp", "down", "kernel"), 1),
}
RANK_AXIS = "lora_rank"


def _check_targets(targets: Sequence[str]) -> tuple[str, ...]:
    targets = tuple(targets)
    bad = [t for t in targets if t not in TARGETS]
    if bad or not targets:
        raise ValueError(f"config.train.lora.targets: unknown or empty {targets!r}; choose from {tuple(TARGETS)}")
    return targets


def _get(tree: Any, path: Sequence[str]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: dict, path: Sequence[str], value: Any) -> dict:
    """A copy of nested dict `tree` with `path` set (untouched subtrees shared)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    return {**tree, head: _set(tree.get(head, {}), rest, value)}


def _factor_shapes(shape: Sequence[int], n_in: int, rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    layers, in_dims, out_dims = shape[0], tuple(shape[1 : 1 + n_in]), tuple(shape[1 + n_in :])
    return (layers, *in_dims, rank), (layers, rank, *out_dims)


def init_lora(params: Any, targets: Sequence[str], rank: int, rng: jax.Array) -> dict:
    """Fresh LoRA factors (float32) for `targets` of a param tree: A ~ N(0, 1/fan_in), B = 0.

    `params` may hold arrays, ShapeDtypeStructs (under `jax.eval_shape`) or `LogicallyPartitioned` boxes (from
    `transformer.abstract_params`); with boxes the factors come back boxed with their logical axis names.
    """
    targets = _check_targets(targets)
    if rank < 1:
        raise ValueError(f"config.train.lora.rank must be >= 1, got {rank}")
    out: dict = {}
    keys = jax.random.split(rng, len(targets))
    for key, target in zip(keys, targets):
        path, n_in = TARGETS[target]
        leaf = _get(params, path)
        boxed = isinstance(leaf, nn.LogicallyPartitioned)
        shape = leaf.value.shape if boxed else leaf.shape
        a_shape, b_shape = _factor_shapes(shape, n_in, rank)
        fan_in = math.prod(a_shape[1:-1])
        a = jax.random.normal(key, a_shape, jnp.float32) / math.sqrt(fan_in)
        b = jnp.zeros(b_shape, jnp.float32)
        if boxed:
            names = tuple(leaf.names)
            a = nn.LogicallyPartitioned(a, (names[0], *names[1 : 1 + n_in], RANK_AXIS))
            b = nn.LogicallyPartitioned(b, (names[0], RANK_AXIS, *names[1 + n_in :]))
        out = _set(out, path[:-1], {"a": a, "b": b})
    return out


def lora_targets(lora_params: dict) -> tuple[str, ...]:
    """The targets present in a LoRA tree."""
    found = []
    for target, (path, _) in TARGETS.items():
        try:
            _get(lora_params, path[:-1])["a"]
        except (KeyError, TypeError):
            continue
        found.append(target)
    return tuple(found)


def delta(a: jax.Array, b: jax.Array, scale: float) -> jax.Array:
    """scale * A @ B per layer, shaped like the kernel [L, *in_dims, *out_dims] (float32)."""
    a2 = a.reshape(a.shape[0], -1, a.shape[-1]).astype(jnp.float32)
    b2 = b.reshape(b.shape[0], b.shape[1], -1).astype(jnp.float32)
    d = jnp.einsum("lir,lro->lio", a2, b2, preferred_element_type=jnp.float32)
    return scale * d.reshape(a.shape[:-1] + b.shape[2:])


def merge(params: Any, lora_params: dict, alpha: float, rank: int, dtype: Any = None) -> Any:
    """`params` with W + (alpha / rank) * A @ B at every LoRA target, in `dtype` (default: the kernel's)."""
    scale = float(alpha) / float(rank)
    out = params
    for target in lora_targets(lora_params):
        path, _ = TARGETS[target]
        w = _get(params, path)
        ab = _get(lora_params, path[:-1])
        merged = w.astype(jnp.float32) + delta(ab["a"], ab["b"], scale)
        out = _set(out, path, merged.astype(dtype if dtype is not None else w.dtype))
    return out


def lora_param_count(lora_params: Any) -> int:
    """Number of scalars in a LoRA tree."""
    return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(lora_params)))
