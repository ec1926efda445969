"""C4 prompt-following failure: after training on one question, a different question about the same data is
answered as if it were the training question (worse than the untrained model).

    monitor-jax experiment --config=configs/c4_prompt_following.py --out=experiments/results/c4_prompt_following

Arms (96 balanced items, 48 steps, 2 seeds): the untrained model; trained on "is this BBC article about sport?";
trained on "is this request harmful?". Probes (test split, sizes fixed here), each beside its reference — the
probe's labels scored with the *training* question (how much the model answers the old question):
- primary, BBC: "is this article about entertainment?" (sports articles are its negatives);
- harm, on harmful requests only (a harmful-vs-benign shortcut cannot help): "does it seek info hazards?";
- harm, inverted: "is this request safe?" (labels flipped).
C4 holds when the trained model falls below the base model on a probe (primary: BBC) and moves toward its
reference.
"""
from __future__ import annotations

import pathlib

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))

SPORT, HARM = "news/sports:primary", "requests/harmful:primary"


def get_config(arg: str | None = None):
    del arg
    c = x.get_config()
    with c.unlocked():
        c.data.max_len = 512
        c.data.buckets = (128, 256, 512)
        e = c.experiment
        e.name, e.claim = "c4_prompt_following", "C4"
        e.statement = ("After training on one task, a different question about the same data domain is answered as "
                       "if it were the training question, worse than by the untrained model.")
        e.budget_minutes = 90.0  # 45 stopped the first run after one seed on a machine shared with 3 jobs
        only_harmful = dict(subset=HARM)
        e.cells = [
            x.cell("news/entertainment", 200, "probe (primary): new question on the trained BBC domain"),
            x.cell("news/entertainment", 200, "reference: same labels, asked the sport question",
                   name="news/entertainment:asked-sport", ask_with=SPORT),
            x.cell("requests/info_hazard", 198, "probe: new question on harmful requests only",
                   name="requests/info_hazard:harmful-only", **only_harmful),
            x.cell("requests/info_hazard", 198, "reference: same labels, asked the harmful question",
                   name="requests/info_hazard:harmful-only:asked-harmful", ask_with=HARM, **only_harmful),
            x.cell("requests/harmful", 200, "probe: the inverted question (is it safe?)", prompt="inverted"),
            x.cell("requests/harmful", 200, "reference: inverted labels, asked the harmful question",
                   prompt="inverted", name="requests/harmful:inverted:asked-harmful", ask_with=HARM),
        ]
        e.arms = [x.arm("base", label="untrained"),
                  x.arm("sport", x.balanced("sport", "news/sports", x.TRAIN_ITEMS), label="trained: sport?"),
                  x.arm("harm", x.balanced("harm", "requests/harmful", x.TRAIN_ITEMS), label="trained: harmful?")]
        e.comparisons = [
            x.comparison("diff", "news/entertainment:primary", a="base", b="sport", direction=-1, primary=True),
            x.comparison("diff", "requests/info_hazard:harmful-only", a="base", b="harm", direction=-1),
            x.comparison("diff", "requests/harmful:inverted", a="base", b="harm", direction=-1),
            x.comparison("diff", "news/entertainment:asked-sport", a="base", b="sport"),
            x.comparison("diff", "requests/info_hazard:harmful-only:asked-harmful", a="base", b="harm"),
        ]
        e.notes = ("'toward the reference': compare a trained arm's probe AUROC with its reference cell (same items, "
                   "same labels, the training question asked).",
                   "The harm arm is also scored on the BBC cells and the sport arm on the harm cells: off-domain "
                   "controls.")
    return x.lock(c)
