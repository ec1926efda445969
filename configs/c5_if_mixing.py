"""C5 instruction-following (IF) mixing: IF data added to C4's single-task arm mends its prompt-following failure
and keeps its in-domain gain; done badly (token-mean loss, too little IF data) it does not.

    monitor-jax experiment --config=configs/c5_if_mixing.py --out=experiments/results/c5_if_mixing

Every arm trains the protocol's 1,200 row-visits on C4's single task (the BBC sport question, 96 balanced items)
and differs only in IF data (ShareGPT train conversations):
- `sport`: none (C4's arm; its failure on the entertainment probe is this claim's precondition);
- `if_mix`: IF rows interleaved (30 % of rows, 64 conversations), per-example loss (`example_mean`);
- `if_later`: 70 % of the steps on the sport question, then the rest on IF only;
- `if_diluted`: as `if_mix` with `loss.reduction=token_mean` (long IF answers swamp the single label token);
- `if_little`: as `if_mix` with only 4 IF conversations (repeated).
Seeds: 3 on the arms of the primary comparisons (sport, if_mix, if_later), 1 on the two done-badly arms
(secondary). Cells (test, 200 of the 324 articles each, stratified): the C4 probe (is it about entertainment?),
its reference (the probe's labels asked the sport question) and the sport question itself (the in-domain gain
that should be kept). Retention beside: NLL of 32 held-out ShareGPT answers and greedy generation checks per
model. Primary: on the probe, if_mix - sport > 0 and if_later - sport > 0, guarded by the C4 failure existing
here (base -> sport < 0 on the probe, CI below 0). max_len 512 (articles and conversations lose their middle)
keeps IF rows affordable on 2 cores. Dry run on the EPYC, cold cache: 113.0 min (retention, not in the
estimate, adds a few: 32 NLLs from the cached features and 8 short greedy answers per model).
Pod scales (configs/experiment.SCALES, plans in the README): `:qwen3-8b-lora` | `:llama3-8b-full` |
`:llama3-70b-lora`, ~111 M training tokens, about 1.0 h | 1.0 h | 4.4 h of training and evaluation.
"""
from __future__ import annotations

import pathlib

import ml_collections

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))

SPORT, PROBE = "news/sports:primary", "news/entertainment:primary"
CLS_SHARE_LATER, NEWS_N = 0.7, 200


def get_config(arg: str | None = None):
    """`arg`: a pod scale of configs/experiment.SCALES (none: the CPU default we report)."""
    c = x.get_config()
    with c.unlocked():
        c.data.max_len = 512
        c.data.buckets = (128, 256, 512)
        e = c.experiment
        e.name, e.claim = "c5_if_mixing", "C5"
        e.statement = ("Adding instruction-following data (interleaved or as a later stage) keeps the gains and "
                       "mitigates the prompt-following failure; token-mean mixing or too little IF data does not.")
        e.seeds = (0, 1, 2)
        e.budget_minutes = 120.0
        cls = x.balanced("sport", "news/sports", x.TRAIN_ITEMS)

        e.cells = [x.cell("news/entertainment", NEWS_N, "C4 probe: a new question on the trained domain"),
                   x.cell("news/entertainment", NEWS_N, "C4 reference: the probe's labels, asked the sport question",
                          name="news/entertainment:asked-sport", ask_with=SPORT),
                   x.cell("news/sports", NEWS_N, "in-domain: the trained question (the gain to keep)")]
        steps = -(-int(e.budget_rows) // int(c.data.batch_size))
        later = x.arm("if_later", cls, label="IF as a later stage")
        later.stages = [x.stage(round(steps * CLS_SHARE_LATER), cls),
                        x.stage(None, x.base.instruction_component("if", 1.0, limit=x.IF_ITEMS))]
        e.arms = [x.arm("base", label="untrained"),
                  x.arm("sport", cls, label="sport question only (C4's arm)"),
                  x.arm("if_mix", cls, x.instruction(), label="IF interleaved"),
                  later,
                  x.arm("if_diluted", cls, x.instruction(), seeds=(0,), loss__reduction="token_mean",
                        label="secondary, 1 seed: IF interleaved, token-mean (diluted)"),
                  x.arm("if_little", cls, x.instruction(4), seeds=(0,),
                        label="secondary, 1 seed: IF interleaved, 4 conversations")]
        e.retention = ml_collections.ConfigDict({"if_limit": 32, "checks": True})
        e.comparisons = [
            x.comparison("diff", PROBE, a="sport", b="if_mix", primary=True),  # the C4 probe mended ...
            x.comparison("diff", PROBE, a="sport", b="if_later", primary=True),
            x.comparison("diff", PROBE, a="sport", b="if_diluted", direction=-1),  # ... and not when done badly
            x.comparison("diff", PROBE, a="sport", b="if_little", direction=-1),
            *[x.comparison("diff", SPORT, a="base", b=a) for a in ("sport", "if_mix", "if_later")],  # gain kept
        ]
        e.preconditions = [x.precondition("diff", "the C4 failure exists here: base -> sport on the probe < 0",
                                          cell=PROBE, a="base", b="sport", direction=-1, guards=(PROBE,))]
        e.notes = ("Primary: the C4 probe improves over sport-only training with IF interleaved and with IF as a "
                   "later stage. 'Gain kept': base -> arm on the sport question stays above 0.",)
    return x.lock(x.scale(c, arg))
