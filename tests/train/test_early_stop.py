"""Converged runs: budgets in row-visits become steps, early stopping stops at the right evaluation of a known
validation sequence and records it, and a stopped run relaunched trains nothing."""
import json

import pytest

from monitor_jax.train import budget, loop, metric_log
from tests.train.test_features import _config

SCORES = {1: 0.50, 2: 0.60, 3: 0.55, 4: 0.60, 5: 0.90, 6: 0.95}  # best at 2; 3 and 4 are not better: stop at 4


def test_row_budgets_become_steps():
    c = _config(True, steps=99)
    c.optim.total_rows, c.eval.every_rows = 20, 9  # 8 rows per step
    r = budget.resolve(c)
    assert (r.optim.total_steps, r.eval.every) == (3, 2) and c.optim.total_steps == 99
    plain = _config(True)
    assert budget.resolve(plain) is plain  # no row budget: the config itself
    c.optim.total_rows = 0
    with pytest.raises(ValueError, match="optim.total_rows"):
        budget.resolve(c)


def test_early_stopping_stops_at_the_right_evaluation_and_is_not_retrained(tmp_path, model, xla_cache):
    config = _config(True, steps=6)
    config.eval.every, config.eval.patience, config.checkpoint.every = 1, 2, 100
    calls = []

    def evaluate(params, step):
        calls.append(step)
        return {"auroc/x": SCORES[step]}

    out = loop.train_and_evaluate(config, tmp_path, evaluate, model=model, progress=False)
    assert calls == [1, 2, 3, 4]
    assert out["steps_trained"] == 4 and out["total_steps"] == 6 and out["best_step"] == 2
    assert out["stopped_early"] == {"step": 4, "best_step": 2, "patience": 2, "total_steps": 6}
    rows = metric_log.read_metrics(tmp_path)
    assert rows[-1]["step"] == 4 and rows[-1]["train/stopped_early"] == 1.0
    assert json.loads((tmp_path / "best.json").read_text())["step"] == 2

    again = loop.train_and_evaluate(config, tmp_path, evaluate, model=model, progress=False)
    assert calls == [1, 2, 3, 4] and again["steps_trained"] == 4 and again["best_step"] == 2
    assert len(metric_log.read_metrics(tmp_path)) == len(rows)
