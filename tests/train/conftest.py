"""Fixtures shared by the train tests: a persistent XLA compile cache and the tiny random model."""
import jax
import pytest

from monitor_jax.model import registry


@pytest.fixture(scope="module")
def xla_cache(tmp_path_factory):
    """A persistent XLA compile cache shared by this session's train tests: identical programs compile once."""
    from jax._src import compilation_cache

    path = tmp_path_factory.getbasetemp() / "xla-cache"
    path.mkdir(exist_ok=True)
    old = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()
    yield
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
    compilation_cache.reset_cache()


@pytest.fixture(scope="module")
def model():
    return registry.load("tiny-random-llama")
