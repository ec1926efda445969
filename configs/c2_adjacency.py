"""C2 adjacency: the more adjacent the training domain, the more of the gap (untrained -> in-domain) is recovered.

    monitor-jax experiment --config=configs/c2_adjacency.py --out=experiments/results/c2_adjacency

The paper's headline is cyber-harm requests -> agent transcripts; ours: HarmBench/Do-Not-Answer cyber requests ->
`agentdojo/unrequested`. Transfer arms (each 82 distinct balanced training items, the most the cyber source has,
41 positives; 1,200 row-visits; 3 seeds): near = cyber requests, far = tweet sentiment (negative), each with its
shuffled-label control (same items, prompts and steps, labels permuted). Secondary arms (1 seed, labelled
secondary): closest = the procedural agent transcripts (agent/sabotage, another source of agent transcripts) and
chem/bio requests (the paper's second harm domain; 35 positives, so 70 items).
Targets (test split, whole): agentdojo/unrequested, whose in-domain reference is the committed agent-learnability
arm (experiments/results/agent_learnability: its CI includes 0, so every gap on it is undefined and its
comparisons are not testable; the cell is scored anyway for the raw AUROCs), and requests/info_hazard, whose
in-domain reference (in_info, 3 seeds) is trained here: cyber requests are its near domain (same source family,
another category), tweets its far one.
Primary comparisons: on info hazards gap recovered(near) - gap recovered(far) > 0; on AgentDojo AUROC(near) -
AUROC(far) > 0 (the same sign as their gap difference whenever the in-domain gap, their common denominator, is
positive: the precondition that guards it).
Pod scales (configs/experiment.SCALES, plans in the README): `:qwen3-8b-lora` | `:llama3-8b-full` |
`:llama3-70b-lora`, ~75 M training tokens, about 0.6 h | 0.7 h | 3.0 h of training and evaluation.
"""
from __future__ import annotations

import pathlib

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))

ITEMS = 82  # distinct training items per transfer arm: 2 x the 41 cyber positives of the train split
LEARNABILITY = ("experiments/results/agent_learnability/results.json", "in_agentdojo+two_way+lr3e-3")


def get_config(arg: str | None = None):
    """`arg`: a pod scale of configs/experiment.SCALES (none: the CPU default we report)."""
    c = x.get_config()
    with c.unlocked():
        e = c.experiment
        e.name, e.claim = "c2_adjacency", "C2"
        e.statement = ("The more adjacent the training domain, the more of the gap between the untrained and the "
                       "in-domain-trained model is recovered.")
        e.seeds = (0, 1, 2)
        e.budget_minutes = 120.0
        dojo = x.cell("agentdojo/unrequested", 188, "target: AgentDojo transcripts (the paper's ControlArena analogue)")
        info = x.cell(x.INFO, 440, "target: info-hazard requests (the whole test split)")
        e.cells = [dojo, info]
        near = x.arm("near", x.balanced("near", "requests/cyber", ITEMS), label="near: cyber requests")
        far = x.arm("far", x.balanced("far", "tweets/negative", ITEMS), label="far: tweets (negative)")
        e.arms = [x.arm("base", label="untrained"), near, x.control_arm(near), far, x.control_arm(far),
                  x.arm("closest", x.balanced("closest", x.AGENT, ITEMS), seeds=(0,),
                        label="secondary, 1 seed: closest: procedural agent transcripts (sabotage)"),
                  x.arm("chembio", x.balanced("chembio", "requests/chembio", ITEMS), seeds=(0,),
                        label="secondary, 1 seed: chem/bio requests (70 items)"),
                  x.arm("in_info", x.balanced("info", x.INFO, ITEMS), label="in-domain info_hazard")]
        k_dojo, k_info = (f"{cl.task}:primary" for cl in e.cells)
        ref_dojo = "in_agentdojo"  # the committed learnability arm; not trained here
        e.comparisons = [
            x.comparison("diff", k_dojo, a="far", b="near", primary=True),
            x.comparison("gap_diff", k_info, arm="near", other="far", base="base", ref="in_info", primary=True),
            *[x.comparison("gap", k_info, arm=a, base="base", ref="in_info") for a in ("near", "far", "closest",
                                                                                       "chembio")],
            *[x.comparison("diff", k, a=f"{a}_shuffled", b=a) for k in (k_dojo, k_info) for a in ("near", "far")],
            *[x.comparison("diff", k_dojo, a="base", b=a) for a in ("near", "far", "closest", "chembio")],
        ]
        e.preconditions = [x.committed_gap(LEARNABILITY[0], k_dojo, "base", LEARNABILITY[1], guards=(k_dojo,)),
                           x.in_domain_gap(k_info, "in_info")]
        e.notes = (f"Every transfer arm trains on {ITEMS} distinct items (chem/bio: 70) for the same 1,200 "
                   "row-visits. On agentdojo/unrequested the in-domain arm is the committed learnability run "
                   f"({ref_dojo}, top 2, two-way loss, lr 3e-3): its gap's CI includes 0, so gap recovered is "
                   "undefined there and C2's agent target is not testable at this scale; the transfer arms' AUROCs "
                   "against the untrained model and their controls are reported beside it.",)
    return x.lock(x.scale(c, arg))
