"""The shared on-disk feature store: keyed by the row's tokens (not its bucket), equal to the lower stack in fp32,
reused by a new process, bfloat16 storage, and safe with two concurrent writers and a writer killed mid-write."""
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from monitor_jax.core import sharding
from monitor_jax.model import transformer
from monitor_jax.train import feature_store as fs
from monitor_jax.train import features
from monitor_jax.train import state as state_lib
from tests.train.test_features import _config

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _rows_batch(rows: list[np.ndarray], length: int, pad_id: int) -> dict[str, np.ndarray]:
    """A [1, B, length] step batch of single-segment rows (positions 0..n-1), padded after each row."""
    b = len(rows)
    tok = np.full((1, b, length), pad_id, np.int32)
    seg, pos = np.zeros_like(tok), np.zeros_like(tok)
    for i, r in enumerate(rows):
        tok[0, i, :len(r)], seg[0, i, :len(r)], pos[0, i, :len(r)] = r, 1, np.arange(len(r))
    return {"tokens": tok, "segment_ids": seg, "positions": pos}


def _cache(config, model, store=None):
    mesh = sharding.make_mesh(config.mesh.shape)
    state, shardings = state_lib.create_train_state(config, model, mesh)
    return features.FeatureCache(config, model.cfg, mesh, shardings.frozen, shared_store=store), state.frozen


def test_a_row_cached_in_one_bucket_hits_in_a_longer_one_and_in_a_new_process(tmp_path, model):
    config = _config(True)
    config.train.feature_store, config.train.feature_store_dir = "shared", str(tmp_path)
    rng = np.random.default_rng(0)
    rows = [rng.integers(1, 1000, n).astype(np.int32) for n in (5, 40, 64, 17, 3, 60, 33, 8)]
    cache, frozen = _cache(config, model)
    short = cache.add_features(_rows_batch(rows, 64, model.tokenizer.pad_id), frozen)["embeddings"]
    assert cache.stats()["features/misses"] == 8 and cache.stats()["features/disk_writes"] == 8
    long_batch = _rows_batch(rows[::-1], 128, model.tokenizer.pad_id)  # the same rows, other slots, longer bucket
    long = cache.add_features(long_batch, frozen)["embeddings"]
    assert cache.stats()["features/misses"] == 8 and cache.stats()["features/hits"] == 8

    # Cached == computed at the longer bucket (fp32, max abs 1e-5), at every real position.
    lower = {k: v for k, v in transformer.split_params(jax.tree_util.tree_map(np.asarray, model.params),
                                                       model.cfg.n_layers - 1)[0].items() if k != "final_norm"}
    ref = np.asarray(features.lower_forward(model.cfg.replace(n_layers=1, remat="none"), lower,
                                            *(jnp.asarray(long_batch[k][0]) for k in ("tokens", "positions",
                                                                                       "segment_ids"))))
    real = long_batch["segment_ids"][0] > 0
    assert np.abs(long[0][real] - ref[real]).max() <= 1e-5
    np.testing.assert_array_equal(long[0, ::-1, :64], short[0])

    # A new process (a fresh cache on the same folder) reads them from disk: nothing is computed.
    again, frozen = _cache(config, model)
    got = again.add_features(long_batch, frozen)["embeddings"]
    s = again.stats()
    assert s["features/misses"] == 0 and s["features/disk_reads"] == 8 and s["features/disk_rows"] == 8
    assert s["features/disk_bytes"] > 8 * 4 * model.cfg.d_model
    np.testing.assert_array_equal(got, long)

    # Another split layer, dtype or model is another folder (two models do not share rows).
    other = jax.tree_util.tree_map(lambda a: a + 1, frozen)
    assert fs.stack_id("m", frozen, 1, "float32", "float32") != fs.stack_id("m", other, 1, "float32", "float32")
    assert fs.stack_id("m", frozen, 1, "float32", "float32") != fs.stack_id("m", frozen, 1, "float32", "bfloat16")


def _deeper(model, n_layers: int):
    """The tiny model with its 2 layers repeated (scaled) to `n_layers`: enough depth for a base stack."""
    import dataclasses

    reps = -(-n_layers // model.cfg.n_layers)
    layers = jax.tree_util.tree_map(
        lambda x: np.concatenate([np.asarray(x) * (1 - 0.1 * r) for r in range(reps)])[:n_layers],
        model.params["layers"])
    return dataclasses.replace(model, cfg=model.cfg.replace(n_layers=n_layers), params={**model.params, "layers": layers})


def test_a_derived_stack_equals_the_full_lower_stack_and_fills_the_base_store(tmp_path, model):
    """top_k=1 of 4 layers (n_lower 3) built on the base store of the first 1 layer: rows missing in both are
    computed through the base (stored there), rows the base holds cost only the layers above it; fp32 1e-5."""
    deep = _deeper(model, 4)
    config = _config(True)
    config.train.feature_store, config.train.feature_store_dir = "shared", str(tmp_path)
    rng = np.random.default_rng(1)
    rows = [rng.integers(1, 1000, n).astype(np.int32) for n in (5, 40, 64, 17, 3, 60, 33, 8)]
    batch = _rows_batch(rows, 64, model.tokenizer.pad_id)
    base_cfg = _config(True)
    base_cfg.train.feature_store, base_cfg.train.feature_store_dir = "shared", str(tmp_path)
    base_cfg.train.top_k = 3  # the 1-layer stack, as a top-3 run would cache it
    base_cache, base_frozen = _cache(base_cfg, deep)
    empty = [np.zeros(0, np.int32)] * 4  # padding rows: never computed
    base_cache.add_features(_rows_batch(rows[:4] + empty, 64, model.tokenizer.pad_id), base_frozen)

    config.train.feature_store_base = 1
    cache, frozen = _cache(config, deep)
    got = cache.add_features(batch, frozen)["embeddings"]
    s = cache.stats()
    assert s["features/misses"] == 8 and s["features/base_hits"] == 4 and s["features/base_misses"] == 4
    lower = {k: v for k, v in features.layer_slice(jax.tree_util.tree_map(np.asarray, deep.params), 0, 3).items()
             if k != "final_norm"}
    ref = np.asarray(features.lower_forward(deep.cfg.replace(n_layers=3, remat="none"), lower,
                                            *(jnp.asarray(batch[k][0]) for k in ("tokens", "positions", "segment_ids"))))
    real = batch["segment_ids"][0] > 0
    assert np.abs(got[0][real] - ref[real]).max() <= 1e-5
    assert np.abs(got[0][~real]).max() == 0
    # The base store now holds all 8 rows: a top-3 run reads them all from disk.
    again, base_frozen = _cache(base_cfg, deep)
    again.add_features(batch, base_frozen)
    assert again.stats()["features/misses"] == 0 and again.stats()["features/disk_reads"] == 8
    with pytest.raises(ValueError, match="feature_store_base"):
        config.train.feature_store_base = 3
        _cache(config, deep)


def test_bfloat16_storage(tmp_path, model):
    config = _config(True)
    config.train.feature_store, config.train.feature_store_dir = "shared", str(tmp_path)
    config.train.feature_store_dtype = "bfloat16"
    batch = _rows_batch([np.arange(1, 30 + i, dtype=np.int32) for i in range(8)], 64, model.tokenizer.pad_id)
    cache, frozen = _cache(config, model)
    a = cache.add_features(batch, frozen)["embeddings"]
    b = _cache(config, model)[0].add_features(batch, frozen)["embeddings"]  # read back from disk
    np.testing.assert_array_equal(a, b)  # the computing run sees the stored (bfloat16) values too
    entry = next(tmp_path.glob("*/*/*.f"))
    assert fs.decode(entry.read_bytes()).dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="feature_store_dtype"):
        config.train.feature_store_dtype = "float16"
        _cache(config, model)[0].add_features(batch, frozen)


_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from monitor_jax.train import feature_store as fs
    store = fs.SharedStore(sys.argv[1])
    rows, n = int(sys.argv[2]), int(sys.argv[3])
    for rep in range(n):
        for i in range(rows):
            store.put(i.to_bytes(16, "little"), np.full((rows * 50, 64), i, np.float32))
        print(rep, flush=True)
""")


def _writer(root, rows, n):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(root), str(rows), str(n)], env=env,
                            stdout=subprocess.PIPE, text=True)


def _check_all(root, rows):
    store = fs.SharedStore(root)
    seen = 0
    for i in range(rows):
        v = store.get(i.to_bytes(16, "little"))
        if v is not None:
            assert v.shape == (rows * 50, 64) and (v == i).all()
            seen += 1
    assert store.corrupt == 0
    return seen


def test_two_concurrent_writers(tmp_path):
    procs = [_writer(tmp_path, 12, 3) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    assert _check_all(tmp_path, 12) == 12
    assert not list(tmp_path.glob("*/.*.tmp"))  # every temp file was renamed into place


def test_a_writer_killed_mid_write_leaves_no_corrupt_entry(tmp_path):
    p = _writer(tmp_path, 40, 1000)  # 40 rows of 2000 x 64 floats (512 KB) written over and over
    assert p.stdout.readline().strip() == "0"  # one full round is on disk
    time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    assert _check_all(tmp_path, 40) == 40

    # An entry cut short outside this code (or any bytes that are not a whole entry) is a miss, counted.
    entry = next(tmp_path.glob("*/*.f"))
    entry.write_bytes(entry.read_bytes()[:-10])
    store = fs.SharedStore(tmp_path)
    assert store.get(bytes.fromhex(entry.stem)) is None and store.corrupt == 1
    assert fs.decode(b"garbage") is None
