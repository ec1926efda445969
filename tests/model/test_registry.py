"""Model registry: tiny random models per family, hf:/gguf: paths, clear errors."""

import jax.numpy as jnp
import numpy as np
import pytest

from monitor_jax.model import registry, transformer, weights


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3", "mistral"])
def test_tiny_random_models_run(family):
    m = registry.load(f"tiny-random-{family}")
    assert m.cfg.family == family and m.cfg.vocab_size == m.tokenizer.vocab_size
    ids = m.tokenizer.encode("hello world")
    hidden, _ = transformer.Transformer(m.cfg).apply({"params": m.params}, jnp.asarray([ids]))
    assert hidden.shape == (1, len(ids), m.cfg.d_model) and np.isfinite(np.asarray(hidden)).all()


def test_hf_path_round_trip(tmp_path):
    m = registry.load("tiny-random-qwen3", seed=3)
    weights.save_hf(m.params, m.cfg, tmp_path / "ckpt", tokenizer=m.tokenizer)
    back = registry.load(f"hf:{tmp_path / 'ckpt'}", remat="none")
    assert back.cfg.remat == "none" and back.cfg.qk_norm
    tokens = jnp.asarray([m.tokenizer.encode("a monitor reads this")])
    ref, _ = transformer.Transformer(m.cfg).apply({"params": m.params}, tokens)
    got, _ = transformer.Transformer(back.cfg).apply({"params": back.params}, tokens)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=1e-5)
    assert back.tokenizer.encode("a monitor reads this") == m.tokenizer.encode("a monitor reads this")


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'gpt-9'"):
        registry.load("gpt-9")
    with pytest.raises(ValueError, match="unknown tiny model family"):
        registry.load("tiny-random-gemma")
