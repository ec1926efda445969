"""LoRA as a param-tree transform: zero-B init is a no-op, merge == W + s*A@B, and LoRA training touches only LoRA."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from monitor_jax.model import lora
from monitor_jax.train.mode import TrainMode
from monitor_jax.model import transformer as T
from monitor_jax.model.registry import LoadedModel
from monitor_jax.core import sharding as shd
from monitor_jax.train import state as st
from monitor_jax.train import step as sp

TINY = T.ModelConfig(vocab_size=64, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=4, d_ff=32,
                     remat="none")
FAST = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False} \
    if jax.default_backend() == "cpu" else None  # ~5x faster XLA:CPU compiles, same arithmetic
ALL = ("q", "k", "v", "o", "gate", "up", "down")


@pytest.fixture(scope="module")
def params():
    return jax.tree_util.tree_map(np.asarray, T.init_params(TINY, 5))


def test_zero_b_init_leaves_the_model_unchanged(params):
    tokens = np.random.default_rng(0).integers(0, 64, (2, 9))

    @functools.partial(jax.jit, compiler_options=FAST)
    def run(p):
        adapters = lora.init_lora(p, ALL, 4, jax.random.key(0))
        forward = lambda q: T.logits(q, T.Transformer(TINY).apply({"params": q}, tokens)[0])  # noqa: E731
        return adapters, forward(p), forward(lora.merge(p, adapters, alpha=16.0, rank=4))

    adapters, plain, merged = run(params)
    assert lora.lora_targets(adapters) == ALL
    for target in ALL:
        path, _ = lora.TARGETS[target]
        ab = adapters[path[0]][path[1]][path[2]]
        assert np.all(np.asarray(ab["b"]) == 0) and np.std(np.asarray(ab["a"])) > 0
    np.testing.assert_array_equal(np.asarray(merged), np.asarray(plain))


def test_merge_is_w_plus_scaled_a_times_b(params):
    adapters = jax.eval_shape(lambda: lora.init_lora(params, ("q", "o", "down"), 3, jax.random.key(1)))
    rng = np.random.default_rng(1)
    adapters = jax.tree_util.tree_map(lambda x: rng.normal(size=x.shape).astype(np.float32), adapters)
    merged = jax.jit(lambda p, ad: lora.merge(p, ad, alpha=6.0, rank=3), compiler_options=FAST)(params, adapters)
    scale = 6.0 / 3
    for target, n_in in (("q", 1), ("o", 2), ("down", 1)):
        path, _ = lora.TARGETS[target]
        w = params[path[0]][path[1]][path[2]]["kernel"]
        ab = adapters[path[0]][path[1]][path[2]]
        for layer in range(TINY.n_layers):  # per layer as an (in x out) matrix
            a = ab["a"][layer].reshape(-1, 3)
            b = ab["b"][layer].reshape(3, -1)
            want = w[layer].reshape(a.shape[0], b.shape[1]) + scale * a @ b
            got = np.asarray(merged[path[0]][path[1]][path[2]]["kernel"][layer]).reshape(want.shape)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    untouched = lora.merge(params, {}, alpha=6.0, rank=3)
    assert untouched["layers"]["attn"]["k"]["kernel"] is params["layers"]["attn"]["k"]["kernel"]
    np.testing.assert_array_equal(np.asarray(merged["layers"]["attn"]["k"]["kernel"]),
                                  params["layers"]["attn"]["k"]["kernel"])


def test_shapes_names_and_count():
    boxed = T.abstract_params(TINY)
    adapters = jax.eval_shape(lambda: lora.init_lora(boxed, ALL, 4, jax.random.key(0)))
    q, o = adapters["layers"]["attn"]["q"], adapters["layers"]["attn"]["o"]
    assert isinstance(q["a"], nn.LogicallyPartitioned)
    assert q["a"].value.shape == (2, 16, 4) and q["a"].names == ("layers", "embed", "lora_rank")
    assert q["b"].value.shape == (2, 4, 4, 4) and q["b"].names == ("layers", "lora_rank", "heads", "head_dim")
    assert o["a"].value.shape == (2, 4, 4, 4) and o["a"].names == ("layers", "heads", "head_dim", "lora_rank")
    assert o["b"].names == ("layers", "lora_rank", "embed")
    d, hq, hkv, f, r, n = 16, 16, 8, 32, 4, 2  # per layer: r * (in + out)
    want = n * r * ((d + hq) + 2 * (d + hkv) + (hq + d) + 2 * (d + f) + (f + d))
    assert lora.lora_param_count(nn.meta.unbox(adapters)) == want
    with pytest.raises(ValueError, match="targets"):
        lora.init_lora(boxed, ("qkv",), 4, jax.random.key(0))


@pytest.fixture
def config(tiny_config):
    """LoRA rank 2 (alpha 4) on q, v and down; two-way loss (tests/conftest.py has the rest)."""
    return tiny_config(train={"mode": "lora", "lora": {"targets": ("q", "v", "down")}}, loss={"kind": "two_way"})


def batch_of(rng: np.random.Generator, b: int = 4, t: int = 10) -> dict:
    tokens = rng.integers(0, 64, (b, t)).astype(np.int32)
    label = rng.integers(0, 2, b).astype(np.int32)
    tokens[:, -1] = np.where(label == 1, 3, 4)
    return {"tokens": tokens, "positions": np.tile(np.arange(t, dtype=np.int32), (b, 1)),
            "segment_ids": np.ones((b, t), np.int32), "answer_index": np.full(b, t - 1, np.int32), "label": label,
            "label_ids": np.tile(np.asarray([[3, 4]], np.int32), (b, 1)), "answer_id": tokens[:, -1].copy(),
            "loss_mask": np.zeros((b, t), np.float32), "weight": np.ones(b, np.float32),
            "is_classification": np.ones(b, bool)}


def test_lora_training_updates_only_lora_params(params, config):
    mesh = shd.make_mesh({"data": 2, "fsdp": 1, "tensor": 2}, jax.devices()[:4])
    model = LoadedModel("tiny", TINY, params, None)
    state, shardings = st.create_train_state(config, model, mesh, compiler_options=FAST)
    assert lora.lora_targets(state.trainable) == ("q", "v", "down")
    assert state.trainable["layers"]["attn"]["q"]["b"].sharding.spec == shd.P(None, None, "tensor", None)
    adam = state.opt_state[1][0]  # only the LoRA tree has optimizer moments; the frozen base has none
    assert jax.tree_util.tree_structure(adam.mu) == jax.tree_util.tree_structure(state.trainable)
    n_opt = sum(x.size for x in jax.tree_util.tree_leaves(state.opt_state))
    assert n_opt < 2 * lora.lora_param_count(state.trainable) + 16
    step = sp.make_train_step(config, TINY, mesh, shardings, compiler_options=FAST)
    state, metrics = step(state, shd.shard_batch(batch_of(np.random.default_rng(0)), mesh))
    assert float(metrics["finite"]) == 1.0 and float(metrics["loss"]) > 0
    for x, y in zip(jax.tree_util.tree_leaves(state.frozen), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(np.asarray(x), y)  # the base is bit-for-bit unchanged
    for name, ab in (("q", state.trainable["layers"]["attn"]["q"]), ("down", state.trainable["layers"]["mlp"]["down"])):
        assert np.max(np.abs(np.asarray(ab["b"]))) > 0, name  # B moved off zero
    mode = TrainMode.from_config(config)
    full, want = jax.jit(lambda s, p: (st.full_params(s, mode, TINY), lora.merge(p, s.trainable, 4.0, 2)),
                         compiler_options=FAST)(state, params)
    for x, y in zip(jax.tree_util.tree_leaves(full), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)
    assert not np.allclose(np.asarray(full["layers"]["attn"]["q"]["kernel"]), params["layers"]["attn"]["q"]["kernel"])
    k_kernel = params["layers"]["attn"]["k"]["kernel"]
    np.testing.assert_array_equal(np.asarray(full["layers"]["attn"]["k"]["kernel"]), k_kernel)


def test_frozen_base_in_bfloat16(params, config):
    config.train.frozen_dtype = "bfloat16"
    mesh = shd.make_mesh({"data": 1}, jax.devices()[:1])
    state, _ = st.create_train_state(config, LoadedModel("tiny", TINY, params, None), mesh, compiler_options=FAST)
    assert {x.dtype for x in jax.tree_util.tree_leaves(state.frozen)} == {jnp.dtype(jnp.bfloat16)}
    assert {x.dtype for x in jax.tree_util.tree_leaves(state.trainable)} == {jnp.dtype(jnp.float32)}
    full = jax.eval_shape(lambda s: st.full_params(s, TrainMode.from_config(config), TINY), state)
    assert {x.dtype for x in jax.tree_util.tree_leaves(full)} == {jnp.dtype(jnp.float32)}
