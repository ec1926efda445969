"""`monitor-jax generate --input=prompts.jsonl`: continue every prompt of a JSONL file, write one line per row.

Rows are `{"id"?: str, "prompt": str | [chat messages]}` (a string is one user message, rendered with the chat
template). A bad row fails with one line naming file:line before anything is generated; the output is written
atomically.
"""

from __future__ import annotations

from typing import Any

from monitor_jax.core import distributed, io
from monitor_jax.data.builders import jsonl
from monitor_jax.eval import generate
from monitor_jax.model.registry import LoadedModel


def _prompt(where: str, row: Any) -> str | list[dict]:
    if not isinstance(row, dict) or "prompt" not in row:
        raise jsonl.TaskFileError(f"{where}: expected an object with a \"prompt\" field")
    p = row["prompt"]
    if isinstance(p, str) and p:
        return p
    if isinstance(p, list) and p and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in p):
        return p
    raise jsonl.TaskFileError(f"{where}: \"prompt\" must be a non-empty string or a list of "
                              f"{{\"role\", \"content\"}} messages")


def generate_file(model: LoadedModel, input_path: str, output_path: str, sampling: generate.Sampling, *,
                  system: str | None = None, batch_size: int = 8) -> int:
    """Generates for every row; writes `output_path` (JSONL: id, text, finish, new_tokens). Returns the row count."""
    rows = list(jsonl.jsonl_rows(input_path))
    if not rows:
        raise jsonl.TaskFileError(f"{input_path}: no rows")
    prompts = [_prompt(where, row) for where, row in rows]
    ids = [str(row.get("id", i)) for i, (_, row) in enumerate(rows)]
    gens = generate.generate_text(model.cfg, model.params, model.tokenizer, prompts, sampling, system=system,
                                  batch_size=batch_size)
    if not distributed.is_main():  # multi-process: every process generated the same rows; process 0 writes
        return len(gens)
    io.write_jsonl(output_path, [{"id": i, "text": g.text, "finish": g.finish, "new_tokens": int(len(g.tokens))}
                                 for i, g in zip(ids, gens)])
    return len(gens)
