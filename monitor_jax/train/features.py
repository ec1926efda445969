"""Cached features for `top_k_layers` training: the frozen lower L-k layers run once per distinct row; the top k
layers then train from the cache for as many steps as needed.

How it fits: `train.state` keeps the embedding and the lower layers frozen in top_k_layers mode, and
`train.step.hidden_states` takes `batch["embeddings"]` [K, B, T, D] (the lower stack's un-normed residual
stream) in place of running the lower stack. `FeatureCache.add_features(batch, frozen)` fills that key for a step
batch: rows seen before come from the cache; the others go through one jitted lower-stack forward of fixed shape
[B, T] per bucket (missing rows padded to whole chunks, so one compile per bucket), and are stored.

Decisions:
- Key = (bucket length T, hash of the row's real tokens). Rows are single segments at positions 0..n-1, so the
  tokens decide the features; the hash (not the example id) keeps two prompts of one item, or one id in two
  tasks, apart. Only the n real positions are stored; padding positions are zeros (they are masked everywhere
  downstream, so this equals the uncached forward at every real position). Padding rows (no real token) are
  all zeros and never computed.
- Storage: host memory (`feature_store="memory"`), or an append-only file in the workdir read through
  `np.memmap` (`"disk"`: bounded RAM for large runs); both rebuilt on restart (the cache is a pure function of
  the frozen params and the rows, so a resumed run recomputes the same values).
- Multi-host: every host caches its own rows. The lower forward runs on the mesh with the global frozen
  params, so all hosts must call it together: the number of chunks per step is agreed with one allgather.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from monitor_jax.model import transformer
from monitor_jax.train.mode import TrainMode
from monitor_jax.core import sharding as shd
from monitor_jax.train import step as step_lib

log = logging.getLogger(__name__)

STORES = ("memory", "disk")


def n_lower_layers(config: Any, model_cfg: transformer.ModelConfig) -> int:
    """The number of frozen lower layers (`TrainMode.n_lower`); at least 1 for caching to make sense."""
    mode = TrainMode.from_config(config)
    if mode.kind != "top_k_layers" or not 1 <= mode.top_k < model_cfg.n_layers:
        raise ValueError(f"config.train.cache_features needs train.mode='top_k_layers' with 1 <= top_k < "
                         f"n_layers={model_cfg.n_layers} (a frozen lower stack to cache), got {mode.kind!r}, "
                         f"top_k={mode.top_k}")
    return mode.n_lower(model_cfg)


def lower_forward(cfg: transformer.ModelConfig, frozen: Any, tokens: jax.Array, positions: jax.Array,
                  segment_ids: jax.Array) -> jax.Array:
    """Un-normed hidden states [B, T, D] after the first `cfg.n_layers` layers (cfg: the lower stack's dims)."""
    hidden, _ = transformer.Transformer(cfg).apply({"params": frozen}, tokens, positions, segment_ids,
                                                   final_norm=False)
    return hidden


def row_key(tokens: np.ndarray, n: int, length: int) -> bytes:
    """Cache key of a row: its bucket length and a hash of its first n tokens."""
    h = hashlib.blake2b(np.ascontiguousarray(tokens[:n], np.int32).tobytes(), digest_size=16)
    h.update(int(length).to_bytes(4, "little"))
    return h.digest()


class MemoryStore:
    """Features in host memory, keyed by `row_key`; one store may be shared by runs on the same frozen stack."""

    def __init__(self) -> None:
        self.rows: dict[bytes, np.ndarray] = {}
        self.nbytes = 0

    def __contains__(self, key: bytes) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def put(self, key: bytes, value: np.ndarray) -> None:
        self.rows[key] = value
        self.nbytes += value.nbytes

    def get(self, key: bytes) -> np.ndarray:
        return self.rows[key]


class _DiskStore:
    """Append-only feature file + in-memory index; reads through an np.memmap re-opened as the file grows."""

    def __init__(self, path: Path, d: int, dtype: Any) -> None:
        self.path, self.d, self.dtype = Path(path), d, np.dtype(dtype)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "wb")  # truncates: the cache is rebuilt on every start
        self.index: dict[bytes, tuple[int, int]] = {}
        self.nbytes = 0
        self._map: np.memmap | None = None

    def __contains__(self, key: bytes) -> bool:
        return key in self.index

    def __len__(self) -> int:
        return len(self.index)

    def put(self, key: bytes, value: np.ndarray) -> None:
        data = np.ascontiguousarray(value, self.dtype)
        self._f.write(data.tobytes())
        self.index[key] = (self.nbytes, len(value))
        self.nbytes += data.nbytes
        self._map = None

    def get(self, key: bytes) -> np.ndarray:
        offset, n = self.index[key]
        if self._map is None:
            self._f.flush()
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.nbytes,))
        return self._map[offset: offset + n * self.d * self.dtype.itemsize].view(self.dtype).reshape(n, self.d)

    def close(self) -> None:
        self._map = None
        self._f.close()


class FeatureCache:
    """Lower-layer activations of every distinct training row, computed once (see the module docstring)."""

    def __init__(self, config: Any, model_cfg: transformer.ModelConfig, mesh: Mesh, frozen_shardings: Any,
                 workdir: str | os.PathLike | None = None, shared_store: MemoryStore | None = None):
        """`shared_store`: a `MemoryStore` kept by the caller across runs; it must only ever hold features of
        the same frozen lower stack (model, `top_k`, dtype): the key does not say which stack made them."""
        if config.train.mode != "top_k_layers":
            raise ValueError(f"config.train.cache_features needs config.train.mode='top_k_layers', "
                             f"got {config.train.mode!r}")
        self.n_lower = n_lower_layers(config, model_cfg)
        self.cfg = step_lib.compute_config(config, model_cfg).replace(n_layers=self.n_lower)
        self.d = model_cfg.d_model
        self.dtype = np.dtype(jnp.dtype(self.cfg.dtype))
        self.mesh = mesh
        store = config.train.get("feature_store", "memory")
        if store not in STORES:
            raise ValueError(f"config.train.feature_store must be one of {STORES}, got {store!r}")
        if shared_store is not None:
            self.store: MemoryStore | _DiskStore = shared_store
        elif store == "disk":
            if workdir is None:
                raise ValueError("config.train.feature_store='disk' needs a workdir")
            path = Path(workdir) / "features" / f"lower{self.n_lower}.p{jax.process_index()}.bin"
            self.store = _DiskStore(path, self.d, self.dtype)
        else:
            self.store = MemoryStore()
        self.hits = self.misses = 0
        rows = shd.batch_sharding(mesh)
        self._fn = jax.jit(lambda f, t, p, s: lower_forward(self.cfg, f, t, p, s),
                           in_shardings=(frozen_shardings, rows, rows, rows), out_shardings=rows)

    def stats(self) -> dict[str, float]:
        return {"features/rows": float(len(self.store)), "features/bytes": float(self.store.nbytes),
                "features/hits": float(self.hits), "features/misses": float(self.misses)}

    def _chunk(self, n_missing: int, chunk: int) -> int:
        """Rows per lower forward: `chunk` halved while half still holds every missing row and splits evenly over
        the mesh's batch shards (late in an epoch a step misses one or two rows: no full padded chunk for them).
        Several processes keep `chunk`, so every host runs the same shapes."""
        if jax.process_count() > 1:
            return chunk
        shards = int(np.prod([self.mesh.shape[a] for a in shd.BATCH_AXES if a in self.mesh.shape]))
        while chunk % 2 == 0 and chunk // 2 >= max(n_missing, 1) and (chunk // 2) % shards == 0:
            chunk //= 2
        return chunk

    def _compute(self, frozen: Any, tokens: np.ndarray, positions: np.ndarray, segments: np.ndarray,
                 chunk: int) -> np.ndarray:
        """Lower features of host rows [M, T] (M a multiple of `chunk`), `chunk` rows per jitted call."""
        out = []
        for s in range(0, len(tokens), chunk):
            arrays = shd.shard_batch({"tokens": tokens[s:s + chunk], "positions": positions[s:s + chunk],
                                      "segment_ids": segments[s:s + chunk]}, self.mesh, microbatched=False)
            h = self._fn(frozen, arrays["tokens"], arrays["positions"], arrays["segment_ids"])
            out.append(_local_rows(h, self.mesh))
        return np.concatenate(out) if out else np.zeros((0, tokens.shape[1], self.d), self.dtype)

    def add_features(self, batch: dict[str, np.ndarray], frozen: Any) -> dict[str, np.ndarray]:
        """`batch` (host arrays, [K, B, T] or [B, T]) with "embeddings" [..., T, D] of the lower stack added."""
        tokens = np.asarray(batch["tokens"])
        lead, t = tokens.shape[:-1], tokens.shape[-1]
        chunk = tokens.shape[-2]  # one micro-batch of rows per lower forward: the train step's row count
        flat_tok = tokens.reshape(-1, t)
        flat_pos = np.asarray(batch["positions"]).reshape(-1, t)
        flat_seg = np.asarray(batch["segment_ids"]).reshape(-1, t)
        lengths = (flat_seg > 0).sum(axis=1)
        keys = [row_key(flat_tok[i], int(lengths[i]), t) if lengths[i] else None for i in range(len(flat_tok))]
        missing, seen = [], set()
        for i, k in enumerate(keys):
            if k is None:
                continue
            if k in self.store or k in seen:
                self.hits += 1
            else:
                missing.append(i)
                seen.add(k)
                self.misses += 1
        chunk = self._chunk(len(missing), chunk)
        n_chunks = -(-len(missing) // chunk)
        n_chunks = _agreed_max(n_chunks)
        pad = n_chunks * chunk - len(missing)
        idx = np.asarray(missing + [missing[0] if missing else 0] * pad, np.int64)
        if len(idx):
            seg = flat_seg[idx].copy()
            if pad:  # filler rows: all padding (their features are never stored)
                seg[len(missing):] = 0
            feats = self._compute(frozen, flat_tok[idx], flat_pos[idx], seg, chunk)
            for j, i in enumerate(missing):
                self.store.put(keys[i], np.asarray(feats[j, : lengths[i]], self.dtype))
        out = np.zeros((len(flat_tok), t, self.d), self.dtype)
        for i, k in enumerate(keys):
            if k is not None:
                out[i, : lengths[i]] = self.store.get(k)
        return {**batch, "embeddings": out.reshape(*lead, t, self.d)}

    def close(self) -> None:
        if isinstance(self.store, _DiskStore):
            self.store.close()


def _agreed_max(n: int) -> int:
    """The max of `n` over all processes (every host must run the same number of lower forwards)."""
    if jax.process_count() == 1:
        return n
    from jax.experimental import multihost_utils

    return int(np.max(multihost_utils.process_allgather(np.asarray([n], np.int64))))


def _local_rows(x: jax.Array, mesh: Mesh) -> np.ndarray:
    """This host's rows of a batch-sharded global array, in order."""
    if jax.process_count() == 1:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.global_array_to_host_local_array(x, mesh, P(shd.BATCH_AXES)))
