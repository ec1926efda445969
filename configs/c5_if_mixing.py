"""C5 instruction-following (IF) mixing: adding IF data keeps the C1 gains and mitigates the C4 failure; done
badly (token-mean loss, too little IF data) it does not.

    monitor-jax experiment --config=configs/c5_if_mixing.py --out=experiments/results/c5_if_mixing

Every arm trains 48 steps of 8 rows on the same classification mixture (the C1 mixture plus the BBC sport
question, 96 balanced items per task); the arms differ only in IF data (ShareGPT train conversations, 64):
- `cls`: none;
- `if_mix`: IF rows interleaved (30 % of rows), per-example loss (each row weighs the same, `example_mean`);
- `if_later`: 32 classification steps, then 16 steps of IF only;
- `if_diluted`: as `if_mix` but `loss.reduction=token_mean` (long IF answers swamp the single label token);
- `if_little`: as `if_mix` but only 4 IF conversations (repeated).
Cells (test): the C1 held-out request tasks, the C4 BBC probe and its reference. Retention: NLL of 32 held-out
ShareGPT answers and 8 greedy generation checks per model. max_len 512 (articles and conversations lose their
middle) keeps IF rows affordable on 2 cores.
"""
from __future__ import annotations

import pathlib

import ml_collections

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))

CLS = ["tweets/negative", "news/business", "news/tech", "toxicity/threat", "jailbreak/jailbreak", "news/sports"]
IF_ITEMS, IF_SHARE = 64, 0.3


def get_config(arg: str | None = None):
    del arg
    c = x.get_config()
    n = x.TRAIN_ITEMS
    with c.unlocked():
        c.data.max_len = 512
        c.data.buckets = (128, 256, 512)
        e = c.experiment
        e.name, e.claim = "c5_if_mixing", "C5"
        e.statement = ("Adding instruction-following data (interleaved or as a later stage) keeps the transfer gains "
                       "and mitigates the prompt-following failure; token-mean mixing or too little IF data does not.")
        e.budget_minutes = 160.0
        cls = x.task_component("cls", CLS, 1.0, limit_per_task=n, balance=1.0)
        share = IF_SHARE / (1 - IF_SHARE)  # IF weight relative to the classification component

        def with_if(limit: int):
            return x.base.instruction_component("if", share, limit=limit)

        e.cells = [x.cell("requests/harmful", 200, "held-out (C1)"), x.info_cell(),
                   x.cell("news/entertainment", 200, "C4 probe: new question on a trained domain"),
                   x.cell("news/entertainment", 200, "C4 reference: same labels, asked the sport question",
                          name="news/entertainment:asked-sport", ask_with="news/sports:primary")]
        later = x.arm("if_later", cls, label="IF as a later stage")
        later.stages = [x.stage(32, cls), x.stage(None, x.base.instruction_component("if", 1.0, limit=IF_ITEMS))]
        e.arms = [x.arm("base", label="untrained"),
                  x.arm("cls", cls, label="classification only"),
                  x.arm("if_mix", cls, with_if(IF_ITEMS), label="IF interleaved"),
                  later,
                  x.arm("if_diluted", cls, with_if(IF_ITEMS), label="IF interleaved, token-mean (diluted)",
                        loss__reduction="token_mean"),
                  x.arm("if_little", cls, with_if(4), label="IF interleaved, 4 conversations")]
        e.retention = ml_collections.ConfigDict({"if_limit": 32, "checks": True})
        harm, info, probe = "requests/harmful:primary", "requests/info_hazard:primary", "news/entertainment:primary"
        e.comparisons = [
            x.comparison("diff", probe, a="cls", b="if_mix", primary=True),  # the C4 probe mended ...
            x.comparison("diff", probe, a="cls", b="if_later", primary=True),
            x.comparison("diff", probe, a="cls", b="if_diluted", direction=-1),  # ... and not when done badly
            x.comparison("diff", probe, a="cls", b="if_little", direction=-1),
            *[x.comparison("diff", k, a="base", b=a) for k in (harm, info) for a in ("cls", "if_mix", "if_later")],
            *[x.comparison("diff", k, a="cls", b=a) for k in (harm, info) for a in ("if_mix", "if_later")],
        ]
        e.preconditions = [x.precondition("diff", "the C4 failure exists here: base -> cls on the probe < 0",
                                          cell=probe, a="base", b="cls", direction=-1, guards=(probe,))]
        e.notes = ("Primary: the C4 probe improves over classification-only training with IF interleaved and with IF "
                   "as a later stage. 'Gains kept': the base→arm differences on the held-out cells stay positive "
                   "where base→cls is, and cls→arm does not fall below 0.",)
    return x.lock(c)
