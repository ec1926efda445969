"""The KV-cache sampler: greedy == argmax over full forwards, batching invariance, seeds, stop tokens, top-p."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from monitor_jax.eval import generate as G
from monitor_jax.model import transformer as T

FAMILIES = {
    "llama": dict(),
    "qwen3": dict(qk_norm=True, family="qwen3", tie_embeddings=False),
    "mistral": dict(sliding_window=4, family="mistral", tie_embeddings=False),
}


def tiny(family: str) -> T.ModelConfig:
    return T.ModelConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8, d_ff=48,
                         remat="none", **FAMILIES[family])


def random_params(cfg, seed=0):
    # Larger-than-init weights so the next-token distribution is far from uniform (argmax has clear winners).
    params = T.init_params(cfg, seed)
    return jax.tree_util.tree_map(lambda x: x * 4.0 if x.ndim > 1 else x, params)


@pytest.fixture(params=sorted(FAMILIES), scope="module")
def model(request):
    cfg = tiny(request.param)
    return cfg, random_params(cfg)


PROMPTS = [[5, 9, 2, 33, 7, 1, 12], [40], [3, 3, 8, 19], list(range(10, 29))]


def argmax_reference(cfg, params, prompt, n):
    """Greedy continuation by a full forward over the whole sequence at every step (no cache)."""
    seq = list(prompt)
    fwd = jax.jit(lambda p, t: T.logits(p, T.Transformer(cfg).apply({"params": p}, t)[0][:, -1]))
    for _ in range(n):
        seq.append(int(np.argmax(np.asarray(fwd(params, jnp.asarray([seq]))))))
    return seq[len(prompt):]


def test_greedy_equals_argmax_over_full_forwards(model):
    cfg, params = model
    gens = G.generate_ids(cfg, params, PROMPTS, G.Sampling(max_new_tokens=6), batch_size=4, progress=False)
    for prompt, g in zip(PROMPTS, gens):
        assert g.finish == "length" and g.prompt_tokens == len(prompt)
        assert g.tokens.tolist() == argmax_reference(cfg, params, prompt, 6)


def test_in_place_cache_decode_equals_the_copied_slices(model):
    """The decode step's in-place per-layer cache update (the default) gives the old path's cache and logits."""
    cfg, params = model
    m = T.Transformer(cfg)
    tokens = jnp.asarray([[5, 9, 2, 33], [40, 0, 0, 0]], jnp.int32)
    seg = jnp.asarray([[1, 1, 1, 1], [1, 0, 0, 0]], jnp.int32)
    pos = jnp.broadcast_to(jnp.arange(4, dtype=jnp.int32), (2, 4))
    _, cache = m.apply({"params": params}, tokens, pos, seg, cache=T.init_cache(cfg, 2, 8), fresh_cache=True)
    nxt, npos, ones = jnp.asarray([[7], [3]], jnp.int32), jnp.asarray([[4], [1]], jnp.int32), jnp.ones((2, 1), jnp.int32)
    h_copy, c_copy = m.apply({"params": params}, nxt, npos, ones, cache=cache)
    h_in, c_in = jax.jit(lambda p, c: m.apply({"params": p}, nxt, npos, ones, cache=c, in_place=True))(params, cache)
    np.testing.assert_allclose(np.asarray(h_in), np.asarray(h_copy), rtol=1e-6, atol=1e-6)
    assert sorted(c_in) == sorted(c_copy)
    for k in c_copy:
        np.testing.assert_array_equal(np.asarray(c_in[k]), np.asarray(c_copy[k]), err_msg=k)
    assert not np.array_equal(np.asarray(c_in["k"]), np.asarray(cache["k"]))  # the step wrote its slot
    for in_place in (False, True):
        out, count = G.generate_batch(G.inference_config(cfg), params, tokens, jnp.asarray([4, 1]),
                                      jax.random.split(jax.random.key(0), 2), max_new=5, temperature=0.0, top_p=1.0,
                                      stop_ids=(), pad_id=0, in_place=in_place)
        if in_place:
            np.testing.assert_array_equal(np.asarray(out), ref)
        ref = np.asarray(out)


@pytest.mark.parametrize("sampling", [G.Sampling(max_new_tokens=5),
                                      G.Sampling(max_new_tokens=5, temperature=1.0, top_p=0.9, seed=3)])
def test_batched_rows_equal_unbatched(model, sampling):
    cfg, params = model
    batched = G.generate_ids(cfg, params, PROMPTS, sampling, batch_size=4, progress=False)
    singly = G.generate_ids(cfg, params, PROMPTS, sampling, batch_size=1, progress=False)  # same per-prompt keys
    assert [b.tokens.tolist() for b in batched] == [s.tokens.tolist() for s in singly]
    if sampling.temperature == 0:  # greedy needs no keys: each prompt in a call of its own
        alone = [G.generate_ids(cfg, params, [p], sampling, progress=False)[0] for p in PROMPTS]
        assert [a.tokens.tolist() for a in alone] == [b.tokens.tolist() for b in batched]


def test_sampling_is_reproducible_and_seeded():
    cfg = tiny("llama")
    params = random_params(cfg)
    s = G.Sampling(max_new_tokens=8, temperature=1.5, seed=7)
    a = G.generate_ids(cfg, params, PROMPTS, s, progress=False)
    b = G.generate_ids(cfg, params, PROMPTS, s, progress=False)
    c = G.generate_ids(cfg, params, PROMPTS, G.Sampling(max_new_tokens=8, temperature=1.5, seed=8), progress=False)
    assert [g.tokens.tolist() for g in a] == [g.tokens.tolist() for g in b]
    assert [g.tokens.tolist() for g in a] != [g.tokens.tolist() for g in c]


def test_stop_token_ends_the_row_and_is_dropped():
    cfg = tiny("llama")
    params = random_params(cfg)
    free = G.generate_ids(cfg, params, PROMPTS[:2], G.Sampling(max_new_tokens=8), progress=False)
    stop = int(free[0].tokens[3])
    first = free[0].tokens.tolist().index(stop)
    gens = G.generate_ids(cfg, params, PROMPTS[:2], G.Sampling(max_new_tokens=8), stop_ids=(stop,), pad_id=0,
                          progress=False)
    assert gens[0].finish == "stop" and gens[0].tokens.tolist() == free[0].tokens.tolist()[:first]
    other = free[1].tokens.tolist()
    expect = other[: other.index(stop)] if stop in other else other
    assert gens[1].tokens.tolist() == expect


def test_top_p_keeps_the_nucleus_only():
    logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]] * 4000, jnp.float32))
    keys = jax.random.split(jax.random.key(0), 4000)
    ids = np.asarray(G.sample_logits(logits, keys, 1.0, 0.7))
    assert set(ids.tolist()) == {0, 1}  # 0.5 < 0.7 needs token 1 too; 0.8 >= 0.7 stops there
    assert abs((ids == 0).mean() - 0.5 / 0.8) < 0.03
    tiny_p = np.asarray(G.sample_logits(logits[:50], keys[:50], 1.0, 1e-6))
    assert (tiny_p == 0).all()  # top_p -> 0 is greedy
    full = np.asarray(G.sample_logits(logits, keys, 1.0, 1.0))
    np.testing.assert_allclose(np.bincount(full, minlength=4) / 4000, [0.5, 0.3, 0.15, 0.05], atol=0.03)


def test_bad_sampling_settings_are_errors():
    with pytest.raises(ValueError, match="top_p"):
        G.Sampling(top_p=0.0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        G.Sampling(max_new_tokens=0)
    with pytest.raises(ValueError, match="at least one token"):
        G.generate_ids(tiny("llama"), random_params(tiny("llama")), [[]], progress=False)


def test_generate_text_uses_the_chat_template_and_stops_at_end_of_turn(smollm2_gguf):
    from monitor_jax.model import registry

    m = registry.load("tiny-random-llama")
    gens = G.generate_text(m.cfg, m.params, m.tokenizer, ["Hello there", "What is 2+2?"],
                           G.Sampling(max_new_tokens=4), progress=False)
    ids = G.chat_prompt_ids(m.tokenizer, [{"role": "user", "content": "Hello there"}])
    assert m.tokenizer.decode(ids).endswith("<|im_start|>assistant\n")
    raw = G.generate_ids(m.cfg, m.params, [ids], G.Sampling(max_new_tokens=4), stop_ids=m.tokenizer.stop_ids,
                         pad_id=m.tokenizer.pad_id, progress=False)[0]
    assert gens[0].tokens.tolist() == raw.tokens.tolist()
    assert gens[0].text == m.tokenizer.decode(raw.tokens, skip_special_tokens=True)
    assert all(len(g.tokens) <= 4 for g in gens)
