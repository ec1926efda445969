"""The minimum detectable AUROC difference of a cell, stated before a run from its sizes (Hanley & McNeil)."""
from __future__ import annotations

import math
from statistics import NormalDist


def auroc_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUROC estimate on n_pos positives and n_neg negatives (Hanley & McNeil, 1982)."""
    if n_pos < 1 or n_neg < 1:
        return math.inf
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def mde(n_pos: int, n_neg: int, *, auc: float = 0.6, r: float = 0.5, alpha: float = 0.05,
        power: float = 0.8) -> float:
    """The smallest AUROC difference between two arms scored on the same items that a two-sided test at `alpha`
    detects with probability `power`: (z_{1-alpha/2} + z_power) * SE_diff, SE_diff = SE(auc) * sqrt(2 (1 - r)),
    `r` the correlation of the two arms' AUROC estimates over item resamples. Item variance only: seed
    variance (inside the protocol's two-level CIs) makes the real threshold larger."""
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return z * auroc_se(auc, n_pos, n_neg) * math.sqrt(2 * (1 - r))


def describe(cells: list[tuple[str, int, int]], split: str, seeds: int, **kw) -> list[str]:
    """Lines for a dry run: each cell's n (pos/neg) and its minimum detectable difference."""
    auc, r = kw.get("auc", 0.6), kw.get("r", 0.5)
    out = [f"  cells ({split} split; {seeds} seed(s) per trained arm); minimum detectable AUROC difference at 80 % "
           f"power, alpha 0.05, AUROC {auc}, paired r = {r}, item variance only:"]
    for name, n_pos, n_neg in cells:
        out.append(f"    {name:<40} n {n_pos + n_neg:>5} ({n_pos}/{n_neg})  MDE {mde(n_pos, n_neg, **kw):.3f}")
    return out
