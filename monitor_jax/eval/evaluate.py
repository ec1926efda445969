"""Score checkpoints on evaluation tasks: paired per-example scores and their metrics (`evaluate_models`).

Protocol (DESIGN.md §5): every model scores every (task, prompt) on the SAME examples (same ids, from
`tasks.examples(..., limit=, seed=)`), so differences are paired and bootstrapped jointly; the first model is the
reference. The test split is only read when asked for explicitly (`split="test"`), which is logged and recorded;
operating thresholds are then chosen on the validation split (same limit and seed) and applied on test.

Decisions (DESIGN.md is silent on them):
- Examples are drawn per (task, prompt): an inverted or different-question prompt relabels the items, and the
  stratified `limit` then keeps a different subset. Within one (task, prompt) every model sees the same items.
- Length buckets are the quartiles of the *reference* model's prompt length in tokens, assigned per item id, so
  every model is measured on the same items in each bucket (tokenizers may differ between models).
- Bootstraps use `seed` for every model: identical labels get identical resamples.
- A model name given twice is loaded once and scored twice (scoring is deterministic; a same-model pair gives
  a difference of exactly 0).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import pathlib
import re
import shlex
import sys
from typing import Any, Sequence

import numpy as np

from monitor_jax.core import assets
from monitor_jax.data import pipeline, tasks as tasks_lib
from monitor_jax.eval import metrics, scoring
from monitor_jax.model import registry

log = logging.getLogger(__name__)

TARGET_FPR = 0.01  # the operating point: thresholds are chosen at 1 % FPR on validation
SCORE_FIELDS = ("id", "label", "score", "logp_pos", "logp_neg", "mass_outside", "n_tokens", "truncated")
N_LENGTH_BUCKETS = 4  # quartiles


@dataclasses.dataclass
class Cell:
    """One (model, task, prompt) on one split: per-example arrays (keys `SCORE_FIELDS`, aligned) and metrics.

    `threshold` (test split only) holds the operating threshold chosen on validation and `val` the validation
    arrays it was chosen from."""

    model: int  # index into EvalResults.models (0 = the reference)
    task: str
    prompt: str
    split: str
    arrays: dict[str, np.ndarray]
    summary: dict
    threshold: dict | None = None
    val: dict[str, np.ndarray] | None = None

    @property
    def n_truncated(self) -> int:
        return int(np.sum(self.arrays["truncated"]))

    @property
    def mean_mass_outside(self) -> float:
        return float(np.mean(self.arrays["mass_outside"])) if len(self.arrays["id"]) else float("nan")


@dataclasses.dataclass
class EvalResults:
    """Everything `evaluate_models` measured; `report.write_report` turns it into files."""

    models: list[dict]  # per model: index, name, tag, kind, provenance (hashes / sizes), config, render stats
    tasks: list[dict]  # per task: name, version, domain, description, label words, prompts (name, template, ...)
    split: str
    config: dict  # limit_per_task, batch_size, max_len, seed, n_boot, thresholds_from, target_fpr, prompts
    cells: list[Cell]
    paired: list[dict]  # AUROC(model) - AUROC(reference) per (model, task, prompt), paired bootstrap CI
    length_buckets: list[dict]  # AUROC per model per reference-length quartile, per (task, prompt)
    warnings: list[str]
    command: str
    timestamp: str

    def cell(self, model: int, task: str, prompt: str) -> Cell:
        """The cell of model index `model` on (task, prompt)."""
        for c in self.cells:
            if (c.model, c.task, c.prompt) == (model, task, prompt):
                return c
        raise KeyError(f"no result for model {model} on {task!r} / {prompt!r}")

    def pairs(self) -> list[tuple[str, str]]:
        """The (task, prompt) pairs evaluated, in order."""
        return list(dict.fromkeys((c.task, c.prompt) for c in self.cells))


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-") or "model"


def describe_model(name: str) -> dict:
    """Provenance of a model name: kind and path; for `hf:` dirs the sha256 of config.json (and tokenizer.json)
    and the weight files' sizes; for `gguf:` files the size (hashing a 70B file is too slow to do by default)."""
    if name.startswith("hf:"):
        d = pathlib.Path(name[3:]).expanduser()
        info: dict = {"kind": "hf", "path": str(d.resolve())}
        if (d / "config.json").exists():
            info["config_sha256"] = assets.sha256_file(d / "config.json")
        if (d / "tokenizer.json").exists():
            info["tokenizer_sha256"] = assets.sha256_file(d / "tokenizer.json")
        info["weight_files"] = {p.name: p.stat().st_size for p in sorted(d.iterdir())
                                if p.suffix in (".safetensors", ".bin") or p.name.endswith(".index.json")}
        return info
    if name.startswith("gguf:"):
        p = pathlib.Path(name[5:]).expanduser()
        return {"kind": "gguf", "path": str(p.resolve()), "size": p.stat().st_size if p.exists() else None}
    if name == "smollm2-135m":
        a = assets.ASSETS[registry.SMOLLM2_ASSET[0]]
        return {"kind": "asset", "asset": a.name, "package": f"{a.package}=={a.version}", "wheel_sha256": a.sha256,
                "file": registry.SMOLLM2_ASSET[1]}
    if name.startswith("tiny-random-"):
        return {"kind": "tiny-random", "init_seed": 0}
    return {"kind": "unknown"}


def _config_dict(cfg: Any) -> dict:
    return {f.name: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v))
            for f in dataclasses.fields(cfg) for v in [getattr(cfg, f.name)]}


def _task_info(task: tasks_lib.Task, prompts: Sequence[str]) -> dict:
    return {
        "name": task.name, "version": task.version, "domain": task.domain, "question": task.question,
        "description": task.description, "label_words": list(task.label_words),
        "prompts": [{"name": p.name, "template": p.template, "relation": p.relation, "question": p.question,
                     "system": p.system} for p in task.prompts if p.name in prompts],
    }


def _arrays(res: scoring.ScoreResult, sl: slice) -> dict[str, np.ndarray]:
    src = {"id": res.ids, "label": res.label, "score": res.score, "logp_pos": res.logp_pos,
           "logp_neg": res.logp_neg, "mass_outside": res.mass_outside, "n_tokens": res.n_tokens,
           "truncated": res.truncated}
    return {k: np.asarray(src[k][sl]) for k in SCORE_FIELDS}


def _threshold(val: dict[str, np.ndarray], fpr: float, from_split: str) -> dict:
    """The operating threshold at `fpr` on the validation arrays, with its validation rates."""
    y = val["label"].astype(bool)
    out: dict = {"target_fpr": fpr, "chosen_on": from_split, "val_n_pos": int(y.sum()), "val_n_neg": int((~y).sum()),
                 "reliable": int((~y).sum()) >= metrics.min_negatives(fpr)}
    if not (~y).any():
        return {**out, "value": None, "note": "no validation negatives: no threshold"}
    t = metrics.threshold_at_fpr(val["score"], y, fpr)
    val_tpr, val_fpr = metrics.rates_at_threshold(val["score"], y, t)
    return {**out, "value": t, "val_tpr": val_tpr, "val_fpr": val_fpr}


def _ci_dict(ci: metrics.CI) -> dict:
    return {k: (float(v) if np.isfinite(v) else None) for k, v in ci._asdict().items()}


def _paired(cells: list[Cell], n_boot: int, seed: int) -> list[dict]:
    """AUROC difference (model - reference) with a paired bootstrap CI, per non-reference cell."""
    ref = {(c.task, c.prompt): c for c in cells if c.model == 0}
    out = []
    for c in cells:
        if c.model == 0:
            continue
        r = ref[(c.task, c.prompt)]
        y = r.arrays["label"]
        s = metrics.align(r.arrays["id"].tolist(), c.arrays["id"].tolist(), c.arrays["score"])
        row = {"task": c.task, "prompt": c.prompt, "reference": 0, "model": c.model, "metric": "auroc",
               "n_pos": int(y.sum()), "n_neg": int(len(y) - y.sum())}
        if 0 < y.sum() < len(y):
            row.update(_ci_dict(metrics.paired_difference(metrics.auroc, r.arrays["score"], s, y, n=n_boot, seed=seed)))
        else:
            row.update(estimate=None, low=None, high=None)
        out.append(row)
    return out


def _length_buckets(cells: list[Cell], n_models: int, n_boot: int, seed: int) -> list[dict]:
    """AUROC (with CI) per reference-token-length quartile, per (task, prompt): same items for every model."""
    out = []
    for ref in (c for c in cells if c.model == 0):
        ids, y, n_tok = ref.arrays["id"].tolist(), ref.arrays["label"], ref.arrays["n_tokens"]
        if not len(ids):
            continue
        edges = np.unique(np.quantile(n_tok, np.linspace(0, 1, N_LENGTH_BUCKETS + 1)[1:-1]))
        which = np.searchsorted(edges, n_tok, side="right")
        same = {c.model: c for c in cells if (c.task, c.prompt) == (ref.task, ref.prompt)}
        scores = [metrics.align(ids, same[m].arrays["id"].tolist(), same[m].arrays["score"]) for m in range(n_models)]
        for b in range(len(edges) + 1):
            sel = which == b
            if not sel.any():
                continue
            yb = y[sel]
            both = 0 < yb.sum() < len(yb)
            out.append({
                "task": ref.task, "prompt": ref.prompt, "bucket": b, "tokens_min": int(n_tok[sel].min()),
                "tokens_max": int(n_tok[sel].max()), "n_pos": int(yb.sum()), "n_neg": int(len(yb) - yb.sum()),
                "auroc": [_ci_dict(metrics.bootstrap_ci(metrics.auroc, s[sel], yb, n=n_boot, seed=seed)) if both
                          else {"estimate": None, "low": None, "high": None} for s in scores],
            })
    return out


def _resolve_prompts(task: tasks_lib.Task, prompts: Sequence[str] | str) -> list[str]:
    if prompts == "all":
        return [p.name for p in task.prompts]
    names = [prompts] if isinstance(prompts, str) else list(prompts)
    for n in names:
        task.prompt(n)  # KeyError naming the task's prompts
    return names


def evaluate_models(
    models: Sequence[str | registry.LoadedModel],
    tasks: Sequence[str] | None = None,
    *,
    prompts: Sequence[str] | str = ("primary",),
    split: str = "validation",
    limit_per_task: int | None = None,
    batch_size: int = 8,
    max_len: int = 1024,
    seed: int = 0,
    n_boot: int = 1000,
    thresholds_from: str | None = "validation",
    buckets: Sequence[int] = pipeline.DEFAULT_BUCKETS,
    mesh: Any = None,
    progress: bool = True,
    command: str | None = None,
) -> EvalResults:
    """Scores every model on every (task, prompt) of `split` on the same examples; the first model is the
    reference for paired differences. `models` are registry names (`hf:DIR`, `gguf:FILE`, `smollm2-135m`,
    `tiny-random-llama`) or already loaded models; `tasks=None` means the whole registry; `prompts="all"` every
    prompt of each task. With `split="test"` and `thresholds_from="validation"`, each model also scores the
    validation examples, picks the threshold at 1 % FPR there and applies it on test."""
    if not models:
        raise ValueError("evaluate_models: give at least one model (the first is the reference)")
    if split not in ("train", "validation", "test"):
        raise ValueError(f"evaluate_models: split must be train, validation or test, got {split!r}")
    if thresholds_from not in (None, "validation"):
        raise ValueError(f"thresholds_from must be 'validation' or None (DESIGN.md §5), got {thresholds_from!r}")
    task_objs = [tasks_lib.get(t) for t in (list(tasks_lib.TASKS) if tasks is None else tasks)]
    if not task_objs:
        raise ValueError("evaluate_models: no tasks")
    plan = [(t, p) for t in task_objs for p in _resolve_prompts(t, prompts)]
    warnings: list[str] = []
    if split == "test":
        msg = (f"reading the TEST split of {len(task_objs)} task(s) ({', '.join(t.name for t in task_objs)}): "
               "test is read once, for the reported numbers; choose steps, checkpoints and thresholds on validation")
        log.warning(msg)
        warnings.append(msg)
    with_val = split == "test" and thresholds_from == "validation"
    # The examples, fixed before any model runs: every model scores exactly these.
    examples = {(t.name, p): tasks_lib.examples(t, split, p, limit=limit_per_task, seed=seed) for t, p in plan}
    val_examples = ({(t.name, p): tasks_lib.examples(t, thresholds_from, p, limit=limit_per_task, seed=seed)
                     for t, p in plan} if with_val else {})
    flat = [ex for exs in examples.values() for ex in exs] + [ex for exs in val_examples.values() for ex in exs]

    cells: list[Cell] = []
    infos: list[dict] = []
    cache: dict[str, registry.LoadedModel] = {}
    names = [m if isinstance(m, str) else m.name for m in models]
    for i, m in enumerate(models):
        name = names[i]
        if isinstance(m, str):
            model = cache.get(m) or registry.load(m)
            if m in names[i + 1:]:
                cache[m] = model
            info = describe_model(m)
        else:
            model, info = m, {"kind": "in-memory"}
        base = _slug(pathlib.PurePath(name[name.find(":") + 1:]).name if ":" in name else name)
        tag = f"m{i}-{base}"
        log.info("scoring model %d/%d %s on %d examples", i + 1, len(models), name, len(flat))
        res = scoring.score_examples(model.cfg, model.params, model.tokenizer, flat, batch_size=batch_size,
                                     max_len=max_len, buckets=buckets, mesh=mesh, progress=progress)
        if res.ids.tolist() != [ex.id for ex in flat]:
            raise RuntimeError("score_examples returned results out of input order")
        infos.append({"index": i, "name": name, "tag": tag, "reference": i == 0, **info,
                      "config": _config_dict(model.cfg), "render_stats": res.stats.as_dict()})
        start, val_start = 0, sum(len(v) for v in examples.values())
        for (task, prompt), exs in examples.items():
            arrays = _arrays(res, slice(start, start + len(exs)))
            start += len(exs)
            threshold = val = None
            if with_val:
                n_val = len(val_examples[(task, prompt)])
                val = _arrays(res, slice(val_start, val_start + n_val))
                val_start += n_val
                threshold = _threshold(val, TARGET_FPR, thresholds_from)
            summ = metrics.summary(arrays["score"], arrays["label"], n_boot=n_boot, seed=seed,
                                   val_threshold=threshold["value"] if threshold else None)
            cells.append(Cell(i, task, prompt, split, arrays, summ, threshold, val))
        high = [c for c in cells if c.model == i and c.mean_mass_outside > scoring.MASS_WARNING]
        if high:
            worst = max(c.mean_mass_outside for c in high)
            warnings.append(f"{tag}: mean probability mass outside the label words is above {scoring.MASS_WARNING} on "
                            f"{len(high)}/{len(examples)} (task, prompt) pairs (max {worst:.2f}): the model mostly "
                            "wants to answer something else there; check label words and prompts")
        del model, res
    cfg = {"models": names, "tasks": [t.name for t in task_objs], "prompts": prompts if isinstance(prompts, str)
           else list(prompts), "split": split, "limit_per_task": limit_per_task, "batch_size": batch_size,
           "max_len": max_len, "seed": seed, "n_boot": n_boot, "thresholds_from": thresholds_from if with_val else None,
           "target_fpr": TARGET_FPR, "buckets": [int(b) for b in pipeline.bucket_lengths(buckets, max_len)]}
    return EvalResults(
        models=infos,
        tasks=[_task_info(t, [p for tt, p in plan if tt is t]) for t in task_objs],
        split=split,
        config=cfg,
        cells=cells,
        paired=_paired(cells, n_boot, seed),
        length_buckets=_length_buckets(cells, len(models), n_boot, seed),
        warnings=warnings,
        command=command if command is not None else " ".join(shlex.quote(a) for a in sys.argv),
        timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
