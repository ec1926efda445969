"""SmolLM2-135M-Instruct from its GGUF: our params + Transformer vs transformers' GGUF loading, and KV-cache
greedy decoding. The only SmolLM2-sized test module: the model is loaded once per module."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from monitor_jax.model import weights
from monitor_jax.model.tokenizer import Tokenizer
from monitor_jax.model.transformer import ModelConfig, Transformer, init_cache, logits

MAX_NEW = 12


@pytest.fixture(scope="module")
def smol(smollm2_gguf):
    cfg, params = weights.load_gguf(smollm2_gguf)
    return cfg.replace(remat="none"), jax.tree.map(jnp.asarray, params), Tokenizer.from_gguf(smollm2_gguf)


def test_config(smol):
    cfg, params, _ = smol
    assert cfg == ModelConfig(vocab_size=49152, d_model=576, n_layers=30, n_heads=9, n_kv_heads=3, head_dim=64,
                              d_ff=1536, rope_theta=1e5, rms_eps=1e-5, tie_embeddings=True, remat="none")
    assert "lm_head" not in params and params["layers"]["attn"]["q"]["kernel"].shape == (30, 576, 9, 64)


def _forward(cfg):
    @jax.jit
    def f(params, tokens, seg):
        hidden, _ = Transformer(cfg).apply({"params": params}, tokens, segment_ids=seg)
        return logits(params, hidden)
    return f


def test_logits_match_transformers_gguf(smol, smollm2_gguf):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg, params, tok = smol
    texts = ["The capital of France is", "def add(a, b):\n    return a + b  # adds two numbers, 3 + 4 = 7"]
    ids = [tok.encode(t) for t in texts]
    t = max(map(len, ids))
    assert t <= 32 and len(ids[0]) < t
    tokens = np.full((2, t), tok.pad_id, np.int32)
    seg = np.zeros((2, t), np.int32)
    for i, row in enumerate(ids):
        tokens[i, :len(row)], seg[i, :len(row)] = row, 1
    ours = np.asarray(_forward(cfg)(params, tokens, seg))
    path = os.fspath(smollm2_gguf)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        theirs = model.eval()(input_ids=torch.tensor(tokens, dtype=torch.long),
                              attention_mask=torch.tensor(seg)).logits.numpy()
    real = seg.astype(bool)
    diff = float(np.abs(ours[real] - theirs[real]).max())
    print(f"SmolLM2 max |ours - transformers| = {diff:.2e} (logit scale {np.abs(theirs[real]).max():.1f})")
    assert diff <= 1e-3
    assert (ours[real].argmax(-1) == theirs[real].argmax(-1)).all()


def test_greedy_kv_cache_decodes_paris(smol):
    cfg, params, tok = smol
    prompt = tok.encode(tok.render_chat([{"role": "user", "content": "What is the capital of France?"}]))
    n = len(prompt)
    model = Transformer(cfg)

    @jax.jit
    def step(params, tokens, positions, cache):
        hidden, cache = model.apply({"params": params}, tokens, positions=positions, cache=cache)
        return logits(params, hidden[:, -1]), cache

    cache = init_cache(cfg, 1, n + MAX_NEW)
    last, cache = step(params, jnp.asarray([prompt], jnp.int32), jnp.arange(n, dtype=jnp.int32)[None], cache)
    out, step_logits = [], []
    for i in range(MAX_NEW):
        step_logits.append(np.asarray(last[0]))
        nxt = int(jnp.argmax(last[0]))
        out.append(nxt)
        if nxt in tok.stop_ids:
            break
        last, cache = step(params, jnp.asarray([[nxt]], jnp.int32), jnp.asarray([[n + i]], jnp.int32), cache)
    text = tok.decode(out)
    print(f"SmolLM2 greedy: {text!r}")
    assert "Paris" in text
    # the cached decode equals a full forward over prompt + generated tokens (no cache)
    full = np.asarray(_forward(cfg)(params, jnp.asarray([prompt + out]), jnp.ones((1, n + len(out)), jnp.int32)))
    ref = full[0, n - 1:n - 1 + len(out)]
    np.testing.assert_allclose(np.stack(step_logits), ref, atol=1e-3)
    assert ref.argmax(-1).tolist() == out
