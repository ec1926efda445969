"""Cells scored by generating first (monitor_jax/experiment/views.py), on the tiny model: a thinking cell equals
`thinking.score_with_thinking` on the run's whole model, a summary cell's judge scores equal the judge model's full
forward on the summaries / the length-matched first tokens / the full inputs, an arm's own seeds are honoured,
and the results say how the text was generated."""
import copy
import dataclasses
import json

import numpy as np
import pytest

from monitor_jax.core import config as config_lib
from monitor_jax.eval import scoring
from monitor_jax.eval.protocols import summarize, thinking
from monitor_jax.experiment import cells, runner, views, write

x = config_lib.load_module("configs/experiment.py")

TASK = "requests/harmful"


def _config(tiny_experiment):
    c = tiny_experiment("views", steps=2, max_len=256, n_boot=100, select_limit=8)
    with c.unlocked():
        e = c.experiment
        e.split = "validation"
        e.cells = [x.cell(TASK, 12, "plain"),
                   x.cell(TASK, 12, "t", name="think", view="thinking", budget=3),
                   x.cell(TASK, 12, "c", name="control", view="thinking_control", budget=3, arms=("base",)),
                   x.cell(TASK, 12, "s", name="summary", view="summary", budget=3, judge="judge",
                          arms=("base", "harm"))]
        e.arms = [x.arm("base"), x.arm("harm", x.balanced("harm", TASK, 8)),
                  x.arm("judge", x.balanced("judge", TASK, 8), seeds=(1,))]
        e.comparisons = [x.comparison("diff", "think", a="base", b="harm", primary=True),
                         x.comparison("diff", "summary", a="harm:first_n", b="harm")]
    return c


@pytest.fixture(scope="module")
def done(tmp_path_factory, tiny_experiment):
    config = _config(tiny_experiment)
    return config, runner.run_experiment(config, tmp_path_factory.mktemp("runs"), progress=False)


def _whole(shared, rdir):
    return shared.full_params(cells.chosen_top(rdir))


def test_thinking_cells_score_the_runs_whole_model(done):
    config, raw = done
    shared = raw["shared"]
    model = shared.model
    cell = config.experiment.cells[1]
    ex = cells.cell_examples(config, cell)
    rdir = raw["runs"]["harm"][1]
    want = thinking.score_with_thinking(model.cfg, _whole(shared, rdir), model.tokenizer, ex,
                                        thinking.Protocol(budget=3), max_len=256, progress=False)
    np.testing.assert_allclose(raw["scores"]["think"]["harm"][1], want.score, rtol=1e-4, atol=1e-5)
    assert not np.allclose(raw["scores"]["think"]["harm"][1], raw["scores"]["think"]["base"][0])
    kept = json.loads((rdir / "scores.json").read_text())
    assert any(k.startswith("thinking|") and v["reasoning"] == want.reasoning for k, v in kept.items())
    assert set(raw["scores"]["control"]) == {"base"}  # the cell's own arms only
    gen = raw["generation"]["think"]["harm"]
    assert len(gen["mean_tokens"]) == 2 and all(0 <= t <= 3 for t in gen["mean_tokens"])


def test_summary_cells_are_judged_by_the_fixed_judge(done):
    config, raw = done
    shared = raw["shared"]
    model = shared.model
    assert [d.name.endswith("-s1") for d in raw["runs"]["judge"]] == [True]  # the arm's own seeds
    cell = config.experiment.cells[3]
    ex = cells.cell_examples(config, cell)
    judge = _whole(shared, raw["runs"]["judge"][0])

    def judged(texts):
        rows = [dataclasses.replace(e, input=t) for e, t in zip(ex, texts)]
        return scoring.score_examples(model.cfg, judge, model.tokenizer, rows, max_len=256, buckets=(128, 256),
                                      progress=False).score

    gens = summarize.summarize(model.cfg, _whole(shared, raw["runs"]["harm"][0]), model.tokenizer,
                               [e.input for e in ex], noun="request", max_summary_tokens=3, max_input_tokens=256,
                               progress=False)
    texts = [g.text or "" for g in gens]
    first = summarize.first_tokens_baseline(model.tokenizer, [e.input for e in ex], [len(g.tokens) for g in gens])
    s = raw["scores"]["summary"]
    assert set(s) == {"base", "harm", "base:first_n", "harm:first_n", "full_input"}
    np.testing.assert_allclose(s["harm"][0], judged(texts), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s["harm:first_n"][0], judged(first), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s["full_input"][0], judged([e.input for e in ex]), rtol=1e-4, atol=1e-5)
    assert not np.allclose(s["full_input"][0], s["harm"][0])


def test_results_show_the_generated_text_and_pseudo_arms(done, tmp_path):
    config, raw = done
    res = write.summarize(config, raw, command="test", wall_minutes=0.0)
    assert res["arms"]["harm:first_n"]["label"].startswith("first-N tokens")
    assert res["cells"]["summary"]["view"] == "summary" and res["cells"]["summary"]["judge"] == "judge"
    assert [c["kind"] for c in res["comparisons"]] == ["diff", "diff"]
    text = (write.write(res, tmp_path / "out") / "results.md").read_text()
    assert "## Generated text" in text and "the judge (`judge`" in text


def test_view_mistakes_fail_before_training(tmp_path, tiny_experiment):
    config = _config(tiny_experiment)
    with config.unlocked():
        config.experiment.comparisons[1].cell = "think"  # first_n columns exist on summary cells only
    with pytest.raises(ValueError, match="must name arms scored on it"):
        runner.validate(config)
    config = _config(tiny_experiment)
    with config.unlocked():
        config.experiment.cells[3].judge = "nobody"
    with pytest.raises(ValueError, match="judge must name an arm"):
        runner.validate(config)
    config = _config(tiny_experiment)
    with config.unlocked():
        config.experiment.cells[1].view = "dreaming"
    with pytest.raises(ValueError, match="view must be one of"):
        runner.validate(config)
    config.experiment.cells[1].view = "thinking"
    config.experiment.cells[1].budget = 0
    with pytest.raises(ValueError, match="needs budget > 0"):
        runner.validate(config)
    assert views.pseudo_arms(config.experiment.cells[0], ["a"]) == []


def test_a_summary_cell_without_its_judge_is_reported_not_run(done, tmp_path):
    config, raw = done
    config = copy.deepcopy(config)
    with config.unlocked():
        config.experiment.budget_minutes = 0.0  # in a fresh runs dir the first run fits, the judge's does not
    fresh = dataclasses.replace(raw["shared"], runs_dir=tmp_path)
    out = runner.run_experiment(config, tmp_path, shared=fresh, progress=False)
    assert out["incomplete"] and "summary" not in out["scores"] and not out["runs"]["judge"]
    res = write.summarize(config, out, command="test", wall_minutes=0.0)
    assert "summary" not in res["cells"]
    assert [c.get("note") for c in res["comparisons"]] == [None, "not run (budget)"]
