"""Demo: SmolLM2-135M-Instruct becomes a harmful-request monitor on a laptop CPU.

    monitor-jax train --config=configs/demo.py --workdir=/tmp/monitor-demo

(run it again to resume; add e.g. --config.optim.total_steps=96 to train longer.)

What it does: top-2-layer training (`train.mode=top_k_layers`, the lower 28 layers and the embedding/LM head
frozen) from cached features: the frozen lower stack runs once per distinct row, then 48 AdamW steps of 8 rows
train the top two layers from the cache. Data: 96 balanced `requests/harmful` train items and 24 items of each
of four BBC topic questions (business, entertainment, politics, tech), max_len 128 (long articles lose their
middle), one length bucket (one compile each for features, step and scoring). Validation AUROC before training
and at the end on `requests/harmful` (in domain) and `news/sports` (a question never trained).

Measured on this 2-core CPU (shared with other jobs, load average 1.4-2.7), seed 0, two runs:
- the whole command: 3 min 53 s and 4 min 24 s wall (peak RSS 3.0 GB); the training part (48 steps, including
  the features of 182 distinct rows and the first compile of each program) 3.0 and 3.5 min, then the final
  evaluation and the HF export. Both runs gave identical metrics;
- validation AUROC (64 items per task) requests/harmful 0.29 -> 0.90; news/sports 0.63 -> 0.28. The sports
  question got *worse*: sports articles were always negatives of the four trained topic questions, so the
  model likely learned "sports article -> No" whatever is asked — the prompt-following failure of claim C4
  in miniature (a hypothesis from this one run, not a measured claim).
"""
from __future__ import annotations

import importlib.util
import pathlib

_spec = importlib.util.spec_from_file_location("_monitor_jax_config_base", pathlib.Path(__file__).with_name("base.py"))
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)


def get_config(arg: str | None = None):
    if arg:
        raise ValueError(f"configs/demo.py takes no arg, got {arg!r}")
    c = base.get_config()
    c.model.name = "smollm2-135m"
    c.model.remat = "none"
    c.train.mode = "top_k_layers"
    c.train.top_k = 2
    c.train.cache_features = True
    c.optim.lr = 1e-3
    c.optim.warmup_steps = 5
    c.optim.decay = "cosine"
    c.optim.total_steps = 48
    c.data.max_len = 128
    c.data.batch_size = 8
    c.data.buckets = (128,)
    news = base.task_component("news", ["news/business", "news/entertainment", "news/politics", "news/tech"], 1.0,
                               limit_per_task=24)
    harm = base.task_component("harm", ["requests/harmful"], 1.0, limit_per_task=96, balance=1.0)
    c.data.stages = [base.stage(None, news, harm)]
    c.eval.every = 0
    c.eval.at_start = True
    c.eval.tasks = ("requests/harmful", "news/sports")
    c.eval.limit_per_task = 64
    c.checkpoint.every = 16
    c.log_every = 4
    return base.lock(c)
