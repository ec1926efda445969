"""What an experiment's pieces share: the process-wide model and feature store of the cached top-k path
(`Shared`; `strategy.py` picks it or the full forward from the config), a cell's items and key, a run's config,
key and directory, its chosen checkpoint, and the per-run scores cache (`memo`, written by process 0 only).
The runner (`runner.py`) and the generated views (`views.py`) both build on it."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Protocol

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from monitor_jax.core import assets, distributed, io, sharding
from monitor_jax.data import pipeline, tasks
from monitor_jax.eval import scoring
from monitor_jax.model import registry, transformer, weights
from monitor_jax.train import budget
from monitor_jax.train import data as train_data
from monitor_jax.train import step as step_lib
from monitor_jax.train import features


def cell_key(cell: Any) -> str:
    """A cell's name in results and comparisons: `name`, or "task:prompt"."""
    return cell.get("name") or f"{cell.task}:{cell.prompt}"


def task_prompt(spec: str) -> tuple[str, str]:
    task, _, prompt = spec.partition(":")
    return task, prompt or "primary"


def write_json(path: Path, obj: Any) -> None:
    io.write_json(path, obj, indent=1, default=float)


class Strategy(Protocol):
    """What the runner and the views ask of a way to train and score runs: `Shared` below or
    `strategy.FullForward` (`strategy.py` says what each call means)."""

    model: registry.LoadedModel
    runs_dir: Path

    def score(self, config: Any, params: Any, examples: list, progress: bool = False) -> np.ndarray: ...
    def upper_with(self, chosen: Any | None) -> Any: ...
    def full_params(self, chosen: Any | None) -> Any: ...
    def upper_of(self, params: Any, mode: Any) -> Any: ...
    def features(self, batch: dict) -> np.ndarray | None: ...
    def prefill(self, config: Any, examples: list) -> None: ...
    def keep(self, rdir: Path, export: str | os.PathLike, mode: Any) -> None: ...
    def load(self, rdir: Path | None) -> Any | None: ...
    def train_kwargs(self) -> dict: ...
    def run_facts(self) -> dict: ...
    def base_dir(self, config: Any) -> Path: ...


CHOSEN_TOP, CHOSEN_DIR = "chosen_top.npz", "chosen"  # a run's chosen checkpoint: top layers, or an HF dir


@dataclasses.dataclass
class Shared:
    """The cached top-k path: what every run of a process shares, the model, its frozen lower stack and the
    feature store; runs are scored by the top layers on cached features (the strategy calls: `strategy.py`)."""

    model: registry.LoadedModel
    n_lower: int
    upper_cfg: transformer.ModelConfig
    frozen: Any
    base_upper: Any
    store: Any  # feature_store.open_store: by default the shared on-disk store with a memory layer
    cache: features.FeatureCache
    runs_dir: Path

    @classmethod
    def create(cls, config: Any, runs_dir: str | os.PathLike) -> "Shared":
        if config.train.mode != "top_k_layers" or not config.train.cache_features:
            raise ValueError("cells.Shared is the cached-feature path: it needs config.train.mode='top_k_layers' "
                             "and config.train.cache_features=True (strategy.create picks the full forward "
                             "for the other modes)")
        assets.use_compilation_cache()
        model = registry.load(config.model.name)
        train_data.register_task_files(config, model.tokenizer)
        n_lower = features.n_lower_layers(config, model.cfg)
        lower, upper = transformer.split_params(model.params, n_lower)
        mesh = sharding.make_mesh(config.mesh.shape)
        rep = NamedSharding(mesh, P())
        frozen = jax.device_put({k: v for k, v in lower.items() if k != "final_norm"}, rep)
        cache = features.FeatureCache(config, model.cfg, mesh, jax.tree_util.tree_map(lambda _: rep, frozen))
        store = cache.open(frozen)
        upper_cfg = scoring.inference_config(step_lib.compute_config(config, model.cfg)).replace(
            n_layers=model.cfg.n_layers - n_lower)
        return cls(model, n_lower, upper_cfg, frozen, jax.device_put(upper), store, cache, Path(runs_dir))

    def score(self, config: Any, upper: Any, examples: list, progress: bool = False) -> np.ndarray:
        """P(positive | label words) of `examples` (input order) under the top layers `upper` + the head."""
        rendered, _ = pipeline.render_examples(self.model.tokenizer, examples, int(config.data.max_len))
        self.cache.prefill(rendered, self.frozen)
        res = scoring.score_rendered(self.upper_cfg, upper, rendered, batch_size=int(config.eval.batch_size),
                                     max_len=int(config.data.max_len), buckets=buckets(config),
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

    def upper_of(self, params: Any, mode: Any) -> Any:
        """What `score` takes, from the loop's whole param tree (during training)."""
        return self.upper_with(mode.split(params, self.model.cfg)[0])

    def features(self, batch: dict) -> np.ndarray:
        """The lower stack's activations of `batch`'s rows (from the store)."""
        return self.cache.add_features(batch, self.frozen)["embeddings"]

    def prefill(self, config: Any, examples: list) -> None:
        """Stores the lower-stack features of `examples` (training or selection rows) before a run reads them, in
        length-sorted batches (`features.FeatureCache.prefill`)."""
        rendered, _ = pipeline.render_examples(self.model.tokenizer, examples, int(config.data.max_len))
        self.cache.prefill(rendered, self.frozen)

    def keep(self, rdir: Path, export: str | os.PathLike, mode: Any) -> None:
        """Keeps a finished run's chosen checkpoint (the HF dir `export`) as its top layers, `chosen_top.npz`."""
        if distributed.is_main():
            _, params = weights.load_hf(export)
            save_tree(rdir / CHOSEN_TOP, mode.split(params, self.model.cfg)[0])

    def load(self, rdir: Path | None) -> dict | None:
        """A finished run's chosen top layers (None: the base model)."""
        return chosen_top(rdir)

    def train_kwargs(self) -> dict:
        return {"feature_store": self.store}

    def run_facts(self) -> dict:
        return {"feature_store": self.store.stats()}  # after this run (process-wide)

    def base_dir(self, config: Any) -> Path:
        """Where the base model's scores are kept (named by the precision where it is not plain float32)."""
        precision = self.upper_cfg.precision
        tag = "" if precision == "float32" else "-" + precision.replace("/", "-")
        return self.runs_dir / f"base-{config.model.name.replace('/', '_')}{tag}"


def buckets(config: Any) -> tuple[int, ...]:
    return tuple(config.data.get("buckets") or pipeline.DEFAULT_BUCKETS)


def cell_examples(config: Any, cell: Any, split: str | None = None) -> list:
    """The items of an evaluation cell: fixed by (task, prompt, split, limit) and seed 0, whatever the run seed.
    Optional cell keys: `subset` "task:prompt" keeps only that question's positives (e.g. harmful requests only);
    `ask_with` "task:prompt" asks another task's question while the labels stay the cell's (C4's reference)."""
    where = None
    if cell.get("subset"):
        sub_task, sub_prompt = task_prompt(cell.subset)
        t = tasks.get(sub_task)
        p = t.prompt(sub_prompt)
        where = lambda it: tasks.label_of(t, p, it) == 1  # noqa: E731
    ask = task_prompt(cell.ask_with) if cell.get("ask_with") else None
    split = split or config.experiment.split
    limit = int(cell.limit) if split == config.experiment.split else None
    return tasks.examples(cell.task, split, cell.prompt, limit=limit, seed=0, where=where, ask_with=ask)


def selection(config: Any, arm: Any) -> list[tuple[str, list]]:
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
    """The training config of one run: the experiment's training keys, the arm's stages and overrides, `seed`;
    the length in row-visits when set (arm `rows`, else `experiment.budget_rows`; `train.budget.resolve`)."""
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
        rows = arm.get("rows") or config.experiment.get("budget_rows")
        if rows and c.optim.get("total_rows") is None:  # an arm's `rows`, else the experiment's, in row-visits
            c.optim.total_rows = int(rows)
    return budget.resolve(c)


def _plain(value: Any) -> Any:
    """Config values as plain JSON data, ConfigDicts inside lists (a stage's components) included: never their
    YAML `str`, whose quoting depends on process-wide YAML state (it changed run keys within one test session)."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _task_file_digest(path: str) -> str:
    """A digest of a user task file and the JSONL data files it names (what its task's items are)."""
    from monitor_jax.data import user_tasks

    h = hashlib.sha1(Path(path).read_bytes())
    for rel in sorted((user_tasks.read_task_file(Path(path)).get("data") or {}).values()):
        h.update((Path(path).parent / Path(rel).expanduser()).read_bytes())
    return h.hexdigest()


def run_key(config: Any, selection: list[str], select_limit: int) -> str:
    """A digest of everything that decides a run's result (its training config and how its step is chosen)."""
    keep: dict[str, Any] = {"selection": selection, "select_limit": select_limit}
    keep.update({k: _plain(config[k]) for k in ("seed", "model", "train", "optim", "loss", "data")})
    keep["eval_every"] = int(config.eval.every)
    for where, key, default in (("train", "feature_store", None), ("train", "feature_store_dir", None),
                                ("train", "feature_store_dtype", "float32"), ("train", "feature_store_base", None),
                                ("optim", "total_rows", None)):
        if default is None or keep[where].get(key) == default:  # where features live is not the run's result
            keep[where].pop(key, None)  # (and defaults keep the keys of runs made before these keys existed)
    if keep["data"].get("task_files"):  # a task file counts by its content, and only in a run that reads its task
        used = {t for st in config.data.stages for comp in st.get("components", ()) for t in comp.get("tasks", ())}
        used |= {name.split(":")[0] for name in selection}
        named = zip(keep["data"]["task_files"], train_data.register_task_files(config))
        keep["data"]["task_files"] = sorted(_task_file_digest(f) for f, task in named if task in used)
    if keep["model"].get("matmul_dtype") is None:  # the default: keys of runs made before the key existed
        keep["model"].pop("matmul_dtype", None)
    if int(config.eval.get("patience") or 0):
        keep["eval_patience"] = int(config.eval.patience)
    return hashlib.sha1(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:10]


def save_tree(path: Path, tree: dict) -> None:
    flat = {"/".join(str(getattr(k, "key", k)) for k in kp): np.asarray(v)
            for kp, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **flat)
    os.replace(tmp, path)


def load_tree(path: Path) -> dict:
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
    key = run_key(run_config(config, arm, seed), [n for n, _ in selection(config, arm)],
                  int(config.experiment.select_limit))
    return Path(runs_dir) / f"{arm.name}-{key}-s{seed}"


def chosen_top(rdir: Path | None) -> dict | None:
    """The checkpoint a finished run chose on validation, as its strategy kept it: the top layers / final norm
    (`chosen_top.npz`), or the whole model's params (the HF dir `chosen/`); None: the base model."""
    if rdir is None:
        return None
    if (rdir / CHOSEN_DIR).is_dir() and not (rdir / CHOSEN_TOP).exists():
        return weights.load_hf(rdir / CHOSEN_DIR)[1]
    return load_tree(rdir / CHOSEN_TOP)


def memo(shared: Strategy, config: Any, rdir: Path | None, key: str, compute: Callable[[dict | None], Any],
          valid: Callable[[Any], bool] = lambda v: True) -> Any:
    """`compute(the run's chosen checkpoint, None for the base model)` for the run in `rdir` (None: the base
    model), kept under `key` in the run's (or the base model's) scores.json and reused while `valid(kept)` holds.
    With several processes, process 0's scores.json decides for all (`distributed.agree`), every process
    computes (the scorer's collectives) and process 0 writes."""
    main = distributed.is_main()
    path = (rdir if rdir is not None else shared.base_dir(config)) / "scores.json"
    kept = json.loads(path.read_text()) if main and path.exists() else {}
    value = distributed.agree(kept[key] if key in kept and valid(kept[key]) else None)
    if value is None:
        value = compute(shared.load(rdir))
        if main:
            path.parent.mkdir(parents=True, exist_ok=True)
            kept[key] = value
            write_json(path, kept)
    return value


def plain_scores(shared: Strategy, config: Any, rdir: Path | None, cell: Any) -> np.ndarray:
    """The run's (None: the base model's) P(positive) of a plain cell's items (top layers on cached features, or
    the full forward: the strategy's `score`), kept in the run's scores.json."""
    key = "|".join(str(v) for v in (config.experiment.split, cell.task, cell.prompt, cell.get("subset"),
                                        cell.get("ask_with"), int(cell.limit), int(config.data.max_len)))
    ex = cell_examples(config, cell)
    ids = [e.id for e in ex]

    def compute(trained: dict | None) -> dict:
        upper = shared.upper_with(trained)
        return {"ids": ids, "score": shared.score(config, upper, ex).tolist()}

    return np.asarray(memo(shared, config, rdir, key, compute, lambda kept: kept["ids"] == ids)["score"],
                      np.float64)
