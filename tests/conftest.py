"""Shared pytest setup: 8 host devices for mesh tests, and fixtures for the offline assets."""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "MONITOR_JAX_FEATURES" not in os.environ:  # the shared feature store of this session: a temp folder
    import tempfile

    os.environ["MONITOR_JAX_FEATURES"] = tempfile.mkdtemp(prefix="monitor-jax-features-")

import pytest  # noqa: E402

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2_gguf():
    """Path of the SmolLM2-135M-Instruct GGUF, fetched into the asset cache on first use."""
    from monitor_jax.core import assets

    return assets.asset_path("smollm2", SMOLLM2_GGUF)
