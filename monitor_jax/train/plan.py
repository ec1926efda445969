"""Memory plan of a training config before anything is allocated (`monitor-jax plan`): bytes per device of params,
optimizer state, gradients and an activation estimate for one micro-batch, for any mesh shape.

Params and optimizer state come from `state.abstract_state` (`jax.eval_shape` of the real init) sharded on a
`jax.sharding.AbstractMesh`, so an 8B or 70B run is planned on a laptop without a device or a weight file. The
activation estimate traces the real loss (`step.loss_fn`) abstractly at the per-device shapes — rows = batch /
(data x fsdp); heads, KV heads, d_ff and vocab / tensor where they divide (the default rules' split) — and counts
the residuals saved for the backward pass under the config's remat policy, plus one layer's recomputed
intermediates (the transient of its backward). Residuals that do not depend on the batch (weights and their
casts) are excluded by tracing two batch sizes and taking the difference. Not included: XLA temporaries,
fragmentation, the optimizer update's scratch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import numpy as np
from flax.core import meta
from jax._src.ad_checkpoint import saved_residuals  # what jax.ad_checkpoint.print_saved_residuals prints
from jax.sharding import AbstractMesh, AxisType

from monitor_jax.data import pipeline
from monitor_jax.model import registry, transformer
from monitor_jax.core import sharding as shd
from monitor_jax.train import state, step

GiB = 2**30


@dataclasses.dataclass(frozen=True)
class Plan:
    """Bytes on the most loaded device for one mesh shape (activations: an estimate, see the module doc)."""

    mesh: tuple[int, int, int]  # (data, fsdp, tensor)
    n_params: int
    params: int
    opt_state: int
    grads: int
    gathered_layer: int  # one layer's weights all-gathered over fsdp for compute (0 when fsdp == 1)
    activations: int
    rows_per_device: int
    batch_divides: bool

    @property
    def total(self) -> int:
        return self.params + self.opt_state + self.grads + self.gathered_layer + self.activations

    @property
    def mesh_name(self) -> str:
        return ",".join(f"{a}={n}" for a, n in zip(shd.MESH_AXES, self.mesh) if n > 1) or "1 device"


def parse_mesh_shape(text: str) -> dict[str, int]:
    """`"data=2,fsdp=64"` -> {"data": 2, "fsdp": 64} (axes data/fsdp/tensor; one may be -1)."""
    out = {}
    for part in text.split(","):
        name, _, size = part.partition("=")
        try:
            out[name.strip()] = int(size)
        except ValueError:
            raise ValueError(f"--mesh_shapes={text!r}: expected axis=size pairs like 'data=2,fsdp=64'") from None
    return out


def abstract_mesh(shape: Any, n_devices: int | None = None) -> AbstractMesh:
    """A (data, fsdp, tensor) mesh with no devices behind it; `n_devices` is needed only when an axis is -1."""
    sizes = shd._as_dict(shape)
    if n_devices is None:
        if -1 in sizes.values():
            raise ValueError(f"mesh shape {sizes} has a -1 axis: give the device count (--num_devices=N) or a "
                             "full shape (--mesh_shapes=fsdp=8)")
        n_devices = math.prod(sizes.values())
    dims = shd.mesh_dims(sizes, n_devices)
    return AbstractMesh(dims, shd.MESH_AXES, axis_types=(AxisType.Auto,) * len(shd.MESH_AXES))


def _bytes(tree: Any) -> int:
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def _local_config(cfg: transformer.ModelConfig, tensor: int) -> transformer.ModelConfig:
    """The dims one device computes with under tensor parallelism (a dim that does not divide stays whole)."""
    kw = {k: getattr(cfg, k) // tensor for k in ("d_ff", "vocab_size") if getattr(cfg, k) % tensor == 0}
    if cfg.n_heads % tensor == 0 and cfg.n_kv_heads % tensor == 0:
        kw.update(n_heads=cfg.n_heads // tensor, n_kv_heads=cfg.n_kv_heads // tensor)
    return cfg.replace(**kw)


def _residual_bytes(config: Any, cfg: transformer.ModelConfig, remat: str, rows: int) -> int:
    """Bytes of the residuals the loss saves for its backward pass at `rows` x max_len tokens."""
    c = config.copy_and_resolve_references()
    c.model.remat = remat
    cfg = step.compute_config(c, cfg)
    batch = pipeline.collate([None] * rows, int(config.data.max_len), rows, 0, {})
    batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in batch.items() if v.dtype.kind in "biuf"}
    spec = step.Spec.from_config(c)
    trainable, frozen = jax.eval_shape(lambda p: spec.mode.split(p, cfg), meta.unbox(transformer.abstract_params(cfg)))
    res = saved_residuals(lambda t, f, b: step.loss_fn(t, f, b, spec, cfg)[0], trainable, frozen, batch)
    return sum(int(np.prod(aval.shape)) * np.dtype(aval.dtype).itemsize for aval, _ in res)


def activation_bytes(config: Any, model_cfg: transformer.ModelConfig, tensor: int, rows: int) -> int:
    """Per-device activation estimate for `rows` rows of one micro-batch (see the module doc)."""
    cfg = _local_config(model_cfg, tensor)
    remat = config.model.remat

    def batch_dependent(policy: str) -> int:  # residuals(2 rows) - residuals(1 row) is what one row adds
        return (_residual_bytes(config, cfg, policy, 2 * rows) - _residual_bytes(config, cfg, policy, rows))

    saved = batch_dependent(remat)
    if remat == "none":
        return saved
    n_layers = int(config.train.top_k) if config.train.mode == "top_k_layers" else cfg.n_layers
    return saved + max(batch_dependent("none") - saved, 0) // n_layers


def plan(config: Any, mesh_shape: Any, n_devices: int | None = None,
         model_cfg: transformer.ModelConfig | None = None) -> Plan:
    """The memory plan of `config` on a mesh of `mesh_shape` ({data, fsdp, tensor}); nothing is allocated.
    `model_cfg` defaults to `registry.model_config(config.model.name)` (dims-only names need no weights)."""
    model_cfg = model_cfg or registry.model_config(config.model.name)
    mesh = abstract_mesh(mesh_shape, n_devices)
    data, fsdp, tensor = (mesh.shape[a] for a in shd.MESH_AXES)
    abstract, shardings, _ = state.abstract_state(config, model_cfg, mesh)
    trainable = state.bytes_per_device(abstract.trainable, shardings.trainable)
    frozen = state.bytes_per_device(abstract.frozen, shardings.frozen) if abstract.frozen is not None else 0
    accum = int(config.optim.get("grad_accum", 1) or 1)
    batch = int(config.data.batch_size)
    rows = -(-batch // (data * fsdp))
    boxed = meta.unbox(transformer.abstract_params(model_cfg))
    compute = np.dtype(step.compute_config(config, model_cfg).dtype).itemsize
    gathered = 0
    if fsdp > 1:
        per_layer = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(boxed["layers"])) // model_cfg.n_layers
        gathered = per_layer * compute // tensor
    return Plan(mesh=(data, fsdp, tensor), n_params=sum(int(np.prod(x.shape)) for x in jax.tree.leaves(boxed)),
                params=trainable + frozen, opt_state=state.bytes_per_device(abstract.opt_state, shardings.opt_state),
                grads=trainable * (2 if accum > 1 else 1), gathered_layer=gathered,
                activations=activation_bytes(config, model_cfg, tensor, rows), rows_per_device=rows,
                batch_divides=batch % (data * fsdp) == 0)


def mesh_shapes(config: Any, texts: Sequence[str] | None) -> list[Any]:
    """Mesh shapes from `--mesh_shapes` strings, else the config's `mesh.shape`."""
    return [parse_mesh_shape(t) for t in texts] if texts else [config.mesh.shape]


def format_plans(config: Any, model_cfg: transformer.ModelConfig, plans: Sequence[Plan]) -> str:
    """A table of bytes per device (GiB), one column per mesh, with what the estimate counts."""
    model_cfg = step.compute_config(config, model_cfg)
    head = (f"{config.model.name}: {plans[0].n_params / 1e9:.2f}B params, train.mode={config.train.mode}, "
            f"micro-batch {config.data.batch_size} x {config.data.max_len} tokens "
            f"(grad_accum {config.optim.get('grad_accum', 1)}), compute {model_cfg.dtype}, remat {model_cfg.remat}")
    cols = [f"{p.mesh_name} ({math.prod(p.mesh)} dev)" for p in plans]
    width = max(14, *(len(c) for c in cols))
    rows = [("params", "params"), ("optimizer state", "opt_state"), ("gradients", "grads"),
            ("gathered layer (fsdp)", "gathered_layer"), ("activations (estimate)", "activations"),
            ("total", "total")]
    lines = [head, "", f"{'GiB per device':<24}" + "".join(f"{c:>{width + 2}}" for c in cols)]
    for label, attr in rows:
        lines.append(f"{label:<24}" + "".join(f"{getattr(p, attr) / GiB:>{width + 2}.2f}" for p in plans))
    lines.append(f"{'rows per device':<24}" + "".join(f"{p.rows_per_device:>{width + 2}}" for p in plans))
    for p in plans:
        if not p.batch_divides:
            lines.append(f"note: config.data.batch_size={config.data.batch_size} does not divide over data x fsdp = "
                         f"{p.mesh[0] * p.mesh[1]} ({p.mesh_name}): training refuses that mesh")
    lines.append("activations: residuals saved for backward under the remat policy at per-device shapes + one "
                 "layer's recomputed intermediates; XLA temporaries not included (monitor_jax/train/plan.py)")
    return "\n".join(lines)


def report(config: Any, texts: Sequence[str] | None = None, n_devices: int | None = None) -> str:
    """`monitor-jax plan`: the table for each mesh shape in `texts` (or the config's)."""
    model_cfg = registry.model_config(config.model.name)
    return format_plans(config, model_cfg, [plan(config, s, n_devices, model_cfg) for s in mesh_shapes(config, texts)])
