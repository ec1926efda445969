"""From per-item scores to verdicts: each cell's arm statistics, the declared comparisons, the preconditions
guarding them and the claim's verdict. The results writer and `experiments/verdict.py` both call this, so a
verdict recomputed from the committed per-item scores is the one that was written."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from monitor_jax.experiment import compare, preconditions


def cell_stats(scores: Mapping[str, Mapping[str, Sequence[np.ndarray]]], labels: Mapping[str, np.ndarray],
               groups: Mapping[str, Sequence | None], n_boot: int) -> tuple[dict, dict, dict]:
    """Per cell: ({arm: stats}, {arm: seed-mean AUROC}, {arm: two-level draws}), bootstrap seed 0."""
    stats, est, dists = {}, {}, {}
    for k, by_arm in scores.items():
        stats[k], dists[k] = compare.arm_stats(by_arm, labels[k], n_boot, 0, groups=groups.get(k))
        est[k] = {a: s["auroc"]["estimate"] for a, s in stats[k].items()}
    return stats, est, dists


def verdicts(config: Any | None, specs: Sequence[Mapping[str, Any]], precondition_specs: Sequence[Mapping[str, Any]],
             cells: Mapping[str, dict], est: Mapping[str, dict], dists: Mapping[str, dict],
             incomplete: str | None) -> tuple[list[dict], list[dict], str]:
    """(comparisons with verdicts, precondition records, the claim's verdict). A comparison on a cell that was not
    scored is "inconclusive" with a note when the run is incomplete (budget), an error otherwise."""
    comparisons = []
    for spec in specs:
        spec = {k: v for k, v in dict(spec).items() if k not in ("ci", "defined", "denominator", "verdict", "note",
                                                                  "blocked_by")}
        k = spec["cell"]
        try:
            if k not in cells:
                raise ValueError(f"comparison {spec}: cell {k!r} is not one of {sorted(cells)}")
            comparisons.append(compare.compare(spec, est[k], dists[k]))
        except ValueError:
            if incomplete is None:
                raise
            comparisons.append({**spec, "ci": None, "defined": False, "verdict": "inconclusive",
                                "note": "not run (budget)"})
    records = preconditions.evaluate(config, precondition_specs, cells, est, dists)
    comparisons = preconditions.guard(comparisons, records, list(cells))
    return comparisons, records, compare.claim_verdict(comparisons)  # a primary not run counts as inconclusive
