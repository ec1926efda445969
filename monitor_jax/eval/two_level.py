"""Two-level paired bootstrap of seed-mean metrics: resample seeds, then items (or hygiene groups), jointly for
every arm compared, so seed variance is inside the CI (DESIGN.md §5 "Evaluation protocol").

An arm is one aligned score array per seed (training run); its value is the mean over seeds of the per-seed
metric. Each replicate b draws one item resample shared by every arm and seed (`metrics.bootstrap_distribution`,
stratified by class, or by the label make-up of whole groups), computes every seed's metric on it, then draws k
of the arm's k seeds with replacement. Arms with the same number of seeds share that seed draw (seed i of each is
resampled together: C1 and C6 reuse the same runs), so differences between arms are paired at both levels.

Small-k correction: plain resampling of k seeds gives the seed mean a bootstrap variance of (k - 1)/k times the
unbiased s^2/k (1/2 at k = 2), so each replicate's seed deviation is scaled by sqrt(k / (k - 1)):
draw = mean_all + sqrt(k/(k-1)) * (mean_resampled - mean_all). A one-seed arm (the untrained model, or a run the
budget left alone) has no seed level: its draws are items-only (`seed_level` says which).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from monitor_jax.eval import metrics


def seed_mean_draws(metric_fn: metrics.MetricFn, arms: Mapping[str, Sequence[np.ndarray]], labels: np.ndarray,
                    n: int = 1000, seed: int = 0, *, groups: Sequence | None = None,
                    seed_level: bool = True) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """({arm: seed-mean metric on all items}, {arm: its n bootstrap draws}). `arms[a]`: one aligned score array
    per seed; `groups`: a hygiene group id per item (None: items). `seed_level=False` resamples items only (the
    round-1 CIs), for comparison."""
    names = list(arms)
    flat = [np.asarray(s) for a in names for s in arms[a]]
    per_run = metrics.bootstrap_distribution(metric_fn, flat, labels, n, seed, groups=groups)
    y = np.asarray(labels)
    est, draws, i = {}, {}, 0
    counts = sorted({len(arms[a]) for a in names})
    rng = np.random.default_rng([seed, 1])  # its own stream: the item resamples stay those of the items-only CI
    pick = {k: rng.integers(0, k, (n, k)) for k in counts}
    for a in names:
        k = len(arms[a])
        m = per_run[i:i + k]  # [k, n]
        i += k
        est[a] = float(np.mean([metric_fn(s, y) for s in arms[a]]))
        full = m.mean(axis=0)
        if not seed_level or k == 1:
            draws[a] = full
            continue
        resampled = np.take_along_axis(m, pick[k].T, axis=0).mean(axis=0)
        draws[a] = full + math.sqrt(k / (k - 1)) * (resampled - full)
    return est, draws
