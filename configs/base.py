"""Base training config: every key `monitor-jax train` reads, documented in `monitor_jax/core/config.py`.

    monitor-jax train --config=configs/base.py --workdir=/tmp/run [--config.optim.lr=3e-5 ...]

The other configs import `monitor_jax.core.config` (which this file re-exports) for `get_config()`,
`task_component`, `instruction_component`, `stage` and `lock`, and load a sibling config (`configs/` is not a
package) with its `load_module`.
"""
from monitor_jax.core.config import get_config, instruction_component, lock, stage, task_component

__all__ = ["get_config", "instruction_component", "lock", "stage", "task_component"]
