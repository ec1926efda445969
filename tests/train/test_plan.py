"""`monitor-jax plan` (train/plan.py): bytes per device of 8B/70B configs from abstract shapes — params equal the
hand count, activations behave like activations (remat order, linear in rows), nothing big is allocated, and the
CLI prints every mesh."""

import pathlib
import resource
import subprocess
import sys

import jax
import pytest

from monitor_jax.core import config as config_lib
from monitor_jax.model import registry
from monitor_jax.train import plan

ROOT = pathlib.Path(__file__).resolve().parents[2]
LLAMA3_8B_PARAMS = 8_030_261_248  # Meta-Llama-3-8B's published parameter count
LLAMA3_70B_PARAMS = 70_553_706_496


def _config(arg=None, **changes):
    """configs/plan_8b.py with `changes` {"model__remat": "full"} ("__" for ".")."""
    return config_lib.load("plan_8b", arg, {k.replace("__", "."): v for k, v in changes.items()})


def _live_bytes() -> int:
    return sum(x.nbytes for x in jax.live_arrays())


def test_plan_8b_on_two_meshes_matches_the_hand_count():
    config = _config()
    live, peak = _live_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    small = plan.plan(config, {"fsdp": 8})
    large = plan.plan(config, plan.parse_mesh_shape("data=2,fsdp=16"))
    assert small.n_params == large.n_params == LLAMA3_8B_PARAMS
    # fp32 params sharded over fsdp (replicated over data): every dim that fsdp splits divides
    assert small.params == LLAMA3_8B_PARAMS * 4 // 8
    assert large.params == LLAMA3_8B_PARAMS * 4 // 16
    for p in (small, large):
        assert 2 * p.params <= p.opt_state <= 2 * p.params + 64  # AdamW mu + nu (+ the replicated step counts)
        assert p.grads == p.params and p.total > p.params + p.opt_state + p.grads
    assert (small.rows_per_device, large.rows_per_device) == (4, 1)
    assert small.activations == pytest.approx(4 * large.activations, rel=1e-3)  # linear in rows per device
    # nothing of the 32 GB model was allocated: no new device arrays, peak RSS (KiB) grew by less than 1 GiB
    assert _live_bytes() - live < 1 << 20
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 1 << 20


def test_activation_estimate_follows_the_remat_policy():
    """remat=full saves about one [rows, T, D] bf16 layer input per layer; dots saves more; none the most."""
    cfg = registry.DIMS_ONLY["llama3-8b"]
    acts = {r: plan.activation_bytes(_config(model__remat=r), cfg, tensor=1, rows=1) for r in ("full", "dots", "none")}
    layer_inputs = cfg.n_layers * 1 * 1024 * cfg.d_model * 2
    assert layer_inputs <= acts["full"] < acts["dots"] < acts["none"]
    assert acts["full"] < 4 * layer_inputs  # + one layer's recomputed intermediates, not all of them
    # tensor parallelism splits the per-layer intermediates: less per device
    assert plan.activation_bytes(_config(), cfg, tensor=4, rows=1) < acts["dots"]


def test_plan_70b_and_lora_and_mesh_errors():
    p = plan.plan(_config("llama3-70b"), {"fsdp": 16, "tensor": 4})
    norms = (2 * 80 + 1) * 8192  # RMSNorm scales are split over fsdp only (tensor splits heads, mlp, vocab)
    assert p.n_params == LLAMA3_70B_PARAMS and p.params == (LLAMA3_70B_PARAMS - norms) * 4 // 64 + norms * 4 // 16
    lora = _config("llama3-70b", train__mode="lora", train__frozen_dtype="bfloat16")
    q = plan.plan(lora, {"fsdp": 16, "tensor": 4})
    assert q.params < p.params * 0.6 and q.opt_state < p.opt_state / 50  # bf16 frozen base; optimizer on LoRA only
    with pytest.raises(ValueError, match="axis=size"):
        plan.parse_mesh_shape("fsdp:8")
    with pytest.raises(ValueError, match="-1 axis"):
        plan.plan(_config(), {"data": -1})
    assert plan.abstract_mesh({"data": -1, "fsdp": 4}, n_devices=32).shape["data"] == 8
    with pytest.raises(ValueError, match="unknown mesh axes"):
        plan.plan(_config(), {"pipeline": 2})


def test_cli_prints_both_meshes():
    out = subprocess.run([sys.executable, "-m", "monitor_jax.main", "plan", "--config=configs/plan_8b.py",
                          "--mesh_shapes=fsdp=8", "--mesh_shapes=data=2,fsdp=16"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "llama3-8b: 8.03B params" in out.stdout
    header = next(line for line in out.stdout.splitlines() if line.startswith("GiB per device"))
    assert "fsdp=8 (8 dev)" in header and "data=2,fsdp=16 (32 dev)" in header
    params = next(line for line in out.stdout.splitlines() if line.startswith("params")).split()
    assert params[1:] == [f"{LLAMA3_8B_PARAMS * 4 / 8 / 2**30:.2f}", f"{LLAMA3_8B_PARAMS * 4 / 16 / 2**30:.2f}"]
    assert any(line.startswith("activations (estimate)") for line in out.stdout.splitlines())
