"""Device mesh (axes data/fsdp/tensor), logical-axis -> mesh-axis rules, and sharding of params and batches.

Rules are `(logical_axis, mesh_axis | tuple of mesh axes | None)` pairs read in order, with Flax's priority
semantics: a dimension takes the first rule naming its logical axis whose mesh axes are still unused by the
array's other dimensions; a logical axis that no rule assigns is replicated.

`DEFAULT_RULES` (data parallel + FSDP + tensor parallel, Megatron-style):
- batch -> ("data", "fsdp"): examples are split over both data-like axes;
- embed -> "fsdp": parameters are sharded ZeRO-3 style over fsdp along d_model (activations keep embed
  replicated because batch already uses fsdp);
- vocab, heads, kv_heads, mlp -> "tensor": the tensor-parallel dimensions;
- layers, head_dim, length, norm -> None: replicated (the scanned layer axis is never split; sequence
  parallelism is not used).

A parameter dimension that does not divide the size of its mesh axes (SmolLM2's 9 heads / 3 KV heads on
tensor=2) is replicated instead, and all such fallbacks of one call are reported in ONE logged warning
naming each param and axis; with `strict=True` that is a ValueError naming them.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

log = logging.getLogger(__name__)

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

Rules = tuple[tuple[str, Any], ...]

DEFAULT_RULES: Rules = (
    ("batch", BATCH_AXES),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("mlp", "tensor"),
    ("layers", None),
    ("head_dim", None),
    ("length", None),
    ("norm", None),
)


def _as_dict(shape: Any) -> dict[str, int]:
    if hasattr(shape, "to_dict"):  # ml_collections.ConfigDict
        shape = shape.to_dict()
    return {str(k): int(v) for k, v in dict(shape).items()}


def mesh_dims(shape: Mapping[str, int], n_devices: int) -> tuple[int, int, int]:
    """Sizes of (data, fsdp, tensor) for `n_devices`: missing axes are 1, one axis may be -1 (the rest)."""
    shape = _as_dict(shape)
    unknown = sorted(set(shape) - set(MESH_AXES))
    if unknown:
        raise ValueError(f"config.mesh.shape: unknown mesh axes {unknown}; the axes are {MESH_AXES}")
    dims = [shape.get(a, 1) for a in MESH_AXES]
    fill = [a for a, d in zip(MESH_AXES, dims) if d == -1]
    if len(fill) > 1:
        raise ValueError(f"config.mesh.shape={shape}: only one axis may be -1, got {fill}")
    if any(d == 0 or d < -1 for d in dims):
        raise ValueError(f"config.mesh.shape={shape}: sizes must be positive (or -1 for one axis)")
    known = math.prod(d for d in dims if d != -1)
    if fill:
        if n_devices % known:
            raise ValueError(f"config.mesh.shape={shape}: {n_devices} devices are not divisible by the fixed axes "
                             f"(product {known}), so '{fill[0]}: -1' cannot fill them")
        dims[MESH_AXES.index(fill[0])] = n_devices // known
    if math.prod(dims) != n_devices:
        raise ValueError(f"config.mesh.shape={shape}: data*fsdp*tensor = {math.prod(dims)} but there are "
                         f"{n_devices} devices; make the product match or use -1 for one axis")
    return tuple(dims)  # type: ignore[return-value]


def make_mesh(shape: Mapping[str, int], devices: Sequence[Any] | None = None) -> Mesh:
    """A (data, fsdp, tensor) mesh over `devices` (default: all global devices, every host).

    The device order comes from `mesh_utils.create_device_mesh` (topology-aware on TPU/GPU), falling back to
    a plain reshape of the device list where it has no opinion (CPU, explicit device subsets).
    """
    devices = list(jax.devices() if devices is None else devices)
    dims = mesh_dims(shape, len(devices))
    try:
        from jax.experimental import mesh_utils

        grid = mesh_utils.create_device_mesh(dims, devices=devices, allow_split_physical_axes=True)
    except Exception:  # noqa: BLE001 - non-TPU devices or shapes mesh_utils does not handle
        grid = np.asarray(devices, dtype=object).reshape(dims)
    auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    return Mesh(grid, MESH_AXES, axis_types=auto)


def normalize_rules(rules: Any) -> Rules:
    """Rules from a config (lists, tuples, None) as a tuple of (logical, mesh axes) pairs; None -> DEFAULT_RULES."""
    if rules is None:
        return DEFAULT_RULES
    out = []
    for i, rule in enumerate(rules):
        if len(rule) != 2:
            raise ValueError(f"config.mesh.rules[{i}] = {rule!r}: expected (logical_axis, mesh_axis | tuple | None)")
        name, axes = rule
        if isinstance(axes, (list, tuple)):
            axes = tuple(axes)
        out.append((str(name), axes))
    return tuple(out)


def _axes_tuple(axes: Any) -> tuple[str, ...]:
    if axes is None:
        return ()
    return tuple(axes) if isinstance(axes, tuple) else (axes,)


def _check_rule_axes(rules: Rules, mesh: Mesh) -> None:
    for name, axes in rules:
        missing = [a for a in _axes_tuple(axes) if a not in mesh.shape]
        if missing:
            raise ValueError(f"config.mesh.rules: rule ({name!r}, {axes!r}) names mesh axes {missing} that the mesh "
                             f"{dict(mesh.shape)} does not have")


def resolve_spec(names: Sequence[str | None], shape: Sequence[int], mesh: Mesh, rules: Rules) -> tuple[P, list[str]]:
    """PartitionSpec for one array with logical `names`, and the fallbacks taken ("axis(dim)->mesh(size)")."""
    result: list[Any] = [None] * len(names)
    assigned = [False] * len(names)
    used: set[str] = set()
    failed: dict[int, str] = {}
    for logical, axes in rules:
        if logical not in names:
            continue
        pos = list(names).index(logical)
        mesh_axes = _axes_tuple(axes)
        if assigned[pos] or used.intersection(mesh_axes):
            continue
        size = math.prod(mesh.shape[a] for a in mesh_axes)
        if shape[pos] % size:
            failed.setdefault(pos, f"{logical}({shape[pos]})->{axes}({size})")
            continue
        assigned[pos] = True
        result[pos] = axes
        used.update(mesh_axes)
    notes = [note for pos, note in failed.items() if not assigned[pos]]
    return P(*result), notes


def _is_boxed(x: Any) -> bool:
    return isinstance(x, nn.LogicallyPartitioned)


def param_shardings(boxed_params: Any, mesh: Mesh, rules: Any = None, strict: bool = False) -> Any:
    """NamedShardings for a tree of `LogicallyPartitioned` leaves (e.g. `transformer.abstract_params(cfg)`).

    Non-dividing dimensions are replicated with one logged warning for the whole tree (ValueError if strict).
    Leaves that are not boxed are replicated.
    """
    rules = normalize_rules(rules)
    _check_rule_axes(rules, mesh)
    fallbacks: list[str] = []

    def one(path, leaf):
        if not _is_boxed(leaf):
            return NamedSharding(mesh, P())
        value = leaf.value
        spec, notes = resolve_spec(tuple(leaf.names), value.shape, mesh, rules)
        name = jax.tree_util.keystr(path, simple=True, separator=".")
        fallbacks.extend(f"{name}: {n}" for n in notes)
        return NamedSharding(mesh, spec)

    out = jax.tree_util.tree_map_with_path(one, boxed_params, is_leaf=_is_boxed)
    if fallbacks:
        msg = ("dimensions that do not divide their mesh axes (param: logical(dim)->mesh(size)): "
               + "; ".join(fallbacks))
        if strict:
            raise ValueError(f"config.mesh.strict=True and {msg}")
        log.warning("replicating %s", msg)
    return out


def batch_sharding(mesh: Mesh, microbatched: bool = False) -> NamedSharding:
    """Leading batch dim split over ("data", "fsdp"); with `microbatched` the batch dim is the second one."""
    return NamedSharding(mesh, P(None, BATCH_AXES) if microbatched else P(BATCH_AXES))


def _numeric(x: Any) -> bool:
    return np.asarray(x).dtype.kind in "biuf"


def shard_batch(batch: Mapping[str, Any], mesh: Mesh, microbatched: bool | None = None) -> dict[str, jax.Array]:
    """Host-local numpy batch -> global jax.Arrays split over the batch axes (string keys such as `id` dropped).

    Each process passes only its own rows (`jax.make_array_from_process_local_data`), so the same call works on
    one host and on many. `microbatched=None` infers a leading micro-batch axis from `tokens` being 3-D.
    """
    if microbatched is None:
        microbatched = "tokens" in batch and np.ndim(batch["tokens"]) == 3
    sharding = batch_sharding(mesh, microbatched)
    axis = 1 if microbatched else 0
    n_shards = math.prod(mesh.shape[a] for a in BATCH_AXES) if jax.process_count() == 1 else 1
    out = {}
    for key, value in batch.items():
        if not _numeric(value):
            continue
        value = np.asarray(value)
        if value.ndim <= axis or value.shape[axis] % n_shards:
            raise ValueError(f"batch[{key!r}] has shape {value.shape}: its batch dim (axis {axis}) must be divisible "
                             f"by data*fsdp = {n_shards}")
        out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out
