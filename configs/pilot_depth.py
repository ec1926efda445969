"""The protocol pilot (issue 22 part 5): trainable depth, top 2 vs top 4 layers from cached features, on four
tasks, 1,200 row-visits per seed (1,500 did not fit a session on 2 cores: `--dry_run`), validation split only
(test is never read here).

    monitor-jax experiment --config=configs/pilot_depth.py:2 --out=experiments/results/pilot_depth/top2
    monitor-jax experiment --config=configs/pilot_depth.py:4 --out=experiments/results/pilot_depth/top4
    python experiments/pilot_depth.py   # both -> experiments/results/pilot_depth/{README.md,curves.png}

Run on 2 cores as `:4,agentdojo,harmful,info` then `:2,agentdojo,harmful,info` (one session), and `agent` (the
next): results then name the tasks they hold. The argument is the trainable depth k (one process per depth: the frozen lower stack, and so the feature store's
split layer, is fixed per process). Arms: the untrained model and one in-domain arm per task (balanced training
items: up to 408, 204 per class), evaluated every 250 row-visits on 96 validation items per
task; the cells score the chosen checkpoint on the task's whole validation split. The protocol's default depth
and budget are read off the curves (AUROC vs row-visits and CPU minutes), see the results README.
"""
from __future__ import annotations

import pathlib

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))

TASKS = {"agentdojo": "agentdojo/unrequested", "agent": "agent/sabotage", "harmful": "requests/harmful",
         "info": "requests/info_hazard"}
CELL_ITEMS = {"agentdojo": 96, "agent": 96, "harmful": 200, "info": 407}  # validation items per cell
TRAIN_ITEMS = {"agentdojo": 408, "agent": 204, "harmful": 408, "info": 408}  # balanced training items (info: 366)
ROWS = 1200
# Recipe variants, named after the task in the argument ("agentdojo+two_way+lr3e-3"): training-config overrides.
VARIANTS = {"two_way": {"loss__kind": "two_way"}, "lr3e-3": {"optim__lr": 3e-3}, "lr3e-4": {"optim__lr": 3e-4},
            "rows2400": {"optim__total_rows": 2400}}


def in_domain_arm(k: str, depth: int, seeds: tuple[int, ...] | None = None, variants: tuple[str, ...] = ()):
    """The in-domain arm of task `k` (a key of TASKS): its balanced training items, `seeds` (None: the experiment's),
    with the recipe `variants` (keys of VARIANTS) applied."""
    overrides = {key: v for name in variants for key, v in VARIANTS[name].items()}
    name = "+".join((f"in_{k}", *variants))
    return x.arm(name, x.balanced(k, TASKS[k], TRAIN_ITEMS[k]), label=f"in-domain {TASKS[k]}" + (
        f" ({', '.join(variants)})" if variants else ""), x=depth, seeds=seeds, **overrides)


def recipe(depth: int):
    """The pilot's training keys at depth k (unlocked; the learnability experiment reuses them, and so the runs)."""
    c = x.get_config()
    with c.unlocked():
        c.train.top_k = depth
        c.eval.every_rows = 200
        c.data.buckets = (128, 256, 512, 768, 1024)  # agent transcripts: 42-57 % of rows fit 768
        c.experiment.select_limit = 96
        c.experiment.budget_rows = ROWS
    return c


def get_config(arg: str | None = None):
    """`arg`: the depth k, optionally followed by the tasks to run ("4,agentdojo,harmful"; default all four), each
    optionally with recipe variants ("4,agentdojo+two_way": an arm named in_agentdojo+two_way)."""
    depth, *only = (arg or "2").split(",")
    depth = int(depth)
    c = recipe(depth)
    with c.unlocked():
        e = c.experiment
        e.name, e.claim = f"pilot_depth_top{depth}" + (f"_{'_'.join(only)}" if only else ""), "pilot"
        e.name = e.name.replace("+", "-")
        e.statement = f"How far do in-domain arms get in {ROWS} row-visits with the top {depth} layers trainable?"
        e.split = "validation"
        e.seeds = (0,)
        e.budget_minutes = 150.0
        specs = [tuple(s.split("+")) for s in (tuple(only) or ("agentdojo", "harmful", "info", "agent"))]
        arms = [in_domain_arm(k, depth, variants=tuple(v)) for k, *v in specs]
        keys = list(dict.fromkeys(k for k, *_ in specs))
        of = {k: [a.name for a, (kk, *_) in zip(arms, specs) if kk == k] for k in keys}
        e.cells = [x.cell(TASKS[k], CELL_ITEMS[k], "validation: the pilot's target", arms=("base", *of[k]))
                   for k in keys]
        e.arms = [x.arm("base", label="untrained")] + arms
        e.comparisons = [x.comparison("diff", f"{TASKS[k]}:primary", a="base", b=a.name, primary=True)
                         for a, (k, *_) in zip(arms, specs)]
        e.notes = (f"Pilot, validation only: top {depth} of 30 layers, {ROWS} row-visits per seed, one seed. Checkpoints "
                   "are chosen on 96 validation items per task, which the cells (the whole validation split) include: "
                   "the cells' AUROC is a little optimistic, the same way for every depth.",)
    return x.lock(c)
