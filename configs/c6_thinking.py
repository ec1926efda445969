"""C6 thinking: no-thinking (1-token SFT) training also improves with-thinking classification.

    python experiments/run_all.py c6_thinking c7_summarization      # or: monitor-jax experiment --config=...

Arms (3 seeds; 1,200 row-visits; no reasoning ever seen in training): the untrained base model; C1's mixture with
IF data interleaved (`mixture_if`: 30 % of the rows are 64 ShareGPT conversations, so the trained model still
writes; round 1's 1-token-only mixture answered "Yes" on 98 % of items without reasoning); and C1's mixture itself
(1-token SFT only), secondary, 1 seed. Cells (test split, sizes fixed here), on two tasks none of whose domain or
prompt the mixture saw (harmful vs benign requests; info-hazard requests): the plain no-thinking score; with
thinking (the model reasons up to 48 greedy tokens, then a follow-up user turn asks for the final answer and the
answer slot, built like the no-thinking one, is scored: `eval/protocols/thinking.py`); and the empty-reasoning
control (the same two-turn conversation with an empty reasoning turn), which separates the reasoning from the
format.
Primary comparisons: mixture_if - base with thinking, on both tasks, guarded by the precondition that mixture_if
still reasons (its mean generated tokens >= 50 % of the untrained model's on that cell). max_len 512 (requests are
short; IF conversations lose their middle) keeps IF rows affordable on 2 cores.
Dry run on the EPYC, cold cache: 111.5 min
(training 41.3, cells 4.4, generation 65.9: prefill and a measured greedy decode step per batch).
Pod scales (configs/experiment.SCALES, plans in the README): `:qwen3-8b-lora` | `:llama3-8b-full` |
`:llama3-70b-lora`, ~24 M training tokens, about 0.2 h | 0.2 h | 1.0 h of training and evaluation,
plus generation.
"""
from __future__ import annotations

import pathlib

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))

TASKS = {"requests/harmful": 120, "requests/info_hazard": 280}  # info hazards: 24 positives at n=280
BUDGET = 48


def get_config(arg: str | None = None):
    """`arg`: a pod scale of configs/experiment.SCALES (none: the CPU default we report)."""
    c = x.get_config()
    with c.unlocked():
        e = c.experiment
        e.name, e.claim = "c6_thinking", "C6"
        e.statement = "No-thinking training also improves with-thinking classification."
        e.seeds = (0, 1, 2)
        e.budget_minutes = 120.0
        c.data.max_len = 512
        c.data.buckets = (128, 256, 512)
        e.cells, e.comparisons, e.preconditions = [], [], []
        for task, n in TASKS.items():
            e.cells += [x.cell(task, n, "no thinking (1-token answer)"),
                        x.cell(task, n, "with thinking", name=f"{task}:thinking", view="thinking", budget=BUDGET),
                        x.cell(task, n, "control: empty reasoning", name=f"{task}:control",
                               view="thinking_control", budget=BUDGET)]
            e.preconditions.append(x.precondition(
                "generation_ratio", f"the IF-mixed model still reasons on {task} (mean tokens >= 50 % of untrained)",
                cell=f"{task}:thinking", arm="mixture_if", ref="base", threshold=0.5,
                guards=(f"{task}:thinking",)))
            e.comparisons += [x.comparison("diff", f"{task}:{v}", a="base", b=a, primary=(a, v) == ("mixture_if",
                                                                                                 "thinking"))
                              for a in ("mixture_if", "mixture") for v in ("thinking", "primary", "control")]
        mixture = x.mixture_arm()
        mixture.seeds, mixture.label = (0,), "secondary, 1 seed: mixture (5 other tasks), 1-token SFT only"
        e.arms = [x.arm("base", label="untrained"), x.mixture_if_arm(), mixture]
        e.notes = ("With-thinking AUROC minus the control's says what the reasoning itself adds for each arm; both "
                   "use the same answer slot, so a trained label token is the one scored.",)
    return x.lock(x.scale(c, arg))
