"""Metrics equal scikit-learn; bootstrap CIs cover, pair, and are deterministic."""

import json
import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_auc_score, roc_curve

from monitor_jax.eval import metrics


def _phi(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _binormal(rng, n_pos, n_neg, d):
    """neg ~ N(0, 1), pos ~ N(d, 1): true AUROC = Phi(d / sqrt 2)."""
    labels = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    return rng.normal(size=n_pos + n_neg) + d * labels, labels


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.normal(size=200) + labels, 1)  # rounding makes many ties
    assert metrics.auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auroc_single_class_is_nan():
    assert np.isnan(metrics.auroc(np.array([0.1, 0.2]), np.array([1, 1])))


def _sk_tpr_at_fpr(scores, labels, target):
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return tpr[fpr <= target].max()


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("decimals", [None, 1, 0])  # continuous, tied, heavily tied
def test_tpr_at_fpr_matches_sklearn(seed, decimals):
    rng = np.random.default_rng(seed)
    labels = (rng.random(30000) < 0.3).astype(int)  # ~21000 negatives: both targets are reportable
    scores = rng.normal(size=labels.size) + 2.0 * labels
    if decimals is not None:
        scores = np.round(scores, decimals)
    for target in (0.01, 0.001, 0.05):
        got = metrics.tpr_at_fpr(scores, labels, target)
        assert got == pytest.approx(_sk_tpr_at_fpr(scores, labels, target), abs=1e-12)
    assert metrics.auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_tpr_at_fpr_ties_count_negatives_at_the_threshold():
    # One tie group holds both a positive and 2 of 1000 negatives: taking it would give FPR 0.2 % > 0.1 %.
    labels = np.r_[np.ones(3, int), np.zeros(1000, int)]
    scores = np.r_[[3.0, 2.0, 1.0], [1.0, 1.0], np.zeros(998)]
    assert metrics.tpr_at_fpr(scores, labels, 0.01) == pytest.approx(1.0)
    assert metrics.tpr_at_fpr(np.r_[scores, np.zeros(9000)], np.r_[labels, np.zeros(9000, int)], 0.0001) is None
    assert metrics.tpr_at_fpr(np.r_[scores, np.zeros(9000)], np.r_[labels, np.zeros(9000, int)], 0.001) == (
        pytest.approx(1.0)
    )
    assert metrics.tpr_at_fpr(scores, labels, 0.01) == _sk_tpr_at_fpr(scores, labels, 0.01)
    # all-tied top: the only threshold with FPR <= target is above every score
    assert metrics.tpr_at_fpr(np.zeros(1003), labels, 0.01) == 0.0


def test_tpr_at_fpr_is_none_below_ten_over_fpr_negatives():
    rng = np.random.default_rng(0)
    scores, labels = _binormal(rng, 500, 999, 1.0)
    assert metrics.tpr_at_fpr(scores, labels, 0.01) is None  # 999 < 1000
    assert metrics.tpr_at_fpr(scores, labels, 0.05) is not None  # 999 >= 200
    scores, labels = _binormal(rng, 500, 1000, 1.0)
    assert metrics.tpr_at_fpr(scores, labels, 0.01) is not None
    assert metrics.tpr_at_fpr(scores, labels, 0.001) is None
    assert metrics.min_negatives(0.01) == 1000 and metrics.min_negatives(0.001) == 10000
    assert metrics.fmt_value(None) == "n/a"


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("target", [0.01, 0.05, 0.2])
def test_threshold_at_fpr_respects_target_on_validation(seed, target):
    rng = np.random.default_rng(seed)
    scores, labels = _binormal(rng, 300, 700, 1.5)
    scores = np.round(scores, 1 if seed % 2 else 3)
    t = metrics.threshold_at_fpr(scores, labels, target)
    tpr, fpr = metrics.rates_at_threshold(scores, labels, t)
    assert fpr <= target
    # it is the max-TPR threshold: its TPR is sklearn's TPR at FPR <= target (10/fpr rule aside)
    assert tpr == pytest.approx(_sk_tpr_at_fpr(scores, labels, target), abs=1e-12)
    assert tpr == pytest.approx(np.mean(scores[labels == 1] >= t)) and fpr == pytest.approx(
        np.mean(scores[labels == 0] >= t)
    )


def test_threshold_at_fpr_above_all_scores_when_top_is_a_tied_negative():
    t = metrics.threshold_at_fpr(np.array([1.0, 1.0, 0.0]), np.array([1, 0, 0]), 0.1)
    assert t > 1.0 and metrics.rates_at_threshold(np.array([1.0, 1.0]), np.array([1, 0]), t) == (0.0, 0.0)


def _ece_reference(probs, labels, n_bins):
    """Direct per-bin computation, checked against calibration_curve's per-bin means."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.array([np.sum((probs > lo) & (probs <= hi)) if k else np.sum(probs <= hi)
                       for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))])
    prob_true, prob_pred = calibration_curve(labels, probs, n_bins=n_bins, strategy="uniform")
    nz = counts > 0
    assert nz.sum() == prob_true.size
    return float(np.sum(counts[nz] / probs.size * np.abs(prob_true - prob_pred)))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("decimals", [None, 2, 1])
@pytest.mark.parametrize("n_bins", [10, 15])
def test_ece_matches_calibration_curve(seed, decimals, n_bins):
    rng = np.random.default_rng(seed)
    probs = rng.beta(0.7, 0.7, 1000)
    labels = (rng.random(1000) < probs**1.5).astype(int)  # miscalibrated
    if decimals is not None:
        probs = np.round(probs, decimals)  # values on bin edges, many ties
    assert metrics.ece(probs, labels, n_bins) == pytest.approx(_ece_reference(probs, labels, n_bins), abs=1e-12)


def test_ece_of_perfect_and_constant_predictions():
    assert metrics.ece(np.array([0.0, 1.0, 1.0]), np.array([0, 1, 1])) == 0.0
    assert metrics.ece(np.full(4, 0.5), np.array([1, 1, 1, 0])) == pytest.approx(0.25)


@pytest.mark.parametrize("true_t", [0.4, 2.5])
def test_fit_temperature_recovers_known_temperature_and_lowers_ece(true_t):
    rng = np.random.default_rng(1)
    z = rng.normal(0.0, 2.0, 40000)  # calibrated log-odds
    labels = (rng.random(z.size) < 1.0 / (1.0 + np.exp(-z))).astype(int)
    x = z * true_t  # what an over/under-confident model reports
    t = metrics.fit_temperature(x, labels)
    assert t == pytest.approx(true_t, rel=0.05)
    before = metrics.ece(metrics.apply_temperature(x, 1.0), labels)
    after = metrics.ece(metrics.apply_temperature(x, t), labels)
    assert after < 0.02 < before and after < before / 2


def test_bootstrap_fast_auroc_path_equals_generic_loop():
    rng = np.random.default_rng(3)
    scores, labels = _binormal(rng, 80, 120, 1.0)
    scores = np.round(scores, 1)
    fast = metrics.bootstrap_ci(metrics.auroc, scores, labels, n=200, seed=5)
    loop = metrics.bootstrap_ci(lambda s, y: metrics.auroc(s, y), scores, labels, n=200, seed=5)
    assert fast == pytest.approx(loop, abs=1e-12)
    assert fast.estimate == metrics.auroc(scores, labels) and fast.low < fast.estimate < fast.high


def test_bootstrap_is_stratified_and_deterministic():
    rng = np.random.default_rng(0)
    scores, labels = _binormal(rng, 3, 200, 1.0)  # so few positives that plain resampling often drops them
    dist = metrics.bootstrap_distribution(metrics.auroc, [scores], labels, n=500, seed=7)
    assert np.isfinite(dist).all()
    again = metrics.bootstrap_distribution(metrics.auroc, [scores], labels, n=500, seed=7)
    other = metrics.bootstrap_distribution(metrics.auroc, [scores], labels, n=500, seed=8)
    assert np.array_equal(dist, again) and not np.array_equal(dist, other)
    args = (metrics.auroc, scores, scores + rng.normal(size=scores.size), labels, 300, 0.05, 3)
    assert metrics.paired_difference(*args) == metrics.paired_difference(*args)
    g = (scores, scores + 1e-3 * rng.normal(size=scores.size), scores * 3 + 2 * labels, labels, 300, 0.05, 3)
    assert metrics.gap_recovered(*g)[:3] == pytest.approx(metrics.gap_recovered(*g)[:3], nan_ok=True)
    assert metrics.summary(scores, labels, n_boot=100, seed=1) == metrics.summary(scores, labels, n_boot=100, seed=1)


def test_bootstrap_ci_coverage_binormal():
    rng = np.random.default_rng(2024)
    d = 1.0
    truth = _phi(d / math.sqrt(2.0))
    hits = 0
    for i in range(200):
        scores, labels = _binormal(rng, 100, 100, d)
        ci = metrics.bootstrap_ci(metrics.auroc, scores, labels, n=300, alpha=0.05, seed=i)
        hits += ci.low <= truth <= ci.high
    assert 0.88 <= hits / 200 <= 0.99, hits


def test_paired_difference_is_narrower_than_unpaired_and_covers_truth():
    rng = np.random.default_rng(11)
    d, sigma = 1.0, 0.3
    truth = _phi(d / math.sqrt(2.0 * (1.0 + sigma**2))) - _phi(d / math.sqrt(2.0))  # b = a + N(0, sigma^2)
    hits, ratios = 0, []
    for i in range(100):
        a, labels = _binormal(rng, 150, 150, d)
        b = a + sigma * rng.normal(size=a.size)
        ci = metrics.paired_difference(metrics.auroc, a, b, labels, n=300, alpha=0.05, seed=i)
        hits += ci.low <= truth <= ci.high
        # unpaired: each model resampled independently
        da = metrics.bootstrap_distribution(metrics.auroc, [a], labels, n=300, seed=10_000 + i)[0]
        db = metrics.bootstrap_distribution(metrics.auroc, [b], labels, n=300, seed=20_000 + i)[0]
        lo, hi = np.quantile(db - da, [0.025, 0.975])
        ratios.append((ci.high - ci.low) / (hi - lo))
        assert ci.estimate == pytest.approx(metrics.auroc(b, labels) - metrics.auroc(a, labels))
    assert max(ratios) < 0.8 and np.median(ratios) < 0.5, (max(ratios), np.median(ratios))
    assert hits >= 88, hits


def test_align_reorders_by_ids():
    assert list(metrics.align(["c", "a", "b"], ["a", "b", "c"], np.array([1, 2, 3]))) == [3, 1, 2]
    with pytest.raises(ValueError):
        metrics.align(["a", "b"], ["a", "x"], np.array([1, 2]))


def test_gap_recovered_constructed_cases():
    rng = np.random.default_rng(4)
    base, labels = _binormal(rng, 200, 200, 0.1)  # near chance
    in_domain = base + 2.0 * labels + 0.5 * rng.normal(size=base.size)  # strong
    full = metrics.gap_recovered(base, in_domain, in_domain, labels, n=300, seed=0)
    assert full.defined and full.estimate == pytest.approx(1.0) and full.low == pytest.approx(1.0)
    none = metrics.gap_recovered(base, base, in_domain, labels, n=300, seed=0)
    assert none.defined and none.estimate == 0.0 and none.high == 0.0
    assert none.denominator_ci.low > 0
    half = base + 0.6 * labels + 0.5 * rng.normal(size=base.size)
    g = metrics.gap_recovered(base, half, in_domain, labels, n=300, seed=0)
    a_b, a_o, a_i = (metrics.auroc(s, labels) for s in (base, half, in_domain))
    assert g.defined and g.estimate == pytest.approx((a_o - a_b) / (a_i - a_b)) and g.low < g.estimate < g.high
    assert 0.1 < g.estimate < 0.9 and metrics.fmt_ci(g).count("[") == 1


def test_gap_recovered_undefined_when_base_matches_in_domain():
    rng = np.random.default_rng(5)
    base, labels = _binormal(rng, 200, 200, 1.0)
    same = metrics.gap_recovered(base, base + labels, base, labels, n=300, seed=0)
    assert not same.defined and math.isnan(same.estimate) and same.denominator_ci == (0.0, 0.0, 0.0)
    close = base + 0.05 * rng.normal(size=base.size)
    g = metrics.gap_recovered(base, base + labels, close, labels, n=300, seed=0)
    assert not g.defined and math.isnan(g.estimate) and g.denominator_ci.low <= 0 <= g.denominator_ci.high
    assert metrics.fmt_ci(g) == "undefined" and metrics.verdict(g) == "inconclusive"


def test_verdict_and_formatting():
    assert metrics.verdict(metrics.CI(0.05, 0.01, 0.09)) == "reproduced"
    assert metrics.verdict(metrics.CI(-0.05, -0.09, -0.01)) == "refuted"
    assert metrics.verdict(metrics.CI(-0.05, -0.09, -0.01), direction=-1) == "reproduced"
    assert metrics.verdict(metrics.CI(0.05, 0.01, 0.09), direction=-1) == "refuted"
    assert metrics.verdict(metrics.CI(0.01, -0.02, 0.04)) == "inconclusive"
    assert metrics.verdict(metrics.CI(0.02, 0.0, 0.04)) == "inconclusive"  # touching 0 is not "entirely"
    assert metrics.fmt_ci(metrics.CI(0.8123, 0.7712, 0.85)) == "0.812 [0.771, 0.850]"
    assert metrics.fmt_ci(metrics.CI(0.8123, 0.7712, 0.85), digits=2) == "0.81 [0.77, 0.85]"
    assert metrics.fmt_value(0.5, 1) == "0.5" and metrics.fmt_value(float("nan")) == "n/a"


def test_summary_is_json_serializable_and_consistent():
    rng = np.random.default_rng(6)
    x, labels = _binormal(rng, 400, 1600, 1.5)
    perm = rng.permutation(x.size)  # validation and test halves both hold both classes
    x, labels = x[perm], labels[perm]
    probs = 1.0 / (1.0 + np.exp(-x))
    val_t = metrics.threshold_at_fpr(probs[:1000], labels[:1000], 0.05)
    s = metrics.summary(probs[1000:], labels[1000:], val_threshold=val_t, n_boot=200, seed=0)
    json.loads(json.dumps(s, allow_nan=False))
    assert s["n_pos"] + s["n_neg"] == 1000 and s["tpr_at_fpr_1pct"] is None and s["tpr_at_fpr_0.1pct"] is None
    assert s["auroc"]["estimate"] == pytest.approx(roc_auc_score(labels[1000:], probs[1000:]))
    assert s["auroc"]["low"] < s["auroc"]["estimate"] < s["auroc"]["high"]
    assert s["ece"] == pytest.approx(metrics.ece(probs[1000:], labels[1000:]))
    assert (s["tpr_at_threshold"], s["fpr_at_threshold"]) == metrics.rates_at_threshold(
        probs[1000:], labels[1000:], val_t
    )
    big = metrics.summary(*_binormal(rng, 500, 1500, 2.0), n_boot=50)
    assert big["tpr_at_fpr_1pct"] is not None and big["ece"] is None  # raw scores are not probabilities
    json.dumps(metrics.summary(np.array([0.2, 0.4]), np.array([1, 1]), n_boot=10), allow_nan=False)
