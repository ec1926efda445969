"""Install monitor_jax: pinned stack (DESIGN.md §2), `[test]` and `[inspect]` extras, `monitor-jax` console script."""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "transformers==5.24.0",
    "tokenizers==0.23.3",
    "safetensors==0.8.0",
    "tensorflow-datasets==4.9.10",
    "importlib_resources==7.1.0",  # tfds builders inside a package resolve code_path with it (lazy import)
    "ml-collections==1.1.0",
    "gguf==0.19.0",
    "grain==0.2.18",
    "numpy==2.4.6",
    "absl-py",
    "scikit-learn",  # shortcut baselines (length-only, TF-IDF) reported beside every task
    "jinja2",
    "tqdm",
    "matplotlib",
    "tensorboardX",
    # AgentDojo's task-suite runtime (the `agentdojo` domain imports its code from the pinned wheel, no LLM clients)
    "pydantic==2.13.4",
    "email-validator==2.4.0",
    "pyyaml==6.0.3",
    "docstring-parser==0.18.0",
    "deepdiff==9.1.0",
]

TEST_REQUIRES = [
    "pytest",
    "torch==2.13.0",  # CPU wheel on local disk; parity reference only, never imported by the product
    "accelerate",
    "nbclient",
    "ipykernel",
    "pyyaml",
    "datasets",
]

# `monitor-jax score --inspect_log=RUN.eval` reads Inspect AI logs with inspect_ai's own log API (no LLM client:
# inspect_ai imports a provider's client only when a model of that provider is used)
INSPECT_REQUIRES = ["inspect_ai==0.3.285"]

setup(
    name="monitor_jax",
    version="0.1.0",
    description="Train LLMs as prompted binary classifiers (monitors) in JAX/Flax and measure transfer.",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["monitor_jax", "monitor_jax.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST_REQUIRES, "inspect": INSPECT_REQUIRES},
    entry_points={"console_scripts": ["monitor-jax=monitor_jax.main:run"]},
)
