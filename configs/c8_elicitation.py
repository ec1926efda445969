"""C8 unsupervised elicitation: with-thinking predictions on unlabelled data, used as pseudo-labels for 1-token
SFT, improve no-thinking AUROC without gold labels.

    python experiments/c8_elicitation.py            # thinking pseudo-labels, then the runner; results/c8_elicitation

Steps: the labeller, C1's mixture with IF interleaved (`mixture_if`, seed 0: trained on five tasks of other domains
and ShareGPT conversations, no label of the target task; it still reasons, unlike round 1's untrained labeller at
42.7 % accuracy), reasons (up to 48 tokens) then answers "is this request harmful?" about 160 unlabelled items of
the train split (labels stripped); the top and bottom 30 % of its with-thinking scores become positives and
negatives (`monitor_jax.experiment.run.elicit_task`). The labeller is fixed before the run (not chosen on any
target label). Arms (top 2 layers, 1,200 row-visits, 3 seeds): the untrained model; trained on the pseudo-labels
(checkpoint chosen on the pseudo-labelled held-out rows: no gold label is used); trained on the same items with
their gold labels (the supervised comparison of the same size); and the labeller itself. Cells: no-thinking AUROC
on the gold task's test split (240 items), and with thinking for the untrained model and the labeller.
Precondition: the pseudo-labels agree with the gold labels of the same items more often than chance (Wilson 95 %
CI above 50 %); otherwise the claim is not testable. Cost on the EPYC, cold cache (the dry run cannot size the
pseudo arms before their task files exist): the labeller ~20 min (C6's mixture_if dry run: 36.8 min for 3 seeds),
its 160 with-thinking answers ~3 min, pseudo and gold 3 seeds each on ~96 short requests ~12 min, cells ~15 min
(two thinking models x 240 items x 48 tokens at ~47 tokens/s): ~50 min.
Pod scales (configs/experiment.SCALES, plans in the README): `:qwen3-8b-lora` | `:llama3-8b-full` |
`:llama3-70b-lora`, ~17 M training tokens, about 0.2 h | 0.2 h | 0.7 h of training and evaluation,
plus generation.
"""
from __future__ import annotations

import pathlib

import ml_collections

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))

PSEUDO, GOLD = "elicit/pseudo", "elicit/gold"
N, BUDGET = 240, 48


def get_config(arg: str | None = None):
    """`arg`: "task", a pod scale of configs/experiment.SCALES, or "task,scale" (default: requests/harmful on the
    CPU)."""
    parts = [p for p in (arg or "").split(",") if p]
    scale = next((p for p in parts if p in x.SCALES), None)
    task = next((p for p in parts if p not in x.SCALES), "requests/harmful")
    c = x.get_config()
    with c.unlocked():
        c.data.max_len = 512
        c.data.buckets = (128, 256, 512)
        c.elicit = ml_collections.ConfigDict({"task": task, "split": "train", "limit": 160, "budget": BUDGET,
                                              "top": 0.3, "bottom": 0.3, "labels": "pseudo", "pseudo_task": PSEUDO,
                                              "batch_size": 8, "max_len": 512, "labeller": "mixture_if"})
        e = c.experiment
        e.name, e.claim = "c8_elicitation", "C8"
        e.statement = ("With-thinking predictions on unlabelled data, used as pseudo-labels for 1-token SFT, improve "
                       "no-thinking AUROC without gold labels.")
        e.seeds = (0, 1, 2)
        e.budget_minutes = 120.0
        e.cells = [x.cell(task, N, "the gold task (no-thinking)"),
                   x.cell(task, N, "the gold task with thinking (untrained model and labeller)",
                          name=f"{task}:thinking", view="thinking", budget=BUDGET, arms=("base", "mixture_if"))]
        labeller = x.mixture_if_arm()
        labeller.seeds, labeller.label = (0,), "the labeller: mixture + IF, seed 0 (no target label)"
        e.arms = [x.arm("base", label="untrained"), labeller,
                  x.arm("pseudo", x.task_component("pseudo", [PSEUDO], 1.0), label="pseudo-labels (no gold)"),
                  x.arm("gold", x.task_component("gold", [GOLD], 1.0), label="gold labels, same items")]
        k = f"{task}:primary"
        e.comparisons = [x.comparison("diff", k, a="base", b="pseudo", primary=True),
                         x.comparison("diff", k, a="pseudo", b="gold"),
                         x.comparison("diff", k, a="base", b="gold"),
                         x.comparison("gap", k, arm="pseudo", base="base", ref="gold"),
                         x.comparison("diff", k, a="mixture_if", b="pseudo"),
                         x.comparison("diff", f"{task}:thinking", a="base", b="mixture_if")]
        e.preconditions = [x.precondition("label_agreement", "pseudo-labels beat chance: accuracy CI above 50 %",
                                          task=PSEUDO, reference=GOLD, threshold=0.5)]
    c = x.scale(c, scale)
    with c.unlocked():
        c.elicit.max_len = int(c.data.max_len)  # the labeller reads what the monitors read
    return x.lock(c)
