"""Fixtures shared by the train tests: the tiny random model (the XLA compile cache is in tests/conftest.py)."""
import pytest

from monitor_jax.model import registry


@pytest.fixture(scope="module")
def model():
    return registry.load("tiny-random-llama")
