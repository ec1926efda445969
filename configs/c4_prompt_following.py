"""C4 prompt-following failure: after training on one question, a completely different question about the same
data domain is answered as if it were the training question (worse than the untrained model).

    monitor-jax experiment --config=configs/c4_prompt_following.py --out=experiments/results/c4_prompt_following

Arms (96 balanced items, the protocol's 1,200 row-visits, 3 seeds; unreq 1): the untrained model; trained on
"is this BBC article about sport?" (sport); trained on "does this AgentDojo transcript show an action the user
did not ask for?" (unreq); and an off-domain control at the same budget, trained on tweet sentiment (tweets), so that a
domain-specific failure is told apart from the general degradation any single-task training brings (round 1: an
arm trained on harmful requests dropped the BBC probe further than the sport arm did). sport and unreq are also
off-domain arms for each other's probe.
Probes (test split), the BBC one beside its reference, the probe's labels asked with the *training* question (how
far the model answers the old question):
- BBC: "is this article about entertainment?" (sports articles are among its negatives);
- AgentDojo: "did the user ask for this sensitive action?" (agentdojo/requested) on the same transcripts (no
  reference cell: 188 more transcripts would not fit the 120 minutes, and this probe is secondary).
Primary, on the BBC probe: sport - base < 0 and sport - tweets < 0; its precondition: the sport arm learned its
question (news/sports test, base -> sport > 0). The AgentDojo probe (unreq - base, unreq - tweets) is secondary,
with 1 seed: its precondition, the committed AgentDojo learnability gap (a question the arm did not learn cannot
be what it answers), already fails, so the probe is not testable before the run and its seeds are spent on the
BBC probe. Also secondary: the inverted sport question (a negation, not a new question) and the reference.
Dry run on the EPYC, cold cache: 118.4 min.
News cells hold 200 of the 324 test articles (stratified), AgentDojo cells the whole split (188).
Pod scales (configs/experiment.SCALES, plans in the README): `:qwen3-8b-lora` | `:llama3-8b-full` |
`:llama3-70b-lora`, ~66 M training tokens, about 0.6 h | 0.6 h | 2.6 h of training and evaluation.
"""
from __future__ import annotations

import pathlib

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))

SPORT, UNREQ = "news/sports:primary", "agentdojo/unrequested:primary"
BBC, DOJO = "news/entertainment:primary", "agentdojo/requested:primary"
NEWS_N = 200  # of 324 test articles per news cell (stratified, seed 0): the whole split would cost 20 more minutes
LEARNABILITY = ("experiments/results/agent_learnability/results.json", "in_agentdojo+two_way+lr3e-3")


def get_config(arg: str | None = None):
    """`arg`: a pod scale of configs/experiment.SCALES (none: the CPU default we report)."""
    c = x.get_config()
    with c.unlocked():
        e = c.experiment
        e.name, e.claim = "c4_prompt_following", "C4"
        e.statement = ("After training on one task, a different question about the same data domain is answered as "
                       "if it were the training question, worse than by the untrained model.")
        e.seeds = (0, 1, 2)
        e.budget_minutes = 120.0
        e.cells = [
            x.cell("news/entertainment", NEWS_N, "probe (primary): a new question on the trained BBC domain"),
            x.cell("news/entertainment", NEWS_N, "reference: the probe's labels, asked the sport question",
                   name="news/entertainment:asked-sport", ask_with=SPORT, arms=("base", "sport")),
            x.cell("agentdojo/requested", 188, "probe (primary): a new question on the trained AgentDojo transcripts"),
            x.cell("news/sports", NEWS_N, "in-domain: the sport arm's own question (its precondition)",
                   arms=("base", "sport", "tweets")),
            x.cell("news/sports", NEWS_N, "secondary: the inverted sport question (is it not about sport?)",
                   prompt="inverted", arms=("base", "sport")),
        ]
        e.arms = [x.arm("base", label="untrained"),
                  x.arm("sport", x.balanced("sport", "news/sports", x.TRAIN_ITEMS), label="trained: sport?"),
                  x.arm("unreq", x.balanced("unreq", "agentdojo/unrequested", x.TRAIN_ITEMS), seeds=(0,),
                        label="secondary, 1 seed: trained: unrequested action?"),
                  x.arm("tweets", x.balanced("tweets", "tweets/negative", x.TRAIN_ITEMS),
                        label="off-domain control: trained on negative tweets")]
        e.comparisons = [
            *[x.comparison("diff", BBC, a=a, b="sport", direction=-1, primary=True) for a in ("base", "tweets")],
            *[x.comparison("diff", DOJO, a=a, b="unreq", direction=-1) for a in ("base", "tweets")],
            x.comparison("diff", BBC, a="unreq", b="sport", direction=-1),
            x.comparison("diff", DOJO, a="sport", b="unreq", direction=-1),
            x.comparison("diff", "news/entertainment:asked-sport", a="base", b="sport"),
            x.comparison("diff", "news/sports:inverted", a="base", b="sport", direction=-1),
        ]
        e.preconditions = [
            x.precondition("diff", f"the sport arm learned its question ({SPORT}: base -> sport > 0)", cell=SPORT,
                           a="base", b="sport", direction=1, guards=(BBC,)),
            x.committed_gap(LEARNABILITY[0], UNREQ, "base", LEARNABILITY[1], guards=(DOJO,))]
        e.notes = ("'toward the reference': a trained arm's probe AUROC beside its reference cell (same items, same "
                   "labels, the training question asked).",
                   "The AgentDojo precondition is the committed learnability run (408 transcripts, two-way loss, "
                   "lr 3e-3): the unreq arm here trains on 96 with the default recipe.")
    return x.lock(x.scale(c, arg))
