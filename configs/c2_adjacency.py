"""C2 adjacency: the more adjacent the training domain, the more of the gap (untrained -> in-domain) is recovered.

    monitor-jax experiment --config=configs/c2_adjacency.py --out=experiments/results/c2_adjacency

Arms (96 balanced items each): far = tweet sentiment (negative); near = harmful requests of another category
(malicious use); closest to the agent-transcript task = another question about the same agent transcripts
(did the agent run a risky command the user asked for); in-domain arms for both cells (shared with C1).
Primary comparisons: on agent/sabotage, gap(closest) - gap(far) > 0; on requests/info_hazard,
gap(near) - gap(far) > 0. Precondition per cell: the in-domain gap base -> in-domain has a CI above 0 (else the
cell is not testable; its gaps would be undefined anyway).
"""
from __future__ import annotations

import pathlib

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))


def get_config(arg: str | None = None):
    del arg
    c = x.get_config()
    n = x.TRAIN_ITEMS
    with c.unlocked():
        e = c.experiment
        e.name, e.claim = "c2_adjacency", "C2"
        e.statement = ("The more adjacent the training domain, the more of the gap between the untrained and the "
                       "in-domain-trained model is recovered.")
        e.budget_minutes = 120.0
        e.cells = [x.agent_cell(), x.info_cell()]
        e.arms = [x.arm("base", label="untrained"),
                  x.arm("far", x.balanced("far", "tweets/negative", n), label="far: tweets"),
                  x.arm("near", x.balanced("near", "requests/malicious_use", n), label="near: malicious-use requests"),
                  x.arm("closest", x.balanced("closest", "agent/requested_risky", n),
                        label="closest: agent requested-risky"),
                  *x.in_domain_arms()]
        agent, info = (f"{cl.task}:primary" for cl in e.cells)
        e.comparisons = [
            x.comparison("gap_diff", agent, arm="closest", other="far", base="base", ref="in_agent", primary=True),
            x.comparison("gap_diff", info, arm="near", other="far", base="base", ref="in_info", primary=True),
            *[x.comparison("gap", agent, arm=a, base="base", ref="in_agent") for a in ("far", "near", "closest")],
            *[x.comparison("gap", info, arm=a, base="base", ref="in_info") for a in ("far", "near", "closest")],
        ]
        e.preconditions = [x.in_domain_gap(agent, "in_agent"), x.in_domain_gap(info, "in_info")]
        e.notes = ("'closest' for the agent task is the only other question about the same agent transcripts in the "
                   "suite (its labels are independent of sabotage by construction); for info hazards it is as far "
                   "as the tweets.",)
    return x.lock(c)
