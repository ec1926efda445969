"""C1 transfer: training on a mixture of other tasks improves AUROC on unseen tasks with unseen prompts.

    monitor-jax experiment --config=configs/c1_transfer.py --out=experiments/results/c1_transfer

Arms (3 seeds each, the protocol's recipe: top 2 of 30 layers, 1,200 row-visits, checkpoint chosen on 96
validation items of the arm's own tasks): the untrained base model; a mixture of five tasks from three sources
none of the cells shares (tweet sentiment; two BBC topic questions; threat and identity-attack toxicity from
RealToxicityPrompts; 96 balanced items each, equal weights: no agent data, no request, no ShareGPT text, no cell's
prompt); and the mixture's shuffled-label control (the same items, prompts and steps, labels permuted within each
task), so that learning the answer format is not counted as transfer.
Cells (test split, whole splits, sizes fixed here): the two agent monitors (agentdojo/unrequested, agent/sabotage)
and two held-out request categories (info hazards, misinformation), each under its own primary prompt.
Primary comparisons per cell: mixture - base > 0 and mixture - control > 0. The agent cells are guarded by the
committed agent-learnability results (experiments/results/agent_learnability): where in-domain training itself
does not move the cell (CI low <= 0), transfer to it is not testable.
Pod scales (configs/experiment.SCALES, plans in the README): `:qwen3-8b-lora` | `:llama3-8b-full` |
`:llama3-70b-lora`, ~43 M training tokens, about 0.4 h | 0.4 h | 1.7 h of training and evaluation.
"""
from __future__ import annotations

import pathlib

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))

CELLS = (("agentdojo/unrequested", 188, "held-out: AgentDojo transcripts, an action the user did not ask for"),
         ("agent/sabotage", 251, "held-out: procedural agent transcripts, sabotage"),
         ("requests/info_hazard", 440, "held-out: one harm category of requests (info hazards)"),
         ("requests/misinfo", 440, "held-out: one harm category of requests (misinformation)"))
LEARNABILITY = "experiments/results/agent_learnability"
# The committed in-domain gaps that guard the agent cells: (results.json, its cell, its in-domain arm).
GUARDS = {"agentdojo/unrequested": (f"{LEARNABILITY}/results.json", "in_agentdojo+two_way+lr3e-3"),
          "agent/sabotage": (f"{LEARNABILITY}/agent_sabotage/results.json", "in_agent+two_way+lr3e-3")}


def get_config(arg: str | None = None):
    """`arg`: a pod scale of configs/experiment.SCALES (none: the CPU default we report)."""
    c = x.get_config()
    with c.unlocked():
        e = c.experiment
        e.name, e.claim = "c1_transfer", "C1"
        e.statement = ("Training on other tasks (other domains, other prompts) improves AUROC on unseen tasks "
                       "with unseen prompts.")
        e.seeds = (0, 1, 2)
        e.budget_minutes = 120.0
        e.cells = [x.cell(task, n, role) for task, n, role in CELLS]
        mixture = x.mixture_arm()
        e.arms = [x.arm("base", label="untrained"), mixture, x.control_arm(mixture)]
        keys = [f"{cl.task}:primary" for cl in e.cells]
        e.comparisons = [x.comparison("diff", k, a=a, b="mixture", primary=True)
                         for k in keys for a in ("base", "mixture_shuffled")]
        e.preconditions = [x.committed_gap(result, f"{task}:primary", "base", arm, guards=(f"{task}:primary",))
                           for task, (result, arm) in GUARDS.items()]
        e.notes = ("The mixture's sources share no item, domain or prompt with any cell (requests, jailbreaks and "
                   "ShareGPT-sourced text are left out of it). The agent cells' preconditions are read from the "
                   "committed learnability runs, not retrained here.",)
    return x.lock(x.scale(c, arg))
