"""Schedule and optimizer, sharded state creation, trainable/frozen splits (top-k layers), non-finite steps."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from monitor_jax.model import transformer as T
from monitor_jax.train.mode import TrainMode
from monitor_jax.model.registry import LoadedModel
from monitor_jax.core import sharding as shd
from monitor_jax.train import state as st
from monitor_jax.train import step as sp

TINY = T.ModelConfig(vocab_size=64, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=4, d_ff=32,
                     remat="none", tie_embeddings=False)
SMOLLM2 = T.ModelConfig(vocab_size=49152, d_model=576, n_layers=30, n_heads=9, n_kv_heads=3, head_dim=64,
                        d_ff=1536)
FAST = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False} \
    if jax.default_backend() == "cpu" else None  # ~5x faster XLA:CPU compiles, same arithmetic


@pytest.fixture(scope="module")
def make_config(tiny_config):
    """make_config(mode="full", top_k=1): LoRA on q and up, 2 warmup steps then cosine, token-mean loss."""
    return lambda mode="full", top_k=1: tiny_config(
        train={"mode": mode, "top_k": top_k, "lora": {"targets": ("q", "up")}},
        optim={"warmup_steps": 2, "decay": "cosine"}, loss={"reduction": "token_mean"})


def batch_of(rng: np.random.Generator, b: int = 4, t: int = 10) -> dict:
    """Two classification rows, then IF rows."""
    tokens = rng.integers(0, 64, (b, t)).astype(np.int32)
    cls = np.arange(b) < 2
    loss_mask = np.zeros((b, t), np.float32)
    loss_mask[~cls, t // 2:] = 1.0
    return {"tokens": tokens, "positions": np.tile(np.arange(t, dtype=np.int32), (b, 1)),
            "segment_ids": np.ones((b, t), np.int32), "answer_index": np.where(cls, t - 1, 0).astype(np.int32),
            "label": np.where(cls, 1, -1).astype(np.int32), "answer_id": np.where(cls, tokens[:, -1], -1),
            "label_ids": np.where(cls[:, None], np.stack([tokens[:, -1], (tokens[:, -1] + 1) % 64], 1), -1),
            "loss_mask": loss_mask, "weight": np.ones(b, np.float32), "is_classification": cls}


@pytest.fixture(scope="module")
def params():
    return jax.tree_util.tree_map(np.asarray, T.init_params(TINY, 11))


def one_device():
    return shd.make_mesh({"data": 1}, jax.devices()[:1])


def test_schedule_warmup_then_decay(make_config):
    optim = make_config().optim
    optim.update(lr=1.0, warmup_steps=4, total_steps=14)
    values = {}
    for decay in ("cosine", "linear", "constant"):
        optim.decay = decay
        values[decay] = [float(v) for v in jax.jit(jax.vmap(st.make_schedule(optim)))(jnp.arange(15))]
    np.testing.assert_allclose(values["cosine"][:5], [0.25, 0.5, 0.75, 1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(values["cosine"][9], 0.5, rtol=1e-6)  # halfway through the decay
    np.testing.assert_allclose(values["linear"][9], 0.5, rtol=1e-6)
    assert values["cosine"][14] == pytest.approx(0.0, abs=1e-7) and values["linear"][14] == pytest.approx(0.0, abs=1e-7)
    assert values["constant"][4:] == [1.0] * 11
    optim.decay = "exponential"
    with pytest.raises(ValueError, match="config.optim.decay"):
        st.make_schedule(optim)


def test_optimizer_does_not_decay_norms_or_biases(make_config):
    optim = make_config().optim
    optim.update(lr=0.5, warmup_steps=0, decay="constant", weight_decay=0.1, clip_norm=1.0)
    tx = st.make_optimizer(optim)
    p = {"mlp": {"kernel": jnp.full((2, 3), 2.0)}, "mlp_norm": {"scale": jnp.ones(3)}, "q": {"bias": jnp.ones(3)}}

    @functools.partial(jax.jit, compiler_options=FAST)
    def update(grads):
        return tx.update(grads, tx.init(p), p)[0]

    zero = update(jax.tree_util.tree_map(jnp.zeros_like, p))  # only weight decay acts
    np.testing.assert_allclose(np.asarray(zero["mlp"]["kernel"]), -0.5 * 0.1 * 2.0, rtol=1e-6)
    assert np.all(np.asarray(zero["mlp_norm"]["scale"]) == 0) and np.all(np.asarray(zero["q"]["bias"]) == 0)


def test_state_is_created_sharded_with_optimizer_state_following_params(params, make_config):
    config = make_config()
    mesh = shd.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    state, shardings = st.create_train_state(config, LoadedModel("tiny", TINY, params, None), mesh,
                                             compiler_options=FAST)
    assert state.step.dtype == jnp.int32 and int(state.step) == 0 and state.frozen is None
    up = state.trainable["layers"]["mlp"]["up"]["kernel"]
    assert up.sharding.spec == P(None, "fsdp", "tensor") == shardings.trainable["layers"]["mlp"]["up"]["kernel"].spec
    assert state.trainable["lm_head"].sharding.spec == P("tensor", "fsdp")
    np.testing.assert_array_equal(np.asarray(up), params["layers"]["mlp"]["up"]["kernel"])
    adam = state.opt_state[1][0]
    assert adam.mu["layers"]["mlp"]["up"]["kernel"].sharding.spec == P(None, "fsdp", "tensor")
    assert adam.nu["embed"].sharding.spec == P("tensor", "fsdp")
    assert adam.count.sharding.spec == P()
    leaves = zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(shardings))
    assert all(x.sharding == s for x, s in leaves)


def test_abstract_state_plans_bytes_per_device_without_weights(make_config):
    mesh = shd.make_mesh({"data": 1, "fsdp": 4, "tensor": 2})
    abstract, shardings, _ = st.abstract_state(make_config(), SMOLLM2, mesh)
    total = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(abstract))
    per_device = st.bytes_per_device(abstract, shardings)
    assert 3 * 134_515_008 * 4 <= total < 3 * 135_000_000 * 4  # fp32 params + Adam mu, nu
    assert total / 8 <= per_device < total / 4  # q/k/v/o replicated over tensor=2 (9 / 3 heads)
    lora_cfg = make_config("lora")
    lora_cfg.train.frozen_dtype = "bfloat16"
    abstract, shardings, _ = st.abstract_state(lora_cfg, SMOLLM2, mesh)
    assert st.bytes_per_device(abstract, shardings) < per_device / 4


def test_bad_modes_are_config_errors(params, make_config):
    with pytest.raises(ValueError, match="config.train.mode"):
        TrainMode.from_config(make_config("partial")).split(params, TINY)
    with pytest.raises(ValueError, match="config.train.top_k"):
        TrainMode.from_config(make_config("top_k_layers", top_k=3)).split(params, TINY)


@pytest.mark.parametrize("mode", ["full", "lora", "top_k_layers"])
def test_split_and_assemble_round_trip(params, mode, make_config):
    config = make_config(mode)
    split = jax.jit(lambda p: TrainMode.from_config(config).split(p, TINY), compiler_options=FAST)
    trainable, frozen = split(params)
    mode = TrainMode.from_config(config)
    back = jax.jit(lambda t, f: mode.assemble(t, f, TINY), compiler_options=FAST)(trainable, frozen)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(params)
    for x, y in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(np.asarray(x), y)


@pytest.mark.parametrize("top_k", [1, 2])
def test_top_k_forward_equals_full_forward(params, top_k, make_config):
    """The split stack (frozen lower layers, then the trainable top) computes the same loss as the full model,
    and cached lower-layer activations passed as batch["embeddings"] give it too."""
    batch = batch_of(np.random.default_rng(0))
    full_cfg, topk_cfg = make_config("full"), make_config("top_k_layers", top_k=top_k)

    @functools.partial(jax.jit, compiler_options=FAST)
    def losses(p, b):
        full = sp.loss_fn(p, None, b, sp.Spec.from_config(full_cfg), TINY)[0]
        trainable, frozen = TrainMode.from_config(topk_cfg).split(p, TINY)
        split = sp.loss_fn(trainable, frozen, b, sp.Spec.from_config(topk_cfg), TINY)[0]
        n_lower = TINY.n_layers - top_k
        lower, _ = T.split_params(p, n_lower)
        cached = T.Transformer(TINY.replace(n_layers=n_lower)).apply(
            {"params": lower}, b["tokens"], b["positions"], b["segment_ids"], final_norm=False)[0] if n_lower else \
            jnp.take(p["embed"], b["tokens"], axis=0)
        from_cache = sp.loss_fn(trainable, frozen, {**b, "embeddings": cached}, sp.Spec.from_config(topk_cfg), TINY)[0]
        return full, split, from_cache

    full, split, from_cache = losses(params, batch)
    np.testing.assert_allclose(float(split), float(full), rtol=1e-6)
    np.testing.assert_allclose(float(from_cache), float(full), rtol=1e-6)


def test_top_k_training_keeps_lower_layers_frozen(params, make_config):
    config = make_config("top_k_layers", top_k=1)
    mesh = one_device()
    state, shardings = st.create_train_state(config, LoadedModel("tiny", TINY, params, None), mesh,
                                             compiler_options=FAST)
    assert set(state.trainable) == {"layers", "final_norm"} and set(state.frozen) == {"embed", "lm_head", "layers"}
    assert state.trainable["layers"]["mlp"]["up"]["kernel"].shape == (1, 16, 32)
    adam = state.opt_state[1][0]  # optimizer moments for the top layer and final norm only
    assert jax.tree_util.tree_structure(adam.mu) == jax.tree_util.tree_structure(state.trainable)
    assert adam.mu["layers"]["mlp"]["up"]["kernel"].shape == (1, 16, 32)
    step = sp.make_train_step(config, TINY, mesh, shardings, compiler_options=FAST)
    rng = np.random.default_rng(1)
    for _ in range(3):
        state, metrics = step(state, batch_of(rng))  # numpy batches are fine on one process
    assert int(state.step) == 3 and float(metrics["finite"]) == 1.0
    for x, y in zip(jax.tree_util.tree_leaves(state.frozen["layers"]),
                    jax.tree_util.tree_leaves(T.split_params(params, 1)[0]["layers"])):
        np.testing.assert_array_equal(np.asarray(x), y)
    np.testing.assert_array_equal(np.asarray(state.frozen["embed"]), params["embed"])
    top = np.asarray(state.trainable["layers"]["mlp"]["up"]["kernel"])
    assert not np.allclose(top, params["layers"]["mlp"]["up"]["kernel"][1:])
    full = jax.jit(lambda s: st.full_params(s, TrainMode.from_config(config), TINY), compiler_options=FAST)(state)
    np.testing.assert_array_equal(np.asarray(full["layers"]["mlp"]["up"]["kernel"][0]),
                                  params["layers"]["mlp"]["up"]["kernel"][0])
    np.testing.assert_array_equal(np.asarray(full["layers"]["mlp"]["up"]["kernel"][1]), top[0])

    # A non-finite loss is reported and the update skipped: the state stays as it was.
    broken = state.replace(trainable=jax.tree_util.tree_map(lambda x: x * jnp.nan, state.trainable))
    before = jax.tree_util.tree_map(np.asarray, broken)
    after, metrics = step(broken, batch_of(rng))
    assert not np.isfinite(float(metrics["loss"])) and float(metrics["finite"]) == 0.0
    assert int(after.step) == 3
    for x, y in zip(jax.tree_util.tree_leaves(after), jax.tree_util.tree_leaves(before)):
        np.testing.assert_array_equal(np.asarray(x), y)
