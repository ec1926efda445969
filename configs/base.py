"""Base training config: every key `monitor-jax train` reads, documented in `monitor_jax/core/config.py`.

    monitor-jax train --config=configs/base.py --workdir=/tmp/run [--config.optim.lr=3e-5 ...]

Other configs load this file by path (`configs/` is not a package) and use `get_config()`, `task_component`,
`instruction_component`, `stage` and `lock` from it.
"""
from monitor_jax.core.config import get_config, instruction_component, lock, stage, task_component

__all__ = ["get_config", "instruction_component", "lock", "stage", "task_component"]
