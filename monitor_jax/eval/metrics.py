"""Classification metrics for monitors and their uncertainty (numpy only).

AUROC, TPR at a fixed FPR, thresholds chosen on validation, calibration (ECE, temperature scaling), seeded
stratified bootstrap CIs, paired differences, "gap recovered", report formatting and claim verdicts, following
DESIGN.md §5 "Evaluation protocol".

Conventions: `labels` are 0/1 (or bool), 1 = positive (the bad behaviour); a higher score means "more
positive"; a threshold `t` classifies `score >= t` as positive. Functions that compare models take score
arrays that are *aligned*: element i of every array is the same item (use `align` to reorder by item ids).
Bootstraps are stratified: positives and negatives are resampled separately (each keeps its count), so every
resample has both classes; items may instead be resampled by hygiene group (`groups`). The CI is the percentile
interval, the estimate is the metric on the full data. Seeds as a second level: `eval/two_level.py`.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray], "float | None"]


class CI(NamedTuple):
    estimate: float
    low: float
    high: float


class GapCI(NamedTuple):
    estimate: float
    low: float
    high: float
    denominator_ci: CI
    defined: bool


def _prep(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, y = np.asarray(scores, np.float64).ravel(), np.asarray(labels).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores has {s.size} items but labels has {y.size}")
    return s, y


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) + 0.5 P(tie); nan when a class is missing."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties (1-based).
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


# ---------------------------------------------------------------- thresholds and TPR at FPR


def _roc_points(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds (distinct scores, descending) with the TPR and FPR of `score >= t` at each."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], s.size - 1]  # last index of each tie group
    tps, fps = np.cumsum(y_sorted)[last], np.cumsum(~y_sorted)[last]
    return s_sorted[last], tps / max(int(y.sum()), 1), fps / max(int((~y).sum()), 1)


def min_negatives(fpr: float) -> int:
    """Fewest negatives for which TPR at `fpr` is reported: 10 / fpr (1000 for 1 %)."""
    return math.ceil(10.0 / fpr - 1e-9)


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float | None:
    """Max TPR over thresholds whose empirical FPR <= `fpr` (tied scores move together: a threshold at t
    flags every item with score >= t). None ("n/a") with fewer than 10/fpr negatives; nan without positives."""
    s, y = _prep(scores, labels)
    if int((~y).sum()) < min_negatives(fpr):
        return None
    if not y.any():
        return float("nan")
    _, tpr, fpr_t = _roc_points(s, y)
    ok = fpr_t <= fpr
    return float(tpr[ok].max()) if ok.any() else 0.0  # the threshold above every score gives TPR 0


def threshold_at_fpr(val_scores: np.ndarray, val_labels: np.ndarray, fpr: float) -> float:
    """Lowest threshold t with validation FPR(score >= t) <= `fpr`, i.e. the max-TPR one. If even the top
    score breaks the target, returns the next float above it (nothing flagged on validation). Choose this on
    validation only and save it with the model; no 10/fpr rule here (check the validation size yourself)."""
    s, y = _prep(val_scores, val_labels)
    if not (~y).any():
        raise ValueError("threshold_at_fpr needs validation negatives")
    thr, _, fpr_t = _roc_points(s, y)
    ok = np.nonzero(fpr_t <= fpr)[0]
    return float(thr[ok[-1]]) if ok.size else float(np.nextafter(thr[0], np.inf))


def rates_at_threshold(scores: np.ndarray, labels: np.ndarray, t: float) -> tuple[float, float]:
    """(TPR, FPR) of the rule `score >= t`; a rate is nan when its class is missing."""
    s, y = _prep(scores, labels)
    flag = s >= t
    tpr = float(flag[y].mean()) if y.any() else float("nan")
    fpr = float(flag[~y].mean()) if (~y).any() else float("nan")
    return tpr, fpr


# ---------------------------------------------------------------- calibration


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of P(positive): sum over equal-width bins of (n_bin / N) |mean(y) - mean(p)|.
    Bins are (k/n, (k+1)/n] with 0 in the first, exactly as scikit-learn's `calibration_curve`."""
    p, y = _prep(probs, labels)
    if p.size == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], p)
    total = np.bincount(ids, minlength=n_bins)
    gap = np.abs(np.bincount(ids, weights=y, minlength=n_bins) - np.bincount(ids, weights=p, minlength=n_bins))
    return float(gap.sum() / p.size)  # sum_b n_b |mean_y - mean_p| / N, with n_b * mean = sums


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


def _nll(x: np.ndarray, y: np.ndarray, beta: float) -> float:
    z = beta * x
    return float(np.mean(np.logaddexp(0.0, np.where(y, -z, z))))


def fit_temperature(logits_or_logodds: np.ndarray, labels: np.ndarray) -> float:
    """Temperature T > 0 minimising the NLL of sigmoid(x / T) (fit on validation). The NLL is convex in
    1/T, so a golden-section search over log(1/T) in [-9, 9] finds it; the result is clipped to that range
    (e.g. separable data gives the smallest T, scores anti-correlated with labels the largest)."""
    x, y = _prep(logits_or_logodds, labels)
    lo, hi, g = -9.0, 9.0, (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = _nll(x, y, math.exp(a)), _nll(x, y, math.exp(b))
    for _ in range(90):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = _nll(x, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = _nll(x, y, math.exp(b))
    return float(math.exp(-(lo + hi) / 2.0))


def apply_temperature(logits_or_logodds: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities sigmoid(x / T)."""
    return _sigmoid(np.asarray(logits_or_logodds, np.float64) / temperature)


# ---------------------------------------------------------------- bootstrap


def align(ref_ids: Sequence, ids: Sequence, values: np.ndarray) -> np.ndarray:
    """Reorders `values` (indexed like `ids`) into the order of `ref_ids`; both must hold the same unique ids."""
    pos = {k: i for i, k in enumerate(ids)}
    if len(pos) != len(ids) or len(ref_ids) != len(ids) or any(k not in pos for k in ref_ids):
        raise ValueError("align: ids must be unique and the same set of items as ref_ids")
    return np.asarray(values)[[pos[k] for k in ref_ids]]


def _boot_auroc(s: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUROC of each resample, given as item multiplicities `w` [B, n], via per-row negative histograms over
    the distinct scores: O(B * (n + U)), no per-resample sort; nan where a resample lacks a class."""
    uniq, u = np.unique(s, return_inverse=True)
    b, n_u = w.shape[0], uniq.size
    neg = ~y
    rows = (np.arange(b)[:, None] * n_u + u[neg]).ravel()
    counts = np.bincount(rows, weights=w[:, neg].ravel(), minlength=b * n_u).reshape(b, n_u)
    below = np.cumsum(counts, axis=1) - counts  # negatives strictly below each distinct score
    wins = (np.take_along_axis(below + 0.5 * counts, np.broadcast_to(u[y], (b, int(y.sum()))), axis=1)
            * w[:, y]).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return wins / (w[:, y].sum(axis=1) * w[:, neg].sum(axis=1))


def _group_strata(y: np.ndarray, groups: Sequence | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """(group index of each item, the groups of each stratum): all-positive, all-negative, mixed groups. Without
    `groups` every item is its own group, so the strata are the positives and the negatives."""
    if groups is None:
        g = np.arange(y.size)
    else:
        if len(groups) != y.size:
            raise ValueError(f"groups has {len(groups)} entries but labels has {y.size}")
        _, first, g = np.unique(np.asarray([str(v) for v in groups]), return_index=True, return_inverse=True)
        g = np.argsort(np.argsort(first))[g]  # numbered by first appearance: one group per item = no groups
    n_g = int(g.max()) + 1 if g.size else 0
    pos = np.bincount(g, weights=y, minlength=n_g)
    size = np.bincount(g, minlength=n_g)
    strata = [np.nonzero(pos == size)[0], np.nonzero(pos == 0)[0], np.nonzero((pos > 0) & (pos < size))[0]]
    return g, [s for s in strata if s.size]


def bootstrap_distribution(
    metric_fn: MetricFn, score_arrays: Sequence[np.ndarray], labels: np.ndarray, n: int = 1000, seed: int = 0,
    *, groups: Sequence | None = None,
) -> np.ndarray:
    """[k, n] metric values of k aligned score arrays on the SAME n stratified resamples (seeded).
    With `groups` (a hygiene group id per item, e.g. an AgentDojo (user task, injection task) pair) whole groups
    are resampled, stratified by their label make-up. `metric_fn is auroc` takes a vectorized path; any other
    metric is looped (None counts as nan)."""
    y = np.asarray(labels).astype(bool).ravel()
    arrays = [_prep(s, y)[0] for s in score_arrays]
    if not y.any() or y.all():
        raise ValueError("a stratified bootstrap needs both classes")
    g, strata = _group_strata(y, groups)
    n_g = int(g.max()) + 1
    out = np.empty((len(arrays), n))
    chunk = max(1, min(n, 2_000_000 // y.size))  # fixed by (n, size): same seed -> same resamples
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        picks = np.concatenate([st[rng.integers(0, st.size, (m, st.size))] for st in strata], axis=1)
        counts = np.bincount((np.arange(m)[:, None] * n_g + picks).ravel(), minlength=m * n_g).reshape(m, n_g)
        w = counts[:, g].astype(np.float64)  # [m, items]: how often each item is in each resample
        for k, s in enumerate(arrays):
            if metric_fn is auroc:
                out[k, start : start + m] = _boot_auroc(s, y, w)
                continue
            for r in range(m):
                idx = np.repeat(np.arange(y.size), w[r].astype(np.int64))
                v = metric_fn(s[idx], y[idx])
                out[k, start + r] = np.nan if v is None else v
    return out


def percentile_ci(estimate: float | None, dist: np.ndarray, alpha: float = 0.05) -> CI:
    """`estimate` with the (1 - alpha) percentile interval of its bootstrap distribution `dist` (nan ignored)."""
    est = float("nan") if estimate is None else float(estimate)
    finite = dist[np.isfinite(dist)]
    if finite.size == 0:
        return CI(est, float("nan"), float("nan"))
    low, high = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    return CI(est, float(low), float(high))


def bootstrap_ci(
    metric_fn: MetricFn, scores: np.ndarray, labels: np.ndarray, n: int = 1000, alpha: float = 0.05, seed: int = 0
) -> CI:
    """Percentile (1 - alpha) CI of metric_fn(scores, labels) over n seeded stratified resamples."""
    dist = bootstrap_distribution(metric_fn, [scores], labels, n, seed)[0]
    return percentile_ci(metric_fn(*_prep(scores, labels)), dist, alpha)


def paired_difference(
    metric_fn: MetricFn,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    labels: np.ndarray,
    n: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> CI:
    """CI of metric(b) - metric(a), both models scored on the same resampled items each time (paired).
    scores_a[i], scores_b[i] and labels[i] must be the same item (see `align`)."""
    da, db = bootstrap_distribution(metric_fn, [scores_a, scores_b], labels, n, seed)
    est = metric_fn(*_prep(scores_b, labels)) - metric_fn(*_prep(scores_a, labels))
    return percentile_ci(est, db - da, alpha)


def gap_recovered(
    base: np.ndarray,
    ood: np.ndarray,
    in_domain: np.ndarray,
    labels: np.ndarray,
    n: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    *,
    metric_fn: MetricFn = auroc,
) -> GapCI:
    """(M_ood - M_base) / (M_in - M_base), M = AUROC by default, the three aligned models jointly
    bootstrapped on the same items. Undefined (defined=False, estimate/low/high nan) when the percentile CI
    of the denominator M_in - M_base includes 0; `denominator_ci` is always filled."""
    d_base, d_ood, d_in = bootstrap_distribution(metric_fn, [base, ood, in_domain], labels, n, seed)
    m_base, m_ood, m_in = (metric_fn(*_prep(s, labels)) for s in (base, ood, in_domain))
    return gap_ci(m_ood - m_base, d_ood - d_base, m_in - m_base, d_in - d_base, alpha)


def gap_ci(num: float, num_dist: np.ndarray, den: float, den_dist: np.ndarray, alpha: float = 0.05) -> GapCI:
    """CI of the ratio num / den from joint bootstrap draws of both; undefined (nan) when the percentile CI of
    the denominator includes 0 (`gap_recovered`: num = M_ood - M_base, den = M_in - M_base)."""
    den_ci = percentile_ci(den, den_dist, alpha)
    if not (den_ci.low > 0 or den_ci.high < 0):
        nan = float("nan")
        return GapCI(nan, nan, nan, den_ci, False)
    with np.errstate(divide="ignore", invalid="ignore"):
        ci = percentile_ci(num / den, num_dist / den_dist, alpha)
    return GapCI(ci.estimate, ci.low, ci.high, den_ci, True)


def proportion_ci(k: int, n: int, alpha: float = 0.05) -> CI:
    """k / n with its Wilson score interval (e.g. pseudo-label accuracy); nan when n is 0."""
    if n <= 0:
        return CI(*[float("nan")] * 3)
    z = _normal_quantile(1.0 - alpha / 2.0)
    p = k / n
    centre, half = (p + z * z / (2 * n)), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return CI(float(p), float((centre - half) / (1 + z * z / n)), float((centre + half) / (1 + z * z / n)))


def _normal_quantile(q: float) -> float:
    """Standard normal quantile by bisection on erf (no scipy)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if 0.5 * (1.0 + math.erf(mid / math.sqrt(2.0))) < q else (lo, mid)
    return (lo + hi) / 2.0


# ---------------------------------------------------------------- reporting


def verdict(diff_ci: CI | GapCI, direction: int = +1) -> str:
    """Verdict on a claimed effect from the CI of a difference (e.g. `paired_difference`). With the claim
    "the difference has sign `direction`" (+1: b better than a): "reproduced" iff low > 0 and high > 0 after
    multiplying by `direction` (CI strictly on the claimed side of 0); "refuted" iff both < 0 (strictly on
    the other side); otherwise (CI touches or includes 0, or is nan/undefined) "inconclusive"."""
    if direction not in (1, -1):
        raise ValueError("direction must be +1 or -1")
    lo, hi = sorted((direction * diff_ci.low, direction * diff_ci.high))
    if lo > 0:
        return "reproduced"
    if hi < 0:
        return "refuted"
    return "inconclusive"


def fmt_value(x: float | None, digits: int = 3) -> str:
    """A number with `digits` decimals; "n/a" for None or nan (e.g. TPR below the 10/FPR negatives rule)."""
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{float(x):.{digits}f}"


def fmt_ci(ci: CI | GapCI, digits: int = 3) -> str:
    """"0.812 [0.771, 0.850]"; "undefined" for an undefined gap; "n/a" when the estimate is missing."""
    if isinstance(ci, GapCI) and not ci.defined:
        return "undefined"
    if fmt_value(ci.estimate) == "n/a":
        return "n/a"
    return f"{fmt_value(ci.estimate, digits)} [{fmt_value(ci.low, digits)}, {fmt_value(ci.high, digits)}]"


def summary(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    val_threshold: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """JSON-serializable test-set summary: n_pos, n_neg, auroc {estimate, low, high} (95 % bootstrap),
    tpr_at_fpr_1pct / tpr_at_fpr_0.1pct (None = n/a), ece (None unless scores lie in [0, 1]) and, given a
    threshold chosen on validation, tpr/fpr at it. Missing values are None, never nan."""
    s, y = _prep(scores, labels)

    def clean(v: float | None) -> float | None:
        return None if v is None or not math.isfinite(v) else float(v)

    both = bool(y.any() and (~y).any())
    ci = bootstrap_ci(auroc, s, y, n=n_boot, seed=seed) if both else CI(*[float("nan")] * 3)
    out: dict = {
        "n_pos": int(y.sum()),
        "n_neg": int((~y).sum()),
        "auroc": {k: clean(v) for k, v in ci._asdict().items()},
        "tpr_at_fpr_1pct": clean(tpr_at_fpr(s, y, 0.01)),
        "tpr_at_fpr_0.1pct": clean(tpr_at_fpr(s, y, 0.001)),
        "ece": clean(ece(s, y)) if s.size and s.min() >= 0.0 and s.max() <= 1.0 else None,
    }
    if val_threshold is not None:
        tpr, fpr = rates_at_threshold(s, y, val_threshold)
        out.update(threshold=float(val_threshold), tpr_at_threshold=clean(tpr), fpr_at_threshold=clean(fpr))
    return out
