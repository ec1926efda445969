"""Training budgets in row-visits: `optim.total_rows` -> `optim.total_steps`, `eval.every_rows` -> `eval.every`."""
from __future__ import annotations

import copy
from typing import Any


def rows_per_step(config: Any) -> int:
    """Rows one optimizer step visits: `data.batch_size` x `optim.grad_accum` (all hosts)."""
    return int(config.data.batch_size) * max(1, int(config.optim.grad_accum))


def steps_for(config: Any, rows: int, key: str) -> int:
    """ceil(rows / rows per step), at least 1; `key` names the config key in errors."""
    if int(rows) < 1:
        raise ValueError(f"config.{key} must be >= 1 row-visit, got {rows}")
    return max(1, -(-int(rows) // rows_per_step(config)))


def resolve(config: Any) -> Any:
    """`config` with `optim.total_steps` / `eval.every` set from `optim.total_rows` / `eval.every_rows` where those
    are set (a copy; the same object when neither is)."""
    total, every = config.optim.get("total_rows"), config.eval.get("every_rows")
    if total is None and every is None:
        return config
    c = copy.deepcopy(config)
    with c.unlocked():
        if total is not None:
            c.optim.total_steps = steps_for(c, total, "optim.total_rows")
        if every is not None:
            c.eval.every = steps_for(c, every, "eval.every_rows")
    return c
