"""Metrics equal scikit-learn's."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from monitor_jax.eval import metrics


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.normal(size=200) + labels, 1)  # rounding makes many ties
    assert metrics.auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auroc_single_class_is_nan():
    assert np.isnan(metrics.auroc(np.array([0.1, 0.2]), np.array([1, 1])))
