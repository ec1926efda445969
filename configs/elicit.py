"""Unsupervised elicitation (claim C8): with-thinking pseudo-labels on unlabelled items -> 1-token SFT.

    monitor-jax elicit --config=configs/elicit.py[:TASK] --workdir=/tmp/elicit [--config.elicit.labels=gold]

Steps (`monitor_jax.experiment.run.elicit`): SmolLM2-135M-Instruct reasons (up to `elicit.budget` tokens) then answers
about `elicit.limit` items of TASK's train split (default `requests/harmful`) with their labels stripped; the top
30 % and bottom 30 % of its with-thinking scores become positives and negatives; the top 2 layers train on them
from cached features (the training setup of configs/demo.py); validation AUROC on the gold task before and after
training. `--config.elicit.labels=gold` trains on the same items with their gold labels (the supervised
comparison of the same size).
"""
from __future__ import annotations

import pathlib

import ml_collections

from monitor_jax.core import config as base

demo = base.load_module(pathlib.Path(__file__).with_name("demo.py"))
PSEUDO_TASK = "elicit/pseudo"


def get_config(arg: str | None = None):
    task = arg or "requests/harmful"
    c = demo.get_config()
    with c.unlocked():
        c.data.max_len = 256
        c.data.buckets = (128, 256)
        c.data.stages = [base.stage(None, base.task_component("pseudo", [PSEUDO_TASK], 1.0, balance=1.0))]
        c.eval.tasks = (task,)
        c.eval.limit_per_task = 128
        c.elicit = ml_collections.ConfigDict()
        c.elicit.task = task
        c.elicit.split = "train"
        c.elicit.limit = 160
        c.elicit.budget = 48
        c.elicit.top = 0.3
        c.elicit.bottom = 0.3
        c.elicit.labels = "pseudo"
        c.elicit.pseudo_task = PSEUDO_TASK
        c.elicit.batch_size = 8
        c.elicit.max_len = 512
    return base.lock(c)
