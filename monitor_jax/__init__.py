"""monitor_jax: LLM monitors as prompted binary classifiers, in JAX/Flax."""
