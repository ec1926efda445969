"""Streamed, sharded loading of an HF safetensors checkpoint straight onto a device mesh.

Every param becomes a global `jax.Array` assembled from per-device shards, and each shard is read from the
checkpoint on its own: only the layers on its leading (stacked-layer) slice, and of each layer's HF tensor only
the rows/columns it holds (safetensors `get_slice`, memory-mapped). No host ever holds the whole model: at any
moment it holds one device shard of one param. Each process reads only the shards of its own devices, so the
same call loads a 70B checkpoint on a multi-host pod. Checks and errors are those of `weights.load_hf`.
"""

from __future__ import annotations

import contextlib
import pathlib
from typing import Any, Callable

import jax
import numpy as np
from flax.core import meta

from monitor_jax.model import transformer, weights
from monitor_jax.model.transformer import ModelConfig

Params = dict[str, Any]
Shardings = Any  # a tree of jax.sharding.Sharding with the param tree's structure


class _Checkpoint:
    """The open safetensors files of one HF dir, checked against the config: every expected tensor present once
    with its expected shape (from the file headers only: no tensor data is read here)."""

    def __init__(self, path: pathlib.Path, cfg: ModelConfig, dtype: Any, stack: contextlib.ExitStack):
        from safetensors import safe_open

        self.dtype = np.dtype(dtype)
        self.files: dict[str, Any] = {}  # HF name -> open safe_open handle
        self.sources: dict[tuple[str, ...], dict[int | None, tuple[str, weights.Layout]]] = {}
        expected = weights.ExpectedTensors(cfg)
        for file in weights.hf_files(path):
            handle = stack.enter_context(safe_open(str(file), framework="numpy"))
            for name in handle.keys():
                layout = expected.take(name, tuple(handle.get_slice(name).get_shape()), str(file))
                if layout is not None:
                    self.files[name] = handle
                    self.sources.setdefault(layout.path, {})[layout.layer] = (name, layout)
        expected.done(str(path))

    def _slice(self, name: str) -> Any:
        """The lazily read safetensors slice of one HF tensor (indexing it reads only the indexed block)."""
        return self.files[name].get_slice(name)

    def shard(self, path: tuple[str, ...], shape: tuple[int, ...], index: tuple[slice, ...]) -> np.ndarray:
        """`param[index]` as a host array, reading only that block from the checkpoint (one layer at a time)."""
        sources = self.sources[path]
        if None in sources:
            name, layout = sources[None]
            return layout.read(self._slice(name), index).astype(self.dtype, copy=False)
        layers = range(shape[0])[index[0]]
        out = np.empty((len(layers), *(len(range(n)[s]) for n, s in zip(shape[1:], index[1:]))), self.dtype)
        for j, i in enumerate(layers):
            name, layout = sources[i]
            out[j] = layout.read(self._slice(name), index[1:])
        return out

    def array(self, path: tuple[str, ...], shape: tuple[int, ...], sharding: jax.sharding.Sharding) -> jax.Array:
        """The global array of one param: each distinct shard of this process's devices read once, put on every
        device that holds it, then dropped from the host."""
        by_index: dict[tuple, list[Any]] = {}
        indices = sharding.addressable_devices_indices_map(shape)
        for device, index in indices.items():
            by_index.setdefault(tuple((s.start, s.stop, s.step) for s in index), []).append(device)
        arrays = []
        for devices in by_index.values():
            host = self.shard(path, shape, indices[devices[0]])
            arrays += [jax.device_put(host, d) for d in devices]
            del host
        return jax.make_array_from_single_device_arrays(shape, sharding, arrays)


def _key(entry: Any) -> str:
    return str(getattr(entry, "key", entry))


def load_hf_sharded(path: weights.PathLike, shardings: Shardings | Callable[[ModelConfig], Shardings],
                    dtype: Any = np.float32) -> tuple[ModelConfig, Params]:
    """(config, params as global `jax.Array`s in `dtype`, each with its sharding) from an HF dir, streamed.

    `shardings`: a tree of shardings with the param tree's structure (e.g. `train.state.abstract_state(...)[2]`,
    or `core.sharding.param_shardings(transformer.abstract_params(cfg), mesh)`), or a callable building it from
    the `ModelConfig` read from `path/config.json`. The result equals `weights.load_hf(path, dtype)` put on
    those shardings.

    Peak host memory: one device shard of one param (plus one layer's block of one HF tensor while it is copied
    in), e.g. for a 70B Llama on fsdp=8 the largest shard is a stacked MLP kernel's, 80 x 1024 x 28672 in
    float32 = 9.4 GB, in bfloat16 4.7 GB; on 64 devices 1/8 of that. Replicated shards are read once per
    process. Tensor data comes through safetensors' memory map, so the page cache holds what was read.
    """
    path = pathlib.Path(path)
    cfg = weights.read_hf_config(path, dtype)
    if callable(shardings):
        shardings = shardings(cfg)
    abstract = meta.unbox(transformer.abstract_params(cfg))
    want, got = jax.tree.structure(abstract), jax.tree.structure(shardings)
    if want != got:
        raise ValueError(f"{path}: `shardings` do not match the param tree of its config.json\n"
                         f"expected {want}\ngot {got}")
    with contextlib.ExitStack() as stack:
        ckpt = _Checkpoint(path, cfg, dtype, stack)
        params = jax.tree_util.tree_map_with_path(
            lambda p, leaf, s: ckpt.array(tuple(_key(k) for k in p), tuple(leaf.shape), s), abstract, shardings)
    return cfg, params


def put_params(params: Params, shardings: Shardings) -> Params:
    """Host params (the same on every process) -> global arrays with `shardings`, each device given only its
    shard (for models loaded whole on the host, e.g. GGUF or tiny random ones)."""

    def put(x: Any, s: jax.sharding.Sharding) -> jax.Array:
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, s, lambda idx: host[idx])

    return jax.tree.map(put, params, shardings)
