"""Mesh construction, logical->mesh rules with the non-dividing fallback, batch sharding, sharded == unsharded."""

import logging

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from monitor_jax.model import transformer as T
from monitor_jax.model.registry import LoadedModel
from monitor_jax.core import sharding as shd
from monitor_jax.train import state as st
from monitor_jax.train import step as sp

# Every head / width count divides 2 and d_model divides 8, so fsdp=8 and tensor=2 really shard.
TINY = T.ModelConfig(vocab_size=64, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=4, d_ff=32,
                     remat="none")
SMOLLM2 = T.ModelConfig(vocab_size=49152, d_model=576, n_layers=30, n_heads=9, n_kv_heads=3, head_dim=64,
                        d_ff=1536)
MESH_TOL = 1e-5  # sharded vs one device, 3 AdamW steps at lr 1e-2: measured <= 5e-7 (losses), <= 2e-6 (params)
# XLA:CPU compiles these tiny programs ~5x faster at LLVM -O0 without the MLIR fusion emitters (codegen choices,
# same arithmetic); compile time is nearly all of these tests' time.
FAST = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False} \
    if jax.default_backend() == "cpu" else None


@pytest.fixture(scope="module")
def make_config(tiny_config):
    """make_config(): full mode, 1 warmup step then cosine, weight decay 0.01 (tests/conftest.py)."""
    return lambda: tiny_config(optim={"warmup_steps": 1, "decay": "cosine", "weight_decay": 0.01})


def make_batch(rng: np.random.Generator, b: int, t: int, n_if: int, vocab: int = 64) -> dict:
    """Right-padded rows of random lengths: the first n_if are IF rows, the rest classification rows."""
    out = {"tokens": np.zeros((b, t), np.int32), "positions": np.zeros((b, t), np.int32),
           "segment_ids": np.zeros((b, t), np.int32), "answer_index": np.zeros(b, np.int32),
           "label": np.full(b, -1, np.int32), "label_ids": np.full((b, 2), -1, np.int32),
           "answer_id": np.full(b, -1, np.int32), "loss_mask": np.zeros((b, t), np.float32),
           "weight": np.ones(b, np.float32), "is_classification": np.zeros(b, bool),
           "task_index": np.zeros(b, np.int32), "id": np.asarray([f"r{i}" for i in range(b)])}
    for i in range(b):
        n = int(rng.integers(t // 2, t + 1))
        out["tokens"][i, :n] = rng.integers(0, vocab, n)
        out["positions"][i, :n] = np.arange(n)
        out["segment_ids"][i, :n] = 1
        if i < n_if:
            out["loss_mask"][i, n // 2:n] = 1.0
        else:
            label = int(rng.integers(0, 2))
            out["label"][i], out["label_ids"][i] = label, (7, 9)
            out["answer_id"][i] = 7 if label == 1 else 9
            out["tokens"][i, n - 1] = out["answer_id"][i]
            out["answer_index"][i] = n - 1
            out["is_classification"][i] = True
    return out


def mesh_of(data: int, fsdp: int, tensor: int):
    n = data * fsdp * tensor
    return shd.make_mesh({"data": data, "fsdp": fsdp, "tensor": tensor}, jax.devices()[:n])


def test_make_mesh_fills_and_validates():
    assert len(jax.devices()) == 8
    mesh = shd.make_mesh({"data": -1, "fsdp": 2, "tensor": 2})
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert dict(shd.make_mesh({"data": 1, "fsdp": -1, "tensor": 1}).shape) == {"data": 1, "fsdp": 8, "tensor": 1}
    assert mesh_of(1, 1, 1).devices.size == 1
    with pytest.raises(ValueError, match="8 devices"):
        shd.make_mesh({"data": 3, "fsdp": 1, "tensor": 1})
    with pytest.raises(ValueError, match="cannot fill"):
        shd.make_mesh({"data": -1, "fsdp": 3, "tensor": 1})
    with pytest.raises(ValueError, match="unknown mesh axes"):
        shd.make_mesh({"model": 8})


def test_param_shardings_follow_rules():
    sh = shd.param_shardings(T.abstract_params(TINY), mesh_of(2, 2, 2))
    assert sh["layers"]["mlp"]["up"]["kernel"].spec == P(None, "fsdp", "tensor")
    assert sh["layers"]["mlp"]["down"]["kernel"].spec == P(None, "tensor", "fsdp")
    assert sh["layers"]["attn"]["q"]["kernel"].spec == P(None, "fsdp", "tensor", None)
    assert sh["layers"]["attn"]["k"]["kernel"].spec == P(None, "fsdp", "tensor", None)
    assert sh["layers"]["attn"]["o"]["kernel"].spec == P(None, "tensor", None, "fsdp")
    assert sh["embed"].spec == P("tensor", "fsdp")
    assert sh["final_norm"]["scale"].spec == P("fsdp")
    custom = shd.param_shardings(T.abstract_params(TINY), mesh_of(2, 2, 2), rules=[["embed", None], ["mlp", "fsdp"]])
    assert custom["layers"]["mlp"]["up"]["kernel"].spec == P(None, None, "fsdp")
    with pytest.raises(ValueError, match="does not have"):
        shd.param_shardings(T.abstract_params(TINY), mesh_of(2, 2, 2), rules=[["mlp", "model"]])


def test_smollm2_heads_fall_back_to_replication_with_one_note(caplog):
    mesh = mesh_of(1, 4, 2)
    boxed = T.abstract_params(SMOLLM2)
    with caplog.at_level(logging.WARNING, logger=shd.__name__):
        sh = shd.param_shardings(boxed, mesh)
    notes = [r.getMessage() for r in caplog.records if r.name == shd.__name__]
    assert len(notes) == 1, notes
    for part in ("layers.attn.q.kernel: heads(9)", "layers.attn.o.kernel: heads(9)",
                 "layers.attn.k.kernel: kv_heads(3)", "layers.attn.v.kernel: kv_heads(3)"):
        assert part in notes[0]
    assert "mlp" not in notes[0] and "embed:" not in notes[0]
    assert sh["layers"]["attn"]["q"]["kernel"].spec == P(None, "fsdp", None, None)
    assert sh["layers"]["attn"]["o"]["kernel"].spec == P(None, None, None, "fsdp")
    assert sh["layers"]["mlp"]["up"]["kernel"].spec == P(None, "fsdp", "tensor")  # 1536 divides: still sharded
    with pytest.raises(ValueError, match=r"layers\.attn\.q\.kernel: heads\(9\)"):
        shd.param_shardings(boxed, mesh, strict=True)


def test_shard_batch_keeps_numeric_keys_and_splits_rows():
    mesh = mesh_of(2, 2, 2)
    batch = make_batch(np.random.default_rng(0), 8, 10, n_if=2)
    out = shd.shard_batch(batch, mesh)
    assert set(out) == set(batch) - {"id"}
    assert out["tokens"].sharding.spec == P(("data", "fsdp"))
    assert {s.data.shape for s in out["tokens"].addressable_shards} == {(2, 10)}
    np.testing.assert_array_equal(np.asarray(out["tokens"]), batch["tokens"])
    assert out["is_classification"].dtype == bool
    micro = shd.shard_batch(sp.stack_microbatches([batch, batch]), mesh)
    assert micro["tokens"].shape == (2, 8, 10) and micro["tokens"].sharding.spec == P(None, ("data", "fsdp"))
    with pytest.raises(ValueError, match="divisible"):
        shd.shard_batch({k: v[:6] for k, v in batch.items()}, mesh)


def _batches(n_steps: int = 3) -> list[dict]:
    rng = np.random.default_rng(1)
    return [make_batch(rng, 8, 12, n_if=3) for _ in range(n_steps)]


def _pad_rows(batch: dict, rows: slice, b: int) -> dict:
    """Rows `rows` of `batch` followed by weight-0 padding rows (as `pipeline.collate` pads) up to b rows."""
    out = {}
    for k, v in batch.items():
        part = v[rows]
        pad = np.zeros((b - len(part),) + v.shape[1:], v.dtype)
        if k in ("label", "answer_id", "label_ids", "task_index"):
            pad[...] = -1
        out[k] = np.concatenate([part, pad])
    return out


def _train(config, mesh, grad_accum: int = 1):
    config.optim.grad_accum = grad_accum
    params = jax.tree_util.tree_map(np.asarray, T.init_params(TINY, 3))
    model = LoadedModel("tiny", TINY, params, None)
    state, shardings = st.create_train_state(config, model, mesh, compiler_options=FAST)
    step = sp.make_train_step(config, TINY, mesh, shardings, compiler_options=FAST)
    losses = []
    for batch in _batches():
        if grad_accum > 1:  # the same 8 examples as 4 + 4 rows, each micro-batch padded to 8 rows
            batch = sp.stack_microbatches([_pad_rows(batch, slice(0, 4), 8), _pad_rows(batch, slice(4, 8), 8)])
        state, metrics = step(state, shd.shard_batch(batch, mesh))
        assert float(metrics["n_examples"]) == 8.0
        losses.append(float(metrics["loss"]))
    return state, np.asarray(losses)


def _max_diff(a, b) -> float:
    diffs = jax.tree_util.tree_map(lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))), a, b)
    return max(jax.tree_util.tree_leaves(diffs))


@pytest.fixture(scope="module")
def one_device(make_config):
    state, losses = _train(make_config(), mesh_of(1, 1, 1))
    return jax.tree_util.tree_map(np.asarray, state.trainable), losses


@pytest.mark.parametrize("dims", [(8, 1, 1), (1, 8, 1), (2, 2, 2)], ids=["data8", "fsdp8", "2x2x2"])
def test_sharded_training_matches_one_device(one_device, dims, make_config):
    ref_params, ref_losses = one_device
    state, losses = _train(make_config(), mesh_of(*dims))
    np.testing.assert_allclose(losses, ref_losses, rtol=0, atol=MESH_TOL)
    assert _max_diff(state.trainable, ref_params) < MESH_TOL
    print(f"{dims}: max |loss diff| {np.max(np.abs(losses - ref_losses)):.2e}, "
          f"max |param diff| {_max_diff(state.trainable, ref_params):.2e}")
    up = state.trainable["layers"]["mlp"]["up"]["kernel"]
    assert up.sharding.spec == P(None, "fsdp", "tensor")  # size-1 mesh axes shard nothing
    _, fsdp, tensor = dims
    assert {s.data.shape for s in up.addressable_shards} == {(2, 16 // fsdp, 32 // tensor)}
    if dims == (2, 2, 2):
        assert state.trainable["layers"]["attn"]["q"]["kernel"].sharding.spec == P(None, "fsdp", "tensor", None)
        mu = state.opt_state[1][0].mu["layers"]["mlp"]["up"]["kernel"]
        assert mu.sharding.spec == P(None, "fsdp", "tensor")


def test_grad_accumulation_step_matches_one_batch(one_device, make_config):
    """2 padded micro-batches per step on a 2x2x2 mesh == one 8-row batch per step on one device."""
    ref_params, ref_losses = one_device
    state, losses = _train(make_config(), mesh_of(2, 2, 2), grad_accum=2)
    np.testing.assert_allclose(losses, ref_losses, rtol=0, atol=MESH_TOL)
    assert _max_diff(state.trainable, ref_params) < MESH_TOL
    print(f"grad_accum=2: max |loss diff| {np.max(np.abs(losses - ref_losses)):.2e}, "
          f"max |param diff| {_max_diff(state.trainable, ref_params):.2e}")


def test_non_dividing_heads_train_with_the_fallback(caplog, make_config):
    """3 heads / 1 KV head on tensor=2: q/k/v/o replicated over tensor (one note), and the step runs."""
    cfg = TINY.replace(n_heads=3, n_kv_heads=1)
    mesh = mesh_of(2, 2, 2)
    params = jax.tree_util.tree_map(np.asarray, T.init_params(cfg, 3))
    with caplog.at_level(logging.WARNING, logger=shd.__name__):
        state, shardings = st.create_train_state(make_config(), LoadedModel("tiny", cfg, params, None), mesh,
                                                 compiler_options=FAST)
    assert len([r for r in caplog.records if r.name == shd.__name__]) == 1
    assert state.trainable["layers"]["attn"]["q"]["kernel"].sharding.spec == P(None, "fsdp", None, None)
    assert state.trainable["layers"]["mlp"]["up"]["kernel"].sharding.spec == P(None, "fsdp", "tensor")
    step = sp.make_train_step(make_config(), cfg, mesh, shardings, compiler_options=FAST)
    state, metrics = step(state, shd.shard_batch(_batches(1)[0], mesh))
    assert float(metrics["finite"]) == 1.0 and int(state.step) == 1
    strict = make_config()
    strict.mesh.strict = True
    with pytest.raises(ValueError, match=r"config.mesh.strict=True.*layers\.attn\.q\.kernel: heads\(3\)"):
        st.create_train_state(strict, LoadedModel("tiny", cfg, params, None), mesh)
