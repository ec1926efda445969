"""Where cached lower-stack features live: host memory, a per-run workdir file, or the shared on-disk store.

A store maps a row key (`row_key`: a hash of the row's real tokens) to its features [n, D]. Every store has
`get(key) -> array | None`, `put(key, value)`, `__len__`, `nbytes` and `stats()`.

The shared store (`SharedStore`, `train.feature_store="shared"`, the default) keeps one file per row under
`<store_root(config)>/<stack id>/<key[:2]>/<key>.f`, where the stack id
(`stack_id`) digests the model name, the frozen lower stack's weights, the split layer n_lower, the compute
dtype and the storage dtype: every arm, seed, experiment and process on the same stack reuses the rows.
- Writes go to a unique temp file renamed into place (`core.io.write_bytes`): two writers of one key both
  write a whole file and the last rename wins; a writer killed mid-write leaves only a temp file, never read.
- Each file is a header (magic, dtype, shape, blake2b of the payload) + the payload; a file that fails the
  check (truncated or altered outside this code) is treated as a miss and rewritten.
- A memory layer in front (`Layered`) keeps the rows this process has read or computed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from pathlib import Path
from typing import Any

import jax
import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy)
import numpy as np

from monitor_jax.core import assets, io

log = logging.getLogger(__name__)

STORES = ("shared", "memory", "disk")
STORAGE_DTYPES = ("float32", "bfloat16")
_MAGIC = b"MJF1"


def row_key(tokens: np.ndarray, n: int) -> bytes:
    """Cache key of a row: a hash of its first n (real) tokens; not the padded length, which does not change the
    features of a causal stack at real positions 0..n-1."""
    return hashlib.blake2b(np.ascontiguousarray(tokens[:n], np.int32).tobytes(), digest_size=16).digest()


def needed_length(n: int, answer_index: int, is_classification: bool, loss_mask: np.ndarray | None) -> int:
    """Of a row's n real tokens, how many a step or a score reads lower-stack features of: a classification row's up
    to its answer slot (the output at answer_index - 1 predicts the answer; the answer token is only a target), an
    IF row's up to its last target (likewise), else all n. Rows alike up to there share their cached features,
    e.g. a shuffled-label control's rows and their true-label rows; the features past it are zeros."""
    if is_classification and answer_index > 0:
        return min(int(answer_index), n)
    targets = np.flatnonzero(np.asarray(loss_mask)[:n] > 0) if loss_mask is not None else ()
    return int(targets[-1]) if len(targets) else n


def needed_lengths(batch: dict[str, np.ndarray]) -> np.ndarray:
    """`needed_length` of every row of a batch dict ([..., T] arrays flattened to rows)."""
    seg = np.asarray(batch["segment_ids"])
    t = seg.shape[-1]
    n = (seg.reshape(-1, t) > 0).sum(axis=1)
    if "answer_index" not in batch:
        return n
    ans = np.asarray(batch["answer_index"]).reshape(-1)
    cls = np.asarray(batch["is_classification"]).reshape(-1)
    mask = np.asarray(batch["loss_mask"]).reshape(-1, t)
    return np.asarray([needed_length(int(n[i]), int(ans[i]), bool(cls[i]), mask[i]) if n[i] else 0
                       for i in range(len(n))], np.int64)


def tree_digest(tree: Any) -> str:
    """A digest of a param tree's leaves (paths, dtypes, shapes, bytes). Leaves spread over several processes are
    digested by this process's shards (each host keys its own rows)."""
    h = hashlib.blake2b(digest_size=16)
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        h.update(jax.tree_util.keystr(path).encode())
        if getattr(leaf, "is_fully_addressable", True):
            parts = [np.asarray(leaf)]
        else:
            parts = [np.asarray(s.data) for s in leaf.addressable_shards]
        for a in parts:
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(np.ascontiguousarray(a).view(np.uint8).data)
    return h.hexdigest()


def stack_id(model_name: str, frozen: Any, n_lower: int, compute_dtype: str, storage_dtype: str) -> str:
    """The identity of a frozen lower stack's features: model, weights, split layer, compute and storage dtype."""
    text = json.dumps([model_name, tree_digest(frozen), int(n_lower), str(compute_dtype), str(storage_dtype)])
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class MemoryStore:
    """Features in host memory, keyed by `row_key`; one store may be shared by runs on the same frozen stack."""

    def __init__(self) -> None:
        self.rows: dict[bytes, np.ndarray] = {}
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self.rows)

    def put(self, key: bytes, value: np.ndarray) -> None:
        if key not in self.rows:
            self.nbytes += value.nbytes
        self.rows[key] = value

    def get(self, key: bytes) -> np.ndarray | None:
        return self.rows.get(key)

    def stats(self) -> dict[str, float]:
        return {"rows": float(len(self)), "bytes": float(self.nbytes)}


class WorkdirStore:
    """Append-only feature file + in-memory index (bounded RAM); reads through an np.memmap re-opened as the file
    grows. Rebuilt on every start (`train.feature_store="disk"`)."""

    def __init__(self, path: Path, d: int, dtype: Any) -> None:
        self.path, self.d, self.dtype = Path(path), d, np.dtype(dtype)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "wb")  # truncates: the cache is rebuilt on every start
        self.index: dict[bytes, tuple[int, int]] = {}
        self.nbytes = 0
        self._map: np.memmap | None = None

    def __len__(self) -> int:
        return len(self.index)

    def put(self, key: bytes, value: np.ndarray) -> None:
        data = np.ascontiguousarray(value, self.dtype)
        self._f.write(data.tobytes())
        self.index[key] = (self.nbytes, len(value))
        self.nbytes += data.nbytes
        self._map = None

    def get(self, key: bytes) -> np.ndarray | None:
        if key not in self.index:
            return None
        offset, n = self.index[key]
        if self._map is None:
            self._f.flush()
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.nbytes,))
        return self._map[offset: offset + n * self.d * self.dtype.itemsize].view(self.dtype).reshape(n, self.d)

    def stats(self) -> dict[str, float]:
        return {"rows": float(len(self)), "bytes": float(self.nbytes)}

    def close(self) -> None:
        self._map = None
        self._f.close()


def encode(value: np.ndarray, dtype: str) -> bytes:
    """One entry of the shared store: header (magic, dtype, shape, payload digest) + payload."""
    payload = np.ascontiguousarray(value, np.dtype(dtype)).tobytes()
    head = json.dumps({"dtype": dtype, "shape": list(value.shape)}).encode()
    digest = hashlib.blake2b(payload, digest_size=16).digest()
    return _MAGIC + struct.pack("<I", len(head)) + head + digest + payload


def decode(data: bytes) -> np.ndarray | None:
    """The array of an entry, or None when the entry is not whole and intact."""
    if len(data) < 8 or data[:4] != _MAGIC:
        return None
    (n_head,) = struct.unpack("<I", data[4:8])
    try:
        head = json.loads(data[8:8 + n_head])
        dtype, shape = np.dtype(head["dtype"]), tuple(head["shape"])
    except (ValueError, KeyError, TypeError):
        return None
    digest, payload = data[8 + n_head:24 + n_head], data[24 + n_head:]
    if len(payload) != int(np.prod(shape)) * dtype.itemsize or \
            hashlib.blake2b(payload, digest_size=16).digest() != digest:
        return None
    return np.frombuffer(payload, dtype).reshape(shape)


class SharedStore:
    """The on-disk store shared by processes (see the module docstring); `root` is one stack's folder."""

    def __init__(self, root: str | os.PathLike, dtype: str = "float32") -> None:
        if dtype not in STORAGE_DTYPES:
            raise ValueError(f"config.train.feature_store_dtype must be one of {STORAGE_DTYPES}, got {dtype!r}")
        self.root, self.dtype = Path(root), dtype
        self.root.mkdir(parents=True, exist_ok=True)
        self.found = self.found_bytes = 0  # what the folder held when opened
        for sub in self.root.iterdir():
            if sub.is_dir():
                for f in os.scandir(sub):
                    if f.name.endswith(".f"):
                        self.found += 1
                        self.found_bytes += f.stat().st_size
        self.reads = self.writes = self.written_bytes = self.corrupt = 0

    def _path(self, key: bytes) -> Path:
        h = key.hex()
        return self.root / h[:2] / f"{h}.f"

    def __contains__(self, key: bytes) -> bool:
        """Whether a file for `key` exists (not checked: `get` checks)."""
        return self._path(key).exists()

    def __len__(self) -> int:
        return self.found + self.writes

    @property
    def nbytes(self) -> int:
        return self.found_bytes + self.written_bytes

    def get(self, key: bytes) -> np.ndarray | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        value = decode(data)
        if value is None:
            self.corrupt += 1
            log.warning("feature store: %s is not a whole entry; recomputing it", path)
            return None
        self.reads += 1
        return value

    def put(self, key: bytes, value: np.ndarray) -> None:
        data = encode(value, self.dtype)
        io.write_bytes(self._path(key), data)
        self.writes += 1
        self.written_bytes += len(data)

    def stats(self) -> dict[str, float]:
        return {"disk_rows": float(len(self)), "disk_bytes": float(self.nbytes), "disk_reads": float(self.reads),
                "disk_writes": float(self.writes), "disk_corrupt": float(self.corrupt)}


class Layered:
    """A memory store in front of a shared store: reads fill the memory layer, writes go to both."""

    def __init__(self, disk: SharedStore, memory: MemoryStore | None = None) -> None:
        self.disk, self.memory = disk, memory or MemoryStore()

    def __len__(self) -> int:
        return len(self.memory)

    @property
    def nbytes(self) -> int:
        return self.memory.nbytes

    def get(self, key: bytes) -> np.ndarray | None:
        value = self.memory.get(key)
        if value is None:
            value = self.disk.get(key)
            if value is not None:
                self.memory.put(key, value)
        return value

    def put(self, key: bytes, value: np.ndarray) -> None:
        self.disk.put(key, value)
        self.memory.put(key, np.asarray(value, self.disk.dtype))

    def stats(self) -> dict[str, float]:
        return {**self.memory.stats(), **self.disk.stats()}


def store_root(config: Any) -> Path:
    """The shared store's folder: `train.feature_store_dir`, else `$MONITOR_JAX_FEATURES` (the tests point it at
    a temp folder), else `$MONITOR_JAX_CACHE/features`."""
    where = config.train.get("feature_store_dir") or os.environ.get("MONITOR_JAX_FEATURES")
    return Path(where) if where else assets.cache_dir() / "features"


def shared_stack_store(config: Any, *, model_name: str, frozen: Any, n_lower: int, compute_dtype: Any,
                       precision: str | None = None) -> SharedStore:
    """The shared store's folder for this frozen stack (what `open_store` opens for "shared"); `precision`
    (`ModelConfig.precision`, default the compute dtype's name) names the computation in the stack id."""
    dtype = str(config.train.get("feature_store_dtype") or "float32")
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"config.train.feature_store_dtype must be one of {STORAGE_DTYPES}, got {dtype!r}")
    sid = stack_id(model_name, frozen, n_lower, precision or np.dtype(compute_dtype).name, dtype)
    return SharedStore(store_root(config) / sid, dtype)


def open_store(config: Any, *, model_name: str, frozen: Any, n_lower: int, d: int, compute_dtype: Any,
               workdir: str | os.PathLike | None = None, precision: str | None = None) -> Any:
    """The store `config.train.feature_store` names for this frozen stack (`frozen`: its params)."""
    kind = config.train.get("feature_store", "shared")
    if kind not in STORES:
        raise ValueError(f"config.train.feature_store must be one of {STORES}, got {kind!r}")
    if kind == "memory":
        return MemoryStore()
    if kind == "disk":
        if workdir is None:
            raise ValueError("config.train.feature_store='disk' needs a workdir")
        path = Path(workdir) / "features" / f"lower{n_lower}.p{jax.process_index()}.bin"
        return WorkdirStore(path, d, compute_dtype)
    disk = shared_stack_store(config, model_name=model_name, frozen=frozen, n_lower=n_lower,
                              compute_dtype=compute_dtype, precision=precision)
    log.info("feature store %s: %d rows, %.1f MB", disk.root, len(disk), disk.nbytes / 2**20)
    return Layered(disk)
