"""Fixtures shared by the eval tests: the tiny random model with sharpened weights."""
import jax
import numpy as np
import pytest

from monitor_jax.model import registry


def sharpen(params):
    """Random weights large enough that scores depend strongly on every token, position and label id."""
    gen = np.random.default_rng(3)

    def f(path, x):
        name = jax.tree_util.keystr(path)
        if "scale" in name:
            return x + 0.3 * gen.normal(size=x.shape).astype(x.dtype)
        return x * (50.0 if "embed" in name else 10.0)

    return jax.tree_util.tree_map_with_path(f, params)


@pytest.fixture(scope="module")
def model():
    """(cfg, sharpened params, tokenizer) of tiny-random-llama."""
    m = registry.load("tiny-random-llama")
    return m.cfg, sharpen(m.params), m.tokenizer
