"""Cost estimates (`monitor-jax experiment --dry_run`): measured on the tiny model and cached, scaled by every arm,
seed and cell, flagged over the limit; the dry run works on every claim config and trains nothing."""
import glob
import pathlib
import sys

import pytest

from monitor_jax import main
from monitor_jax.core import config as config_lib
from monitor_jax.experiment import cost, runner
from monitor_jax.model import registry

import test_experiment as TE  # noqa: E402  (tests/ is on sys.path: its tiny experiment config)

ROOT = pathlib.Path(__file__).resolve().parents[1]

FIXED = {"machine": "test", "model": "tiny", "n_layers": 30, "top_k": 2, "batch_size": 8, "lengths": [128, 512],
         "layer_row_s": [1e-5, 1e-9], "step_row_s": [1e-4, 1e-8], "measured": "now"}


def test_measure_on_the_tiny_model_is_cached_and_scales_with_the_arms(tmp_path, tiny_experiment):
    config = TE._config(tiny_experiment)
    config.data.max_len, config.data.buckets = 128, (128,)  # one shape: one compile of each measured program
    model = registry.load("tiny-random-llama")
    costs = cost.measure(config, model, root=tmp_path)
    assert costs["lengths"] == [128, 128] and costs["layer_row_s"][0] > 0 and costs["step_row_s"][0] > 0
    assert costs["decode_step_s"] > 0  # one greedy decode step of a batch, compile and prefill excluded
    assert cost.measure(config, model, root=tmp_path) == costs and len(list(tmp_path.glob("*.json"))) == 1

    est = cost.estimate(config, costs, model.tokenizer)
    arms = {a["name"]: a for a in est["arms"]}
    assert set(arms) == {"harm", "tweets"}  # the base arm trains nothing
    assert arms["harm"]["runs"] == 2 and arms["harm"]["steps"] == 4 and arms["harm"]["rows"] == 32
    assert arms["harm"]["distinct_rows"] == 16
    assert est["total_min"] == pytest.approx(sum(a["total_min"] for a in est["arms"]) + est["cell_features_min"]
                                             + est["cells_min"] + est["generation_min"])
    assert not est["over"]
    slow = {**costs, "layer_row_s": [x * 1e6 for x in costs["layer_row_s"]]}
    assert cost.estimate(config, slow, model.tokenizer)["over"]
    text = cost.report(config, costs, est)
    assert "harm" in text and "total:" in text and "OVER" not in text

    # A warm estimate: rows the store holds cost nothing, rows of a base stack only the layers above it.
    n_lower = costs["n_layers"] - config.train.top_k
    full = cost.estimate(config, costs, model.tokenizer, stored=lambda key: n_lower)
    assert full["cached_rows"] == full["distinct_rows"] > 0 and full["cell_features_min"] == 0
    assert all(a["feature_min"] == 0 for a in full["arms"])
    half = cost.estimate(config, costs, model.tokenizer, stored=lambda key: n_lower // 2)
    assert half["cached_rows"] == 0
    assert half["cell_features_min"] == pytest.approx(est["cell_features_min"] * (n_lower - n_lower // 2) / n_lower)
    assert "with the feature store as it is" in cost.report(config, costs, est, half)


def test_features_are_costed_at_the_prefill_width_of_each_distinct_row(tiny_experiment):
    """Linear per-row cost: the cold feature minutes are n_lower x the sum, over distinct rows (training, selection and
    cell rows), of each row's needed length rounded up to `features.PREFILL_STEP` (what `FeatureCache.prefill` and
    the cells compute), not its training bucket."""
    from monitor_jax.data import pipeline
    from monitor_jax.experiment import cells
    from monitor_jax.train import data as train_data
    from monitor_jax.train import features

    config = TE._config(tiny_experiment)
    model = registry.load("tiny-random-llama")
    linear = {**FIXED, "layer_row_s": [1.0, 0.0]}
    est = cost.estimate(config, linear, model.tokenizer)
    examples = []
    for arm in config.experiment.arms:
        if arm.stages:
            rc = cells.run_config(config, arm, int(config.experiment.seeds[0]))
            examples += [c.examples for st in train_data.build_stages(rc) for c in st.components]
            examples += [ex for _, ex in cells.selection(config, arm)]
    examples += [cells.cell_examples(config, cell) for cell in config.experiment.cells]
    rows = {cost._row_key(r): r for ex in examples
            for r in pipeline.render_examples(model.tokenizer, ex, int(config.data.max_len))[0]}
    step = features.PREFILL_STEP
    widths = [-(-cost.needed_length(len(r), r.answer_index, r.is_classification, r.loss_mask) // step) * step
              for r in rows.values()]
    seconds = (sum(a["feature_min"] for a in est["arms"]) + est["cell_features_min"]) * 60
    assert seconds / (linear["n_layers"] - int(config.train.top_k)) == pytest.approx(sum(widths))
    assert est["distinct_rows"] == len(rows)


def test_generated_views_are_estimated_from_prefill_and_decode_steps(tiny_experiment):
    """A thinking cell costs two prefills and `budget` decode steps per batch per model; its empty-reasoning
    control two prefills and no decoding; a summary cell one prefill, `budget` steps and the judge's full read."""
    config = TE._config(tiny_experiment)
    tok = registry.load("tiny-random-llama").tokenizer
    task = config.experiment.cells[0].task
    costs = {**FIXED, "decode_step_s": 0.5}

    def with_view(view: str, budget: int):
        c = TE._config(tiny_experiment)
        with c.unlocked():
            c.experiment.cells = [config_lib.load_module("configs/experiment.py").cell(
                task, 16, "view", name=f"{task}:{view}", view=view, budget=budget, arms=("base",))]
        return cost.estimate(c, costs, tok)

    think, longer, control = with_view("thinking", 8), with_view("thinking", 16), with_view("thinking_control", 8)
    decode = 2 * 8 * 0.5 / 60  # 16 items in 2 batches of 8, 8 steps of 0.5 s
    prefill = control["generation_min"]  # the control: one prefill, no decoding
    assert longer["generation_min"] - think["generation_min"] == pytest.approx(decode)
    assert think["generation_min"] == pytest.approx(2 * prefill + decode)
    assert prefill > 0 and control["cells_min"] == 0  # no plain scoring
    summary = with_view("summary", 8)
    assert summary["generation_min"] == pytest.approx(prefill + decode)
    assert summary["cells_min"] > 0 and not summary["skipped"]  # the judge on full inputs
    assert think["total_min"] == pytest.approx(think["generation_min"] + think["cell_features_min"]
                                               + think["cells_min"] + sum(a["total_min"] for a in think["arms"]))
    assert "generation" in cost.report(config, costs, think)


def test_stored_layers_sees_the_own_and_the_base_stack(tmp_path, tiny_experiment):
    import numpy as np
    from monitor_jax.train import feature_store as fs
    from monitor_jax.train import features
    from monitor_jax.model import transformer
    from tests.train.test_feature_store import _deeper

    model = _deeper(registry.load("tiny-random-llama"), 4)
    config = TE._config(tiny_experiment)
    config.train.top_k, config.train.feature_store_dir, config.train.feature_store_base = 1, str(tmp_path), 1
    a, b = np.arange(1, 9, dtype=np.int32), np.arange(2, 12, dtype=np.int32)
    frozen = {k: v for k, v in transformer.split_params(model.params, 3)[0].items() if k != "final_norm"}
    kw = {"model_name": str(config.model.name), "compute_dtype": np.float32}
    fs.shared_stack_store(config, frozen=frozen, n_lower=3, **kw).put(fs.row_key(a, 8), np.zeros((8, 4), np.float32))
    fs.shared_stack_store(config, frozen=features.layer_slice(frozen, 0, 1), n_lower=1, **kw).put(
        fs.row_key(b, 10), np.zeros((10, 4), np.float32))
    stored = cost.stored_layers(config, model)
    assert stored(fs.row_key(a, 8)) == 3 and stored(fs.row_key(b, 10)) == 1 and stored(fs.row_key(a, 7)) == 0


@pytest.mark.parametrize("path", sorted(glob.glob(str(ROOT / "configs" / "c*.py")))
                         + [str(ROOT / "configs" / f) for f in ("pilot_depth.py", "agent_learnability.py")])
def test_dry_run_on_every_claim_config_trains_nothing(path, monkeypatch, capsys):
    monkeypatch.setattr(cost, "measure", lambda config, model=None, **kw: FIXED)
    monkeypatch.setattr(runner, "train_run", lambda *a, **k: pytest.fail("the dry run trained"))
    argv = ["monitor-jax", "experiment", "--dry_run", f"--config={path}", "--config.model.name=tiny-random-llama",
            "--config.train.top_k=1"]
    monkeypatch.setattr(sys, "argv", argv)  # (ml_collections reads --config.* overrides from sys.argv)
    assert main.main(argv) == 0
    out = capsys.readouterr().out
    assert "cost estimate of" in out and "total:" in out
    e = config_lib.load(path).experiment
    plain = [c for c in e.cells if not c.get("view")]
    assert out.count(" MDE ") == len(plain)  # every plain cell states its minimum detectable difference
