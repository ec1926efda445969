"""evaluate_models: paired scoring on the same examples; a model compared with itself differs by exactly 0."""

import json

import numpy as np
import pytest

from monitor_jax.data import tasks
from monitor_jax.eval import evaluate, metrics, report

TASK = "requests/harmful"
FAST = dict(limit_per_task=24, max_len=256, buckets=(256,), batch_size=8, n_boot=200, progress=False)


@pytest.fixture(scope="module")
def same_twice():
    return evaluate.evaluate_models(["tiny-random-llama", "tiny-random-llama"], [TASK], command="pytest", **FAST)


def test_same_model_twice_has_zero_paired_difference(same_twice):
    (d,) = same_twice.paired
    assert (d["task"], d["prompt"], d["reference"], d["model"]) == (TASK, "primary", 0, 1)
    assert (d["estimate"], d["low"], d["high"]) == (0.0, 0.0, 0.0)
    a, b = (same_twice.cell(m, TASK, "primary") for m in (0, 1))
    np.testing.assert_array_equal(a.arrays["score"], b.arrays["score"])
    assert a.summary == b.summary


def test_every_id_once_per_cell_and_same_ids_across_models(same_twice):
    expected = [ex.id for ex in tasks.examples(TASK, "validation", "primary", limit=24, seed=0)]
    assert len(expected) == 24
    id_sets = []
    for m in (0, 1):
        ids = same_twice.cell(m, TASK, "primary").arrays["id"].tolist()
        assert len(ids) == len(set(ids)) == 24
        assert ids == expected  # the examples tasks.examples gives, in its order
        id_sets.append(set(ids))
    assert id_sets[0] == id_sets[1]
    assert [m["tag"] for m in same_twice.models] == ["m0-tiny-random-llama", "m1-tiny-random-llama"]


def test_auroc_equals_auroc_of_the_per_example_file(same_twice, tmp_path):
    rep = report.write_report(same_twice, tmp_path / "rep")
    for row in rep["results"]:
        lines = (tmp_path / "rep" / row["scores_file"]).read_text().splitlines()
        rows = [json.loads(x) for x in lines]
        assert sorted(rows[0]) == sorted(evaluate.SCORE_FIELDS)
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)) == row["n"] == row["n_pos"] + row["n_neg"]
        auc = metrics.auroc(np.array([r["score"] for r in rows]), np.array([r["label"] for r in rows]))
        assert row["auroc"]["estimate"] == auc
        assert row["auroc"]["low"] <= auc <= row["auroc"]["high"]


def test_validation_split_records_no_threshold_and_no_test_warning(same_twice):
    assert same_twice.split == "validation"
    assert all(c.threshold is None and c.val is None for c in same_twice.cells)
    assert not any("TEST" in w for w in same_twice.warnings)


def test_length_buckets_partition_the_items(same_twice):
    rows = [b for b in same_twice.length_buckets if (b["task"], b["prompt"]) == (TASK, "primary")]
    assert 2 <= len(rows) <= evaluate.N_LENGTH_BUCKETS
    assert sum(b["n_pos"] + b["n_neg"] for b in rows) == 24
    n_tok = same_twice.cell(0, TASK, "primary").arrays["n_tokens"]
    assert rows[0]["tokens_min"] == n_tok.min() and rows[-1]["tokens_max"] == n_tok.max()
    for b in rows:
        assert len(b["auroc"]) == 2 and b["auroc"][0] == b["auroc"][1]  # same model: same per-bucket AUROC


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(split="dev"), ValueError, "split must be"),
    (dict(thresholds_from="train"), ValueError, "thresholds_from"),
    (dict(prompts=("no-such-prompt",)), KeyError, "no-such-prompt"),
])
def test_bad_arguments_are_refused_before_any_model_loads(kwargs, err, match):
    with pytest.raises(err, match=match):
        evaluate.evaluate_models(["no-such-model"], [TASK], **kwargs)
