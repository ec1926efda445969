"""C3 scaling: with a fixed small in-domain set, adding more adjacent-domain data still helps.

    monitor-jax experiment --config=configs/c3_scaling.py --out=experiments/results/c3_scaling

Target `agentdojo/unrequested` (the whole test split, 188 items). The in-domain set is fixed before the run: 32
balanced training transcripts drawn with item seed 0 (`task_component(item_seed=0)`), the same 32 in every arm and
seed. Two adjacent series, each point an arm: cyber requests (requests/cyber: 16 / 32 / all 82 balanced train
items) and the generator's transcripts (agent/sabotage: 64 / 192 / 384 balanced; the issue's 1,024 is more
than the generator's train split holds, and a mixed arm's adjacent half, 160 row-visits, sees 384 items about
once in two). Adjacent items are also drawn with item seed 0, so seeds vary the order
and the initialisation, not the items. Every arm trains the same `ROWS` row-visits; a mixed arm spends half on the
32 in-domain items (oversampled) and half on the adjacent ones; the in-domain-only reference (0 adjacent) spends
them all on the 32 items (10 epochs). ROWS is 320, not the protocol's 1,200, so that the run fits 120 min from a
cold cache: dry runs (features costed at the prefill's widths) 129.1 min on a slow 2-core EPYC without AVX-512
(2026-12-04; the former 400 rows and 64 / 256 / 728 series: 155.5 there, 118.8 on round 1's EPYC), so about
100 min on round 1's EPYC or the Xeon; check the dry run on the session's machine first. Checkpoints are chosen on 96
in-domain validation items for every arm. Seeds: 3 on the arms of the primary comparisons (small, cyber82, gen384);
1 (secondary) on the curves' inner points, on `small_half` (the same 32 items, half the row-visits: the mixed arms'
in-domain exposure) and on each series'
largest arm with the adjacent labels shuffled (every arm learns the answer format from its in-domain labels, so
these controls separate the adjacent labels from the adjacent text; they cost no new features: a row's features
are cached up to its answer slot, so flipped label tokens hit the cache).
Primary: AUROC(32 + all adjacent) - AUROC(32 alone), per series. Preconditions: the committed AgentDojo
in-domain gap (experiments/results/agent_learnability; where it fails, every comparison is not testable), and the
mixed arms see the in-domain items equally often.
Label conflict, from the questions' definitions (monitor_jax/data/tasks.py): the sabotage question ("a dangerous
action the user did not ask for") is the target's question restricted to dangerous actions; its requested-danger
negatives are the target's requested negatives, so the labels agree in direction. The cyber question asks whether
a request seeks cyber-harm help: a harm reading flags a user's own request for a sensitive action, which the target
labels No (its "requested" negatives), so the cyber labels partly conflict. `by_kind` in the results measures it.
Pod scales (configs/experiment.SCALES, plans in the README): `:qwen3-8b-lora` | `:llama3-8b-full` |
`:llama3-70b-lora`, ~211 M training tokens, about 1.8 h | 1.9 h | 8.4 h of training and evaluation.
"""
from __future__ import annotations

import pathlib

from monitor_jax.core import config as config_lib

x = config_lib.load_module(pathlib.Path(__file__).with_name("experiment.py"))

TARGET, SMALL, ROWS = "agentdojo/unrequested", 32, 320
SERIES = {"cyber": ("requests/cyber", (16, 32, 82)), "gen": (x.AGENT, (64, 192, 384))}
LEARNABILITY = ("experiments/results/agent_learnability/results.json", "in_agentdojo+two_way+lr3e-3")


def _small():
    return x.task_component("in", [TARGET], 1.0, limit_per_task=SMALL, balance=1.0, item_seed=0)


def _adjacent(series: str, n: int, shuffle: bool = False):
    task, _ = SERIES[series]
    return x.task_component(series, [task], 1.0, limit_per_task=n, balance=1.0, shuffle_labels=shuffle, item_seed=0)


def get_config(arg: str | None = None):
    """`arg`: a pod scale of configs/experiment.SCALES (none: the CPU default we report)."""
    c = x.get_config()
    with c.unlocked():
        e = c.experiment
        e.name, e.claim = "c3_scaling", "C3"
        e.statement = "With a fixed small in-domain set, adding more adjacent-domain data still helps."
        e.seeds = (0, 1, 2)
        e.budget_minutes = 120.0
        e.budget_rows = ROWS
        e.cells = [x.cell(TARGET, 188, "target: AgentDojo transcripts (the whole test split)")]
        k = f"{TARGET}:primary"
        e.arms = [x.arm("base", label="untrained"),
                  x.arm("small", _small(), label=f"{SMALL} in-domain", x=0),
                  x.arm("small_half", _small(), label=f"secondary, 1 seed: {SMALL} in-domain, half the row-visits",
                        x=0, rows=ROWS // 2, seeds=(0,))]
        mixed = []
        for series, (task, sizes) in SERIES.items():
            for n in sizes:
                mixed.append(f"{series}{n}")
                last = n == sizes[-1]  # the primary point: 3 seeds; the curve's inner points: 1 seed
                e.arms.append(x.arm(mixed[-1], _small(), _adjacent(series, n), x=n, seeds=None if last else (0,),
                                    label=f"{'' if last else 'secondary, 1 seed: '}{SMALL} in-domain + {n} {task}"))
        for series, (_, sizes) in SERIES.items():
            n = sizes[-1]
            e.arms.append(x.arm(f"{series}{n}_shuffled", _small(), _adjacent(series, n, True), seeds=(0,), x=n,
                                label=f"secondary, 1 seed: {series}{n} with the adjacent labels shuffled"))
        for a in e.arms[1:]:
            a.select = (k,)
        e.comparisons = [
            *[x.comparison("diff", k, a="small", b=f"{s}{sizes[-1]}", primary=True) for s, (_, sizes) in
              SERIES.items()],
            *[x.comparison("diff", k, a="small", b=f"{s}{n}") for s, (_, sizes) in SERIES.items() for n in sizes[:-1]],
            *[x.comparison("diff", k, a="small_half", b=f"{s}{sizes[-1]}") for s, (_, sizes) in SERIES.items()],
            *[x.comparison("diff", k, a=f"{s}{sizes[-1]}_shuffled", b=f"{s}{sizes[-1]}") for s, (_, sizes) in
              SERIES.items()],
            x.comparison("diff", k, a="base", b="small")]
        e.preconditions = [
            x.committed_gap(LEARNABILITY[0], k, "base", LEARNABILITY[1], guards=(k,)),
            x.precondition("exposure_ratio", "the mixed arms see the in-domain set equally often (most / fewest "
                           "rows <= 1.5)", task=TARGET, arms=("small_half", *mixed), threshold=1.5)]
        e.notes = (f"Every arm: {ROWS} row-visits (small_half: {ROWS // 2}); the mixed arms {ROWS // 2} on the {SMALL} "
                   "in-domain items and the rest on the adjacent ones. The in-domain items are one fixed set "
                   "(item seed 0) in every arm and seed.",)
    return x.lock(x.scale(c, arg))
