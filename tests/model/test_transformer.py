"""Invariances of the Flax decoder: padding, packing, KV-cache decode, head rows, logical axes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from monitor_jax.model import transformer as T

FAMILIES = {
    "llama": dict(),
    "qwen2": dict(qkv_bias=True, family="qwen2"),
    "qwen3": dict(qk_norm=True, family="qwen3", tie_embeddings=False),
    "mistral": dict(sliding_window=3, family="mistral", tie_embeddings=False),
}


def tiny(family: str, **kw) -> T.ModelConfig:
    base = dict(vocab_size=97, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8, d_ff=48)
    return T.ModelConfig(**{**base, **FAMILIES[family], **kw})


@functools.partial(jax.jit, static_argnums=0)
def _forward(cfg, params, tokens, positions, segment_ids):
    hidden, _ = T.Transformer(cfg).apply({"params": params}, tokens, positions, segment_ids)
    return T.logits(params, hidden)


def forward(cfg, params, tokens, positions=None, segment_ids=None):
    return np.asarray(_forward(cfg, params, jnp.asarray(tokens), positions, segment_ids))


@pytest.fixture(params=sorted(FAMILIES), scope="module")
def model(request):
    cfg = tiny(request.param)
    params = T.init_params(cfg, 1)
    # Random norm scales and biases so q/k-norm, final norm and qkv bias are exercised away from their init.
    gen = np.random.default_rng(0)
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x + 0.3 * gen.normal(size=x.shape).astype(x.dtype)
        if any(k in jax.tree_util.keystr(path) for k in ("scale", "bias"))
        else x,
        params,
    )
    return cfg, params


def test_right_padding_does_not_change_real_logits(model):
    cfg, params = model
    rng = np.random.default_rng(0)
    lengths = [9, 5, 1]
    tokens = rng.integers(0, cfg.vocab_size, (3, 12))
    segs = np.zeros((3, 12), np.int32)
    for i, n in enumerate(lengths):
        segs[i, :n] = 1
        tokens[i, n:] = rng.integers(0, cfg.vocab_size, 12 - n)  # garbage in the padding
    padded = forward(cfg, params, tokens, segment_ids=segs)
    for i, n in enumerate(lengths):
        alone = forward(cfg, params, tokens[i : i + 1, :n])
        np.testing.assert_allclose(padded[i, :n], alone[0], atol=1e-5)


def test_packed_segments_equal_separate_sequences(model):
    cfg, params = model
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, cfg.vocab_size, 5), rng.integers(0, cfg.vocab_size, 4)
    tokens = np.concatenate([a, b])[None]
    segs = np.array([[1] * 5 + [2] * 4])
    pos = np.array([list(range(5)) + list(range(4))])
    packed = forward(cfg, params, tokens, positions=pos, segment_ids=segs)
    la = forward(cfg, params, a[None])
    lb = forward(cfg, params, b[None])
    np.testing.assert_allclose(packed[0, :5], la[0], atol=1e-5)
    np.testing.assert_allclose(packed[0, 5:], lb[0], atol=1e-5)


def test_kv_cache_decode_matches_full_forward(model):
    """Right-padded prompts of different lengths, prefill then one-token steps: every step's logits equal
    the full forward over the row's real tokens."""
    cfg, params = model
    rng = np.random.default_rng(2)
    full = rng.integers(0, cfg.vocab_size, (2, 11))
    prompt_len = np.array([6, 3])
    steps = 5
    prompt = np.zeros((2, 6), np.int64)
    segs = np.zeros((2, 6), np.int32)
    for i, n in enumerate(prompt_len):
        prompt[i, :n] = full[i, :n]
        segs[i, :n] = 1
    model_fn = T.Transformer(cfg)
    cache = T.init_cache(cfg, batch=2, max_len=6 + steps)
    hidden, cache = model_fn.apply({"params": params}, jnp.asarray(prompt), segment_ids=jnp.asarray(segs), cache=cache)
    step_logits = [np.asarray(T.logits(params, hidden[np.arange(2), prompt_len - 1]))]
    step = jax.jit(lambda p, t, pos, c: model_fn.apply({"params": p}, t, positions=pos, cache=c))
    for s in range(steps - 1):
        pos = prompt_len + s
        tok = full[np.arange(2), pos]
        hidden, cache = step(params, jnp.asarray(tok[:, None]), jnp.asarray(pos[:, None]), cache)
        step_logits.append(np.asarray(T.logits(params, hidden[:, 0])))
    for i, n in enumerate(prompt_len):
        ref = forward(cfg, params, full[i : i + 1, : n + steps - 1])
        got = np.stack([sl[i] for sl in step_logits])
        np.testing.assert_allclose(got, ref[0, n - 1 : n + steps - 1], atol=1e-5)


def test_sliding_window_changes_attention():
    cfg = tiny("mistral")
    params = T.init_params(cfg, 0)
    tokens = np.random.default_rng(3).integers(0, cfg.vocab_size, (1, 10))
    windowed = forward(cfg, params, tokens)
    unwindowed = forward(cfg.replace(sliding_window=None), params, tokens)
    np.testing.assert_allclose(windowed[0, :3], unwindowed[0, :3], atol=1e-5)  # inside the window
    assert np.abs(windowed[0, 5:] - unwindowed[0, 5:]).max() > 1e-3


def test_head_rows_equal_full_vocabulary_columns(model):
    cfg, params = model
    hidden, _ = T.Transformer(cfg).apply({"params": params}, jnp.arange(7)[None])
    rows = jnp.array([5, 0, 42])
    np.testing.assert_allclose(
        np.asarray(T.logits(params, hidden, rows)), np.asarray(T.logits(params, hidden))[..., rows], atol=1e-6
    )


def test_remat_and_dtype_options_agree():
    cfg = tiny("llama")
    params = T.init_params(cfg, 0)
    tokens = np.arange(8)[None]
    ref = forward(cfg, params, tokens)
    for remat in ("none", "dots"):
        got = forward(cfg.replace(remat=remat), params, tokens)
        np.testing.assert_allclose(got, ref, atol=1e-6)
    bf16 = forward(cfg.replace(dtype="bfloat16"), params, tokens)
    assert np.abs(bf16 - ref).max() < 0.1


def test_every_param_has_logical_axes():
    cfg = tiny("qwen3")
    boxed = T.abstract_params(cfg)
    leaves = jax.tree_util.tree_leaves(boxed, is_leaf=lambda x: hasattr(x, "names"))
    assert leaves and all(hasattr(x, "names") and len(x.names) == len(x.value.shape) for x in leaves)
    layer_leaves = jax.tree_util.tree_leaves(boxed["layers"], is_leaf=lambda x: hasattr(x, "names"))
    assert all(x.names[0] == "layers" for x in layer_leaves)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="n_kv_heads"):
        tiny("llama", n_kv_heads=3)
    with pytest.raises(ValueError, match="remat"):
        tiny("llama", remat="sometimes")


def test_split_stack_equals_full_forward(model):
    """Lower layers (no final norm) then upper layers from their hidden states == the full forward."""
    cfg, params = model
    tokens = jnp.asarray(np.random.default_rng(4).integers(0, cfg.vocab_size, (2, 9)))
    segs = jnp.asarray([[1] * 9, [1] * 6 + [0] * 3])
    full, _ = T.Transformer(cfg).apply({"params": params}, tokens, segment_ids=segs)
    lower, upper = T.split_params(params, 1)
    h, _ = T.Transformer(cfg.replace(n_layers=1)).apply({"params": lower}, tokens, segment_ids=segs, final_norm=False)
    top, _ = T.Transformer(cfg.replace(n_layers=cfg.n_layers - 1)).apply(
        {"params": upper}, None, segment_ids=segs, embeddings=h
    )
    np.testing.assert_allclose(np.asarray(top), np.asarray(full), atol=1e-5)


def test_blocked_attention_equals_one_block_with_padding_segments_and_window():
    rng = np.random.default_rng(0)
    b, t, h, kv, d = 2, 11, 4, 2, 8
    q = jnp.asarray(rng.normal(size=(b, t, h, d)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(b, t, kv, d)), jnp.float32)
    v = jnp.asarray(rng.normal(size=(b, t, kv, d)), jnp.float32)
    seg = np.ones((b, t), np.int32)
    seg[0, 5:] = 2  # two packed segments
    seg[1, 8:] = 0  # right padding
    slot = np.broadcast_to(np.arange(t), (b, t))
    cfg = tiny("mistral")  # sliding window 3
    mask = T.attention_mask(cfg, jnp.asarray(slot), jnp.asarray(slot), jnp.asarray(seg), jnp.asarray(slot),
                            jnp.asarray(slot), jnp.asarray(seg))

    @functools.partial(jax.jit, static_argnums=0)
    def run(block, q, k, v):
        return T.blocked_attention(q, k, v, mask, causal=True, block=block)

    whole = run(1000, q, k, v)
    real = np.asarray(seg > 0)
    for block in (1, 3, 4):
        np.testing.assert_allclose(np.asarray(run(block, q, k, v))[real], np.asarray(whole)[real], atol=1e-6)
        g_block = jax.grad(lambda *a: jnp.sum(run(block, *a)[jnp.asarray(real)] ** 2), argnums=(0, 1, 2))(q, k, v)
        g_whole = jax.grad(lambda *a: jnp.sum(run(1000, *a)[jnp.asarray(real)] ** 2), argnums=(0, 1, 2))(q, k, v)
        for a, c in zip(g_block, g_whole):
            np.testing.assert_allclose(np.asarray(a), np.asarray(c), atol=1e-5)


def test_model_with_small_attention_blocks_and_fresh_cache_prefill_equals_default(model, monkeypatch):
    cfg, params = model
    rng = np.random.default_rng(5)
    tokens = rng.integers(0, cfg.vocab_size, (2, 13))
    segs = np.ones((2, 13), np.int32)
    segs[1, 9:] = 0
    ref = forward(cfg, params, tokens, segment_ids=segs)
    cache = T.init_cache(cfg, 2, 16)
    h_ref, c_ref = T.Transformer(cfg).apply({"params": params}, jnp.asarray(tokens), segment_ids=jnp.asarray(segs),
                                            cache=cache)
    monkeypatch.setattr(T, "ATTENTION_BLOCK", 4)
    small = np.asarray(_forward.__wrapped__(cfg, params, jnp.asarray(tokens), None, jnp.asarray(segs)))
    real = segs > 0
    np.testing.assert_allclose(small[real], ref[real], atol=1e-5)
    h, c = T.Transformer(cfg).apply({"params": params}, jnp.asarray(tokens), segment_ids=jnp.asarray(segs),
                                    cache=cache, fresh_cache=True)
    np.testing.assert_allclose(np.asarray(h)[real], np.asarray(h_ref)[real], atol=1e-5)
    for key in ("valid", "pos", "index"):
        np.testing.assert_array_equal(np.asarray(c[key]), np.asarray(c_ref[key]))
    valid = np.asarray(c["valid"]) > 0  # padding slots hold garbage either way and are never attended to
    for key in ("k", "v"):
        np.testing.assert_allclose(np.asarray(c[key])[:, valid], np.asarray(c_ref[key])[:, valid], atol=1e-5)
