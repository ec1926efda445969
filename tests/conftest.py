"""Shared pytest setup: 8 host devices for mesh tests, the offline assets, a persistent XLA compile cache, and
builders of tiny configs (`tiny_config` for unit tests of the train step/state, `tiny_experiment` for runner
tests)."""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "MONITOR_JAX_FEATURES" not in os.environ:  # the shared feature store of this session: a temp folder
    import tempfile

    os.environ["MONITOR_JAX_FEATURES"] = tempfile.mkdtemp(prefix="monitor-jax-features-")

import ml_collections  # noqa: E402
import pytest  # noqa: E402

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2_gguf():
    """Path of the SmolLM2-135M-Instruct GGUF, fetched into the asset cache on first use."""
    from monitor_jax.core import assets

    return assets.asset_path("smollm2", SMOLLM2_GGUF)


@pytest.fixture(scope="module")
def xla_cache(tmp_path_factory):
    """The path of a persistent XLA compile cache shared by this session's tests (identical programs compile
    once), in use in this process while the module runs; subprocesses get it through the environment."""
    import jax
    from jax._src import compilation_cache

    path = tmp_path_factory.getbasetemp() / "xla-cache"
    path.mkdir(exist_ok=True)
    old = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()
    yield str(path)
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
    compilation_cache.reset_cache()


def _tiny_config(**sections: dict) -> ml_collections.ConfigDict:
    """The train keys of a tiny model's run (no data or eval sections), each section updated from `sections`
    (nested dicts, e.g. train={"mode": "lora", "lora": {"targets": ("q",)}}); a key that is not here fails."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.model = dict(name="tiny", dtype="float32", remat="none")
    c.mesh = dict(shape={"data": -1, "fsdp": 1, "tensor": 1}, rules=None, strict=False)
    c.train = dict(mode="full", top_k=1, frozen_dtype="float32", lora=dict(rank=2, alpha=4.0, targets=("q", "v")))
    c.optim = dict(lr=1e-2, warmup_steps=0, decay="constant", total_steps=10, weight_decay=0.1, b1=0.9, b2=0.99,
                   eps=1e-8, clip_norm=1.0, grad_accum=1)
    c.loss = dict(kind="full_vocab", reduction="example_mean", if_weight=1.0)
    c.lock()
    c.update(sections)
    c.unlock()
    return c


@pytest.fixture(scope="session")
def tiny_config():
    """`_tiny_config`: tiny_config(optim={"warmup_steps": 2}, loss={"reduction": "token_mean"}) -> ConfigDict."""
    return _tiny_config


def _tiny_experiment(name: str, *, steps: int, max_len: int, n_boot: int,
                     select_limit: int) -> ml_collections.ConfigDict:
    """configs/experiment.py on tiny-random-llama (top 1 layer, lr 3e-3, `steps` steps, eval and checkpoint every
    2, buckets max_len/2 and max_len), seeds (0, 1); the caller adds cells, arms and comparisons."""
    from monitor_jax.core import config as config_lib

    c = config_lib.load("experiment")
    with c.unlocked():
        c.model.name = "tiny-random-llama"
        c.train.top_k = 1
        c.optim.lr = 3e-3
        c.optim.total_steps = steps
        c.eval.every, c.eval.every_rows = 2, None  # steps, not the protocol's row budget
        c.checkpoint.every = 2
        c.data.max_len = max_len
        c.data.buckets = (max_len // 2, max_len)
        e = c.experiment
        e.name, e.claim, e.statement = name, "T", "a test"
        e.n_boot, e.select_limit, e.seeds = n_boot, select_limit, (0, 1)
        e.budget_rows = None
    return c


@pytest.fixture(scope="session")
def tiny_experiment():
    """`_tiny_experiment`: tiny_experiment("name", steps=4, max_len=128, n_boot=200, select_limit=16)."""
    return _tiny_experiment
