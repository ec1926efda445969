"""`monitor-jax think`: with-thinking scores and reasoning per example of each task, written as JSONL, with AUROC."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from monitor_jax.core import distributed
from monitor_jax.core import io
from monitor_jax.data import tasks
from monitor_jax.eval import metrics
from monitor_jax.eval.protocols import thinking
from monitor_jax.model.registry import LoadedModel


def think_tasks(
    model: LoadedModel,
    task_names: Sequence[str],
    out_dir: str,
    protocol: thinking.Protocol,
    *,
    split: str = "validation",
    limit_per_task: int = 200,
    seed: int = 0,
    control: bool = False,
    batch_size: int = 8,
    max_len: int = 1024,
    command: str = "",
    log: Any = print,
) -> dict[str, dict]:
    """Scores each task with thinking (or the empty-reasoning `control`); writes `<task>.jsonl` per task and
    `summary.json` under `out_dir` (process 0 only); returns the summary per task."""
    os.makedirs(out_dir, exist_ok=True)
    summary = {}
    for name in task_names:
        exs = tasks.examples(name, split, limit=limit_per_task, seed=seed)
        res = thinking.score_with_thinking(model.cfg, model.params, model.tokenizer, exs, protocol, control=control,
                                           batch_size=batch_size, max_len=max_len)
        path = os.path.join(out_dir, name.replace("/", "__") + (".control" if control else "") + ".jsonl")
        if distributed.is_main():  # multi-process: every process computes the same; process 0 writes
            io.write_jsonl(path, res.rows())
        ci = metrics.bootstrap_ci(metrics.auroc, res.score, res.label)
        summary[name] = {"n": len(exs), "auroc": ci.estimate, "auroc_ci": [ci.low, ci.high],
                         "mean_reasoning_tokens": float(np.mean(res.reasoning_tokens)), "budget": protocol.budget,
                         "hit_budget": float(np.mean([f == "length" for f in res.finish])),
                         "mean_mass_outside": float(np.mean(res.mass_outside)), "scores": path}
        log(f"{name}: AUROC {metrics.fmt_ci(ci)}  mean reasoning {summary[name]['mean_reasoning_tokens']:.0f}/"
            f"{protocol.budget} tokens  mass outside {summary[name]['mean_mass_outside']:.3f}  -> {path}")
    if distributed.is_main():
        io.write_json(os.path.join(out_dir, "summary.json"), {"command": command, "control": control,
                                                              "tasks": summary}, indent=2)
    return summary
