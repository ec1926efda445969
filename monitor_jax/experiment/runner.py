"""The experiment runner: an experiment config's arms x seeds trained, the checkpoint of each run chosen on
validation, every arm scored once on the evaluation cells, under a compute budget. Statistics and files are
`compare.py` and `write.py`.

Any train mode: `strategy.py` picks, from the config, the cached top-k path below (the CPU fast path) or the full
forward (full, LoRA, top-k without the cache: the loop of `monitor-jax train` on the config's mesh, the chosen
step kept as an HF dir, cells scored by the whole model split over the mesh). With several JAX processes every
process runs the same experiment (each reads its data shard as `monitor-jax train` does); decisions that read
files are process 0's (`distributed.agree`), and only process 0 writes run.json, scores.json and results. The
runs dir must be one filesystem every host sees, as Orbax's checkpoints need.

Shared work of the cached top-k path (one process, one model; `cells.Shared`):
- one feature store (`train/feature_store.py`; by default the shared on-disk store under the cache dir, with a
  memory layer) holds the frozen lower stack's activations of every distinct row, so training rows and
  evaluation rows are computed once for all arms, seeds, experiments and processes on that stack;
- evaluation runs only the top k layers and the label rows of the head on those cached features (the base model
  is the same computation with the untrained top layers, so it is exactly the full forward);
- each run's result (selection curve, chosen step, test scores per cell) and its chosen top layers are kept in
  `runs_dir/<arm>-<hash>-s<seed>/`, keyed by everything that decides the run: a rerun, another claim with the same
  arm, or a resumed experiment reuses it. An interrupted run resumes from its latest Orbax checkpoint.

Protocol: checkpoints are chosen by mean validation AUROC on the arm's own training tasks (their prompts,
`select_limit` items each); evaluation cells (task, prompt, split, n fixed in the config) are scored once per
chosen checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from monitor_jax.core import distributed
from monitor_jax.eval import metrics
from monitor_jax.experiment import cells, compare, item_scores, preconditions, retention, run, strategy, views
from monitor_jax.train import data as train_data
from monitor_jax.train.mode import TrainMode

log = logging.getLogger(__name__)


CURVE = "selection_curve.json"


class BudgetExhausted(RuntimeError):
    """The next run would exceed `experiment.budget_minutes`."""


def train_run(shared: cells.Strategy, config: Any, arm: Any, seed: int, progress: bool = True) -> Path:
    """Trains one (arm, seed) unless its directory already holds a finished run (an interrupted one resumes from
    its latest checkpoint); returns that directory. `shared`: the strategy (`strategy.create`)."""
    rdir = cells.run_dir(shared.runs_dir, config, arm, seed)
    if distributed.agree((rdir / "run.json").exists()):
        return rdir
    rc = cells.run_config(config, arm, seed)
    mode = TrainMode.from_config(rc)
    select = cells.selection(config, arm)
    rdir.mkdir(parents=True, exist_ok=True)
    curve_file = rdir / "work" / CURVE  # the curve so far, for a run that resumes (removed once run.json is written)
    main = distributed.is_main()
    curve = {r["step"]: r for r in json.loads(curve_file.read_text())} if main and curve_file.exists() else {}

    def evaluate(params: Any, step: int) -> dict[str, float]:
        upper = shared.upper_of(params, mode)
        row = {f"auroc/{n}": metrics.auroc(shared.score(rc, upper, ex), np.asarray([e.label for e in ex]))
               for n, ex in select}
        curve[int(step)] = {"step": int(step), "minutes": (time.perf_counter() - start) / 60, **row}
        if main:
            cells.write_json(curve_file, [curve[s] for s in sorted(curve)])
        return row

    start = time.perf_counter()
    shared.prefill(rc, [ex for st in train_data.build_stages(rc) for comp in st.components for ex in comp.examples]
                   + [ex for _, exs in select for ex in exs])
    summary = run.train(rc, rdir / "work", shared.model, evaluate=evaluate, progress=progress,
                        **shared.train_kwargs())
    distributed.barrier("experiment: run trained")  # every process is done with the checkpoints
    shared.keep(rdir, summary.get("best_export") or summary["export"], mode)
    if distributed.is_main():
        for sub in ("export", "checkpoints"):  # the chosen checkpoint is kept; the other copies are not needed
            shutil.rmtree(rdir / "work" / sub, ignore_errors=True)
        curve_file.unlink(missing_ok=True)
        cells.write_json(rdir / "run.json", {"arm": arm.name, "seed": int(seed),
                                             "best_step": summary.get("best_step"),
                                             "steps_trained": summary.get("steps_trained"),
                                             "total_steps": summary.get("total_steps"),
                                             "stopped_early": summary.get("stopped_early"),
                                             "selection_curve": [curve[s] for s in sorted(curve)],
                                             "train_minutes": (time.perf_counter() - start) / 60,
                                             "selected_on": [n for n, _ in select], **shared.run_facts()})
    distributed.barrier("experiment: run written")  # the others read run.json and the checkpoint next
    return rdir


def retention_of(shared: cells.Strategy, config: Any, rdir: Path | None) -> dict:
    """{"nll": per held-out IF conversation [N], "checks": [{prompt, answer, passed}]} of a run (None: base),
    cached beside its scores (`experiment.retention`: `if_limit` conversations, `checks` on/off)."""
    r = config.experiment.retention

    def compute(trained: dict | None) -> dict:
        upper = shared.upper_with(trained)
        nll = retention.if_nll(shared, config, upper, retention.if_examples(int(r.if_limit)))
        checks = retention.generation_checks(shared, shared.full_params(trained)) if r.checks else []
        return {"nll": nll.tolist(), "checks": checks}

    return cells.memo(shared, config, rdir, f"retention|{int(r.if_limit)}|{int(config.data.max_len)}|{bool(r.checks)}",
                 compute)


def cell_scores(shared: cells.Strategy, config: Any, rdir: Path | None, cell: Any) -> np.ndarray:
    """Scores of one cell's items by the run in `rdir` (None: the base model), cached in `rdir`/the base dir;
    a thinking cell's come from `views.thinking_scores` (summary cells: `views.summary_cell`)."""
    if views.view_of(cell).startswith("thinking"):
        return np.asarray(views.thinking_scores(shared, config, rdir, cell)["score"], np.float64)
    return cells.plain_scores(shared, config, rdir, cell)


def validate(config: Any) -> None:
    """Clear errors before any training: unique arms and cells, comparisons naming both, a checkpoint choice."""
    e = config.experiment
    arms = [a.name for a in e.arms]
    cell_names = [cells.cell_key(c) for c in e.cells]
    for what, names in (("arm", arms), ("cell", cell_names)):
        if not names or len(set(names)) != len(names):
            raise ValueError(f"config.experiment: {what} names must be non-empty and unique, got {names}")
    if not e.seeds:
        raise ValueError("config.experiment.seeds is empty")
    columns = {}
    for c in e.cells:
        where, view = f"config.experiment.cells {cells.cell_key(c)!r}", views.view_of(c)
        scored = scored_arms(config, c)
        if set(scored) - set(arms):
            raise ValueError(f"{where}: arms {sorted(set(scored) - set(arms))} are not arms of the experiment")
        if view != "plain" and not int(c.get("budget") or 0) > 0:
            raise ValueError(f"{where}: a {view} cell needs budget > 0 (tokens of reasoning / summary)")
        if view == "summary" and c.get("judge") not in arms:
            raise ValueError(f"{where}: judge must name an arm (its first run judges the summaries), got "
                             f"{c.get('judge')!r}")
        columns[cells.cell_key(c)] = scored + views.pseudo_arms(c, scored)
    for c in e.comparisons:
        if c.cell not in cell_names:
            raise ValueError(f"config.experiment.comparisons: cell {c.cell!r} is not one of {cell_names}")
        if c.kind not in compare.KINDS:
            raise ValueError(f"config.experiment.comparisons: kind must be one of {sorted(compare.KINDS)}, "
                             f"got {c.kind!r}")
        bad = [r for r in compare.KINDS[c.kind] if c.get(r) not in columns[c.cell]]
        if bad:
            raise ValueError(f"config.experiment.comparisons: {c.kind} on {c.cell}: {bad} must name arms scored "
                             f"on it: {columns[c.cell]}")
    for a in e.arms:
        if a.stages:
            cells.selection(config, a)
    preconditions.validate(config)


def scored_arms(config: Any, cell: Any) -> list[str]:
    """The arms a cell scores: its `arms` when set, else every arm of the experiment."""
    return list(cell.get("arms") or [a.name for a in config.experiment.arms])


def _spent(runs: list[Path]) -> float:
    return sum(json.loads((r / "run.json").read_text())["train_minutes"] for r in runs if (r / "run.json").exists())


def run_experiment(config: Any, runs_dir: str | os.PathLike, *, shared: cells.Strategy | None = None,
                   progress: bool = True, on_run: Callable[[str, int], None] | None = None) -> dict:
    """Trains every (arm, seed) of `config.experiment` and scores every cell; returns the raw material of the
    results: {"runs": {arm: [run dirs]}, "scores": {cell: {arm: [scores per seed]}}, "labels": {cell: y},
    "ids" / "groups": {cell: item ids / hygiene groups or None}, "seeds": {arm: [seed per run; None: base]},
    "incomplete": reason or None, "shared": the strategy (`strategy.create`), "generation": {cell: {arm:
    lengths}} of the thinking and summary cells (`views.py`)}. An arm may set its own `seeds`; a cell its `arms`
    and `view`.

    Budget: before a run is trained, the training minutes already spent on this experiment's runs (reused ones
    included: they are its compute) plus the mean of those runs (or nothing before the first) must fit
    `budget_minutes`; otherwise the remaining runs are skipped and the results say so. A finished run is always
    reused."""
    from tqdm.auto import tqdm

    e = config.experiment
    if shared is None and config.data.get("task_files"):
        shared = strategy.create(config, runs_dir)  # registers the task files the checks below resolve
    validate(config)
    shared = shared or strategy.create(config, runs_dir)
    runs: dict[str, list[Path]] = {a.name: [] for a in e.arms}
    incomplete = None
    done: list[Path] = []
    for arm in e.arms:
        if not arm.stages:
            continue
        for seed in arm.get("seeds") or e.seeds:
            finished = (cells.run_dir(shared.runs_dir, config, arm, int(seed)) / "run.json").exists()
            spent, finished = distributed.agree([_spent(done), finished])  # process 0's files decide
            estimate = spent / len(done) if done else 0.0
            if not finished and spent + estimate > float(e.budget_minutes):  # a finished run is reused for free
                incomplete = (f"budget: {spent:.1f} of {float(e.budget_minutes):.0f} training minutes spent; "
                              f"arm {arm.name!r} seed {seed} and later runs skipped")
                break
            if on_run is not None:
                on_run(arm.name, int(seed))
            rdir = train_run(shared, config, arm, int(seed), progress)
            runs[arm.name].append(rdir)
            done.append(rdir)
        if incomplete:
            break
    scores: dict[str, dict[str, list[np.ndarray]]] = {}
    labels: dict[str, np.ndarray] = {}
    ids: dict[str, list[str]] = {}
    groups: dict[str, list[str] | None] = {}
    models = {a.name: [None] if not a.stages else runs[a.name] for a in e.arms}  # None: the base model
    models = {a: dirs for a, dirs in models.items() if dirs}
    generation: dict[str, dict] = {}
    for cell in (bar := tqdm(e.cells, desc="cells", unit="cell", disable=not progress)):
        k, view = cells.cell_key(cell), views.view_of(cell)
        bar.set_postfix_str(k)
        ex = cells.cell_examples(config, cell)
        labels[k], ids[k] = np.asarray([x.label for x in ex], np.int64), [x.id for x in ex]
        groups[k] = item_scores.cell_groups(config, cell, ex)
        scored = {a: models[a] for a in scored_arms(config, cell) if a in models}
        if view == "summary":
            if cell.judge not in models:
                continue  # the judge's run was skipped by the budget
            scores[k], generation[k] = views.summary_cell(shared, config, scored, models[cell.judge][0], cell)
            continue
        scores[k] = {a: [cell_scores(shared, config, d, cell) for d in dirs] for a, dirs in scored.items()}
        if view == "thinking":
            generation[k] = views.generation_stats(shared, config, scored, cell)
    kept: dict[str, list[dict]] = {}
    if e.get("retention"):
        kept = {a: [retention_of(shared, config, d) for d in dirs] for a, dirs in models.items()}
    seeds = {a: [None if d is None else json.loads((d / "run.json").read_text())["seed"] for d in dirs]
             for a, dirs in models.items()}
    return {"runs": runs, "scores": scores, "labels": labels, "ids": ids, "groups": groups, "seeds": seeds,
            "incomplete": incomplete, "shared": shared, "minutes": _spent(done), "retention": kept,
            "generation": generation}
