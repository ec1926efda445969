"""Demo: SmolLM2-135M-Instruct is trained as a harmful-request monitor on a laptop CPU, exported, and we look at
what transfers to domains it never saw.

    monitor-jax demo                                   # = make demo; writes /tmp/monitor-jax-demo/results.md
    monitor-jax train --config=configs/demo.py --workdir=/tmp/monitor-demo   # the training part alone

Training: the top 2 of 30 layers from the shared feature store (`train.mode=top_k_layers`), 960 row-visits in AdamW
steps of 8 rows, max_len 128 (long articles lose their middle), one length bucket; three domains, each task with
its own question: harmful vs benign requests (192 balanced items), jailbreak attempts (96 balanced) and four BBC
topic questions (business, entertainment, politics, tech; 48 items each). The checkpoint is chosen on
validation AUROC of those six tasks (every 160 row-visits, 32 items each).

The demo (`experiment` section, one seed, validation split) scores the untrained and the trained model on
- held-out domains, sources none of whose items or prompts are in training: tweet sentiment (negative;
  positive; 300 items each) and threat toxicity;
- unseen-prompt probes: the trained harmful-request task asked with a paraphrased prompt, and a *different*
  question about the trained news domain (is the article about sport?: never asked in training),
prints base, trained and the paired difference with 95 % bootstrap CIs, exports the trained monitor to
`OUT/monitor` and ends with the `monitor-jax score` command that asks it the harmful-request question.
A run: experiments/results/demo/ (negative tweets gain +0.117 [+0.033, +0.214]; the sport question gets worse).
"""
from __future__ import annotations

import pathlib

import ml_collections

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
        c.optim.total_rows = 960  # = 120 steps of 8 rows, for `monitor-jax train` on this config too
        c.eval.every_rows = 160
        c.eval.at_start = True
        c.eval.tasks = ("requests/harmful", "news/sports")  # `monitor-jax train` only (the experiment chooses on
        c.eval.limit_per_task = 64  # its arms' own training tasks)
        news = base.task_component("news", ["news/business", "news/entertainment", "news/politics", "news/tech"], 1.0,
                                   limit_per_task=48)
        harm = x.balanced("harm", "requests/harmful", 192)
        jailbreak = x.balanced("jailbreak", "jailbreak/jailbreak", 96)
        c.data.stages = [base.stage(None, news, harm, jailbreak)]
        e = c.experiment
        e.name, e.claim = "demo", "demo"
        e.statement = "Training a monitor on some domains helps on held-out domains and unseen prompts."
        e.seeds = (0,)
        e.budget_minutes = 15.0
        e.split = "validation"
        e.select_limit = 32
        e.budget_rows = None  # optim.total_rows
        e.cells = [x.cell("tweets/negative", 300, "held-out domain"),
                   x.cell("tweets/positive", 300, "held-out domain"),
                   x.cell("toxicity/threat", 96, "held-out domain"),
                   x.cell("requests/harmful", 100, "unseen prompt: paraphrase of a trained task", "paraphrase"),
                   x.cell("news/sports", 100, "unseen prompt: a new question on a trained domain")]
        e.arms = [x.arm("base", label="untrained"), x.arm("trained", news, harm, jailbreak, label="trained")]
        e.comparisons = [x.comparison("diff", f"{cl.task}:{cl.prompt}", a="base", b="trained") for cl in e.cells]
        e.export = ml_collections.ConfigDict({"arm": "trained", "task": "requests/harmful", "prompt": "primary"})
        e.notes = ("One seed on validation items: a demo, not a claim (experiments/ has the claims).",)
    return x.lock(c)
