"""The experiment runner on the tiny model: cached-feature scores equal the full forward (base and chosen
checkpoint), finished runs are reused, the budget stops runs, statistics agree with eval.metrics, verdicts follow
the CIs, and the results files are written."""
import dataclasses
import json
import pathlib

import jax
import numpy as np
import pytest

from monitor_jax.core import config as config_lib
from monitor_jax.data import tasks
from monitor_jax.eval import metrics, scoring
from monitor_jax.experiment import cells, compare, decide, item_scores, runner, write
from monitor_jax.train import loop

ROOT = pathlib.Path(__file__).resolve().parents[1]
x = config_lib.load_module("configs/experiment.py")

EXPERIMENT_CONFIGS = [p.name for p in sorted((ROOT / "configs").glob("*.py"))
                      if config_lib.load(p.name).get("experiment", {}).get("arms")]  # not experiment.py, the base
HARM, TWEETS = "requests/harmful:primary", "tweets/negative:primary"


def _config(tiny_experiment, budget=60.0):
    c = tiny_experiment("tiny", steps=4, max_len=128, n_boot=200, select_limit=16)
    with c.unlocked():
        e = c.experiment
        e.budget_minutes = budget
        e.cells = [x.cell("requests/harmful", 40, "r"), x.cell("tweets/negative", 30, "t")]
        e.arms = [x.arm("base"), x.arm("harm", x.balanced("harm", "requests/harmful", 16)),
                  x.arm("tweets", x.balanced("tweets", "tweets/negative", 16))]
        e.comparisons = [x.comparison("diff", HARM, a="base", b="harm", primary=True),
                         x.comparison("gap", TWEETS, arm="harm", base="base", ref="tweets")]
    return c


@pytest.fixture(scope="module")
def done(tmp_path_factory, xla_cache, tiny_experiment):
    del xla_cache
    runs = tmp_path_factory.mktemp("runs")
    config = _config(tiny_experiment)
    raw = runner.run_experiment(config, runs, progress=False)
    return config, runs, raw


def _full_forward(model, params, config, cell):
    ex = cells.cell_examples(config, cell)
    res = scoring.score_examples(model.cfg, params, model.tokenizer, ex, max_len=int(config.data.max_len),
                                 buckets=tuple(config.data.buckets), progress=False)
    return res.score


def test_scores_from_cached_features_equal_the_full_forward(done):
    config, runs, raw = done
    shared = raw["shared"]
    model = shared.model
    for cell in config.experiment.cells:
        k = cells.cell_key(cell)
        np.testing.assert_allclose(raw["scores"][k]["base"][0], _full_forward(model, model.params, config, cell),
                                   rtol=1e-4, atol=1e-5)
        # a trained run: its chosen top layer put back into the full model
        rdir = raw["runs"]["harm"][1]
        top = cells.chosen_top(rdir)
        params = dict(model.params)
        params["final_norm"] = top["final_norm"]
        params["layers"] = jax.tree_util.tree_map(lambda full, t: np.concatenate([np.asarray(full)[:shared.n_lower], t]),
                                                  model.params["layers"], top["layers"])
        got = raw["scores"][k]["harm"][1]
        np.testing.assert_allclose(got, _full_forward(model, params, config, cell), rtol=1e-4, atol=1e-5)
        assert not np.allclose(got, raw["scores"][k]["base"][0])  # training changed something


def test_runs_are_chosen_on_validation_and_reused(done, monkeypatch):
    config, runs, raw = done
    assert len(raw["runs"]["harm"]) == 2 and len(raw["runs"]["tweets"]) == 2 and raw["incomplete"] is None
    run = json.loads((raw["runs"]["harm"][0] / "run.json").read_text())
    assert run["selected_on"] == [HARM] and run["best_step"] in (2, 4)
    assert [r["step"] for r in run["selection_curve"]] == [2, 4]
    best = max(run["selection_curve"], key=lambda r: r[f"auroc/{HARM}"])
    assert run["best_step"] == best["step"]
    assert len({d.name for d in raw["runs"]["harm"]}) == 2  # one directory per seed

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(loop, "train_and_evaluate", no_training)
    again = runner.run_experiment(config, runs, shared=raw["shared"], progress=False)
    for k in raw["scores"]:
        for arm in raw["scores"][k]:
            np.testing.assert_array_equal(np.stack(again["scores"][k][arm]), np.stack(raw["scores"][k][arm]))


def test_budget_stops_runs_and_results_say_so(done, tmp_path, tiny_experiment):
    config, runs, raw = done
    config = _config(tiny_experiment, budget=0.0)
    again = runner.run_experiment(config, runs, shared=raw["shared"], progress=False)
    assert again["incomplete"] is None  # finished runs are reused whatever the budget
    fresh = dataclasses.replace(raw["shared"], runs_dir=tmp_path / "runs")  # the first run fits, the next does not
    out = runner.run_experiment(config, fresh.runs_dir, shared=fresh, progress=False)
    assert out["incomplete"] and "budget" in out["incomplete"]
    assert len(out["runs"]["harm"]) == 1 and not out["runs"]["tweets"]
    res = write.summarize(config, out, command="test", wall_minutes=0.0)
    assert res["incomplete"]
    gap = [c for c in res["comparisons"] if c["kind"] == "gap"][0]
    assert gap["note"] == "not run (budget)" and gap["verdict"] == "inconclusive"
    with config.unlocked():  # a primary comparison that was not run makes the claim inconclusive
        config.experiment.comparisons[1].primary = True
    res = write.summarize(config, out, command="test", wall_minutes=0.0)
    assert res["verdict"] == "inconclusive"


def test_results_files_and_verdict(done, tmp_path):
    config, runs, raw = done
    res = write.summarize(config, raw, command="monitor-jax experiment --config=tiny", wall_minutes=1.0)
    path = write.write(res, tmp_path / "out")
    saved = json.loads((path / "results.json").read_text())
    assert saved["verdict"] in compare.VERDICTS
    assert saved["verdict"] == compare.claim_verdict(saved["comparisons"])
    for c in saved["comparisons"]:
        assert compare.recompute_verdict(c) == c["verdict"] or not c["defined"]
    cell = saved["cells"][HARM]
    want_pos = sum(e.label for e in cells.cell_examples(config, config.experiment.cells[0]))  # stratified, seed 0
    assert cell["n"] == cell["declared_n"] == 40 and cell["n_pos"] == want_pos and 15 <= want_pos <= 25
    assert set(cell["baselines"]) == {"length_auroc", "tfidf_auroc"}
    text = (path / "results.md").read_text()
    assert "Verdict" in text and "TF-IDF" in text and "monitor-jax experiment --config=tiny" in text
    assert "two-level" in text and "±" not in text and saved["ci_method"] == "two-level"
    # the per-item scores rebuild every arm's statistics exactly
    assert saved["item_scores"] == {"file": "scores.jsonl.gz", "n_rows": 5 * (40 + 30)}
    rebuilt = item_scores.rebuild(item_scores.read(path / "scores.jsonl.gz"))
    assert rebuilt[HARM]["seeds"] == {"base": [None], "harm": [0, 1], "tweets": [0, 1]}
    stats, _, _ = decide.cell_stats({k: c["scores"] for k, c in rebuilt.items()},
                                    {k: c["labels"] for k, c in rebuilt.items()},
                                    {k: c["groups"] for k, c in rebuilt.items()}, saved["n_boot"])
    assert {k: stats[k] for k in saved["cells"]} == {k: c["arms"] for k, c in saved["cells"].items()}
    assert (path / "auroc.png").stat().st_size > 0
    assert "Δ harm − base" in write.table(saved)


def test_seed_mean_statistics_agree_with_metrics():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(30), np.zeros(50)].astype(int)
    base, a, ref = (rng.normal(size=80) + k * y for k in (0.1, 0.8, 1.5))
    stats, dists = compare.arm_stats({"base": [base], "a": [a], "ref": [ref]}, y, 500, 3)
    est = {k: v["auroc"]["estimate"] for k, v in stats.items()}
    diff = compare.compare({"kind": "diff", "cell": "c", "a": "base", "b": "a"}, est, dists)
    want = metrics.paired_difference(metrics.auroc, base, a, y, n=500, seed=3)
    np.testing.assert_allclose([diff["ci"][k] for k in ("estimate", "low", "high")], want, atol=1e-12)
    gap = compare.compare({"kind": "gap", "cell": "c", "arm": "a", "base": "base", "ref": "ref"}, est, dists)
    want = metrics.gap_recovered(base, a, ref, y, n=500, seed=3)
    np.testing.assert_allclose([gap["ci"][k] for k in ("estimate", "low", "high")], want[:3], atol=1e-12)
    assert diff["verdict"] == "reproduced" and gap["defined"]
    # two seeds: the arm's value is the mean of the per-seed AUROCs, its draws the mean of theirs
    stats2, _ = compare.arm_stats({"a": [a, ref]}, y, 100, 0)
    assert stats2["a"]["auroc"]["estimate"] == pytest.approx((metrics.auroc(a, y) + metrics.auroc(ref, y)) / 2)
    assert stats2["a"]["seed_spread"] == pytest.approx(abs(metrics.auroc(a, y) - metrics.auroc(ref, y)))


def test_undefined_gap_and_claim_verdicts():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(20), np.zeros(20)].astype(int)
    noise = [rng.normal(size=40) for _ in range(3)]
    stats, dists = compare.arm_stats({"base": [noise[0]], "a": [noise[1]], "ref": [noise[2]]}, y, 300, 0)
    est = {k: v["auroc"]["estimate"] for k, v in stats.items()}
    gap = compare.compare({"kind": "gap_diff", "cell": "c", "arm": "a", "other": "base", "base": "base",
                           "ref": "ref"}, est, dists)
    assert not gap["defined"] and gap["verdict"] == "inconclusive"
    v = lambda *vs: compare.claim_verdict([{"verdict": s, "primary": True} for s in vs])  # noqa: E731
    assert v("reproduced", "reproduced") == "reproduced" and v("refuted") == "refuted"
    assert v("reproduced", "refuted") == "inconclusive" and compare.claim_verdict([]) == "inconclusive"
    with pytest.raises(ValueError, match="name arms"):
        compare.compare({"kind": "diff", "cell": "c", "a": "base", "b": "nope"}, est, dists)


def test_config_mistakes_fail_before_training(tmp_path, tiny_experiment):
    config = _config(tiny_experiment)
    with config.unlocked():
        config.experiment.comparisons[0].b = "nope"
    with pytest.raises(ValueError, match="must name arms"):
        runner.run_experiment(config, tmp_path)
    config = _config(tiny_experiment)
    with config.unlocked():
        config.experiment.arms[2].name = "harm"
    with pytest.raises(ValueError, match="unique"):
        runner.validate(config)


@pytest.mark.parametrize("name", EXPERIMENT_CONFIGS)
def test_claim_configs_are_valid(name, monkeypatch):
    config = config_lib.load(name)
    if "elicit" in config:  # its arms train on task files the run writes first: the gold task stands in for them
        e = config.experiment
        trained = {t for a in e.arms for st in a.stages for comp in st.components for t in comp.get("tasks", ())}
        for task in trained - set(tasks.TASKS):
            monkeypatch.setitem(tasks.TASKS, task, tasks.get(config.elicit.task))
    runner.validate(config)  # names, comparisons and checkpoint-selection tasks all resolve
    for cell in config.experiment.cells:
        assert cell.limit <= sum(tasks.counts(cell.task, cell.prompt)[config.experiment.split])


def test_if_retention_from_cached_features_equals_the_full_model(done):
    from monitor_jax.data import pipeline
    from monitor_jax.experiment import retention
    from monitor_jax.train import step as step_lib

    config, runs, raw = done
    shared = raw["shared"]
    ex = retention.if_examples(8)
    got = retention.if_nll(shared, config, shared.base_upper, ex)
    model = shared.model
    rendered, _ = pipeline.render_examples(model.tokenizer, ex, int(config.data.max_len))
    assert len(got) == len(rendered) >= 4
    want = []
    for r in rendered:
        b = pipeline.collate([r], int(config.data.max_len), 1, r.pad_id, {pipeline.example_name(r): 0})
        s, n = step_lib.if_loss(model.cfg, model.params, {k: v for k, v in b.items() if k != "id"})
        want.append(float(s[0] / n[0]))
    np.testing.assert_allclose(got, want, rtol=1e-4)
    checks = retention.generation_checks(shared, shared.full_params(None), retention.CHECKS[:2], max_new_tokens=4)
    assert [c["prompt"] for c in checks] == [q for q, _ in retention.CHECKS[:2]]
    assert all(isinstance(c["passed"], bool) and isinstance(c["answer"], str) for c in checks)


def test_cells_can_ask_another_question_and_keep_a_subset(tiny_experiment):
    config = _config(tiny_experiment)
    probe = x.cell("requests/info_hazard", 30, "p", subset="requests/harmful:primary")
    ref = x.cell("requests/info_hazard", 30, "r", name="ref", subset="requests/harmful:primary",
                 ask_with="requests/harmful:primary")
    config.experiment.split = "validation"
    a, b = cells.cell_examples(config, probe), cells.cell_examples(config, ref)
    assert [e.id for e in a] == [e.id for e in b] and [e.label for e in a] == [e.label for e in b]
    harmful = tasks.get("requests/harmful")
    assert b[0].template == harmful.prompt("primary").template != a[0].template
    ids = {e.id for e in tasks.examples("requests/harmful", "validation") if e.label == 1}
    assert {e.id for e in a} <= ids  # harmful requests only
    assert cells.cell_key(ref) == "ref" and cells.cell_key(probe) == "requests/info_hazard:primary"


def test_arm_overrides_reach_the_run_config(tiny_experiment):
    config = _config(tiny_experiment)
    with config.unlocked():
        config.experiment.arms[1] = x.arm("harm", x.balanced("harm", "requests/harmful", 16), loss__reduction="token_mean")
    rc = cells.run_config(config, config.experiment.arms[1], 3)
    assert rc.loss.reduction == "token_mean" and rc.seed == 3 and "experiment" not in rc
    with config.unlocked():
        config.experiment.arms[1] = x.arm("harm", x.balanced("harm", "requests/harmful", 16), loss__nope=1)
    with pytest.raises(ValueError, match="names no config key"):
        cells.run_config(config, config.experiment.arms[1], 0)


def test_the_exported_monitor_scores_like_the_experiment(done, tmp_path, capsys):
    """`experiment.export`: a run's chosen checkpoint as an HF dir, and the printed `monitor-jax score` command,
    run with the cell's items as --input, gives the scores the experiment gave them (same rendering path)."""
    import shlex

    import ml_collections

    from monitor_jax import main
    from monitor_jax.core import io
    from monitor_jax.experiment import export

    config, _, raw = done
    with config.unlocked():
        config.experiment.export = ml_collections.ConfigDict({"arm": "harm", "task": "requests/harmful",
                                                              "prompt": "primary"})
    try:
        path, command = export.export_from_config(config, raw, tmp_path)
    finally:
        with config.unlocked():
            del config.experiment["export"]
    assert (path / "config.json").exists() and command.startswith("monitor-jax score --model=hf:")
    argv = shlex.split(command)
    flags = [a for a in argv[2:] if a.startswith("--")]
    assert len(argv) - 2 - len(flags) == len(export.EXAMPLE_TEXTS)  # runnable as printed, on example texts
    cell = config.experiment.cells[0]
    ex = cells.cell_examples(config, cell)
    io.write_jsonl(tmp_path / "rows.jsonl", [{"id": e.id, "input": e.input, "label": e.label} for e in ex])
    out = tmp_path / "scores.jsonl"
    assert main.main(["monitor-jax", "score", *flags, f"--input={tmp_path / 'rows.jsonl'}", f"--output={out}"]) == 0
    got = [json.loads(line)["score"] for line in out.read_text().splitlines()]
    np.testing.assert_allclose(got, raw["scores"][cells.cell_key(cell)]["harm"][0], rtol=1e-4, atol=1e-5)
    assert not np.allclose(got, raw["scores"][cells.cell_key(cell)]["base"][0])
    assert main.main(["monitor-jax", "score", *flags, *argv[2 + len(flags):]]) == 0  # the printed command runs
    assert len(capsys.readouterr().out.strip().splitlines()) >= len(export.EXAMPLE_TEXTS)
