"""`monitor-jax summarize`: each model summarizes each task's inputs, a fixed judge scores them; JSON + markdown."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from monitor_jax.core import distributed
from monitor_jax.core import io
from monitor_jax.eval.protocols import summarize


def summarize_tasks(
    models: Mapping[str, Any],
    judge: Any,
    judge_name: str,
    task_names: Sequence[str],
    out_dir: str,
    *,
    split: str = "validation",
    command: str = "",
    log: Any = print,
    **kwargs: Any,
) -> dict[str, dict]:
    """`summarize.evaluate_summaries` per task (`kwargs` go to it); writes `<task>.json` and `<task>.md` under
    `out_dir` (process 0 only) and returns the results per task."""
    os.makedirs(out_dir, exist_ok=True)
    results = {}
    for task in task_names:
        res = summarize.evaluate_summaries(models, judge, task, split, **kwargs)
        res["command"], res["judge"] = command, judge_name
        table = summarize.format_table(res)
        log(table)
        results[task] = res
        if not distributed.is_main():  # multi-process: every process computes the same; process 0 writes
            continue
        stem = os.path.join(out_dir, task.replace("/", "__"))
        io.write_json(stem + ".json", res, indent=1)
        io.write_text(stem + ".md", f"# Summaries judged by detection: {task} ({split})\n\nCommand: `{command}`\n\n"
                      + table + "\n")
    return results
