"""Cached features for `top_k_layers` training: the frozen lower L-k layers run once per distinct row; the top k
layers then train from the cache for as many steps as needed.

How it fits: `train.state` keeps the embedding and the lower layers frozen in top_k_layers mode, and
`train.step.hidden_states` takes `batch["embeddings"]` [K, B, T, D] (the lower stack's un-normed residual
stream) in place of running the lower stack. `FeatureCache.add_features(batch, frozen)` fills that key for a step
batch: rows seen before come from the cache; the others go through one jitted lower-stack forward of fixed shape
[B, T] per bucket (missing rows padded to whole chunks, so one compile per bucket), and are stored.

Decisions:
- Key = hash of the row's real tokens (`feature_store.row_key`), not the bucket length: rows are single
  segments at positions 0..n-1 of a causal stack, so the tokens decide the features at real positions whatever
  padding follows (a row cached at one bucket hits in a longer one); the hash (not the example id) keeps two
  prompts of one item, or one id in two tasks, apart. Only the n real positions are stored; padding positions
  are zeros (they are masked everywhere downstream, so this equals the uncached forward at every real
  position). Padding rows (no real token) are all zeros and never computed.
- Storage (`train.feature_store`, `feature_store.py`): "shared" (default) the on-disk store under the cache dir
  that every run, experiment and process on the same frozen stack reuses, with a memory layer in front;
  "memory" host memory of this process; "disk" an append-only workdir file read through `np.memmap` (bounded
  RAM, rebuilt on restart).
- Derived stacks (`train.feature_store_base` = m < n_lower, shared store only): a row missing here is built from
  the shared store of the m-layer stack (the same model's first m layers), running only layers m..n_lower-1;
  a row missing there too is computed and stored there first. So after a top-4 pass (m = 26) a top-2 stack
  (n_lower = 28) costs 2 layers a row, and either order fills the store a later depth reuses.
- Multi-host: every host caches its own rows. The lower forward runs on the mesh with the global frozen
  params, so all hosts must call it together: the number of chunks per step is agreed with one allgather.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from monitor_jax.model import transformer
from monitor_jax.train.mode import TrainMode
from monitor_jax.core import sharding as shd
from monitor_jax.train import feature_store
from monitor_jax.train import step as step_lib
from monitor_jax.train.feature_store import MemoryStore, needed_length, needed_lengths, row_key

__all__ = ["FeatureCache", "MemoryStore", "lower_forward", "n_lower_layers", "row_key"]

PREFILL_STEP = 64  # `prefill` pads each row to a multiple of this many tokens (bench/features.py: at 64 the pass
# of the pilot's length mix runs 1.25x faster than at the training buckets, fp32, on the 2-core Xeon)


def prefill_width(n: int, step: int = PREFILL_STEP) -> int:
    """The width `FeatureCache.prefill` pads a row of `n` needed tokens to: `n` rounded up to a multiple of `step`."""
    return -(-int(n) // step) * step


log = logging.getLogger(__name__)


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


def layer_slice(frozen: Any, start: int, stop: int) -> Any:
    """`frozen` with its stacked layers cut to [start, stop) (the embedding kept)."""
    return {**frozen, "layers": jax.tree_util.tree_map(lambda x: x[start:stop], frozen["layers"])}


def middle_forward(cfg: transformer.ModelConfig, frozen: Any, start: int, hidden: jax.Array, positions: jax.Array,
                   segment_ids: jax.Array) -> jax.Array:
    """Un-normed hidden states after layers [start, start + cfg.n_layers) of `frozen`, from those after `start`."""
    out, _ = transformer.Transformer(cfg).apply({"params": layer_slice(frozen, start, start + cfg.n_layers)}, None,
                                                positions, segment_ids, embeddings=hidden, final_norm=False)
    return out


class FeatureCache:
    """Lower-layer activations of every distinct training row, computed once (see the module docstring)."""

    def __init__(self, config: Any, model_cfg: transformer.ModelConfig, mesh: Mesh, frozen_shardings: Any,
                 workdir: str | os.PathLike | None = None, shared_store: Any = None):
        """`shared_store`: a store (`feature_store.open_store`) kept by the caller across runs; it must only ever
        hold features of the same frozen lower stack. Without it, `config.train.feature_store` is opened at the
        first `add_features` (the shared store's folder is named by the frozen params it is given)."""
        if config.train.mode != "top_k_layers":
            raise ValueError(f"config.train.cache_features needs config.train.mode='top_k_layers', "
                             f"got {config.train.mode!r}")
        self.n_lower = n_lower_layers(config, model_cfg)
        self.cfg = step_lib.compute_config(config, model_cfg).replace(n_layers=self.n_lower)
        self.d = model_cfg.d_model
        self.dtype = np.dtype(jnp.dtype(self.cfg.dtype))
        self.mesh = mesh
        kind = config.train.get("feature_store", "shared")
        if kind not in feature_store.STORES:
            raise ValueError(f"config.train.feature_store must be one of {feature_store.STORES}, got {kind!r}")
        self.config, self.workdir = config, workdir
        self.store: Any = shared_store
        self.hits = self.misses = 0
        rows = shd.batch_sharding(mesh)
        self._fn = jax.jit(lambda f, t, p, s: lower_forward(self.cfg, f, t, p, s),
                           in_shardings=(frozen_shardings, rows, rows, rows), out_shardings=rows)
        base = config.train.get("feature_store_base")
        self.n_base = None if base is None else int(base)
        self.base_store: Any = None
        if self.n_base is not None:
            if kind != "shared" or not 1 <= self.n_base < self.n_lower:
                raise ValueError(f"config.train.feature_store_base={self.n_base} needs train.feature_store='shared' "
                                 f"and 1 <= feature_store_base < n_lower={self.n_lower}")
            nb, mid_cfg = self.n_base, self.cfg.replace(n_layers=self.n_lower - self.n_base)
            self._base_fn = jax.jit(lambda f, t, p, s: lower_forward(self.cfg.replace(n_layers=nb),
                                                                     layer_slice(f, 0, nb), t, p, s),
                                    in_shardings=(frozen_shardings, rows, rows, rows), out_shardings=rows)
            self._mid_fn = jax.jit(lambda f, h, p, s: middle_forward(mid_cfg, f, nb, h, p, s),
                                   in_shardings=(frozen_shardings, rows, rows, rows), out_shardings=rows)
        self.base_hits = self.base_misses = 0

    def open(self, frozen: Any) -> Any:
        """The store (opened on first use for the frozen params `frozen`), and the base stack's store if any."""
        if self.store is None:
            self.store = feature_store.open_store(self.config, model_name=str(self.config.model.name),
                                                  frozen=frozen, n_lower=self.n_lower, d=self.d,
                                                  compute_dtype=self.dtype, workdir=self.workdir,
                                                  precision=self.cfg.precision)
        if self.n_base is not None and self.base_store is None:
            self.base_store = feature_store.open_store(self.config, model_name=str(self.config.model.name),
                                                       frozen=layer_slice(frozen, 0, self.n_base),
                                                       n_lower=self.n_base, d=self.d, compute_dtype=self.dtype,
                                                       precision=self.cfg.precision)
        return self.store

    def stats(self) -> dict[str, float]:
        """`features/hits` (rows served from a store), `features/misses` (rows computed), the store's rows/bytes
        (memory layer) and, for the shared store, `features/disk_*` (rows/bytes on disk, reads, writes)."""
        out = {"features/rows": 0.0, "features/bytes": 0.0}
        if self.store is not None:
            out.update({f"features/{k}": v for k, v in self.store.stats().items()})
        out = {**out, "features/hits": float(self.hits), "features/misses": float(self.misses)}
        if self.n_base is not None:
            out.update({"features/base_hits": float(self.base_hits), "features/base_misses": float(self.base_misses)})
        return out

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

    def _run(self, fn: Any, frozen: Any, inputs: np.ndarray, positions: np.ndarray, segments: np.ndarray,
             chunk: int) -> np.ndarray:
        """`fn(frozen, inputs, positions, segments)` over host rows [M, T(, D)] (M a multiple of `chunk`), `chunk`
        rows per jitted call."""
        out = []
        for s in range(0, len(inputs), chunk):
            arrays = shd.shard_batch({"x": inputs[s:s + chunk], "positions": positions[s:s + chunk],
                                      "segment_ids": segments[s:s + chunk]}, self.mesh, microbatched=False)
            out.append(_local_rows(fn(frozen, arrays["x"], arrays["positions"], arrays["segment_ids"]), self.mesh))
        return np.concatenate(out) if out else np.zeros((0, inputs.shape[1], self.d), self.dtype)

    def _compute(self, frozen: Any, tokens: np.ndarray, positions: np.ndarray, segments: np.ndarray,
                 chunk: int, lengths: np.ndarray) -> np.ndarray:
        """Lower features of host rows [M, T] (M a multiple of `chunk`): the whole lower stack, or with a base
        stack its features (stored, or computed and stored there, keyed by the rows' needed `lengths`) then the
        layers above it."""
        if self.n_base is None:
            return self._run(self._fn, frozen, tokens, positions, segments, chunk)
        keys = [row_key(tokens[i], int(n)) if n else None for i, n in enumerate(lengths)]
        hidden = np.zeros((*tokens.shape, self.d), self.dtype)
        need = []
        for i, k in enumerate(keys):
            value = self.base_store.get(k) if k is not None else None
            if value is not None:
                hidden[i, :lengths[i]] = value
                self.base_hits += 1
            elif k is not None:
                need.append(i)
                self.base_misses += 1
        idx, seg = _filled(need, segments, chunk)
        if len(idx):
            base = self._run(self._base_fn, frozen, tokens[idx], positions[idx], seg, chunk)
            for j, i in enumerate(need):
                self.base_store.put(keys[i], np.asarray(base[j, :lengths[i]], self.dtype))
                hidden[i, :lengths[i]] = self.base_store.get(keys[i])  # as stored (the same for every reader)
        return self._run(self._mid_fn, frozen, hidden, positions, segments, chunk)

    def prefill(self, rows: Any, frozen: Any, chunk: int = 8, step: int = PREFILL_STEP) -> int:
        """Computes and stores the features of every row of `rows` (`pipeline.RenderedExample`s) the store lacks,
        before the steps or scores that read them: length-sorted, `chunk` rows a call, each row padded to a
        multiple of `step` tokens past its needed length (its width depends on the row alone, so whichever run
        computes a row first stores the same features). The training buckets pad more (a 520-token row to 768)
        and a step's misses fill partial chunks. One process only (several would have to agree on the calls);
        returns how many rows were computed."""
        if jax.process_count() > 1:
            return 0
        store = self.open(frozen)
        todo: dict[bytes, tuple[np.ndarray, int]] = {}
        for r in rows:
            n = needed_length(len(r.tokens), r.answer_index, r.is_classification, r.loss_mask)
            key = row_key(r.tokens, n) if n else None
            if key is not None and key not in todo and store.get(key) is None:
                todo[key] = (np.asarray(r.tokens[:n], np.int32), n)
        shards = int(np.prod([self.mesh.shape[a] for a in shd.BATCH_AXES if a in self.mesh.shape]))
        chunk = -(-chunk // shards) * shards
        items = sorted(todo.items(), key=lambda kv: kv[1][1])
        by_width: dict[int, list] = {}
        for item in items:
            by_width.setdefault(prefill_width(item[1][1], step), []).append(item)
        for width, part in ((w, group[s:s + chunk]) for w, group in by_width.items()
                            for s in range(0, len(group), chunk)):
            tok, pos, seg = (np.zeros((chunk, width), np.int32) for _ in range(3))
            lengths = np.zeros(chunk, np.int64)
            for j, (_, (t, n)) in enumerate(part):
                tok[j, :n], pos[j, :n], seg[j, :n], lengths[j] = t, np.arange(n), 1, n
            feats = self._compute(frozen, tok, pos, seg, chunk, lengths)
            for j, (key, (_, n)) in enumerate(part):
                store.put(key, np.asarray(feats[j, :n], self.dtype))
        self.misses += len(items)
        return len(items)

    def add_features(self, batch: dict[str, np.ndarray], frozen: Any) -> dict[str, np.ndarray]:
        """`batch` (host arrays, [K, B, T] or [B, T]) with "embeddings" [..., T, D] of the lower stack added."""
        tokens = np.asarray(batch["tokens"])
        lead, t = tokens.shape[:-1], tokens.shape[-1]
        chunk = tokens.shape[-2]  # one micro-batch of rows per lower forward: the train step's row count
        flat_tok = tokens.reshape(-1, t)
        flat_pos = np.asarray(batch["positions"]).reshape(-1, t)
        flat_seg = np.asarray(batch["segment_ids"]).reshape(-1, t)
        lengths = needed_lengths(batch)  # real tokens whose features are read (not a label token after its slot)
        keys = [row_key(flat_tok[i], int(lengths[i])) if lengths[i] else None for i in range(len(flat_tok))]
        store = self.open(frozen)
        found: dict[bytes, np.ndarray] = {}
        missing = []
        for i, k in enumerate(keys):
            if k is None or k in found:
                self.hits += k is not None
                continue
            value = store.get(k)
            if value is not None:
                found[k] = value
                self.hits += 1
            else:
                found[k] = None  # computed below (a later row with the same key is a hit)
                missing.append(i)
                self.misses += 1
        chunk = self._chunk(len(missing), chunk)
        idx, seg = _filled(missing, flat_seg, chunk)
        if len(idx):
            needed = np.where(np.arange(len(idx)) < len(missing), lengths[idx], 0)  # filler rows: none
            feats = self._compute(frozen, flat_tok[idx], flat_pos[idx], seg, chunk, needed)
            for j, i in enumerate(missing):
                store.put(keys[i], np.asarray(feats[j, : lengths[i]], self.dtype))
                found[keys[i]] = store.get(keys[i])  # as stored (bfloat16 storage: every step sees the same)
        out = np.zeros((len(flat_tok), t, self.d), self.dtype)
        for i, k in enumerate(keys):
            if k is not None:
                out[i, : lengths[i]] = found[k]
        return {**batch, "embeddings": out.reshape(*lead, t, self.d)}

    def summary(self) -> str:
        """One line: hits, misses and the store's size (memory layer, and disk for the shared store)."""
        s = self.stats()
        text = (f"features: {s['features/hits']:.0f} hits, {s['features/misses']:.0f} computed; memory "
                f"{s['features/rows']:.0f} rows {s['features/bytes'] / 2**20:.1f} MB")
        if "features/disk_rows" in s:
            text += (f"; disk {s['features/disk_rows']:.0f} rows {s['features/disk_bytes'] / 2**20:.1f} MB "
                     f"({s['features/disk_reads']:.0f} read, {s['features/disk_writes']:.0f} written)")
        return text

    def close(self) -> None:
        log.info(self.summary())
        if isinstance(self.store, feature_store.WorkdirStore):
            self.store.close()


def _filled(rows: list[int], segments: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, their segment ids) for `rows` filled up to whole chunks, as many as every process runs; the
    filler rows are all padding (their features are never stored)."""
    n_chunks = _agreed_max(-(-len(rows) // chunk))
    idx = np.asarray(rows + [rows[0] if rows else 0] * (n_chunks * chunk - len(rows)), np.int64)
    seg = segments[idx].copy()
    seg[len(rows):] = 0
    return idx, seg


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
