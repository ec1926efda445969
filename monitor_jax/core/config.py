"""The base training config (every key `monitor-jax train` reads, with its default) and `load`, the one loader
of config files.

    monitor-jax train --config=configs/base.py --workdir=/tmp/run [--config.optim.lr=3e-5 ...]

`configs/base.py` re-exports this module; the other config files (and a notebook, which has no `configs/`) start
from `get_config()` here, build their mixtures with `task_component` / `instruction_component` / `stage`, and
`lock` the result. `load("configs/x.py:arg", overrides={"optim.lr": 1e-3})` is how everything but the `--config`
flag reads a config file; `load_module` gives a config file as a module (for configs built from a sibling's
helpers). Keys and their meaning:

- `seed`: data order, subsampling, init of new params (LoRA).
- `model`: `name` for `registry.load` (smollm2-135m, tiny-random-<family>, hf:DIR, gguf:FILE); compute `dtype`;
  `matmul_dtype` (None: `dtype`; "bfloat16": bf16 matmul operands with float32 products, AMX on a Xeon);
  `remat` none|full|dots (dots, the default: keep matmul outputs, recompute the rest — on SmolLM2 8x256 CPU
  it ran within 3 % of none at 5.5 GB peak RSS vs 8.9 GB, bench/results/train_step.md).
- `mesh`: `shape` {data, fsdp, tensor} (one may be -1 = the rest of the devices); `rules` logical->mesh axes
  (None: `core.sharding.DEFAULT_RULES`); `strict`: error instead of replicating non-dividing dims.
- `train`: `mode` full | lora | top_k_layers; `top_k` (top_k_layers: the top k of L layers train, the lower
  L-k and the embedding are frozen); `frozen_dtype` storage dtype of frozen params; `lora.{rank, alpha,
  targets}`; `cache_features` (top_k_layers only: compute the frozen lower layers once per distinct example
  and train the top k from the cache, `train/features.py`); `feature_store` shared | memory | disk: where the
  features live (shared: the on-disk store under `feature_store_dir`, default `$MONITOR_JAX_CACHE/features`,
  reused by every run and process on the same frozen stack, with a memory layer in front; memory: this
  process only; disk: an np.memmap file in the workdir); `feature_store_dtype` float32 | bfloat16 (the shared
  store's storage dtype); `feature_store_base` (None: unused) m < the frozen depth: build missing rows from the
  shared store of the first m layers, running only the layers above m (e.g. top-2 after a top-4 pass).
- `optim`: AdamW with linear warmup then `decay` (cosine | linear | constant) to `total_steps`; `clip_norm`
  global-norm clipping (0: none); `grad_accum` micro-batches per optimizer step. `total_steps` is the length
  of the run in optimizer steps; `total_rows` (None: unused) sets it in row-visits instead:
  ceil(total_rows / (batch_size x grad_accum)) steps (`train.budget.resolve`).
- `loss`: `kind` full_vocab (CE over the vocabulary at the answer slot) | two_way (CE over the two label
  tokens); `reduction` example_mean (each row counts once: the single label token and a long IF answer weigh
  the same) | token_mean (every target token counts once: long IF answers swamp the label token — the C5
  "done badly" setting); `if_weight` scales the IF rows' loss.
- `data`: `max_len` tokens per row (longer inputs lose their middle), `batch_size` rows per micro-batch
  (global, over all hosts), `buckets` length buckets (None: the pipeline's default), `task_files` user task
  files (JSON/YAML, README "How to add a task") registered before anything is read, and `stages`: a list of
  stages run in order, each `steps` optimizer steps (None on the last stage: until `optim.total_steps`) with
  weighted `components`. A task component reads the train split of each of its `tasks` under one `prompt`
  (`limit_per_task`, `balance` as in `tasks.examples`); an instruction component (`instruction=True`) reads
  the ShareGPT IF pool (`limit`). `weight` = sampling share, `loss_weight` scales the component's loss.
  Each optimizer step draws grad_accum x batch_size rows of ONE length bucket (`train/data.py`).
- `eval`: periodic held-out evaluation every `every` steps (0: only at the end) on the `split` ("validation":
  checkpoints and the best step are chosen on validation only) of `tasks` (primary prompt,
  `limit_per_task` stratified); `at_start` also evaluates the untrained model at step 0; `every_rows` (None:
  unused) sets `every` in row-visits; `patience` (0: off) stops the run after that many evaluations in a row
  without a better `eval/mean_auroc` than the best so far (validation only; the stop is recorded).
- `checkpoint`: Orbax checkpoint (state + data-iterator position) every `every` steps and at the end,
  keeping the last `keep`. Re-running the same command resumes from the latest one.
- `log_every`: steps between lines of `metrics.jsonl` / TensorBoard points.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
import types
from typing import Any, Mapping, Sequence

import ml_collections
from ml_collections import config_dict
from ml_collections.config_flags import config_path

REPO = pathlib.Path(__file__).resolve().parents[2]  # relative config paths are read from here


def task_component(name: str, tasks: Sequence[str], weight: float = 1.0, *, prompt: str = "primary",
                   loss_weight: float = 1.0, limit_per_task: int | None = None,
                   balance: float | None = None, shuffle_labels: bool = False,
                   item_seed: int | None = None) -> ml_collections.ConfigDict:
    """A mixture component of classification examples: the train split of `tasks` under `prompt`.
    `shuffle_labels`: the shuffled-label control (the same items, prompts and steps; each task's labels permuted
    among its items, seeded by the run seed), which learns the answer format but not the question.
    `item_seed`: draw the `limit_per_task` items with this seed instead of the run seed, so every seed and arm
    trains on one fixed set (C3's small in-domain set)."""
    c = ml_collections.ConfigDict()
    c.name = name
    c.tasks = tuple(tasks)
    c.prompt = prompt
    c.weight = float(weight)
    c.loss_weight = float(loss_weight)
    c.limit_per_task = config_dict.placeholder(int) if limit_per_task is None else int(limit_per_task)
    c.balance = config_dict.placeholder(float) if balance is None else float(balance)
    if shuffle_labels:  # only when set: the keys (and run keys) of every other component stay as they were
        c.shuffle_labels = True
    if item_seed is not None:  # likewise
        c.item_seed = int(item_seed)
    return c


def instruction_component(name: str = "if", weight: float = 1.0, *, loss_weight: float = 1.0,
                          limit: int | None = None) -> ml_collections.ConfigDict:
    """A mixture component of instruction-following chats (the ShareGPT IF pool, train split)."""
    c = ml_collections.ConfigDict()
    c.name = name
    c.instruction = True
    c.weight = float(weight)
    c.loss_weight = float(loss_weight)
    c.limit = config_dict.placeholder(int) if limit is None else int(limit)
    return c


def stage(steps: int | None, *components: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """`components` mixed for `steps` optimizer steps (None: until the end of the run; last stage only)."""
    s = ml_collections.ConfigDict()
    s.steps = config_dict.placeholder(int) if steps is None else int(steps)
    s.components = list(components)
    return s


def lock(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """`config.lock()`, also on the ConfigDicts inside lists (stages, components), which lock() skips."""
    def walk(x):
        if isinstance(x, ml_collections.ConfigDict):
            x.lock()
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
    walk(config)
    return config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The base config, locked (unknown keys are an error); `arg` is ignored."""
    del arg
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.log_every = 10

    c.model = ml_collections.ConfigDict()
    c.model.name = "smollm2-135m"
    c.model.dtype = "float32"
    c.model.matmul_dtype = None
    c.model.remat = "dots"

    c.mesh = ml_collections.ConfigDict()
    c.mesh.shape = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
    c.mesh.rules = config_dict.placeholder(tuple)
    c.mesh.strict = False

    c.train = ml_collections.ConfigDict()
    c.train.mode = "full"
    c.train.top_k = 2
    c.train.frozen_dtype = "float32"
    c.train.cache_features = False
    c.train.feature_store = "shared"
    c.train.feature_store_dir = config_dict.placeholder(str)
    c.train.feature_store_dtype = "float32"
    c.train.feature_store_base = config_dict.placeholder(int)
    c.train.lora = ml_collections.ConfigDict()
    c.train.lora.rank = 8
    c.train.lora.alpha = 16.0
    c.train.lora.targets = ("q", "k", "v", "o", "gate", "up", "down")

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 1e-4
    c.optim.warmup_steps = 10
    c.optim.decay = "cosine"
    c.optim.total_steps = 200
    c.optim.total_rows = config_dict.placeholder(int)
    c.optim.weight_decay = 0.0
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.clip_norm = 1.0
    c.optim.grad_accum = 1

    c.loss = ml_collections.ConfigDict()
    c.loss.kind = "full_vocab"
    c.loss.reduction = "example_mean"
    c.loss.if_weight = 1.0

    c.data = ml_collections.ConfigDict()
    c.data.max_len = 512
    c.data.batch_size = 8
    c.data.buckets = config_dict.placeholder(tuple)
    c.data.task_files = ()
    c.data.stages = [
        stage(None, task_component("harm", ["requests/harmful"], 1.0, balance=1.0),
              instruction_component("if", 0.2, limit=2000)),
    ]

    c.eval = ml_collections.ConfigDict()
    c.eval.every = 50
    c.eval.at_start = False
    c.eval.every_rows = config_dict.placeholder(int)
    c.eval.patience = 0
    c.eval.tasks = ("requests/harmful", "news/sports", "tweets/negative")
    c.eval.split = "validation"
    c.eval.limit_per_task = 200
    c.eval.batch_size = 8

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every = 50
    c.checkpoint.keep = 2
    return lock(c)


def load_module(path: str | os.PathLike) -> types.ModuleType:
    """The config file at `path` (absolute, or relative to the repository) as a fresh module."""
    file = REPO / path  # an absolute `path` replaces REPO
    if not file.is_file():
        raise FileNotFoundError(f"config file {file} not found (relative paths are read from {REPO})")
    spec = importlib.util.spec_from_file_location(f"_monitor_jax_config_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(path_or_name: str | os.PathLike, arg: str | None = None,
         overrides: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
    """`get_config(arg)` of "configs/x.py[:arg]" (a path as `load_module` reads it; a bare "x[:arg]" is
    configs/x.py), with `overrides` {"optim.lr": 1e-3, "data.stages[0].steps": 5} set on the result."""
    path = str(path_or_name)
    if not isinstance(path_or_name, os.PathLike) and ":" in path:
        path, inline = path.rsplit(":", 1)
        if arg is not None:
            raise ValueError(f"config {path_or_name}: an arg after ':' and arg={arg!r}; give one")
        arg = inline
    if "/" not in path:  # a bare name: a file in configs/
        path = f"configs/{path.removesuffix('.py')}.py"
    module = load_module(path)
    if not callable(getattr(module, "get_config", None)):
        raise ValueError(f"config file {path} has no get_config(arg)")
    config = module.get_config(arg)
    for key, value in (overrides or {}).items():
        try:
            config_path.set_value(key, config, value)
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as e:
            why = str(e.args[0] if e.args else e).splitlines()[0]
            raise ValueError(f"config {path}: cannot set {key}={value!r}: {why}") from None
    return config
