"""An experiment's statistics: seed-mean AUROC of each arm on one evaluation cell with a paired bootstrap, the
declared comparisons between arms (difference, gap recovered, difference of gaps) and their verdicts.

Every arm of a cell is scored on the same items, so one set of stratified resamples serves them all
(`metrics.bootstrap_distribution`): each resample gives every seed's AUROC; an arm's value is the mean over
its seeds. Differences and ratios are taken resample by resample, so each comparison has its own paired CI.
Seed spread (the min..max of the per-seed AUROCs) is reported beside the bootstrap CI, never folded into it.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from monitor_jax.eval import metrics

KINDS = {
    "diff": ("a", "b"),  # AUROC(b) - AUROC(a)
    "gap": ("arm", "base", "ref"),  # (AUROC(arm) - AUROC(base)) / (AUROC(ref) - AUROC(base)): gap recovered
    "gap_diff": ("arm", "other", "base", "ref"),  # gap(arm) - gap(other), on the same denominator
}
VERDICTS = ("reproduced", "refuted", "inconclusive")


def arm_stats(scores: Mapping[str, Sequence[np.ndarray]], labels: np.ndarray, n_boot: int, seed: int,
              alpha: float = 0.05) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """Per arm: {"auroc": CI of the seed-mean AUROC, "per_seed": [...], "seed_spread": max - min}, and the
    bootstrap draws [n_boot] of each arm's seed-mean AUROC. `scores[arm]`: one aligned score array per seed."""
    names = list(scores)
    flat = [np.asarray(s) for n in names for s in scores[n]]
    draws = metrics.bootstrap_distribution(metrics.auroc, flat, labels, n_boot, seed)
    stats, dists, i = {}, {}, 0
    for n in names:
        k = len(scores[n])
        per_seed = [float(metrics.auroc(s, labels)) for s in scores[n]]
        dists[n] = draws[i:i + k].mean(axis=0)
        i += k
        stats[n] = {"auroc": metrics.percentile_ci(float(np.mean(per_seed)), dists[n], alpha)._asdict(),
                    "per_seed": per_seed, "seed_spread": float(max(per_seed) - min(per_seed))}
    return stats, dists


def compare(spec: Mapping[str, Any], est: Mapping[str, float], dists: Mapping[str, np.ndarray],
            alpha: float = 0.05) -> dict:
    """One declared comparison (`spec`: kind, its arms, `direction` of the claimed effect) -> its CI and verdict."""
    kind = spec["kind"]
    if kind not in KINDS:
        raise ValueError(f"comparison kind must be one of {sorted(KINDS)}, got {kind!r}")
    missing = [r for r in KINDS[kind] if spec.get(r) not in est]
    if missing:
        raise ValueError(f"comparison {dict(spec)}: {missing} must name arms of the experiment")
    g = {r: spec[r] for r in KINDS[kind]}
    if kind == "diff":
        ci = metrics.percentile_ci(est[g["b"]] - est[g["a"]], dists[g["b"]] - dists[g["a"]], alpha)
        out = {"ci": ci._asdict(), "defined": True}
    else:
        lower = g["base"] if kind == "gap" else g["other"]
        gap = metrics.gap_ci(est[g["arm"]] - est[lower], dists[g["arm"]] - dists[lower],
                             est[g["ref"]] - est[g["base"]], dists[g["ref"]] - dists[g["base"]], alpha)
        ci = metrics.CI(gap.estimate, gap.low, gap.high)
        out = {"ci": ci._asdict(), "defined": gap.defined, "denominator": gap.denominator_ci._asdict()}
    direction = int(spec.get("direction", 1))
    return {**dict(spec), **out, "verdict": metrics.verdict(ci, direction)}


def claim_verdict(comparisons: Sequence[Mapping[str, Any]]) -> str:
    """"reproduced" when every primary comparison is, "refuted" when every one is refuted, else "inconclusive"
    (mixed results, a CI that includes 0, an undefined gap, or no primary comparison)."""
    primary = [c["verdict"] for c in comparisons if c.get("primary")]
    if primary and all(v == "reproduced" for v in primary):
        return "reproduced"
    if primary and all(v == "refuted" for v in primary):
        return "refuted"
    return "inconclusive"


def recompute_verdict(c: Mapping[str, Any]) -> str:
    """The verdict of a stored comparison, recomputed from its CI (the verdict script trusts no stored string)."""
    ci = c["ci"]
    return metrics.verdict(metrics.CI(ci["estimate"], ci["low"], ci["high"]), int(c.get("direction", 1)))


def mean_stats(values: Mapping[str, Sequence[np.ndarray]], ref: str, n_boot: int, seed: int,
               alpha: float = 0.05) -> dict[str, dict]:
    """Per arm: the seed-mean of a per-item quantity averaged over items (e.g. held-out IF answer NLL) with a
    bootstrap CI over items, and its paired difference from arm `ref` (same resampled items)."""
    n = len(next(iter(values.values()))[0])
    idx = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    means = {a: np.mean(np.stack([np.asarray(v, np.float64) for v in vs]), axis=0) for a, vs in values.items()}
    out = {}
    for a, m in means.items():
        draws = m[idx].mean(axis=1)
        row = {"mean": metrics.percentile_ci(float(m.mean()), draws, alpha)._asdict(),
               "per_seed": [float(np.mean(v)) for v in values[a]]}
        if ref in means and a != ref:
            row["diff_vs_" + ref] = metrics.percentile_ci(float(m.mean() - means[ref].mean()),
                                                          draws - means[ref][idx].mean(axis=1), alpha)._asdict()
        out[a] = row
    return out
