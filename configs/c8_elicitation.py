"""C8 unsupervised elicitation: with-thinking predictions on unlabelled data, used as pseudo-labels for 1-token
SFT, improve no-thinking AUROC without gold labels.

    python experiments/c8_elicitation.py            # thinking pseudo-labels, then the runner; results/c8_elicitation

Steps: SmolLM2-135M-Instruct reasons (up to 48 tokens) then answers "is this request harmful?" about 160
unlabelled items of the train split (labels stripped); the top and bottom 30 % of its with-thinking scores become
positives and negatives (`monitor_jax.experiment.run.elicit_task`). Arms (top 2 layers, 48 steps, 2 seeds): the untrained
model; trained on the pseudo-labels (checkpoint chosen on the pseudo-labelled held-out rows: no gold label is
used); trained on the same items with their gold labels (the supervised comparison of the same size). Cell:
no-thinking AUROC on the gold task's test split. Precondition: the pseudo-labels agree with the gold labels of
the same items more often than chance (Wilson 95 % CI above 50 %); otherwise the claim is not testable.
"""
from __future__ import annotations

import pathlib

import ml_collections

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))

PSEUDO, GOLD = "elicit/pseudo", "elicit/gold"


def get_config(arg: str | None = None):
    task = arg or "requests/harmful"
    c = x.get_config()
    with c.unlocked():
        c.data.max_len = 512
        c.data.buckets = (128, 256, 512)
        c.elicit = ml_collections.ConfigDict({"task": task, "split": "train", "limit": 160, "budget": 48,
                                              "top": 0.3, "bottom": 0.3, "labels": "pseudo", "pseudo_task": PSEUDO,
                                              "batch_size": 8, "max_len": 512})
        e = c.experiment
        e.name, e.claim = "c8_elicitation", "C8"
        e.statement = ("With-thinking predictions on unlabelled data, used as pseudo-labels for 1-token SFT, improve "
                       "no-thinking AUROC without gold labels.")
        e.budget_minutes = 45.0
        e.cells = [x.cell(task, 200, "the gold task (no-thinking)")]
        e.arms = [x.arm("base", label="untrained"),
                  x.arm("pseudo", x.task_component("pseudo", [PSEUDO], 1.0), label="pseudo-labels (no gold)"),
                  x.arm("gold", x.task_component("gold", [GOLD], 1.0), label="gold labels, same items")]
        k = f"{task}:primary"
        e.comparisons = [x.comparison("diff", k, a="base", b="pseudo", primary=True),
                         x.comparison("diff", k, a="pseudo", b="gold"),
                         x.comparison("diff", k, a="base", b="gold"),
                         x.comparison("gap", k, arm="pseudo", base="base", ref="gold")]
        e.preconditions = [x.precondition("label_agreement", "pseudo-labels beat chance: accuracy CI above 50 %",
                                          task=PSEUDO, reference=GOLD, threshold=0.5)]
    return x.lock(c)
