"""Shared base of the claim experiments (configs/c*.py) and the demo: training keys + an `experiment` section.

    monitor-jax experiment --config=configs/c1_transfer.py --out=experiments/results/c1_transfer

Training (every arm), the protocol default chosen by the depth pilot (experiments/results/pilot_depth/):
SmolLM2-135M-Instruct, top 2 of 30 layers trained from cached lower-layer features (`train/features.py`; top 4
was no better on any pilot task at ~3x the cost), AdamW lr 1e-3 with 5 warmup steps and cosine decay, 1,200
row-visits per run in batches of 8 (`experiment.budget_rows`; request tasks reach >= 0.97 validation AUROC by
then), max_len 1024 with a 768 bucket (agent transcripts are ~500-1000 tokens; longer inputs lose their middle).
Validation AUROC every 200 row-visits on 96 items of each of the arm's own training tasks chooses the checkpoint.
Round-1 results (48 steps x 8 rows, every 16 steps, 48 selection items) name their recipe in their results.md.

`experiment` keys (`monitor_jax/experiment/runner.py`):
- `name`, `claim`, `statement`: what is tested; `notes`: lines for results.md.
- `seeds`: one run per arm and seed; `budget_minutes`: training minutes the experiment may spend, reused runs
  included (the next run to train is skipped when it would not fit; a finished run is always reused);
  `split`: the split of the evaluation cells (test: read once per chosen checkpoint); `n_boot` paired bootstrap
  resamples; `select_limit` validation items per training task for checkpoint selection; `budget_rows` (None:
  `optim.total_steps`) each run's length in row-visits (an arm's `rows` replaces it; steps =
  ceil(rows / batch_size)). With `eval.every_rows` and `eval.patience` (configs/core: `monitor_jax/core/config.py`)
  a run is evaluated every N row-visits and stops after `patience` evaluations without improvement.
- `cells`: (task, prompt, `limit` = n items, fixed before the run, `role`).
- `cells` may also set `view` (thinking | thinking_control | summary), `budget`, `judge`, `arms` (views.py).
- `arms`: `name`, `label`, `stages` (empty: the untrained base model), `x` (a number for the scaling plot), `seeds`,
  `select` ("task:prompt", ...) to choose the checkpoint on (default: the arm's training tasks), `rows`
  (row-visits of its runs, replacing `budget_rows`; set it with `arm(..., rows=N)`), `overrides`
  {"loss__reduction": value}: training-config keys with "__" for ".". `control_arm(arm)` is an arm's
  shuffled-label control (same items, prompts, steps; labels permuted within each task): transfer is reported
  against the untrained model and against it, so format learning is not counted as transfer.
- `comparisons`: `kind` diff (a, b) | gap (arm, base, ref) | gap_diff (arm, other, base, ref), `cell`
  "task:prompt", `direction` of the claimed effect (+1/-1, from the claim's statement in DESIGN.md §1: a test
  checks it), `primary` (the verdict is computed from these).
- `preconditions`: what must hold for the claim to be decidable (`monitor_jax/experiment/preconditions.py`);
  one that fails makes the comparisons on the cells it `guards` (default all) "not testable", never "refuted".
"""
from __future__ import annotations

import copy

import ml_collections
import numpy as np

from monitor_jax.core import config as base

task_component, stage, lock = base.task_component, base.stage, base.lock


def cell(task: str, limit: int, role: str, prompt: str = "primary", *, name: str | None = None,
         subset: str | None = None, ask_with: str | None = None, view: str | None = None, budget: int | None = None,
         judge: str | None = None, arms: tuple[str, ...] | None = None) -> ml_collections.ConfigDict:
    """An evaluation cell: `limit` items (stratified, seed 0) of `task` under `prompt`; `subset` "task:prompt" keeps
    that question's positives only; `ask_with` "task:prompt" asks another question (labels stay `task`'s);
    `name` (default "task:prompt") is how comparisons refer to it; `view` thinking | thinking_control | summary
    with `budget` generated tokens and, for summaries, the `judge` arm (monitor_jax/experiment/views.py); `arms`
    the arms scored on it (default all)."""
    c = ml_collections.ConfigDict({"task": task, "prompt": prompt, "limit": int(limit), "role": role})
    c.name, c.subset, c.ask_with = name or f"{task}:{prompt}", subset, ask_with
    if view is not None:
        c.view, c.budget, c.judge = view, budget, judge
    if arms is not None:
        c.arms = tuple(arms)
    return c


def arm(name: str, *components: ml_collections.ConfigDict, label: str | None = None, x: float | None = None,
        seeds: tuple[int, ...] | None = None, rows: int | None = None, **overrides) -> ml_collections.ConfigDict:
    """An arm trained on `components` mixed in one stage (none: the untrained base model); `seeds` replaces the
    experiment's seeds for this arm (e.g. one judge run)."""
    a = ml_collections.ConfigDict({"name": name, "label": label or name,
                                   "stages": [stage(None, *components)] if components else [],
                                   "overrides": ml_collections.ConfigDict(overrides)})
    a.x = x
    if rows is not None:
        a.rows = int(rows)
    if seeds is not None:
        a.seeds = tuple(seeds)
    return a


def control_arm(of: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The shuffled-label control of arm `of`: the same stages, items, prompts, seeds and row-visits, each task's
    labels permuted among its items (`task_component(shuffle_labels=True)`), named `<of>_shuffled`; its
    checkpoint is chosen the same way (on its tasks' validation items, true labels)."""
    a = copy.deepcopy(of)
    a.name, a.label = f"{of.name}_shuffled", f"{of.label} (shuffled labels)"
    for st in a.stages:
        for comp in st.components:
            if not comp.get("instruction"):
                comp.shuffle_labels = True
    return a


def comparison(kind: str, cell_name: str, *, direction: int = 1, primary: bool = False,
               **arms: str) -> ml_collections.ConfigDict:
    """A declared comparison (see the module docstring); `arms` by role, e.g. a="base", b="mixture"."""
    return ml_collections.ConfigDict({"kind": kind, "cell": cell_name, "direction": int(direction),
                                      "primary": bool(primary), **arms})


def precondition(kind: str, what: str, *, guards: tuple[str, ...] = (), **keys) -> ml_collections.ConfigDict:
    """A precondition (kinds: monitor_jax/experiment/preconditions.py), e.g. precondition("diff", "an in-domain
    gap exists", cell=k, a="base", b="in_agent", guards=(k,)); `what` names it in results."""
    return ml_collections.ConfigDict({"kind": kind, "what": what, "guards": tuple(guards), **keys})


def in_domain_gap(cell_name: str, arm_name: str) -> ml_collections.ConfigDict:
    """The in-domain gap exists: AUROC(arm) - AUROC(base) > 0 on `cell_name` (guards that cell)."""
    return precondition("diff", f"in-domain gap on {cell_name} (base -> {arm_name}) > 0", cell=cell_name, a="base",
                        b=arm_name, direction=1, guards=(cell_name,))


def committed_gap(result: str, cell_name: str, a: str, b: str, guards: tuple[str, ...]) -> ml_collections.ConfigDict:
    """A precondition read from a committed experiment (`result`: its results.json under the repo root): its paired
    difference b - a on `cell_name` has a CI above 0 (e.g. the agent-learnability gap, instead of retraining it)."""
    return precondition("committed", f"in-domain gap on {cell_name} ({a} -> {b}) > 0, committed in {result}",
                        result=result, cell=cell_name, a=a, b=b, direction=1, guards=tuple(guards))


def balanced(name: str, task: str, limit: int) -> ml_collections.ConfigDict:
    """`limit` balanced training items of one task under its primary prompt."""
    return task_component(name, [task], 1.0, limit_per_task=limit, balance=1.0)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
    c = base.get_config()
    with c.unlocked():
        c.model.remat = "none"
        c.train.mode = "top_k_layers"
        c.train.top_k = 2
        c.train.cache_features = True
        c.optim.lr = 1e-3
        c.optim.warmup_steps = 5
        c.optim.total_steps = 48
        c.data.max_len = 1024
        c.data.buckets = (128, 256, 512, 768, 1024)
        c.data.stages = []
        c.eval.every = 16
        c.eval.every_rows = 200
        c.eval.tasks = ()
        c.checkpoint.every = 16
        c.checkpoint.keep = 1
        c.log_every = 8
        e = c.experiment = ml_collections.ConfigDict()
        e.name = ""
        e.claim = ""
        e.statement = ""
        e.notes = ()
        e.seeds = (0, 1)
        e.budget_minutes = 120.0
        e.split = "test"
        e.n_boot = 1000
        e.select_limit = 96
        e.budget_rows = 1200
        e.cells = []
        e.arms = []
        e.comparisons = []
        e.preconditions = []
    return c


# Shared task names and sizes of the claim configs (C1-C3, C5-C7).
AGENT, INFO = "agent/sabotage", "requests/info_hazard"
TRAIN_ITEMS = 96  # balanced training items per task of an arm


def info_cell() -> ml_collections.ConfigDict:
    return cell(INFO, 406, "held-out: harmful requests, one category (the whole test split)")


# Tweets, BBC news and RealToxicityPrompts: no request, agent transcript or ShareGPT text (the jailbreak task's
# ordinary requests come from ShareGPT, as do the requests tasks' benign items).
MIXTURE = ["tweets/negative", "news/business", "news/tech", "toxicity/threat", "toxicity/identity_attack"]


def mixture_arm() -> ml_collections.ConfigDict:
    """C1's arm (shared by C6 and C7, so they score the same runs): five tasks of three sources none of the
    held-out cells shares, 96 balanced items each, equal weights."""
    return arm("mixture", task_component("mix", MIXTURE, 1.0, limit_per_task=TRAIN_ITEMS, balance=1.0),
               label="mixture (5 other tasks)")


IF_ITEMS, IF_SHARE = 64, 0.3  # the IF recipe of C5-C7: 64 ShareGPT conversations, 30 % of the rows


def instruction(limit: int = IF_ITEMS, share: float = IF_SHARE) -> ml_collections.ConfigDict:
    """IF rows interleaved beside one classification component of weight 1: `share` of the rows, `limit`
    conversations, per-example loss (the config's default reduction)."""
    return base.instruction_component("if", share / (1 - share), limit=limit)


def mixture_if_arm() -> ml_collections.ConfigDict:
    """C1's mixture with IF interleaved (`instruction()`): a trained model that still writes (C6-C8)."""
    mix = mixture_arm()
    return arm("mixture_if", *mix.stages[0].components, instruction(), label="mixture (5 other tasks) + IF")


# Pod scales of every claim config (`configs/c1_transfer.py:qwen3-8b-lora`): the same arms, cells, seeds and
# verdicts; the model, train mode, mesh, batch, budgets and max_len sized for an accelerator. Model names are
# dims-only (`monitor-jax plan` needs no weights); a run points `--config.model.name=hf:/path/to/weights` at them.
# `memory` is one device's, in bytes; tests/train/test_pod_configs.py plans each on its mesh (<= 90 % of it).
SCALES = {
    "qwen3-8b-lora": dict(model="qwen3-8b", mode="lora", accelerator="8x NVIDIA H100 80GB (one node)",
                          memory=80 * 10**9, mesh={"data": 1, "fsdp": 8, "tensor": 1}, batch=32, lr=1e-4,
                          minutes=12 * 60.0),
    "llama3-8b-full": dict(model="llama3-8b", mode="full", accelerator="TPU v5p-32 (16 chips, 95 GB HBM each)",
                           memory=95 * 10**9, mesh={"data": 1, "fsdp": 16, "tensor": 1}, batch=32, lr=1e-5,
                           minutes=12 * 60.0),
    "llama3-70b-lora": dict(model="llama3-70b", mode="lora", accelerator="TPU v5p-64 (32 chips, 95 GB HBM each)",
                            memory=95 * 10**9, mesh={"data": 1, "fsdp": 16, "tensor": 2}, batch=32, lr=1e-4,
                            minutes=48 * 60.0),
}
POD_MAX_LEN, POD_BUCKETS, POD_ROWS = 8192, (512, 1024, 2048, 4096, 8192), 20_000


def scale(c: ml_collections.ConfigDict, name: str | None) -> ml_collections.ConfigDict:
    """`c` at pod scale `name` (a key of SCALES; None: unchanged, the CPU default we report): LoRA or full
    fine-tuning of the named model in bf16 with full remat on its mesh, 8k-token inputs (agent transcripts whole),
    20,000 row-visits per run (every train item of our sources many times over: they, not the budget, cap the
    scale), and a budget of hours. `c.experiment.scale` records the accelerator."""
    if name is None:
        return c
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}; known: {sorted(SCALES)}")
    s = SCALES[name]
    factor = POD_ROWS / int(c.experiment.budget_rows)
    for a in c.experiment.arms:  # an arm's own length keeps its ratio to the experiment's (C3's small_half)
        if a.get("rows"):
            a.rows = int(round(int(a.rows) * factor))
    with c.unlocked():
        c.model.name, c.model.dtype, c.model.remat = s["model"], "bfloat16", "full"
        c.train.mode, c.train.cache_features, c.train.frozen_dtype = s["mode"], False, "bfloat16"
        c.mesh.shape = ml_collections.ConfigDict(dict(s["mesh"]))
        c.data.batch_size, c.data.max_len, c.data.buckets = int(s["batch"]), POD_MAX_LEN, POD_BUCKETS
        c.eval.batch_size = int(s["batch"])
        c.optim.lr = float(s["lr"])
        c.experiment.budget_rows = POD_ROWS
        c.eval.every_rows = POD_ROWS // 10
        c.checkpoint.every = 64
        c.experiment.budget_minutes = float(s["minutes"])
        c.experiment.scale = ml_collections.ConfigDict({"name": name, "accelerator": s["accelerator"],
                                                        "memory": int(s["memory"]),
                                                        "devices": int(np.prod(list(s["mesh"].values())))})
    return c

