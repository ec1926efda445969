"""Unsupervised elicitation: quantile pseudo-labels, the pseudo task file, and the one-call pipeline."""

import json

import ml_collections
import numpy as np
import pytest

from monitor_jax.core import config as config_lib
from monitor_jax.eval.protocols import thinking


def test_pseudo_labels_take_quantiles_not_a_fixed_cut():
    scores = np.asarray([0.9, 0.1, 0.95, 0.2, 0.93, 0.15, 0.91, 0.5, 0.92, 0.94])  # all but 3 above 0.5
    idx, y = thinking.pseudo_labels(scores, top=0.2, bottom=0.3)
    assert idx.tolist() == [1, 2, 3, 5, 9] and y.tolist() == [0, 1, 0, 0, 1]
    same = np.full(6, 0.7)
    idx, y = thinking.pseudo_labels(same, top=0.5, bottom=0.5)  # ties keep input order
    assert y.tolist() == [1, 1, 1, 0, 0, 0]
    for bad in [dict(top=0.6, bottom=0.6), dict(top=0.0, bottom=0.3)]:
        with pytest.raises(ValueError, match="fractions"):
            thinking.pseudo_labels(scores, **bad)
    with pytest.raises(ValueError, match="need >= 1"):
        thinking.pseudo_labels(scores[:3], top=0.1, bottom=0.1)


def test_pseudo_task_file_loads_as_a_user_task(tmp_path, smollm2_gguf):
    from monitor_jax.data import tasks, user_tasks

    rows = [(f"r{i:02d}", f"text number {i} " + "x" * i) for i in range(40)]
    labels = [i % 2 for i in range(40)]
    path = thinking.write_pseudo_task(tmp_path / "t", "test/pseudo_file", rows, labels,
                                      "Check:\n{input}\nAnswer Yes or No.", ("Yes", "No"))
    task = user_tasks.load_task_file(path)
    counts = tasks.counts(task)
    assert sum(p + n for p, n in counts.values()) == 40
    assert counts["validation"] == (1, 1) and counts["test"] == (1, 1) and counts["train"] == (18, 18)
    train = tasks.examples(task, "train")
    by_text = {t: y for (_, t), y in zip(rows, labels)}
    assert all(ex.label == by_text[ex.input] for ex in train)


def _tiny_elicit_config(labels: str) -> ml_collections.ConfigDict:
    c = config_lib.load("elicit")
    tiny = config_lib.load("tiny")
    with c.unlocked():
        c.model = tiny.model
        c.mesh = tiny.mesh
        c.train = tiny.train
        c.optim = tiny.optim
        c.data.max_len, c.data.buckets = 128, (128,)
        c.eval.limit_per_task, c.eval.at_start = 16, False
        c.checkpoint.every = 2
        c.elicit.limit, c.elicit.budget, c.elicit.max_len = 24, 4, 256
        c.elicit.labels = labels
        c.elicit.pseudo_task = f"elicit/pseudo_{labels}"
        c.data.stages[0].components[0].tasks = (c.elicit.pseudo_task,)
    return c


def test_elicit_pipeline_trains_on_pseudo_labels_and_reuses_its_scores(tmp_path, smollm2_gguf, monkeypatch):
    from monitor_jax.experiment import run
    from monitor_jax.data import tasks

    config = _tiny_elicit_config("pseudo")
    summary = run.elicit(config, tmp_path, progress=False)
    assert summary["n_unlabelled"] == 24 and summary["n_labelled"] == 14  # round(0.3 * 24) = 7 per class
    assert 0.0 <= summary["pseudo_label_accuracy_vs_gold"] <= 1.0
    assert "auroc/requests/harmful" in json.dumps(summary["train"])
    scores = [json.loads(x) for x in (tmp_path / "elicit" / "thinking_scores.jsonl").read_text().splitlines()]
    assert len(scores) == 24 and all("label" not in r and "reasoning" in r for r in scores)
    assert json.loads((tmp_path / "elicit" / "summary.json").read_text())["n_labelled"] == 14
    # The pseudo task holds exactly the extreme-score items, labelled by rank.
    s = np.asarray([r["score"] for r in scores])
    idx, y = thinking.pseudo_labels(s, 0.3, 0.3)
    want = {scores[i]["id"]: int(v) for i, v in zip(idx, y)}
    task = tasks.get("elicit/pseudo_pseudo")
    got = {it.id.split(":", 1)[1]: tasks.label_of(task, task.prompt("primary"), it)
           for split in ("train", "validation", "test") for it in tasks.domain_items(task.domain, split)}
    assert got == want

    def no_rescoring(*a, **k):
        raise AssertionError("thinking scores should have been reused")

    monkeypatch.setattr(thinking, "score_with_thinking", no_rescoring)
    config2 = _tiny_elicit_config("gold")  # same items and scores (copied): no rescoring, gold labels instead
    (tmp_path / "gold" / "elicit").mkdir(parents=True)
    (tmp_path / "gold" / "elicit" / "thinking_scores.jsonl").write_text(
        (tmp_path / "elicit" / "thinking_scores.jsonl").read_text())
    gold_summary = run.elicit(config2, tmp_path / "gold", progress=False)
    assert gold_summary["labels"] == "gold" and gold_summary["n_labelled"] == 14
    gtask = tasks.get("elicit/pseudo_gold")
    items = {it.id: it for it in tasks.domain_items("requests", "train")}
    for split in ("train", "validation", "test"):
        for it in tasks.domain_items(gtask.domain, split):
            src = items[it.id.split(":", 1)[1]]
            orig = tasks.get("requests/harmful")
            assert tasks.label_of(gtask, gtask.prompt("primary"), it) == tasks.label_of(orig, orig.prompt("primary"), src)


def test_injected_thinker_of_known_accuracy_gives_a_gain_and_gold_is_read_only_after_training(
        tmp_path, smollm2_gguf, monkeypatch):
    from monitor_jax.experiment import run
    from monitor_jax.data import tasks

    harm = tasks.get("requests/harmful")
    truth = {it.id: tasks.label_of(harm, harm.prompt("primary"), it) for it in tasks.domain_items("requests", "train")}
    rng = np.random.default_rng(0)
    seen: list = []

    def thinker(examples):  # 90 % of the ranking is right: a known-accuracy stand-in for with-thinking scores
        seen.extend(examples)
        y = np.asarray([truth[ex.id] for ex in examples])
        flip = rng.random(len(y)) < 0.1
        return np.where(flip, 1 - y, y) + 0.01 * rng.random(len(y))

    unlabelled_ids: set = set()
    phase = {"trained": False}
    real_label_of, real_train = tasks.label_of, run.train

    def watched_label_of(task, prompt, item):
        if item.id in unlabelled_ids and not phase["trained"]:
            raise AssertionError(f"gold label of unlabelled item {item.id} read before training finished")
        return real_label_of(task, prompt, item)

    def watched_train(*a, **k):
        out = real_train(*a, **k)
        phase["trained"] = True
        return out

    config = _tiny_elicit_config("pseudo")
    with config.unlocked():
        config.elicit.limit = 160
        config.optim.total_steps = 30
        config.eval.at_start, config.eval.limit_per_task = True, 64
        config.checkpoint.every = 30
        config.elicit.pseudo_task = "elicit/pseudo_thinker"
        config.data.stages[0].components[0].tasks = ("elicit/pseudo_thinker",)
    items = tasks.domain_items("requests", "train")
    keep = np.sort(np.random.default_rng(int(config.seed)).choice(len(items), 160, replace=False))
    unlabelled_ids.update(items[i].id for i in keep)
    monkeypatch.setattr(tasks, "label_of", watched_label_of)
    monkeypatch.setattr(run, "train", watched_train)
    summary = run.elicit(config, tmp_path, thinker=thinker, progress=False)
    assert {ex.id for ex in seen} == unlabelled_ids and all(ex.label == 0 for ex in seen)  # labels stripped
    assert summary["pseudo_label_accuracy_vs_gold"] > 0.8
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    aurocs = [r["eval/auroc/requests/harmful"] for r in rows if "eval/auroc/requests/harmful" in r]
    assert aurocs[-1] > aurocs[0] + 0.1, aurocs  # trained on pseudo-labels beats the untrained model


def test_a_trained_labeller_scores_with_its_own_params_and_keeps_its_own_scores(tmp_path, smollm2_gguf, monkeypatch):
    """C8's labeller is a trained arm: elicit_task scores with the params it is given and keeps those scores
    apart from the untrained model's (a cached base file must not stand in for the labeller's)."""
    from monitor_jax.experiment import run

    seen = []

    def fake(cfg, params, tokenizer, examples, protocol, **kw):
        seen.append(params)
        score = np.linspace(0.0, 1.0, len(examples)) if params == "trained" else np.linspace(1.0, 0.0, len(examples))
        rows = [{"id": e.id, "score": float(s), "reasoning": ""} for e, s in zip(examples, score)]
        return type("R", (), {"score": score, "rows": lambda self: rows})()

    monkeypatch.setattr(thinking, "score_with_thinking", fake)
    config = _tiny_elicit_config("pseudo")
    _, base = run.elicit_task(config, tmp_path, "pseudo", progress=False)
    _, trained = run.elicit_task(config, tmp_path, "pseudo", progress=False, params="trained", labeller="mix-s0")
    assert seen[0] != "trained" and seen[1] == "trained"
    assert (tmp_path / "elicit" / "thinking_scores.jsonl").exists()
    assert (tmp_path / "elicit" / "thinking_scores.mix-s0.jsonl").exists()
    assert trained["labeller"] == "mix-s0" and base["labeller"] == "base"
    assert trained["pseudo"].tolist() != base["pseudo"].tolist()  # the labeller's ranking, not the cached base one
    _, again = run.elicit_task(config, tmp_path, "pseudo", progress=False, params="trained", labeller="mix-s0")
    assert len(seen) == 2 and again["pseudo"].tolist() == trained["pseudo"].tolist()  # reused, not rescored
