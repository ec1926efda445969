"""Memory plan of full fine-tuning an 8B model (dims only: no weights needed), bytes per device on two meshes:

    monitor-jax plan --config=configs/plan_8b.py --mesh_shapes=fsdp=8 --mesh_shapes=data=2,fsdp=16

`arg` names the model (default llama3-8b; see `registry.DIMS_ONLY`: llama3-70b, qwen2.5-7b, qwen2.5-72b,
qwen3-8b), e.g. `--config=configs/plan_8b.py:llama3-70b`, or override `--config.model.name=...`. The numbers
describe a bf16-compute, dots-remat run of 32 rows x 1024 tokens per micro-batch with fp32 params and AdamW.
"""
from __future__ import annotations

from monitor_jax.core import config as base


def get_config(arg: str | None = None):
    c = base.get_config()
    c.model.name = arg or "llama3-8b"
    c.model.dtype = "bfloat16"
    c.model.remat = "dots"
    c.mesh.shape.data = 1
    c.mesh.shape.fsdp = 8
    c.train.mode = "full"
    c.data.batch_size = 32
    c.data.max_len = 1024
    return base.lock(c)
