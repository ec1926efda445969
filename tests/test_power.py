"""The minimum detectable difference: Hanley & McNeil's AUROC standard error against simulation."""

import numpy as np
import pytest

from monitor_jax.eval import metrics
from monitor_jax.experiment import power


@pytest.mark.parametrize("n_pos,n_neg,shift", [(40, 400, 0.5), (94, 94, 0.8), (30, 30, 0.0)])
def test_auroc_se_matches_the_spread_of_simulated_aurocs(n_pos, n_neg, shift):
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    sims = np.asarray([metrics.auroc(rng.normal(size=len(y)) + shift * y, y) for _ in range(1500)])
    se = power.auroc_se(float(sims.mean()), n_pos, n_neg)
    assert se == pytest.approx(sims.std(), rel=0.12)


def test_mde_shrinks_with_n_and_with_correlation_and_is_inf_without_items():
    assert power.mde(40, 400) > power.mde(80, 800) > power.mde(160, 1600)
    assert power.mde(94, 94, r=0.8) < power.mde(94, 94, r=0.5) < power.mde(94, 94, r=0.0)
    assert power.mde(0, 10) == float("inf")
    # (1.96 + 0.84) * SE * sqrt(2 (1 - 0.5)) = 2.80 * SE
    assert power.mde(94, 94) == pytest.approx(2.8016 * power.auroc_se(0.6, 94, 94), rel=1e-3)
