"""Demo: SmolLM2-135M-Instruct becomes a harmful-request monitor on a laptop CPU, and we look at what transfers.

    monitor-jax demo                                   # = make demo; writes /tmp/monitor-jax-demo/results.md
    monitor-jax train --config=configs/demo.py --workdir=/tmp/monitor-demo   # the training part alone

Training: the top 2 of 30 layers from cached lower-layer features (`train.mode=top_k_layers`), 48 AdamW steps of
8 rows, max_len 128 (long articles lose their middle), one length bucket; 96 balanced `requests/harmful` items
and 24 items of each of four BBC topic questions (business, entertainment, politics, tech). The checkpoint is
chosen on validation AUROC of those five tasks (every 16 steps).

The demo (`experiment` section, one seed, validation split) scores the untrained and the trained model on
- held-out domains with prompts never seen in training: threat toxicity and negative tweet sentiment;
- unseen-prompt probes: the trained harmful-request task asked with a paraphrased prompt, and a *different*
  question about the trained news domain (is the article about sport?: never asked in training),
and prints base, trained and the paired difference with 95 % bootstrap CIs.
"""
from __future__ import annotations

import pathlib

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))
base = x.base


def get_config(arg: str | None = None):
    if arg:
        raise ValueError(f"configs/demo.py takes no arg, got {arg!r}")
    c = x.get_config()
    with c.unlocked():
        c.data.max_len = 128
        c.data.buckets = (128,)
        c.eval.every_rows = None  # the demo keeps its 48 steps, evaluated every 16 (not the protocol's row budget)
        news = base.task_component("news", ["news/business", "news/entertainment", "news/politics", "news/tech"], 1.0,
                                   limit_per_task=24)
        harm = base.task_component("harm", ["requests/harmful"], 1.0, limit_per_task=96, balance=1.0)
        c.data.stages = [base.stage(None, news, harm)]
        c.eval.at_start = True
        c.eval.tasks = ("requests/harmful", "news/sports")
        c.eval.limit_per_task = 64
        e = c.experiment
        e.name, e.claim = "demo", "demo"
        e.statement = "Training a monitor on some tasks helps on held-out domains and unseen prompts."
        e.seeds = (0,)
        e.budget_minutes = 15.0
        e.split = "validation"
        e.select_limit = 32
        e.budget_rows = None
        e.cells = [x.cell("toxicity/threat", 96, "held-out domain"),
                   x.cell("tweets/negative", 100, "held-out domain"),
                   x.cell("requests/harmful", 100, "unseen prompt: paraphrase of a trained task", "paraphrase"),
                   x.cell("news/sports", 100, "unseen prompt: a new question on a trained domain")]
        e.arms = [x.arm("base", label="untrained"), x.arm("trained", news, harm, label="trained")]
        e.comparisons = [x.comparison("diff", f"{cl.task}:{cl.prompt}", a="base", b="trained") for cl in e.cells]
        e.notes = ("One seed on validation items: a demo, not a claim (experiments/ has the claims).",)
    return x.lock(c)
