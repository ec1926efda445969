"""Cached lower-layer features: they equal the lower stack, are computed once per distinct row, and top-k training
from the cache follows the same loss curve and reaches the same params as top-k training without it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from monitor_jax.model import registry, transformer
from monitor_jax.train import data as data_lib
from monitor_jax.core import config as config_lib
from monitor_jax.train import metric_log
from monitor_jax.core import sharding
from monitor_jax.train import feature_store, features, loop
from monitor_jax.train import state as state_lib


@pytest.fixture(scope="module", autouse=True)
def _compile_cache(xla_cache):
    """This module's tests share the persistent compile cache (tests/conftest.py)."""


def _config(cache: bool, steps: int = 4):
    c = config_lib.load("tiny", "top_k")
    c.train.cache_features = cache
    c.train.feature_store = "memory"  # (the shared store: tests/train/test_feature_store.py)
    c.optim.total_steps = steps
    c.checkpoint.every = steps
    c.eval.tasks = ()
    c.log_every = 1
    c.data.stages[0].components[0].limit_per_task = 16  # 4 steps x 8 rows = 2 epochs: rows repeat
    return c


@pytest.mark.parametrize("store", ["memory", "disk", "shared"])
def test_features_equal_the_lower_stack_and_are_computed_once(tmp_path, model, store):
    config = _config(True)
    config.train.feature_store = store
    config.train.feature_store_dir = str(tmp_path / "store")
    mesh = sharding.make_mesh(config.mesh.shape)
    state, shardings = state_lib.create_train_state(config, model, mesh)
    cache = features.FeatureCache(config, model.cfg, mesh, shardings.frozen, tmp_path)
    batch = next(data_lib.train_batches(model.tokenizer, config))
    batch["segment_ids"][0, -1] = 0  # one padding row: zeros, never computed
    batch["tokens"][0, -1] = model.tokenizer.pad_id
    out = cache.add_features(batch, state.frozen)
    emb = out["embeddings"]
    assert emb.shape == (*batch["tokens"].shape, model.cfg.d_model)
    n_real = int((batch["segment_ids"].sum(-1) > 0).sum())
    assert cache.stats()["features/misses"] <= n_real and cache.stats()["features/hits"] + \
        cache.stats()["features/misses"] == n_real

    # Equal to the frozen lower layer run directly, at every position a step reads (a classification row's up to
    # its answer slot); past it (the label token, padding) zeros.
    lower, _ = transformer.split_params(jax.tree_util.tree_map(np.asarray, model.params), model.cfg.n_layers - 1)
    tok, pos, seg = (jnp.asarray(batch[k][0]) for k in ("tokens", "positions", "segment_ids"))
    ref = np.asarray(features.lower_forward(model.cfg.replace(n_layers=1, remat="none"), lower, tok, pos, seg))
    needed = feature_store.needed_lengths({k: v[0] for k, v in batch.items() if k != "id"})
    real = np.arange(seg.shape[-1])[None] < needed[:, None]
    assert real.sum() < (np.asarray(seg) > 0).sum()  # the label tokens are left out
    np.testing.assert_allclose(emb[0][real], ref[real], rtol=1e-5, atol=1e-5)
    assert not emb[0][~real].any()

    # ... and the upper layer on them gives the full model's hidden states.
    _, upper = transformer.split_params(jax.tree_util.tree_map(np.asarray, model.params), model.cfg.n_layers - 1)
    full, _ = transformer.Transformer(model.cfg).apply({"params": model.params}, tok, pos, seg)
    top, _ = transformer.Transformer(model.cfg.replace(n_layers=1)).apply(
        {"params": upper}, None, pos, seg, embeddings=jnp.asarray(emb[0]))
    np.testing.assert_allclose(np.asarray(top)[real], np.asarray(full)[real], rtol=1e-4, atol=1e-5)

    misses = cache.stats()["features/misses"]
    again = cache.add_features(batch, state.frozen)  # every row is cached now: nothing is recomputed
    assert cache.stats()["features/misses"] == misses
    np.testing.assert_array_equal(again["embeddings"], emb)
    cache.close()


def test_cache_needs_a_frozen_lower_stack(model):
    config = _config(True)
    config.train.top_k = model.cfg.n_layers
    with pytest.raises(ValueError, match="top_k"):
        features.FeatureCache(config, model.cfg, sharding.make_mesh(config.mesh.shape), None)


def test_cached_topk_training_equals_uncached(tmp_path, model):
    cached = loop.train_and_evaluate(_config(True), tmp_path / "cached", model=model, progress=False)
    plain = loop.train_and_evaluate(_config(False), tmp_path / "plain", model=model, progress=False)
    a, b = metric_log.read_metrics(tmp_path / "cached"), metric_log.read_metrics(tmp_path / "plain")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3, 4]
    for key in ("train/loss", "train/grad_norm", "train/accuracy"):
        np.testing.assert_allclose([r[key] for r in a], [r[key] for r in b], rtol=1e-5, atol=1e-6, err_msg=key)
    assert a[-1]["cache/features/misses"] > 0 and a[-1]["cache/features/hits"] > 0  # reused across steps
    pa, pb = (jax.tree_util.tree_map(np.asarray, registry.load(f"hf:{r['export']}").params) for r in (cached, plain))
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), pa, pb)
    init = jax.tree_util.tree_map(np.asarray, model.params)
    assert not np.allclose(pa["layers"]["mlp"]["up"]["kernel"][1], init["layers"]["mlp"]["up"]["kernel"][1])
    np.testing.assert_array_equal(pa["layers"]["mlp"]["up"]["kernel"][0], init["layers"]["mlp"]["up"]["kernel"][0])


def _one_device(model):
    """A one-device mesh, the frozen lower stack on it, and its shardings."""
    mesh = Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1, 1), ("data", "fsdp", "tensor"))
    rep = NamedSharding(mesh, P())
    lower, _ = transformer.split_params(model.params, model.cfg.n_layers - 1)
    frozen = jax.device_put({k: v for k, v in lower.items() if k != "final_norm"}, rep)
    return mesh, frozen, jax.tree_util.tree_map(lambda _: rep, frozen)


def test_a_few_missing_rows_are_computed_in_a_smaller_chunk(model):
    config = _config(True)
    mesh, frozen, shardings = _one_device(model)
    batch = next(data_lib.train_batches(model.tokenizer, config))
    want = features.FeatureCache(config, model.cfg, mesh, shardings).add_features(batch, frozen)["embeddings"]
    store = features.MemoryStore()
    cache = features.FeatureCache(config, model.cfg, mesh, shardings, shared_store=store)
    calls = []
    compute = cache._compute
    cache._compute = lambda f, t, p, s, chunk, n: calls.append(len(t)) or compute(f, t, p, s, chunk, n)  # noqa: E731
    rows = batch["tokens"].shape[-2]
    lead = batch["tokens"].shape[:2]  # [K, B]: every per-row array loses its first row
    first = {k: v[:, 1:] if np.shape(v)[:2] == lead else v for k, v in batch.items()}
    cache.add_features(first, frozen)  # all rows but the first: computed in chunks of rows - 1
    got = cache.add_features(batch, frozen)["embeddings"]  # only the first row is missing
    assert calls[-1] == 1 and cache._chunk(1, rows) == 1 and cache._chunk(3, 8) == 4 and cache._chunk(8, 8) == 8
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_rows_that_differ_only_in_their_label_token_share_features(tmp_path, model):
    """A shuffled-label control's rows are its true-label rows up to the answer slot: the step never reads the
    features of the label token, so they are not keyed by it and nothing is recomputed."""
    config = _config(True)
    mesh = sharding.make_mesh(config.mesh.shape)
    state, shardings = state_lib.create_train_state(config, model, mesh)
    cache = features.FeatureCache(config, model.cfg, mesh, shardings.frozen, tmp_path)
    batch = next(data_lib.train_batches(model.tokenizer, config))
    out = cache.add_features(batch, state.frozen)["embeddings"]
    misses = cache.stats()["features/misses"]
    flipped = {k: np.array(v, copy=True) for k, v in batch.items()}
    tok, ans, ids = flipped["tokens"], flipped["answer_index"], flipped["label_ids"]
    cls = flipped["is_classification"].astype(bool)
    assert cls.any()
    for idx in zip(*np.nonzero(cls)):
        yes, no = ids[idx]
        tok[idx][ans[idx]] = no if tok[idx][ans[idx]] == yes else yes
    assert not np.array_equal(tok, batch["tokens"])
    again = cache.add_features(flipped, state.frozen)["embeddings"]
    assert cache.stats()["features/misses"] == misses
    np.testing.assert_array_equal(again, out)


def test_prefilled_rows_are_hits_and_equal_the_step_path(model):
    """`prefill` stores a run's rows up front (length-sorted, each row padded to a multiple of PREFILL_STEP): the
    step then computes nothing, and its features equal those the step path computes itself."""
    from monitor_jax.data import pipeline

    config = _config(True)
    mesh, frozen, shardings = _one_device(model)
    batch = next(data_lib.train_batches(model.tokenizer, config))
    want = features.FeatureCache(config, model.cfg, mesh, shardings).add_features(batch, frozen)["embeddings"]
    examples = [ex for st in data_lib.build_stages(config) for comp in st.components for ex in comp.examples]
    rendered, _ = pipeline.render_examples(model.tokenizer, examples, int(config.data.max_len))
    cache = features.FeatureCache(config, model.cfg, mesh, shardings, shared_store=features.MemoryStore())
    n = cache.prefill(rendered, frozen, step=16)
    assert n == len({feature_store.row_key(r.tokens, r.answer_index) for r in rendered}) and n > 8
    assert cache.prefill(rendered, frozen, step=16) == 0  # all stored: nothing again
    misses = cache.stats()["features/misses"]
    got = cache.add_features(batch, frozen)["embeddings"]
    assert cache.stats()["features/misses"] == misses  # every row of the step was prefilled
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    alone = features.FeatureCache(config, model.cfg, mesh, shardings, shared_store=features.MemoryStore())
    alone.prefill(rendered[:1], frozen, step=16)  # the same row in a chunk of its own: the same stored features
    key = feature_store.row_key(rendered[0].tokens, rendered[0].answer_index)
    np.testing.assert_allclose(alone.store.get(key), cache.store.get(key), rtol=1e-6, atol=1e-6)
