"""`monitor-jax score --input=rows.jsonl`: score a user's JSONL file under one prompt, write one score per row.

Rows are `{"id"?: str, "input": str | [chat messages], "label"?: 0|1|yes|no|...}` (the task-file row format).
Bad rows fail with one line naming file:line before anything is scored; the output is written atomically; when
every row has a label, the metrics (AUROC with CI, TPR at low FPR, mass outside the label words) are returned.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor_jax.core import distributed, io
from monitor_jax.data.builders import jsonl
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


def score_file(
    model: LoadedModel,
    input_path: str,
    output_path: str,
    prompt: str,
    *,
    label_words: tuple[str, str] = ("Yes", "No"),
    system: str | None = None,
    batch_size: int = 8,
    max_len: int = 2048,
    n_boot: int = 1000,
    mesh: Any = None,
) -> dict[str, Any]:
    """Scores every row; writes `output_path` (JSONL: id, score, logp_pos, logp_neg, mass_outside, label?).
    `mesh`: split the rows over its data axes (multi-process: every process's devices; process 0 writes)."""
    items, labelled = read_rows(input_path)
    res = scoring.score_texts(model, prompt, [it.text for it in items], label_words=tuple(label_words), system=system,
                              ids=[it.id for it in items], labels=[int(it.meta.get("label", 0)) for it in items],
                              batch_size=batch_size, max_len=max_len, mesh=mesh, progress=distributed.is_main())
    if distributed.is_main():  # multi-process: every process holds every score; process 0 writes them
        rows = []
        for i, it in enumerate(items):
            row = {"id": it.id.split(":", 1)[1], "score": float(res.score[i]), "logp_pos": float(res.logp_pos[i]),
                   "logp_neg": float(res.logp_neg[i]), "mass_outside": float(res.mass_outside[i]),
                   "truncated": bool(res.truncated[i])}
            rows.append({**row, "label": int(it.meta["label"])} if labelled else row)
        io.write_jsonl(output_path, rows)
    summary: dict[str, Any] = {"n": len(items), "mean_mass_outside": float(np.mean(res.mass_outside)),
                               "n_truncated": int(np.sum(res.truncated))}
    if labelled:
        summary.update(metrics.summary(np.asarray(res.score), np.asarray(res.label), n_boot=n_boot))
    return summary


def format_summary(s: dict[str, Any]) -> str:
    """Human-readable lines for the terminal."""
    lines = [f"rows: {s['n']}   truncated: {s['n_truncated']}   mean mass outside the label words: "
             f"{s['mean_mass_outside']:.3f}"]
    if "auroc" in s:
        a = s["auroc"]
        ci = metrics.CI(a["estimate"], a["low"], a["high"])
        lines.append(f"AUROC {metrics.fmt_ci(ci)}   (positives {s['n_pos']}, negatives {s['n_neg']})")
        lines.append(f"TPR at 1% FPR: {metrics.fmt_value(s['tpr_at_fpr_1pct'])}   "
                     f"TPR at 0.1% FPR: {metrics.fmt_value(s['tpr_at_fpr_0.1pct'])}   ECE: {metrics.fmt_value(s['ece'])}")
    return "\n".join(lines)
