"""Losses against naive computations, answer-slot invariances, reductions by hand, gradient accumulation."""

import copy
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from monitor_jax.model import transformer as T
from monitor_jax.train import step as sp

TINY = T.ModelConfig(vocab_size=64, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=4, d_ff=32,
                     remat="none")
FAST = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False} \
    if jax.default_backend() == "cpu" else None  # ~5x faster XLA:CPU compiles, same arithmetic
L = 12


@pytest.fixture(scope="module")
def make_config(tiny_config):
    """make_config(**loss): full mode, no weight decay or clipping, `loss` keys set (tests/conftest.py)."""
    return lambda **loss: tiny_config(train={"lora": {"targets": ("q",)}},
                                      optim={"weight_decay": 0.0, "clip_norm": 0.0}, loss=loss)


def make_batch(rng: np.random.Generator, kinds: str, t: int = L, vocab: int = 64) -> dict:
    """One row per character of `kinds`: "c" classification, "i" instruction-following, "p" padding (weight 0)."""
    b = len(kinds)
    out = {"tokens": np.zeros((b, t), np.int32), "positions": np.zeros((b, t), np.int32),
           "segment_ids": np.zeros((b, t), np.int32), "answer_index": np.zeros(b, np.int32),
           "label": np.full(b, -1, np.int32), "label_ids": np.full((b, 2), -1, np.int32),
           "answer_id": np.full(b, -1, np.int32), "loss_mask": np.zeros((b, t), np.float32),
           "weight": np.zeros(b, np.float32), "is_classification": np.zeros(b, bool),
           "task_index": np.full(b, -1, np.int32)}
    for i, kind in enumerate(kinds):
        if kind == "p":
            continue
        n = int(rng.integers(t // 2, t - 1))  # leave room after the row for "tokens after the answer"
        out["tokens"][i, :n] = rng.integers(0, vocab, n)
        out["positions"][i, :n] = np.arange(n)
        out["segment_ids"][i, :n] = 1
        out["weight"][i] = float(rng.uniform(0.5, 2.0))
        out["task_index"][i] = 0
        if kind == "i":
            out["loss_mask"][i, 2:n] = rng.integers(0, 2, n - 2)
            out["loss_mask"][i, n - 1] = 1.0
        else:
            label = int(rng.integers(0, 2))
            ids = rng.choice(vocab, 2, replace=False)
            out["label"][i], out["label_ids"][i] = label, ids
            out["answer_id"][i] = ids[0] if label == 1 else ids[1]
            out["answer_index"][i] = n - 1
            out["tokens"][i, n - 1] = out["answer_id"][i]
            out["is_classification"][i] = True
    return out


@pytest.fixture(scope="module")
def params():
    return T.init_params(TINY, 7)


@functools.partial(jax.jit, compiler_options=FAST)
def naive_logprobs(params, batch):
    """log-softmax over the whole vocabulary at every position: [B, T, V]."""
    hidden, _ = T.Transformer(TINY).apply({"params": params}, batch["tokens"], batch["positions"], batch["segment_ids"])
    return jax.nn.log_softmax(T.logits(params, hidden), axis=-1)


def naive_answer_nll(logp: np.ndarray, batch: dict, kind: str) -> np.ndarray:
    out = np.zeros(len(batch["weight"]))
    for i in np.flatnonzero(batch["is_classification"]):
        lp = logp[i, batch["answer_index"][i] - 1]
        if kind == "full_vocab":
            out[i] = -lp[batch["answer_id"][i]]
        else:  # two-class CE on the label rows, label 1 -> row 0
            two = lp[batch["label_ids"][i]]
            two = two - np.logaddexp(two[0], two[1])
            out[i] = -two[0 if batch["label"][i] == 1 else 1]
    return out


def naive_if(logp: np.ndarray, batch: dict) -> tuple[np.ndarray, np.ndarray]:
    b, t = batch["tokens"].shape
    sums, counts = np.zeros(b), np.zeros(b)
    for i in range(b):
        if batch["is_classification"][i]:
            continue
        for j in range(1, t):
            if batch["loss_mask"][i, j]:
                sums[i] -= logp[i, j - 1, batch["tokens"][i, j]]
                counts[i] += 1
    return sums, counts


@pytest.mark.parametrize("kind", ["full_vocab", "two_way"])
def test_answer_loss_equals_naive_cross_entropy(params, kind):
    batch = make_batch(np.random.default_rng(0), "ccicpc")
    got = jax.jit(sp.answer_loss, static_argnums=(0, 3), compiler_options=FAST)(TINY, params, batch, kind)
    want = naive_answer_nll(np.asarray(naive_logprobs(params, batch)), batch, kind)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(got)[~batch["is_classification"]] == 0)


@pytest.mark.parametrize("chunk", [4, 128])
def test_if_loss_equals_naive_token_cross_entropy(params, chunk):
    batch = make_batch(np.random.default_rng(1), "iicip")
    batch["loss_mask"][2, 3:6] = 1.0  # targets on a classification row are ignored
    sums, counts = jax.jit(sp.if_loss, static_argnums=(0, 3), compiler_options=FAST)(TINY, params, batch, chunk)
    want_sums, want_counts = naive_if(np.asarray(naive_logprobs(params, batch)), batch)
    np.testing.assert_allclose(np.asarray(sums), want_sums, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(counts), want_counts)


@pytest.fixture(scope="module")
def loss_and_grads_fn(make_config):
    """jit(loss_and_grads) for a full-mode config; batches carry the micro-batch axis."""
    config = make_config()
    return jax.jit(lambda p, b: sp.loss_and_grads(p, None, b, sp.Spec.from_config(config), TINY), compiler_options=FAST)


def _micro(batch: dict) -> dict:
    return {k: v[None] for k, v in batch.items()}


def test_answer_loss_ignores_everything_but_the_prefix_and_answer(params, loss_and_grads_fn):
    rng = np.random.default_rng(2)
    batch = make_batch(rng, "cccccccc")  # [1, 8, L]: the same compiled program as the accumulation test
    loss, grads, _ = loss_and_grads_fn(params, _micro(batch))
    changed = copy.deepcopy(batch)
    for i in range(8):
        a = batch["answer_index"][i]
        changed["tokens"][i, a + 1:] = rng.integers(0, 64, L - a - 1)  # tokens after the answer (and padding)
        changed["segment_ids"][i, a + 1:] = 1  # ... even as real tokens of the row
        changed["positions"][i, a + 1:] = np.arange(a + 1, L)
        changed["loss_mask"][i] = 1.0  # other targets in the row
        changed["label_ids"][i] = rng.choice(64, 2)  # not the target in full_vocab mode
    loss2, grads2, _ = loss_and_grads_fn(params, _micro(changed))
    np.testing.assert_allclose(float(loss2), float(loss), rtol=1e-6)
    for g, g2 in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(grads2)):
        np.testing.assert_allclose(np.asarray(g2), np.asarray(g), rtol=1e-5, atol=1e-7)
    # ... whereas a token before the answer slot does matter (the test can fail)
    before = copy.deepcopy(batch)
    before["tokens"][:, 1] = (before["tokens"][:, 1] + 1) % 64
    assert abs(float(loss_and_grads_fn(params, _micro(before))[0]) - float(loss)) > 1e-4


def test_token_mean_and_example_mean_by_hand(params, make_config):
    """A classification row and a long IF row: example_mean counts each once, token_mean lets IF tokens swamp."""
    batch = make_batch(np.random.default_rng(3), "cip")
    batch["loss_mask"][1] = 0.0
    batch["loss_mask"][1, 1:11] = 1.0  # 10 IF target tokens
    batch["segment_ids"][1], batch["positions"][1] = 1, np.arange(L)
    batch["weight"][:2] = (1.5, 0.5)
    logp = np.asarray(naive_logprobs(params, batch))
    c = naive_answer_nll(logp, batch, "full_vocab")[0]
    s, n = naive_if(logp, batch)
    s, n = s[1], n[1]
    assert n == 10
    w_c, w_i = 1.5, 0.5 * 3.0  # IF weight x if_weight
    expected = {"example_mean": (w_c * c + w_i * s / n) / (w_c + w_i),
                "token_mean": (w_c * c + w_i * s) / (w_c + w_i * n)}
    got = {}
    for reduction in expected:
        config = make_config(reduction=reduction, if_weight=3.0)
        spec = sp.Spec.from_config(config)
        loss, aux = jax.jit(lambda p, b: sp.loss_fn(p, None, b, spec, TINY), compiler_options=FAST)(params, batch)
        got[reduction] = float(loss)
        assert float(aux["n_examples"]) == 2 and float(aux["n_tokens"]) == 11
        np.testing.assert_allclose(float(aux["cls_loss"]), c, rtol=1e-5)
        np.testing.assert_allclose(float(aux["if_loss"]), s / n, rtol=1e-5)
    np.testing.assert_allclose(got["example_mean"], expected["example_mean"], rtol=1e-5)
    np.testing.assert_allclose(got["token_mean"], expected["token_mean"], rtol=1e-5)
    assert abs(got["example_mean"] - got["token_mean"]) > 1e-2


def test_grad_accumulation_equals_one_batch(params, loss_and_grads_fn):
    """3 micro-batches (2 real rows + 2 weight-0 padding rows each) == one batch of the same 6 rows + 2 padding."""
    one = make_batch(np.random.default_rng(4), "cicicipp")
    loss, grads, aux = loss_and_grads_fn(params, _micro(one))
    order = [[0, 1, 6, 7], [2, 3, 6, 7], [4, 5, 6, 7]]  # rows 6, 7 are padding
    micro = sp.stack_microbatches([{k: v[idx] for k, v in one.items()} for idx in order])
    loss_k, grads_k, aux_k = loss_and_grads_fn(params, micro)
    np.testing.assert_allclose(float(loss_k), float(loss), rtol=0, atol=1e-5)
    diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
             for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(grads_k))]
    assert max(diffs) < 1e-5, diffs
    assert max(float(np.max(np.abs(np.asarray(g)))) for g in jax.tree_util.tree_leaves(grads)) > 1e-3
    for key in ("n_examples", "n_tokens", "accuracy", "cls_loss", "if_loss"):
        np.testing.assert_allclose(float(aux_k[key]), float(aux[key]), rtol=1e-5)


def test_accuracy_counts_classification_rows(params, make_config):
    batch = make_batch(np.random.default_rng(5), "cccip")
    logp = np.asarray(naive_logprobs(params, batch))
    right = []
    for i in range(3):
        two = logp[i, batch["answer_index"][i] - 1, batch["label_ids"][i]]
        right.append((two[0] > two[1]) == (batch["label"][i] == 1))
    config = make_config(kind="two_way")
    spec = sp.Spec.from_config(config)
    _, aux = jax.jit(lambda p, b: sp.loss_fn(p, None, b, spec, TINY), compiler_options=FAST)(params, batch)
    np.testing.assert_allclose(float(aux["accuracy"]), np.mean(right))
    assert float(aux["n_classification"]) == 3


def test_stack_microbatches_checks_keys():
    a = make_batch(np.random.default_rng(6), "ci")
    stacked = sp.stack_microbatches([a, a, a])
    assert stacked["tokens"].shape == (3, 2, L)
    with pytest.raises(ValueError, match="keys"):
        sp.stack_microbatches([a, {k: v for k, v in a.items() if k != "weight"}])


def test_eval_loss_matches_loss_fn(params, make_config):
    from monitor_jax.core import sharding as shd
    from monitor_jax.train import state as st

    config = make_config(reduction="token_mean")
    mesh = shd.make_mesh({"data": 1}, jax.devices()[:1])
    state = st.TrainState(step=jnp.zeros((), jnp.int32), trainable=params, frozen=None, opt_state=None)
    replicated = shd.NamedSharding(mesh, shd.P())
    shardings = st.TrainState(step=replicated, trainable=jax.tree_util.tree_map(lambda _: replicated, params),
                              frozen=None, opt_state=None)
    evaluate = sp.make_eval_loss(config, TINY, mesh, shardings, compiler_options=FAST)
    a, b = make_batch(np.random.default_rng(7), "cicp"), make_batch(np.random.default_rng(8), "iccp")
    whole = {k: np.concatenate([a[k], b[k]]) for k in a}
    spec = sp.Spec.from_config(config)
    want = jax.jit(lambda p, x: sp.loss_fn(p, None, x, spec, TINY)[1], compiler_options=FAST)(params, whole)
    got = evaluate(state, sp.stack_microbatches([a, b]))  # two micro-batches == their concatenation
    for key in ("loss", "n_tokens", "n_examples", "accuracy", "if_loss"):
        np.testing.assert_allclose(float(got[key]), float(want[key]), rtol=1e-5)
    single = evaluate(state, a)
    assert float(single["n_examples"]) == 3
