"""C6 thinking: no-thinking (1-token SFT) training also improves with-thinking classification.

    python experiments/run_all.py c6_thinking c7_summarization      # or: monitor-jax experiment --config=...

Arms: the untrained base model and C1's mixture (the same runs: five tasks of four other domains, 1-token SFT, no
reasoning ever seen in training). Cells (test split, sizes fixed here), on two tasks none of whose domain or
prompt the mixture saw (harmful vs benign requests; info-hazard requests): the plain no-thinking score; with
thinking (the model reasons up to 48 greedy tokens, then a follow-up user turn asks for the final answer and the
answer slot, built like the no-thinking one, is scored: `eval/protocols/thinking.py`); and the empty-reasoning
control (the same two-turn conversation with an empty reasoning turn), which separates the reasoning from the
format.
Primary comparisons: trained - base with thinking, on both tasks.
"""
from __future__ import annotations

import pathlib

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))

TASKS = {"requests/harmful": 120, "requests/info_hazard": 160}  # info hazards: ~15 positives at n=160
BUDGET = 48


def get_config(arg: str | None = None):
    del arg
    c = x.get_config()
    with c.unlocked():
        e = c.experiment
        e.name, e.claim = "c6_thinking", "C6"
        e.statement = "No-thinking training also improves with-thinking classification."
        e.budget_minutes = 60.0  # the mixture's runs are C1's (counted: 60.5 min); nothing new is trained
        e.cells, e.comparisons, e.preconditions = [], [], []
        for task, n in TASKS.items():
            e.cells += [x.cell(task, n, "no thinking (1-token answer)"),
                        x.cell(task, n, "with thinking", name=f"{task}:thinking", view="thinking", budget=BUDGET),
                        x.cell(task, n, "control: empty reasoning", name=f"{task}:control",
                               view="thinking_control", budget=BUDGET)]
            e.preconditions.append(x.precondition(
                "generation_ratio", f"the trained model still reasons on {task} (mean tokens >= 50 % of untrained)",
                cell=f"{task}:thinking", arm="mixture", ref="base", threshold=0.5, guards=(f"{task}:thinking",)))
            e.comparisons += [x.comparison("diff", f"{task}:thinking", a="base", b="mixture", primary=True),
                              x.comparison("diff", f"{task}:primary", a="base", b="mixture"),
                              x.comparison("diff", f"{task}:control", a="base", b="mixture")]
        e.arms = [x.arm("base", label="untrained"), x.mixture_arm()]
        e.notes = ("With-thinking AUROC minus the control's says what the reasoning itself adds for each arm; both "
                   "use the same answer slot, so a trained label token is the one scored.",)
    return x.lock(c)
