"""Train state: what is trained (full / LoRA / top-k layers), the optimizer, and the state built already sharded.

Modes (`config.train.mode`):
- "full": every param is trainable; `frozen` is None.
- "lora": `trainable` is the LoRA tree (`model/lora.py`); `frozen` is the whole base model.
- "top_k_layers": `trainable` = {"layers": the top k layers, "final_norm"}; `frozen` = everything else (the
  embedding, which is also the tied LM head, an untied `lm_head`, and the lower L-k layers) — so cached
  lower-layer activations stay valid while the top trains.

Trainable params and optimizer state are float32; frozen params are stored in `config.train.frozen_dtype` and
get no optimizer state. The state is created by `jax.jit(init, out_shardings=...)` from the abstract state
(`jax.eval_shape`), with shardings from the params' logical axis names; optimizer-state leaves inherit the
sharding of the param they mirror (matched by tree path and shape), other optimizer leaves are replicated.
"""

from __future__ import annotations

import warnings
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from monitor_jax.model import loading, lora, transformer
from monitor_jax.model.registry import LoadedModel
from monitor_jax.core import sharding as shd

MODES = ("full", "lora", "top_k_layers")
FROZEN_DTYPES = ("float32", "bfloat16")
DECAYS = ("cosine", "linear", "constant")


@struct.dataclass
class TrainState:
    """step: int32 scalar (optimizer updates applied); trainable/frozen param trees; opt_state (trainable only)."""

    step: jax.Array
    trainable: Any
    frozen: Any
    opt_state: Any


def _mode(config: Any) -> str:
    mode = config.train.mode
    if mode not in MODES:
        raise ValueError(f"config.train.mode must be one of {MODES}, got {mode!r}")
    return mode


def _top_k(config: Any, model_cfg: transformer.ModelConfig) -> int:
    k = int(config.train.top_k)
    if not 1 <= k <= model_cfg.n_layers:
        raise ValueError(f"config.train.top_k must be in [1, n_layers={model_cfg.n_layers}], got {k}")
    return k


def _cast(tree: Any, dtype: Any) -> Any:
    dtype = jnp.dtype(dtype)
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x).astype(dtype), tree)


def make_schedule(optim: Any) -> optax.Schedule:
    """Learning rate per update: linear warmup to `lr` over `warmup_steps` (reaching it at step warmup-1), then
    cosine / linear decay to 0 at `total_steps`, or constant."""
    lr, warm, total = float(optim.lr), int(optim.warmup_steps), int(optim.total_steps)
    decay_steps = max(total - warm, 1)
    if optim.decay == "cosine":
        decay = optax.cosine_decay_schedule(lr, decay_steps, alpha=0.0)
    elif optim.decay == "linear":
        decay = optax.linear_schedule(lr, 0.0, decay_steps)
    elif optim.decay == "constant":
        decay = optax.constant_schedule(lr)
    else:
        raise ValueError(f"config.optim.decay must be one of {DECAYS}, got {optim.decay!r}")
    if warm <= 0:
        return decay

    def schedule(step):
        step = jnp.asarray(step)
        warmup = lr * jnp.minimum(1.0, (step + 1) / warm)
        return jnp.where(step < warm, warmup, decay(jnp.maximum(step - warm, 0)))

    return schedule


def _decay_mask(params: Any) -> Any:
    """Weight decay on kernels, embeddings and LoRA factors; not on norm scales or biases."""

    def keep(path, _):
        names = [getattr(k, "key", None) for k in path]
        return not ({"scale", "bias"} & set(names))

    return jax.tree_util.tree_map_with_path(keep, params)


def make_optimizer(optim: Any) -> optax.GradientTransformation:
    """clip_by_global_norm(clip_norm) (skipped if <= 0) -> AdamW(schedule, b1, b2, eps, weight_decay)."""
    chain = []
    if optim.clip_norm and float(optim.clip_norm) > 0:
        chain.append(optax.clip_by_global_norm(float(optim.clip_norm)))
    chain.append(optax.adamw(make_schedule(optim), b1=float(optim.b1), b2=float(optim.b2), eps=float(optim.eps),
                             weight_decay=float(optim.weight_decay), mask=_decay_mask))
    return optax.chain(*chain)


def split_for_mode(params: Any, config: Any, model_cfg: transformer.ModelConfig) -> tuple[Any, Any]:
    """(trainable float32, frozen in `frozen_dtype` or None) for the configured mode. LoRA factors are fresh
    (B = 0), seeded by `config.seed`."""
    mode = _mode(config)
    frozen_dtype = config.train.frozen_dtype
    if frozen_dtype not in FROZEN_DTYPES:
        raise ValueError(f"config.train.frozen_dtype must be one of {FROZEN_DTYPES}, got {frozen_dtype!r}")
    if mode == "full":
        return _cast(params, jnp.float32), None
    if mode == "lora":
        lc = config.train.lora
        rng = jax.random.fold_in(jax.random.key(int(config.seed)), 0x10AA)
        return lora.init_lora(params, tuple(lc.targets), int(lc.rank), rng), _cast(params, frozen_dtype)
    n_lower = model_cfg.n_layers - _top_k(config, model_cfg)
    layers = params["layers"]
    trainable = {"layers": jax.tree_util.tree_map(lambda x: x[n_lower:], layers), "final_norm": params["final_norm"]}
    frozen = {k: v for k, v in params.items() if k not in ("layers", "final_norm")}
    if n_lower:
        frozen["layers"] = jax.tree_util.tree_map(lambda x: x[:n_lower], layers)
    return _cast(trainable, jnp.float32), _cast(frozen, frozen_dtype)


def assemble(trainable: Any, frozen: Any, config: Any, model_cfg: transformer.ModelConfig, dtype: Any = None) -> Any:
    """The full model param tree from (trainable, frozen): merged LoRA / re-stacked top-k layers, in `dtype`
    (default `model_cfg.param_dtype`)."""
    dtype = jnp.dtype(dtype or model_cfg.param_dtype)
    mode = _mode(config)
    if mode == "full":
        return _cast(trainable, dtype)
    if mode == "lora":
        lc = config.train.lora
        return _cast(lora.merge(frozen, trainable, float(lc.alpha), int(lc.rank), dtype=dtype), dtype)
    out = {**_cast(frozen, dtype), "final_norm": _cast(trainable["final_norm"], dtype)}
    upper = _cast(trainable["layers"], dtype)
    if "layers" in frozen:
        upper = jax.tree_util.tree_map(lambda lo, up: jnp.concatenate([lo, up], axis=0), out["layers"], upper)
    out["layers"] = upper
    return out


def full_params(state: TrainState, config: Any, model_cfg: transformer.ModelConfig, dtype: Any = None) -> Any:
    """The full model params of a state (for eval and export), in `dtype` (default the model's param dtype)."""
    return assemble(state.trainable, state.frozen, config, model_cfg, dtype)


def _path_key(path: tuple) -> tuple[str, ...]:
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _names_by_path(config: Any, boxed: Any) -> dict[tuple[str, ...], tuple]:
    """Logical names of every param (and LoRA factor), keyed by its path of dict keys."""
    trees = [boxed]
    if _mode(config) == "lora":
        lc = config.train.lora
        trees.append(jax.eval_shape(lambda: lora.init_lora(boxed, tuple(lc.targets), int(lc.rank),
                                                           jax.random.key(0))))
    out = {}
    for tree in trees:
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: isinstance(
                x, nn.LogicallyPartitioned))[0]:
            out[_path_key(path)] = tuple(leaf.names)
    return out


def _state_shardings(abstract: TrainState, names: dict, mesh: Mesh, rules: Any) -> TrainState:
    rules = shd.normalize_rules(rules)
    replicated = NamedSharding(mesh, P())

    def param_sharding(path, leaf):
        key = _path_key(path)
        if key not in names:
            raise ValueError(f"no logical axis names for param {'.'.join(key)}")
        return NamedSharding(mesh, shd.resolve_spec(names[key], leaf.shape, mesh, rules)[0])

    trainable = jax.tree_util.tree_map_with_path(param_sharding, abstract.trainable)
    frozen = jax.tree_util.tree_map_with_path(param_sharding, abstract.frozen)
    by_path = {_path_key(p): (leaf.shape, s) for (p, leaf), s in zip(
        jax.tree_util.tree_flatten_with_path(abstract.trainable)[0], jax.tree_util.tree_leaves(trainable))}

    def opt_sharding(path, leaf):  # a leaf mirroring a trainable param: the longest matching path suffix
        key = _path_key(path)
        for start in range(len(key)):
            hit = by_path.get(key[start:])
            if hit is not None and tuple(hit[0]) == tuple(leaf.shape):
                return hit[1]
        return replicated

    opt_state = jax.tree_util.tree_map_with_path(opt_sharding, abstract.opt_state)
    return TrainState(step=replicated, trainable=trainable, frozen=frozen, opt_state=opt_state)


def _init_fn(config: Any, model_cfg: transformer.ModelConfig):
    tx = make_optimizer(config.optim)

    def init(params: Any) -> TrainState:
        trainable, frozen = split_for_mode(params, config, model_cfg)
        return TrainState(step=jnp.zeros((), jnp.int32), trainable=trainable, frozen=frozen,
                          opt_state=tx.init(trainable))

    return init


def abstract_state(config: Any, model_cfg: transformer.ModelConfig, mesh: Mesh) -> tuple[TrainState, TrainState, Any]:
    """(abstract TrainState of ShapeDtypeStructs, its NamedShardings, base-param NamedShardings) — no allocation,
    so bytes per device of any config can be planned from a laptop."""
    boxed = transformer.abstract_params(model_cfg)
    rules = config.mesh.get("rules", None)
    base_shardings = shd.param_shardings(boxed, mesh, rules, bool(config.mesh.get("strict", False)))
    abstract = jax.eval_shape(_init_fn(config, model_cfg), nn.meta.unbox(boxed))
    return abstract, _state_shardings(abstract, _names_by_path(config, boxed), mesh, rules), base_shardings


def bytes_per_device(abstract: TrainState, shardings: TrainState) -> int:
    """Bytes the state takes on the most loaded device."""
    total = 0
    for leaf, s in zip(jax.tree_util.tree_leaves(abstract), jax.tree_util.tree_leaves(shardings)):
        shard = s.shard_shape(leaf.shape)
        total += int(np.prod(shard)) * jnp.dtype(leaf.dtype).itemsize
    return total


def put_params(params: Any, shardings: Any) -> Any:
    """Host (numpy) params -> fresh device arrays holding only each device's shard (works multi-host: every
    process reads its addressable shards from its own host copy)."""
    return loading.put_params(params, shardings)


def create_train_state(config: Any, model: LoadedModel, mesh: Mesh,
                       compiler_options: dict[str, Any] | None = None) -> tuple[TrainState, TrainState]:
    """The initial state, built sharded by `jit(init, out_shardings=...)`, and its TrainState of NamedShardings.
    `compiler_options` go to `jax.jit` for the init program."""
    abstract, shardings, base_shardings = abstract_state(config, model.cfg, mesh)
    want = jax.tree_util.tree_structure(base_shardings)
    got = jax.tree_util.tree_structure(model.params)
    if want != got:
        raise ValueError(f"model {model.name!r}: params do not match its config's param tree\n"
                         f"expected {want}\ngot {got}")
    base = put_params(model.params, base_shardings)
    init = jax.jit(_init_fn(config, model.cfg), in_shardings=(base_shardings,), out_shardings=shardings,
                   donate_argnums=0, compiler_options=compiler_options)
    with warnings.catch_warnings():  # donated base buffers that change dtype/shape cannot be reused: expected
        warnings.filterwarnings("ignore", message=".*donated buffers were not usable.*")
        state = init(base)
    return state, shardings
