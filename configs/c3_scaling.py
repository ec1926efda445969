"""C3 scaling: with a fixed small in-domain set, adding more adjacent-domain data still helps (fixed steps).

    monitor-jax experiment --config=configs/c3_scaling.py --out=experiments/results/c3_scaling

Arms: 16 balanced in-domain items (requests/info_hazard) alone, and with 64 / 256 balanced adjacent items
(requests/harmful: harmful vs benign requests, all categories), every item drawn equally often, 48 steps of
8 rows in every arm. Checkpoints are chosen on info_hazard validation only (200 items). Cell: the whole
info_hazard test split. Precondition: the compared arms train on the in-domain items equally often — as
written (weights 1 : n/16 at fixed steps) the 256-item arm sees them 17x less often, so the design confounds
"more adjacent data" with "fewer in-domain updates" and the claim is not testable until the design changes.
"""
from __future__ import annotations

import pathlib

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))

SMALL, ADJACENT = 16, (64, 256)


def get_config(arg: str | None = None):
    del arg
    c = x.get_config()
    with c.unlocked():
        e = c.experiment
        e.name, e.claim = "c3_scaling", "C3"
        e.statement = "With a fixed small in-domain set, adding more adjacent-domain data still helps."
        e.budget_minutes = 60.0
        e.select_limit = 200
        e.cells = [x.info_cell()]
        small = x.balanced("in", x.INFO, SMALL)
        e.arms = [x.arm("base", label="untrained"),
                  x.arm("small", small, label=f"{SMALL} in-domain", x=0)]
        for n in ADJACENT:
            adj = x.task_component("adjacent", ["requests/harmful"], float(n) / SMALL, limit_per_task=n, balance=1.0)
            e.arms.append(x.arm(f"small+{n}", small, adj, label=f"{SMALL} in-domain + {n} adjacent", x=n))
        for a in e.arms:
            a.select = (f"{x.INFO}:primary",)
        info = f"{x.INFO}:primary"
        e.comparisons = [x.comparison("diff", info, a="small", b=f"small+{ADJACENT[-1]}", primary=True),
                         x.comparison("diff", info, a="small", b=f"small+{ADJACENT[0]}"),
                         x.comparison("diff", info, a=f"small+{ADJACENT[0]}", b=f"small+{ADJACENT[-1]}"),
                         x.comparison("diff", info, a="base", b="small")]
        e.preconditions = [x.precondition(
            "exposure_ratio", "the arms see the in-domain set equally often (most / fewest rows <= 1.5)", task=x.INFO,
            arms=tuple(a.name for a in e.arms[1:]), threshold=1.5)]
        e.notes = ("The adjacent task's positives are harmful requests of every category, info hazards among them "
                   "(train-split items only: the split is per item, shared by all tasks of the requests domain).",)
    return x.lock(c)
