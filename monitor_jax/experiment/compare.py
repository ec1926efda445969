"""An experiment's statistics: seed-mean AUROC of each arm on one evaluation cell with a two-level paired
bootstrap, the declared comparisons between arms (difference, gap recovered, difference of gaps) and verdicts.

Every arm of a cell is scored on the same items, so one set of resamples serves them all
(`eval/two_level.py`): each replicate resamples the items (or their hygiene groups), then each arm's seeds; an
arm's value is the mean over its seeds. Differences and ratios are taken replicate by replicate, so each
comparison has its own paired CI with seed variance inside it. The seed range (max - min of the per-seed AUROCs)
is shown beside the CI. A comparison whose precondition failed is "not testable" (`preconditions.py`).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from monitor_jax.eval import metrics, two_level

KINDS = {
    "diff": ("a", "b"),  # AUROC(b) - AUROC(a)
    "gap": ("arm", "base", "ref"),  # (AUROC(arm) - AUROC(base)) / (AUROC(ref) - AUROC(base)): gap recovered
    "gap_diff": ("arm", "other", "base", "ref"),  # gap(arm) - gap(other), on the same denominator
}
NOT_TESTABLE = "not testable"
VERDICTS = ("reproduced", "refuted", "inconclusive", NOT_TESTABLE)
CI_METHOD = "two-level"  # results.json "ci_method": "two-level" (seeds, then items or groups) | "items" (round 1)


def arm_stats(scores: Mapping[str, Sequence[np.ndarray]], labels: np.ndarray, n_boot: int, seed: int,
              alpha: float = 0.05, *, groups: Sequence | None = None) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """Per arm: {"auroc": CI of the seed-mean AUROC (two-level), "per_seed": [...], "seed_spread": max - min,
    "n_seeds"}, and the bootstrap draws [n_boot] of each arm's seed-mean AUROC. `scores[arm]`: one aligned score
    array per seed; `groups`: a hygiene group id per item, resampled whole (None: items)."""
    est, dists = two_level.seed_mean_draws(metrics.auroc, scores, labels, n_boot, seed, groups=groups)
    stats = {}
    for n in scores:
        per_seed = [float(metrics.auroc(s, labels)) for s in scores[n]]
        stats[n] = {"auroc": metrics.percentile_ci(est[n], dists[n], alpha)._asdict(), "per_seed": per_seed,
                    "seed_spread": float(max(per_seed) - min(per_seed)), "n_seeds": len(per_seed)}
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
    """From the primary comparisons: "not testable" when every one is (a precondition failed); otherwise, over
    the testable ones, "reproduced" when every one is, "refuted" when every one is refuted, else "inconclusive"
    (mixed results, a CI that includes 0, an undefined gap, or no primary comparison). `untestable_primaries`
    says how many were left out."""
    every = [c["verdict"] for c in comparisons if c.get("primary")]
    primary = [v for v in every if v != NOT_TESTABLE]
    if every and not primary:
        return NOT_TESTABLE
    if primary and all(v == "reproduced" for v in primary):
        return "reproduced"
    if primary and all(v == "refuted" for v in primary):
        return "refuted"
    return "inconclusive"


def untestable_primaries(comparisons: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(primary comparisons not testable, primary comparisons)."""
    primary = [c for c in comparisons if c.get("primary")]
    return sum(c["verdict"] == NOT_TESTABLE for c in primary), len(primary)


def recompute_verdict(c: Mapping[str, Any]) -> str:
    """The verdict of a stored comparison from its CI, before preconditions (the verdict script trusts no stored
    string); an undefined gap or a comparison not run is "inconclusive"."""
    ci = c.get("ci")
    if ci is None or not c.get("defined", True):
        return "inconclusive"
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
