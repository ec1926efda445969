"""Train state: the optimizer and the state built already sharded; what is trained is `mode.TrainMode`'s.

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

from monitor_jax.core import sharding as shd
from monitor_jax.model import loading, transformer
from monitor_jax.model.registry import LoadedModel
from monitor_jax.train.mode import TrainMode

DECAYS = ("cosine", "linear", "constant")


@struct.dataclass
class TrainState:
    """step: int32 scalar (optimizer updates applied); trainable/frozen param trees; opt_state (trainable only)."""

    step: jax.Array
    trainable: Any
    frozen: Any
    opt_state: Any


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


def full_params(state: TrainState, mode: TrainMode, model_cfg: transformer.ModelConfig, dtype: Any = None) -> Any:
    """The full model params of a state (for eval and export), in `dtype` (default the model's param dtype)."""
    return mode.assemble(state.trainable, state.frozen, model_cfg, dtype)


def _path_key(path: tuple) -> tuple[str, ...]:
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _names_by_path(mode: TrainMode, boxed: Any) -> dict[tuple[str, ...], tuple]:
    """Logical names of every param (and LoRA factor), keyed by its path of dict keys."""
    trees = [boxed] + [t for t in (mode.lora_shapes(boxed),) if t is not None]
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
    tx, mode = make_optimizer(config.optim), TrainMode.from_config(config)

    def init(params: Any) -> TrainState:
        trainable, frozen = mode.split(params, model_cfg)
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
    names = _names_by_path(TrainMode.from_config(config), boxed)
    return abstract, _state_shardings(abstract, names, mesh, rules), base_shardings


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
