"""Cost estimates before anything trains (`monitor-jax experiment --dry_run`): measured per-row costs on this machine
times the rows of every arm x seed and evaluation cell, from a cold feature cache.

Measured (`measure`, a few seconds; kept in `$MONITOR_JAX_CACHE/cost/<digest>.json`, keyed by the CPU/device, the
model, its dims, depth, compute dtype and batch size): one frozen layer's forward and one cached top-k train step,
each at two bucket lengths of the config, fit per row as a*T + b*T^2 (T the padded length).
Estimated (`estimate`): the lower-stack features of every distinct row once, at the width `FeatureCache.prefill`
pads it to (training rows of every arm, selection rows, cell rows: n_lower x one layer), each run's steps at its
rows' bucket mix, its selection evaluations (the top k layers on the selection rows, every `eval.every` steps and at
the end) and the cells (the top k layers per scored run and the base model). Thinking and summary cells generate text and are not estimated (listed).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from monitor_jax.core import assets, io, sharding
from monitor_jax.data import pipeline
from monitor_jax.eval import generate
from monitor_jax.experiment import cells, power, views
from monitor_jax.model import registry, transformer
from monitor_jax.train import data as train_data
from monitor_jax.train import features
from monitor_jax.train import state as state_lib
from monitor_jax.train import step as step_lib
from monitor_jax.train import feature_store
from monitor_jax.train.feature_store import needed_length, row_key

LIMIT_MINUTES = 120.0  # a claim's run must fit alone on this machine from a cold cache (issue 22)


def machine() -> str:
    """This machine in words: the CPU model and core count, or the accelerator kind and count."""
    dev = jax.devices()[0]
    if dev.platform != "cpu":
        return f"{len(jax.devices())} x {dev.device_kind}"
    name = platform.processor() or "cpu"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def _fit(lengths: tuple[int, int], seconds: tuple[float, float]) -> tuple[float, float]:
    """(a, b) with a*T + b*T^2 through the two points (b >= 0; one point: linear)."""
    (t1, t2), (s1, s2) = lengths, seconds
    if t1 == t2:
        return s1 / t1, 0.0
    b = max((s2 / t2 - s1 / t1) / (t2 - t1), 0.0)
    return (s1 - b * t1 * t1) / t1, b


def _time(fn: Any, reps: int = 2) -> float:
    jax.block_until_ready(fn())  # compile
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
    return best


def _synthetic_batch(b: int, t: int, vocab: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"tokens": rng.integers(1, vocab, (b, t)).astype(np.int32), "segment_ids": np.ones((b, t), np.int32),
            "positions": np.broadcast_to(np.arange(t, dtype=np.int32), (b, t)).copy(),
            "answer_index": np.full(b, t - 1, np.int32), "label": (np.arange(b) % 2).astype(np.int32),
            "label_ids": np.tile(np.asarray([[1, 2]], np.int32), (b, 1)),
            "answer_id": (1 + np.arange(b) % 2).astype(np.int32), "loss_mask": np.zeros((b, t), np.float32),
            "weight": np.ones(b, np.float32), "is_classification": np.ones(b, bool),
            "task_index": np.zeros(b, np.int32)}


def probe_lengths(config: Any) -> tuple[int, int]:
    """The two bucket lengths measured: the smallest bucket and the largest one up to 512."""
    lengths = pipeline.bucket_lengths(cells.buckets(config), int(config.data.max_len))
    return lengths[0], max([t for t in lengths if t <= 512] or [lengths[0]])


def _key(config: Any, cfg: transformer.ModelConfig) -> str:
    precision = step_lib.compute_config(config, cfg).precision
    text = json.dumps([machine(), str(config.model.name), cfg.n_layers, cfg.d_model, int(config.train.top_k),
                       precision, int(config.data.batch_size), probe_lengths(config), jax.__version__])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def measure(config: Any, model: Any = None, *, refresh: bool = False,
            root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Per-row costs of the config's model and shapes on this machine (seconds per row: a*T + b*T^2), kept in
    `root` (default `$MONITOR_JAX_CACHE/cost`) and reused unless `refresh`."""
    model = model or registry.load(config.model.name)
    path = Path(root or assets.cache_dir() / "cost") / f"{_key(config, model.cfg)}.json"
    if path.exists() and not refresh:
        kept = json.loads(path.read_text())
        if "decode_step_s" in kept:  # (measured before the decode step was: measured again)
            return kept
    b, lengths = int(config.data.batch_size), probe_lengths(config)
    mesh = sharding.make_mesh(config.mesh.shape)
    layer_cfg = step_lib.compute_config(config, model.cfg).replace(n_layers=1, remat="none")
    one = {k: v for k, v in transformer.split_params(model.params, 1)[0].items() if k != "final_norm"}
    lower = jax.jit(lambda f, t, p, s: features.lower_forward(layer_cfg, f, t, p, s))
    state, shardings = state_lib.create_train_state(config, model, mesh)
    train_step = step_lib.make_train_step(config, model.cfg, mesh, shardings)
    layer_s, step_s = [], []
    for t in lengths:
        batch = _synthetic_batch(b, t, model.cfg.vocab_size)
        args = [jnp.asarray(batch[k]) for k in ("tokens", "positions", "segment_ids")]
        layer_s.append(_time(lambda: lower(one, *args)) / b)
        emb = np.random.default_rng(1).normal(0, 1, (1, b, t, model.cfg.d_model)).astype(layer_cfg.dtype)
        arrays = sharding.shard_batch({**{k: v[None] for k, v in batch.items()}, "embeddings": emb}, mesh)

        def step():
            nonlocal state
            state, metrics = train_step(state, arrays)
            return metrics

        step_s.append(_time(step) / b)
    out = {"machine": machine(), "model": str(config.model.name), "n_layers": model.cfg.n_layers,
           "decode_step_s": decode_step_seconds(config, model, b),
           "top_k": int(config.train.top_k), "batch_size": b, "lengths": list(lengths),
           "layer_row_s": list(_fit(lengths, tuple(layer_s))), "step_row_s": list(_fit(lengths, tuple(step_s))),
           "measured": time.strftime("%Y-%m-%d %H:%M")}
    io.write_json(path, out, indent=1)
    return out


def decode_step_seconds(config: Any, model: Any, b: int) -> float:
    """Seconds of one greedy decode step of `b` rows with the KV cache (the full model, as the thinking and summary
    views generate): two generation lengths on the same prompts, differenced, so prefill and compile drop out."""
    cfg = step_lib.compute_config(config, model.cfg)
    prompts = [list(range(1, 65)) for _ in range(b)]  # no stop ids: every row decodes all n tokens

    def run(n: int) -> Any:
        return generate.generate_ids(cfg, model.params, prompts, generate.Sampling(max_new_tokens=n),
                                     pad_id=model.tokenizer.pad_id, batch_size=b, progress=False)

    short, long = _time(lambda: run(4), reps=1), _time(lambda: run(20), reps=1)
    return max(long - short, 0.0) / 16


def _per_row(coef: list[float], t: np.ndarray) -> np.ndarray:
    return coef[0] * t + coef[1] * t * t


def _padded(rendered: list, lengths: tuple[int, ...]) -> np.ndarray:
    return np.asarray([lengths[pipeline.bucket_of(len(r), lengths)] for r in rendered], np.float64)


def stored_layers(config: Any, model: Any) -> Any:
    """`fn(row key) -> lower layers of that row the shared store already holds` (the config's own stack, else its
    `train.feature_store_base` stack, else 0): what a warm estimate need not compute. Run-time dirs only."""
    if config.train.get("feature_store", "shared") != "shared":
        return lambda key: 0
    n_lower = features.n_lower_layers(config, model.cfg)
    frozen = {k: v for k, v in transformer.split_params(model.params, n_lower)[0].items() if k != "final_norm"}
    compute = step_lib.compute_config(config, model.cfg)
    stacks = [(n_lower, frozen)]
    if config.train.get("feature_store_base") is not None:
        nb = int(config.train.feature_store_base)
        stacks.append((nb, features.layer_slice(frozen, 0, nb)))
    stores = [(n, feature_store.shared_stack_store(config, model_name=str(config.model.name), frozen=f, n_lower=n,
                                                   compute_dtype=compute.dtype, precision=compute.precision))
              for n, f in stacks]
    return lambda key: next((n for n, store in stores if key in store), 0)


def estimate(config: Any, costs: dict[str, Any], tokenizer: Any, stored: Any = None) -> dict[str, Any]:
    """Minutes per arm (features of its rows not seen before, training, selection) and for the cells, from
    `costs` (`measure`); cold cache, or with `stored` (`stored_layers`) the layers the store already holds not
    counted (runs already finished are still counted). Returns {"arms": [{name, runs, steps, rows, feature_min,
    train_min, select_min, total_min}], "cell_features_min", "cells_min", "skipped" (what is not estimated),
    "total_min", "over", "cached_rows", "distinct_rows"}."""
    e, max_len = config.experiment, int(config.data.max_len)
    lengths = pipeline.bucket_lengths(cells.buckets(config), max_len)
    n_layers, k = int(costs["n_layers"]), int(config.train.top_k)
    seen: set[bytes] = set()
    stored = stored or (lambda key: 0)
    counts = {"cached": 0, "distinct": 0}

    def feature_seconds(rendered: list) -> float:
        total = 0.0
        for r in rendered:
            key = _row_key(r)
            if key in seen:
                continue
            seen.add(key)
            have = stored(key)
            counts["distinct"] += 1
            counts["cached"] += have == n_layers - k
            total += float(_per_row(costs["layer_row_s"], _prefill_width(r)).sum()) * (n_layers - k - have)
        return total

    def upper_seconds(rendered: list) -> float:
        return float(_per_row(costs["layer_row_s"], _padded(rendered, lengths)).sum()) * k

    arms, runs_per_arm, skipped = [], {}, []
    for arm in e.arms:
        if not arm.stages:
            runs_per_arm[arm.name] = 1  # the base model: scored, not trained
            continue
        n_runs = len(arm.get("seeds") or e.seeds)
        rc = cells.run_config(config, arm, int((arm.get("seeds") or e.seeds)[0]))
        rows = []
        try:
            for st in train_data.build_stages(rc):
                for comp in st.components:
                    rows += pipeline.render_examples(tokenizer, comp.examples, max_len)[0]
            select = [r for _, ex in cells.selection(config, arm)
                      for r in pipeline.render_examples(tokenizer, ex, max_len)[0]]
        except (KeyError, ValueError) as err:  # e.g. a task file an earlier pipeline step writes (C8)
            skipped.append(f"arm {arm.name} ({str(err).split(';')[0].strip(chr(34))})")
            continue
        runs_per_arm[arm.name] = n_runs
        steps = int(rc.optim.total_steps)
        rows_per_step = int(rc.data.batch_size) * int(rc.optim.grad_accum)
        step_s = float(_per_row(costs["step_row_s"], _padded(rows, lengths)).mean()) * rows_per_step
        every = int(rc.eval.every)
        n_evals = (steps // every if every > 0 else 0) + (0 if every > 0 and steps % every == 0 else 1)
        n_evals += bool(rc.eval.get("at_start"))
        a = {"name": arm.name, "runs": n_runs, "steps": steps, "rows": steps * rows_per_step,
             "distinct_rows": len({_row_key(r) for r in rows}),
             "feature_min": (feature_seconds(rows) + feature_seconds(select)) / 60,
             "train_min": n_runs * steps * step_s / 60, "select_min": n_runs * n_evals * upper_seconds(select) / 60}
        a["total_min"] = a["feature_min"] + a["train_min"] + a["select_min"]
        arms.append(a)
    cells_min, cell_features, generation = 0.0, 0.0, 0.0
    for cell in e.cells:
        rendered = pipeline.render_examples(tokenizer, cells.cell_examples(config, cell), max_len)[0]
        n_models = sum(runs_per_arm.get(a, 0) for a in (cell.get("arms") or [x.name for x in e.arms]))
        view = views.view_of(cell)
        if view == "plain" or view == "summary":  # a summary cell's judge also reads the full inputs once
            cell_features += feature_seconds(rendered) / 60
            cells_min += (n_models if view == "plain" else 1) * upper_seconds(rendered) / 60
        if view != "plain":
            generation += n_models * generation_seconds(costs, rendered, view, int(cell.budget), lengths) / 60
    total = sum(a["total_min"] for a in arms) + cell_features + cells_min + generation
    if config.get("elicit"):
        skipped.append("the elicitation step (with-thinking pseudo-labels) before the runner")
    return {"arms": arms, "cell_features_min": cell_features, "cells_min": cells_min, "generation_min": generation,
            "skipped": skipped,
            "total_min": total, "over": total > LIMIT_MINUTES, "cached_rows": counts["cached"],
            "distinct_rows": counts["distinct"]}


def report(config: Any, costs: dict[str, Any], est: dict[str, Any], warm: dict[str, Any] | None = None) -> str:
    """The estimate as text: per arm, the cells and the total (cold), flagged when over `LIMIT_MINUTES`; with
    `warm` (an estimate given the store's rows) its total too."""
    a0, b0 = costs["layer_row_s"]
    t = costs["lengths"][-1]
    lines = [f"cost estimate of {config.experiment.name or 'the experiment'} (cold feature cache) on "
             f"{costs['machine']}; {costs['model']}, top {costs['top_k']} of {costs['n_layers']} layers, "
             f"measured {costs['measured']}:",
             f"  one layer's forward {1e3 * (a0 * t + b0 * t * t) / t:.3f} ms/token at T={t}; a cached train "
             f"step {1e3 * _per_row(costs['step_row_s'], np.float64(t)) / t:.3f} ms/token",
             f"  {'arm':<16} {'runs':>4} {'steps':>6} {'row-visits':>10} {'distinct':>8} {'features':>9} "
             f"{'train':>8} {'select':>8} {'total':>8}"]
    for a in est["arms"]:
        lines.append(f"  {a['name']:<16} {a['runs']:>4} {a['steps']:>6} {a['rows']:>10} {a['distinct_rows']:>8} "
                     f"{a['feature_min']:>8.1f}m {a['train_min']:>7.1f}m {a['select_min']:>7.1f}m "
                     f"{a['total_min']:>7.1f}m")
    lines.append(f"  cells: features {est['cell_features_min']:.1f}m, scoring {est['cells_min']:.1f}m"
                 + (f", generation {est['generation_min']:.1f}m" if est.get("generation_min") else ""))
    for s in est["skipped"]:
        lines.append(f"  not estimated: {s}")
    flag = f"  OVER {LIMIT_MINUTES:.0f} MIN" if est["over"] else ""
    lines.append(f"  total: {est['total_min']:.1f} min (experiment.budget_minutes="
                 f"{float(config.experiment.budget_minutes):.0f}){flag}")
    if warm is not None:
        lines.append(f"  with the feature store as it is ({warm['cached_rows']} of {warm['distinct_rows']} rows "
                     f"cached, base stack rows counted at their remaining layers): {warm['total_min']:.1f} min")
    return "\n".join(lines)


def dry_run(config: Any, *, model: Any = None) -> str:
    """`monitor-jax experiment --dry_run`: the config checked, measured and estimated; nothing trains."""
    from monitor_jax.experiment import runner

    model = model or registry.load(config.model.name)
    train_data.register_task_files(config, model.tokenizer)
    try:
        runner.validate(config)
    except KeyError as err:  # a task an earlier step of the claim's pipeline writes: its arms are listed below
        if "unknown task" not in str(err):
            raise
    costs = measure(config, model)
    warm = estimate(config, costs, model.tokenizer, stored_layers(config, model))
    return "\n".join([report(config, costs, estimate(config, costs, model.tokenizer), warm), *detectable(config)])


def detectable(config: Any) -> list[str]:
    """Each plain cell's sizes and minimum detectable AUROC difference (`power.mde`), stated before the run."""
    sizes = []
    for cell in config.experiment.cells:
        if views.view_of(cell) == "plain":
            labels = np.asarray([ex.label for ex in cells.cell_examples(config, cell)])
            sizes.append((cells.cell_key(cell), int(labels.sum()), int((labels == 0).sum())))
    e = config.experiment
    return power.describe(sizes, str(e.split), len(e.seeds))


def _prefill_width(r: Any) -> np.ndarray:
    """The width `FeatureCache.prefill` pads a row's lower-stack pass to: its needed length rounded up to a multiple
    of `features.PREFILL_STEP` (the runner prefills every training, selection and cell row that way)."""
    n = needed_length(len(r), r.answer_index, r.is_classification, r.loss_mask)
    return np.asarray([features.prefill_width(n)], np.float64)


def _row_key(r: Any) -> bytes:
    """The feature store's key of a rendered row (`feature_store.needed_length`: a label token is not part of it)."""
    return row_key(r.tokens, needed_length(len(r), r.answer_index, r.is_classification, r.loss_mask))


def generation_seconds(costs: dict[str, Any], rendered: list, view: str, budget: int,
                       lengths: tuple[int, ...]) -> float:
    """One model's seconds on a generated view of these rows: the full model's prefill of every prompt (twice for
    thinking: the prompt, then the conversation with its reasoning, scored at the answer slot) and `budget` decode
    steps per batch (none for the empty-reasoning control; summaries decode `budget` too)."""
    prefill = float(_per_row(costs["layer_row_s"], _padded(rendered, lengths)).sum()) * int(costs["n_layers"])
    batches = -(-len(rendered) // int(costs["batch_size"]))
    steps = 0 if view == "thinking_control" else budget
    return prefill * (2 if view == "thinking" else 1) + batches * steps * float(costs.get("decode_step_s", 0.0))

