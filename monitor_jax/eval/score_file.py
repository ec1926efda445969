"""`monitor-jax score --input=rows.jsonl | --inspect_log=RUN.eval`: score a file's items under one prompt, write one
score per item.

Rows are `{"id"?: str, "input": str | [chat messages], "label"?: 0|1|yes|no|...}` (the task-file row format); an
Inspect log gives one item per sample and epoch (`data.inspect_log`). Bad input fails with one line naming
file:line (or the log and sample) before anything is scored; the output is written atomically; where items carry
labels, the metrics (AUROC with CI, TPR at low FPR) are returned, and always the mass outside the label words and
how many inputs were cut to fit `max_len`.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from monitor_jax.core import distributed, io
from monitor_jax.data import inspect_log
from monitor_jax.data.builders import jsonl
from monitor_jax.data.items import Item
from monitor_jax.eval import metrics, scoring
from monitor_jax.model.registry import LoadedModel


def read_rows(path: str) -> tuple[list, bool]:
    """Checked items of the file and whether they carry labels (all rows or none)."""
    rows = list(jsonl.jsonl_rows(path))
    if not rows:
        raise jsonl.TaskFileError(f"{path}: no rows")
    labelled = isinstance(rows[0][1], dict) and "label" in rows[0][1]
    fields = {"label": "label"} if labelled else {}
    items = jsonl.parse_rows({"all": rows}, source="input", label_fields=fields)["all"]
    return items, labelled


def file_items(input_path: str) -> tuple[list[Item], list[int | None], Callable[[Item], dict]]:
    """(items, labels, output key) of a rows file, checked (read before any model is loaded)."""
    items, labelled = read_rows(input_path)
    labels = [int(it.meta["label"]) if labelled else None for it in items]
    return items, labels, lambda it: {"id": it.id.split(":", 1)[1]}


def log_items(log_paths: Sequence[str | os.PathLike], label_key: str | None = None
              ) -> tuple[list[Item], list[int | None], Callable[[Item], dict]]:
    """(items, labels, output key) of Inspect logs: one item per sample and epoch, labels as
    `data.inspect_log.sample_label`."""
    items = inspect_log.read_samples(log_paths, label_key)
    return items, [it.meta.get("label") for it in items], lambda it: {k: it.meta[k] for k in ("log", "sample_id",
                                                                                             "epoch")}


def score_file(model: LoadedModel, input_path: str, output_path: str, prompt: str, **kwargs: Any) -> dict[str, Any]:
    """Scores every row; writes `output_path` (JSONL: id, score, logp_pos, logp_neg, mass_outside, truncated,
    label?). `kwargs`: as `score_items` (label_words, system, batch_size, max_len, n_boot, mesh)."""
    items, labels, key = file_items(input_path)
    return score_items(model, items, labels, output_path, prompt, key, **kwargs)


def score_inspect_logs(model: LoadedModel, log_paths: Sequence[str | os.PathLike], output_path: str, prompt: str, *,
                       label_key: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Scores every sample (and epoch) of the Inspect logs; writes `output_path` (JSONL: log, sample_id, epoch,
    score, logp_pos, logp_neg, mass_outside, truncated, label?)."""
    items, labels, key = log_items(log_paths, label_key)
    return score_items(model, items, labels, output_path, prompt, key, **kwargs)


def score_items(
    model: LoadedModel,
    items: Sequence[Item],
    labels: Sequence[int | None],
    output_path: str,
    prompt: str,
    key: Callable[[Item], dict],
    *,
    label_words: tuple[str, str] = ("Yes", "No"),
    system: str | None = None,
    batch_size: int = 8,
    max_len: int = 2048,
    n_boot: int = 1000,
    mesh: Any = None,
) -> dict[str, Any]:
    """Scores `items` through `scoring.score_texts`; writes one JSONL row per item: `key(item)`, the scores and its
    label (None: unknown, no label written). Returns the summary; metrics over the labelled items.
    `mesh`: split the rows over its data axes (multi-process: every process's devices; process 0 writes)."""
    res = scoring.score_texts(model, prompt, [it.text for it in items], label_words=tuple(label_words), system=system,
                              ids=[it.id for it in items], labels=[int(y or 0) for y in labels],
                              batch_size=batch_size, max_len=max_len, mesh=mesh, progress=distributed.is_main())
    if distributed.is_main():  # multi-process: every process holds every score; process 0 writes them
        rows = []
        for i, (it, y) in enumerate(zip(items, labels)):
            row = {**key(it), "score": float(res.score[i]), "logp_pos": float(res.logp_pos[i]),
                   "logp_neg": float(res.logp_neg[i]), "mass_outside": float(res.mass_outside[i]),
                   "truncated": bool(res.truncated[i])}
            rows.append(row if y is None else {**row, "label": int(y)})
        io.write_jsonl(output_path, rows)
    summary: dict[str, Any] = {"n": len(items), "mean_mass_outside": float(np.mean(res.mass_outside)),
                               "n_truncated": int(np.sum(res.truncated)), "max_len": max_len}
    known = np.asarray([y is not None for y in labels])
    if known.any():
        summary["n_labelled"] = int(known.sum())
        summary.update(metrics.summary(np.asarray(res.score)[known], np.asarray(res.label)[known], n_boot=n_boot))
    return summary


def truncation_note(n_truncated: int, n: int, max_len: int) -> str:
    """The line saying how many inputs lost their middle ("" when none did)."""
    if not n_truncated:
        return ""
    return (f"{n_truncated} of {n} inputs were longer than max_len={max_len} tokens with the prompt and lost their "
            "middle; a larger --max_len keeps more")


def format_summary(s: dict[str, Any]) -> str:
    """Human-readable lines for the terminal."""
    lines = [f"rows: {s['n']}   truncated: {s['n_truncated']}   mean mass outside the label words: "
             f"{s['mean_mass_outside']:.3f}"]
    if s["n_truncated"]:
        lines.append(truncation_note(s["n_truncated"], s["n"], s["max_len"]) + ' (their rows say "truncated": true)')
    if "auroc" in s:
        a = s["auroc"]
        ci = metrics.CI(a["estimate"], a["low"], a["high"])
        unlabelled = f", {s['n'] - s['n_labelled']} without a label" if s["n_labelled"] < s["n"] else ""
        lines.append(f"AUROC {metrics.fmt_ci(ci)}   (positives {s['n_pos']}, negatives {s['n_neg']}{unlabelled})")
        lines.append(f"TPR at 1% FPR: {metrics.fmt_value(s['tpr_at_fpr_1pct'])}   "
                     f"TPR at 0.1% FPR: {metrics.fmt_value(s['tpr_at_fpr_0.1pct'])}   ECE: {metrics.fmt_value(s['ece'])}")
    return "\n".join(lines)
