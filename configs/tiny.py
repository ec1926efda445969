"""Tiny config for tests: a random 2-layer Llama (SmolLM2 tokenizer), two steps on a small bundled task.

    monitor-jax train --config=configs/tiny.py --workdir=/tmp/tiny

`arg` picks the training mode: "full" (default), "lora" or "top_k" (top 1 of 2 layers, cached features).
"""
from __future__ import annotations

from monitor_jax.core import config as base


def get_config(arg: str | None = None):
    c = base.get_config()
    c.model.name = "tiny-random-llama"
    c.model.remat = "none"
    c.mesh.shape.data = -1
    mode = arg or "full"
    if mode == "full":
        c.train.mode = "full"
    elif mode == "lora":
        c.train.mode = "lora"
        c.train.lora.rank = 4
        c.train.lora.alpha = 8.0
    elif mode == "top_k":
        c.train.mode = "top_k_layers"
        c.train.top_k = 1
        c.train.cache_features = True
    else:
        raise ValueError(f"configs/tiny.py: unknown arg {arg!r}; use full, lora or top_k")
    c.optim.lr = 1e-3
    c.optim.warmup_steps = 0
    c.optim.decay = "constant"
    c.optim.total_steps = 2
    c.optim.clip_norm = 1.0
    c.data.max_len = 128
    c.data.batch_size = 8  # divisible by the 8 host devices the tests use
    c.data.buckets = (128,)  # one bucket: one compile of the train step (compiles dominate tiny runs)
    c.data.stages = [base.stage(None, base.task_component("harm", ["requests/harmful"], 1.0, limit_per_task=64))]
    c.eval.every = 2
    c.eval.tasks = ("requests/harmful",)
    c.eval.limit_per_task = 16
    c.eval.batch_size = 8
    c.checkpoint.every = 1
    c.checkpoint.keep = 2
    c.log_every = 1
    return base.lock(c)
