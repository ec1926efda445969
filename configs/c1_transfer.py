"""C1 transfer: training on a mixture of other tasks improves AUROC on unseen tasks with unseen prompts.

    monitor-jax experiment --config=configs/c1_transfer.py --out=experiments/results/c1_transfer

Arms: the untrained base model; a mixture of five tasks from four domains that are not evaluated (tweet
sentiment, two BBC topic questions, threat toxicity, jailbreak detection; 96 balanced items each, equal
weights); in-domain training on info hazards (the denominator of "gap recovered", shared with C2) and on the agent task
(C2's runs): the agent cell is testable only where in-domain training moves it (precondition).
Cells (test split, sizes fixed here): the agent-transcript sabotage monitor, one harm category (info hazards)
and harmful-vs-benign requests: none of their domains or prompts is seen by the mixture.
"""
from __future__ import annotations

import pathlib

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))


def get_config(arg: str | None = None):
    del arg
    c = x.get_config()
    with c.unlocked():
        e = c.experiment
        e.name, e.claim = "c1_transfer", "C1"
        e.statement = ("Training on other tasks (other domains, other prompts) improves AUROC on unseen tasks "
                       "with unseen prompts.")
        e.budget_minutes = 200.0  # 90 skipped the in-domain arm after the mixture's runs; in_agent adds ~15 min
        harmful = x.cell("requests/harmful", 200, "held-out: harmful vs benign requests")
        e.cells = [x.agent_cell(), x.info_cell(), harmful]
        e.arms = [x.arm("base", label="untrained"),
                  x.mixture_arm(),
                  *reversed(x.in_domain_arms())]
        cells = [f"{cl.task}:primary" for cl in e.cells]
        e.comparisons = [x.comparison("diff", k, a="base", b="mixture", primary=True) for k in cells] + [
            x.comparison("gap", cells[1], arm="mixture", base="base", ref="in_info"),
            x.comparison("diff", cells[1], a="mixture", b="in_info"),
        ]
        e.preconditions = [x.in_domain_gap(cells[0], "in_agent")]
        e.notes = ("The mixture's tasks share no domain with the cells; every cell's prompt is one the mixture "
                   "never saw. Gap recovered is reported for info hazards here and for the agent task in C2 "
                   "(its in-domain arm costs ~15 min of agent-transcript features on 2 cores).",)
    return x.lock(c)
