"""The wiring of training and evaluation (train/ and eval/ never import each other): the periodic evaluator built
from eval/ and handed to train/'s loop, and the one call that trains a config with it. Used by the CLI, the
elicitation pipeline and the experiment runner."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from monitor_jax.core import assets, io, sharding
from monitor_jax.data import pipeline, tasks
from monitor_jax.eval import metrics, scoring
from monitor_jax.eval.protocols import thinking
from monitor_jax.model import registry
from monitor_jax.train import data as train_data
from monitor_jax.train import step as step_lib
from monitor_jax.train import loop


def make_evaluate(config: Any, model: Any, mesh: Any = None) -> Callable[[Any, int], dict[str, float]]:
    """evaluate(params, step) -> {"auroc/<task>": x, "mass_outside/<task>": m} on `config.eval.tasks`.

    Each task contributes its `config.eval.split` examples under the primary prompt (`limit_per_task`,
    stratified, seeded by `config.seed`), scored with the training max_len/buckets by `eval.scoring`.
    """
    names = tuple(config.eval.tasks)
    examples = []
    for name in names:
        examples += tasks.examples(name, config.eval.split, "primary", limit=config.eval.get("limit_per_task"),
                                   seed=int(config.seed))
    if not examples:
        raise ValueError(f"config.eval.tasks {names}: no {config.eval.split!r} examples")
    cfg = step_lib.compute_config(config, model.cfg).replace(remat="none")
    buckets = tuple(config.data.get("buckets") or pipeline.DEFAULT_BUCKETS)

    def evaluate(params, step: int) -> dict[str, float]:
        del step
        res = scoring.score_examples(cfg, params, model.tokenizer, examples, batch_size=int(config.eval.batch_size),
                                     max_len=int(config.data.max_len), buckets=buckets, mesh=mesh, progress=False)
        out = {}
        for name in names:
            mask = res.task == name
            out[f"auroc/{name}"] = metrics.auroc(res.score[mask], res.label[mask])
            out[f"mass_outside/{name}"] = float(np.mean(res.mass_outside[mask]))
        return out

    return evaluate


def train(config: Any, workdir: str | os.PathLike, model: Any = None, *, progress: bool = True,
          evaluate: Callable[[Any, int], dict[str, float]] | None = None, feature_store: Any = None) -> dict[str, Any]:
    """Train `config` in `workdir` (resuming from its latest checkpoint), evaluating as it goes; returns the loop's
    summary. The one path from a config to a trained run: `monitor-jax train`, elicitation and the experiment
    runner all come through here. `model`: an already loaded `registry.LoadedModel`; `evaluate`: the periodic
    evaluator (default: `make_evaluate` on `config.eval.tasks`, none when it is empty); `feature_store`: a
    store (`train.feature_store.open_store`) shared with other runs on the same frozen stack (default: the one
    `config.train.feature_store` names, opened by the loop)."""
    assets.use_compilation_cache()  # a relaunch (resume) reuses the compiled steps
    model = model if model is not None else registry.load(config.model.name)
    train_data.register_task_files(config, model.tokenizer)
    if evaluate is None and tuple(config.eval.tasks):
        mesh = sharding.make_mesh(config.mesh.shape) if jax.process_count() > 1 else None
        evaluate = make_evaluate(config, model, mesh)
    return loop.train_and_evaluate(config, workdir, evaluate, model=model, progress=progress,
                                   feature_store=feature_store)


def elicit_task(config: Any, workdir: str | os.PathLike, labels: str, *, name: str | None = None,
                thinker: Callable[[list], np.ndarray] | None = None, progress: bool = True,
                params: Any = None, labeller: str = "base") -> tuple[Any, dict]:
    """The labelled half of elicitation: with-thinking scores of `config.elicit.limit` unlabelled items by the
    labeller (`params`, named `labeller`; default the untrained model), saved in
    `workdir/elicit/thinking_scores[.<labeller>].jsonl` and reused, the top/bottom quantiles as pseudo-labels,
    written as a task file named `name` (default `config.elicit.pseudo_task`) (`labels="pseudo"`), or the same
    items with their gold labels (`labels="gold"`: the supervised comparison of the same size). Returns (task file
    path, facts about it); with pseudo labels, no gold label is read."""
    e = config.elicit
    if labels not in ("pseudo", "gold"):
        raise ValueError(f"config.elicit.labels must be 'pseudo' or 'gold', got {labels!r}")
    task = tasks.get(e.task)
    prompt = task.prompt("primary")
    items = tasks.domain_items(task.domain, e.split)
    if e.get("limit") and len(items) > e.limit:
        keep = np.sort(np.random.default_rng(int(config.seed)).choice(len(items), int(e.limit), replace=False))
        items = [items[i] for i in keep]
    unlabelled = [pipeline.ClassificationExample(id=it.id, task=task.name, input=it.text, label=0,
                                                 template=prompt.template, label_words=task.label_words,
                                                 system=prompt.system) for it in items]
    out = Path(workdir) / "elicit"
    out.mkdir(parents=True, exist_ok=True)
    model = registry.load(config.model.name)
    if params is not None:
        model = dataclasses.replace(model, params=params)
    kept = out / ("thinking_scores.jsonl" if labeller == "base" else f"thinking_scores.{labeller}.jsonl")
    scores = _thinking_scores(kept, model, unlabelled, config, thinker, progress)
    idx, pseudo = thinking.pseudo_labels(scores, float(e.top), float(e.bottom))
    y = np.asarray([tasks.label_of(task, prompt, items[i]) for i in idx], np.int64) if labels == "gold" else pseudo
    path = thinking.write_pseudo_task(out / ("task" if labels == "pseudo" else "gold_task"), name or e.pseudo_task,
                                      [(items[i].id, items[i].text) for i in idx], y, prompt.template,
                                      task.label_words, system=prompt.system)
    facts = {"task": task.name, "split": e.split, "n_unlabelled": len(items), "n_labelled": int(len(idx)),
             "labels": labels, "pseudo_positive_fraction": float(pseudo.mean()), "scores": scores, "items": items,
             "index": idx, "pseudo": pseudo, "prompt": prompt, "model": model, "labeller": labeller}
    return path, facts


def elicit(config: Any, workdir: str | os.PathLike, *, thinker: Callable[[list], np.ndarray] | None = None,
           progress: bool = True) -> dict[str, Any]:
    """Unsupervised elicitation (claim C8) in one call: `elicit_task` (with-thinking scores on an unlabelled split
    -> pseudo-labels by quantile -> a task file) -> 1-token SFT on it (`config.data.stages` name
    `config.elicit.pseudo_task`) -> no-thinking AUROC against gold labels on `config.eval.tasks` (validation).

    `config.elicit`: `task` and `split` (gold labels are stripped at load: only ids and texts reach the model),
    `limit` items (seeded), `budget` reasoning tokens, `top`/`bottom` pseudo-label fractions, `labels` "pseudo"
    or "gold". `thinker(examples) -> scores` replaces with-thinking scoring (tests inject one of known accuracy).
    Gold labels of the unlabelled items are read only after training (or, for `labels="gold"`, right before it),
    for the summary (`workdir/elicit/summary.json`).
    """
    task_file, f = elicit_task(config, workdir, config.elicit.labels, thinker=thinker, progress=progress)
    with config.unlocked():
        config.data.task_files = (str(task_file),)
    result = train(config, workdir, f["model"], progress=progress)
    task = tasks.get(f["task"])
    y = np.asarray([tasks.label_of(task, f["prompt"], it) for it in f["items"]], np.int64)
    summary = {
        **{k: f[k] for k in ("task", "split", "n_unlabelled", "n_labelled", "labels", "pseudo_positive_fraction")},
        "pseudo_label_accuracy_vs_gold": float((f["pseudo"] == y[f["index"]]).mean()),
        "thinking_auroc_on_unlabelled_vs_gold": metrics.auroc(f["scores"], y),
        "train": result,
    }
    (Path(workdir) / "elicit" / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def _thinking_scores(path: Any, model: Any, examples: list, config: Any, thinker: Callable | None,
                     progress: bool) -> np.ndarray:
    """With-thinking scores of `examples` (or `thinker`'s), from `path` when an earlier run saved them for the same
    ids; saved with each example's reasoning."""
    ids = [ex.id for ex in examples]
    if path.exists():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        if [r["id"] for r in rows] == ids:
            return np.asarray([r["score"] for r in rows], np.float64)
    e = config.elicit
    if thinker is not None:
        scores = np.asarray(thinker(examples), np.float64)
        rows = [{"id": i, "score": float(s), "reasoning": None} for i, s in zip(ids, scores)]
    else:
        res = thinking.score_with_thinking(model.cfg, model.params, model.tokenizer, examples,
                                           thinking.Protocol(budget=int(e.budget), seed=int(config.seed)),
                                           batch_size=int(e.batch_size), max_len=int(e.max_len), progress=progress)
        scores = np.asarray(res.score, np.float64)
        rows = [{k: v for k, v in r.items() if k != "label"} for r in res.rows()]  # the stripped label means nothing
    io.write_jsonl(path, rows)  # (a unique temp name: every process of a multi-process run writes it)
    return scores
