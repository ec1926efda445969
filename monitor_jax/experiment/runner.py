"""The experiment runner: an experiment config's arms x seeds trained with cached lower-layer features, the
checkpoint of each run chosen on validation, every arm scored once on the evaluation cells, under a compute
budget. Statistics and files are `compare.py` and `write.py`.

Shared work (one process, one model):
- one `features.MemoryStore` holds the frozen lower stack's activations of every distinct row, so training rows
  and evaluation rows are computed once for all arms, seeds and experiments of the process;
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

import copy
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from monitor_jax.data import pipeline, tasks
from monitor_jax.eval import metrics, scoring
from monitor_jax.model import registry, transformer, weights
from monitor_jax.train import data as train_data
from monitor_jax.train import features, loop, sharding

log = logging.getLogger(__name__)


class BudgetExhausted(RuntimeError):
    """The next run would exceed `experiment.budget_minutes`."""


def cell_key(cell: Any) -> str:
    """A cell's name in results and comparisons: `name`, or "task:prompt"."""
    return cell.get("name") or f"{cell.task}:{cell.prompt}"


def _task_prompt(spec: str) -> tuple[str, str]:
    task, _, prompt = spec.partition(":")
    return task, prompt or "primary"


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float))
    os.replace(tmp, path)


@dataclasses.dataclass
class Shared:
    """What every run of a process shares: the model, its frozen lower stack and the feature store."""

    model: registry.LoadedModel
    n_lower: int
    upper_cfg: transformer.ModelConfig
    frozen: Any
    base_upper: Any
    store: features.MemoryStore
    cache: features.FeatureCache
    runs_dir: Path

    @classmethod
    def create(cls, config: Any, runs_dir: str | os.PathLike) -> "Shared":
        if config.train.mode != "top_k_layers" or not config.train.cache_features:
            raise ValueError("the experiment runner trains top_k_layers from cached features: set "
                             "config.train.mode='top_k_layers' and config.train.cache_features=True")
        from monitor_jax.data import assets

        if not jax.config.jax_compilation_cache_dir:  # reruns and resumed runs reuse the compiled programs
            jax.config.update("jax_compilation_cache_dir", str(assets.cache_dir() / "xla"))
        model = registry.load(config.model.name)
        train_data.register_task_files(config, model.tokenizer)
        n_lower = features.n_lower_layers(config, model.cfg)
        lower, upper = transformer.split_params(model.params, n_lower)
        mesh = sharding.make_mesh(config.mesh.shape)
        rep = NamedSharding(mesh, P())
        frozen = jax.device_put({k: v for k, v in lower.items() if k != "final_norm"}, rep)
        store = features.MemoryStore()
        cache = features.FeatureCache(config, model.cfg, mesh, jax.tree_util.tree_map(lambda _: rep, frozen),
                                      shared_store=store)
        upper_cfg = scoring.inference_config(model.cfg).replace(n_layers=model.cfg.n_layers - n_lower,
                                                                 dtype=config.model.dtype)
        return cls(model, n_lower, upper_cfg, frozen, jax.device_put(upper), store, cache, Path(runs_dir))

    def score(self, config: Any, upper: Any, examples: list, progress: bool = False) -> np.ndarray:
        """P(positive | label words) of `examples` (input order) under the top layers `upper` + the head."""
        rendered, _ = pipeline.render_examples(self.model.tokenizer, examples, int(config.data.max_len))
        res = scoring.score_rendered(self.upper_cfg, upper, rendered, batch_size=int(config.eval.batch_size),
                                     max_len=int(config.data.max_len), buckets=_buckets(config),
                                     progress=progress,
                                     add_features=lambda b: self.cache.add_features(b, self.frozen))
        return np.asarray(res["score"], np.float64)

    def upper_with(self, trained: dict | None) -> Any:
        """The base upper stack with the trained top layers / final norm in place (None: the base upper stack)."""
        return self.base_upper if trained is None else {**self.base_upper, **jax.device_put(trained)}

    def full_params(self, trained: dict | None) -> Any:
        """The whole model's params with the trained top layers / final norm in place (None: the base model)."""
        if trained is None:
            return self.model.params
        layers = jax.tree_util.tree_map(lambda base, top: np.concatenate([np.asarray(base)[:self.n_lower], top]),
                                        self.model.params["layers"], trained["layers"])
        return {**self.model.params, "layers": layers, "final_norm": trained["final_norm"]}


def _buckets(config: Any) -> tuple[int, ...]:
    return tuple(config.data.get("buckets") or pipeline.DEFAULT_BUCKETS)


def cell_examples(config: Any, cell: Any, split: str | None = None) -> list:
    """The items of an evaluation cell: fixed by (task, prompt, split, limit) and seed 0, whatever the run seed.
    Optional cell keys: `subset` "task:prompt" keeps only that question's positives (e.g. harmful requests only);
    `ask_with` "task:prompt" asks another task's question while the labels stay the cell's (C4's reference)."""
    where = None
    if cell.get("subset"):
        sub_task, sub_prompt = _task_prompt(cell.subset)
        t = tasks.get(sub_task)
        p = t.prompt(sub_prompt)
        where = lambda it: tasks.label_of(t, p, it) == 1  # noqa: E731
    ask = _task_prompt(cell.ask_with) if cell.get("ask_with") else None
    split = split or config.experiment.split
    limit = int(cell.limit) if split == config.experiment.split else None
    return tasks.examples(cell.task, split, cell.prompt, limit=limit, seed=0, where=where, ask_with=ask)


def _selection(config: Any, arm: Any) -> list[tuple[str, list]]:
    """(name, validation examples) of each "task:prompt" the arm's checkpoint is chosen on: `arm.select`, or by
    default every task the arm trains on, under the prompt it trains with."""
    names = list(arm.get("select") or ())
    if not names:
        for st in arm.stages:
            for comp in st.components:
                if not comp.get("instruction"):
                    names += [f"{t}:{comp.prompt}" for t in comp.tasks if f"{t}:{comp.prompt}" not in names]
    if not names:
        raise ValueError(f"arm {arm.name!r}: no classification task to choose its checkpoint on")
    limit = int(config.experiment.select_limit)
    return [(n, tasks.examples(n.split(":")[0], "validation", n.split(":")[1], limit=limit, seed=0)) for n in names]


def run_config(config: Any, arm: Any, seed: int) -> Any:
    """The training config of one run: the experiment's training keys, the arm's stages and overrides, `seed`."""
    c = copy.deepcopy(config)
    with c.unlocked():
        del c["experiment"]
        c.seed = int(seed)
        c.data.stages = copy.deepcopy(list(arm.stages))
        c.eval.tasks = ()
        for key, value in dict(arm.get("overrides") or {}).items():  # "loss__reduction" -> c.loss.reduction
            node = c
            *path, last = key.split("__")
            for part in path:
                node = node[part]
            if last not in node:
                raise ValueError(f"arm {arm.name!r}: override {key!r} names no config key")
            node[last] = value
    return c


def run_key(config: Any, selection: list[str], select_limit: int) -> str:
    """A digest of everything that decides a run's result (its training config and how its step is chosen)."""
    keep: dict[str, Any] = {"selection": selection, "select_limit": select_limit}
    keep.update({k: config[k].to_dict() if hasattr(config[k], "to_dict") else config[k]
            for k in ("seed", "model", "train", "optim", "loss", "data")})
    keep["data"]["stages"] = [s.to_dict() for s in config.data.stages]
    keep["eval_every"] = int(config.eval.every)
    return hashlib.sha1(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _trainable(params: Any, n_lower: int) -> dict:
    upper = transformer.split_params(params, n_lower)[1]
    return {"layers": upper["layers"], "final_norm": upper["final_norm"]}


def _save_tree(path: Path, tree: dict) -> None:
    flat = {"/".join(str(getattr(k, "key", k)) for k in kp): np.asarray(v)
            for kp, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **flat)
    os.replace(tmp, path)


def _load_tree(path: Path) -> dict:
    out: dict = {}
    with np.load(path) as z:
        for name in z.files:
            node = out
            *parents, leaf = name.split("/")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = z[name]
    return out


def run_dir(runs_dir: Path, config: Any, arm: Any, seed: int) -> Path:
    """Where the run of (arm, seed) lives: `runs_dir/<arm>-<run_key>-s<seed>`."""
    key = run_key(run_config(config, arm, seed), [n for n, _ in _selection(config, arm)],
                  int(config.experiment.select_limit))
    return Path(runs_dir) / f"{arm.name}-{key}-s{seed}"


def train_run(shared: Shared, config: Any, arm: Any, seed: int, progress: bool = True) -> Path:
    """Trains one (arm, seed) unless its directory already holds a finished run; returns that directory."""
    rdir = run_dir(shared.runs_dir, config, arm, seed)
    if (rdir / "run.json").exists():
        return rdir
    rc = run_config(config, arm, seed)
    select = _selection(config, arm)
    rdir.mkdir(parents=True, exist_ok=True)
    curve: list[dict] = []

    def evaluate(params: Any, step: int) -> dict[str, float]:
        upper = shared.upper_with(_trainable(params, shared.n_lower))
        row = {f"auroc/{n}": metrics.auroc(shared.score(rc, upper, ex), np.asarray([e.label for e in ex]))
               for n, ex in select}
        curve.append({"step": int(step), **row})
        return row

    start = time.perf_counter()
    summary = loop.train_and_evaluate(rc, rdir / "work", evaluate, model=shared.model, progress=progress,
                                      feature_store=shared.store)
    chosen = summary.get("best_export") or summary["export"]
    _, params = weights.load_hf(chosen)
    _save_tree(rdir / "chosen_top.npz", _trainable(params, shared.n_lower))
    for sub in ("export", "checkpoints"):  # the chosen top layers are kept; the full copies are not needed
        shutil.rmtree(rdir / "work" / sub, ignore_errors=True)
    _write_json(rdir / "run.json", {"arm": arm.name, "seed": int(seed), "best_step": summary.get("best_step"),
                                    "selection_curve": curve, "train_minutes": (time.perf_counter() - start) / 60,
                                    "selected_on": [n for n, _ in select]})
    return rdir


def chosen_top(rdir: Path | None) -> dict | None:
    """The top layers / final norm a finished run chose on validation (None: the base model)."""
    return None if rdir is None else _load_tree(rdir / "chosen_top.npz")


def _memo(shared: Shared, config: Any, rdir: Path | None, key: str, compute: Callable[[dict | None], Any],
          valid: Callable[[Any], bool] = lambda v: True) -> Any:
    """`compute(trained top layers, None for the base model)` for the run in `rdir` (None: the base model), kept
    under `key` in the run's (or the base model's) scores.json and reused while `valid(kept)` holds."""
    where = rdir if rdir is not None else shared.runs_dir / f"base-{config.model.name.replace('/', '_')}"
    where.mkdir(parents=True, exist_ok=True)
    path = where / "scores.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    if key not in kept or not valid(kept[key]):
        kept[key] = compute(chosen_top(rdir))
        _write_json(path, kept)
    return kept[key]


def retention_of(shared: Shared, config: Any, rdir: Path | None) -> dict:
    """{"nll": per held-out IF conversation [N], "checks": [{prompt, answer, passed}]} of a run (None: base),
    cached beside its scores (`experiment.retention`: `if_limit` conversations, `checks` on/off)."""
    from monitor_jax.experiment import retention

    r = config.experiment.retention

    def compute(trained: dict | None) -> dict:
        upper = shared.upper_with(trained)
        nll = retention.if_nll(shared, config, upper, retention.if_examples(int(r.if_limit)))
        checks = retention.generation_checks(shared, shared.full_params(trained)) if r.checks else []
        return {"nll": nll.tolist(), "checks": checks}

    return _memo(shared, config, rdir, f"retention|{int(r.if_limit)}|{int(config.data.max_len)}|{bool(r.checks)}",
                 compute)


def cell_scores(shared: Shared, config: Any, rdir: Path | None, cell: Any) -> np.ndarray:
    """Scores of one cell's items by the run in `rdir` (None: the base model), cached in `rdir`/the base dir;
    a thinking cell's come from `views.thinking_scores` (summary cells: `views.summary_cell`)."""
    from monitor_jax.experiment import views

    if views.view_of(cell).startswith("thinking"):
        return np.asarray(views.thinking_scores(shared, config, rdir, cell)["score"], np.float64)
    key = "|".join(str(v) for v in (config.experiment.split, cell.task, cell.prompt, cell.get("subset"),
                                        cell.get("ask_with"), int(cell.limit), int(config.data.max_len)))
    ex = cell_examples(config, cell)
    ids = [e.id for e in ex]

    def compute(trained: dict | None) -> dict:
        upper = shared.upper_with(trained)
        return {"ids": ids, "score": shared.score(config, upper, ex).tolist()}

    return np.asarray(_memo(shared, config, rdir, key, compute, lambda kept: kept["ids"] == ids)["score"],
                      np.float64)


def validate(config: Any) -> None:
    """Clear errors before any training: unique arms and cells, comparisons naming both, a checkpoint choice."""
    from monitor_jax.experiment import compare, preconditions, views

    e = config.experiment
    arms = [a.name for a in e.arms]
    cells = [cell_key(c) for c in e.cells]
    for what, names in (("arm", arms), ("cell", cells)):
        if not names or len(set(names)) != len(names):
            raise ValueError(f"config.experiment: {what} names must be non-empty and unique, got {names}")
    if not e.seeds:
        raise ValueError("config.experiment.seeds is empty")
    columns = {}
    for c in e.cells:
        where, view = f"config.experiment.cells {cell_key(c)!r}", views.view_of(c)
        scored = scored_arms(config, c)
        if set(scored) - set(arms):
            raise ValueError(f"{where}: arms {sorted(set(scored) - set(arms))} are not arms of the experiment")
        if view != "plain" and not int(c.get("budget") or 0) > 0:
            raise ValueError(f"{where}: a {view} cell needs budget > 0 (tokens of reasoning / summary)")
        if view == "summary" and c.get("judge") not in arms:
            raise ValueError(f"{where}: judge must name an arm (its first run judges the summaries), got "
                             f"{c.get('judge')!r}")
        columns[cell_key(c)] = scored + views.pseudo_arms(c, scored)
    for c in e.comparisons:
        if c.cell not in cells:
            raise ValueError(f"config.experiment.comparisons: cell {c.cell!r} is not one of {cells}")
        if c.kind not in compare.KINDS:
            raise ValueError(f"config.experiment.comparisons: kind must be one of {sorted(compare.KINDS)}, "
                             f"got {c.kind!r}")
        bad = [r for r in compare.KINDS[c.kind] if c.get(r) not in columns[c.cell]]
        if bad:
            raise ValueError(f"config.experiment.comparisons: {c.kind} on {c.cell}: {bad} must name arms scored "
                             f"on it: {columns[c.cell]}")
    for a in e.arms:
        if a.stages:
            _selection(config, a)
    preconditions.validate(config)


def scored_arms(config: Any, cell: Any) -> list[str]:
    """The arms a cell scores: its `arms` when set, else every arm of the experiment."""
    return list(cell.get("arms") or [a.name for a in config.experiment.arms])


def _spent(runs: list[Path]) -> float:
    return sum(json.loads((r / "run.json").read_text())["train_minutes"] for r in runs if (r / "run.json").exists())


def run_experiment(config: Any, runs_dir: str | os.PathLike, *, shared: Shared | None = None,
                   progress: bool = True, on_run: Callable[[str, int], None] | None = None) -> dict:
    """Trains every (arm, seed) of `config.experiment` and scores every cell; returns the raw material of the
    results: {"runs": {arm: [run dirs]}, "scores": {cell: {arm: [scores per seed]}}, "labels": {cell: y},
    "ids" / "groups": {cell: item ids / hygiene groups or None}, "seeds": {arm: [seed per run; None: base]},
    "incomplete": reason or None, "shared": the Shared context, "generation": {cell: {arm: lengths}} of the
    thinking and summary cells (`views.py`)}. An arm may set its own `seeds`; a cell its `arms` and `view`.

    Budget: before a run is trained, the training minutes already spent on this experiment's runs (reused ones
    included: they are its compute) plus the mean of those runs (or nothing before the first) must fit
    `budget_minutes`; otherwise the remaining runs are skipped and the results say so. A finished run is always
    reused."""
    from tqdm.auto import tqdm

    from monitor_jax.experiment import item_scores, views

    e = config.experiment
    if shared is None and config.data.get("task_files"):
        shared = Shared.create(config, runs_dir)  # registers the task files the checks below resolve
    validate(config)
    shared = shared or Shared.create(config, runs_dir)
    runs: dict[str, list[Path]] = {a.name: [] for a in e.arms}
    incomplete = None
    done: list[Path] = []
    for arm in e.arms:
        if not arm.stages:
            continue
        for seed in arm.get("seeds") or e.seeds:
            spent = _spent(done)
            estimate = spent / len(done) if done else 0.0
            finished = (run_dir(shared.runs_dir, config, arm, int(seed)) / "run.json").exists()
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
        k, view = cell_key(cell), views.view_of(cell)
        bar.set_postfix_str(k)
        ex = cell_examples(config, cell)
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
