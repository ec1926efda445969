"""Pod scales of the claim configs (configs/experiment.SCALES, issue 29): every `configs/c*.py:<scale>` keeps the
CPU config's arms, cells, seeds and comparisons, changes only the training of them, and fits its accelerator by
`monitor-jax plan` (bytes per device <= 90 % of one device's memory, on the scale's own mesh)."""
import pathlib
import subprocess
import sys

import pytest

from monitor_jax.core import config as config_lib
from monitor_jax.train import plan

ROOT = pathlib.Path(__file__).resolve().parents[2]
x = config_lib.load_module(ROOT / "configs" / "experiment.py")
CLAIMS = sorted(p.stem for p in (ROOT / "configs").glob("c[0-9]_*.py"))
PLANNED = ("model", "train", "mesh", "optim")  # with data.batch_size / max_len: every key the plan reads


def _design(c):
    e = c.experiment
    return ([a.name for a in e.arms], [tuple(a.get("seeds") or e.seeds) for a in e.arms],
            [cl.to_dict() for cl in e.cells], [cp.to_dict() for cp in e.comparisons], e.split)


def _planned(c):
    return {k: c[k].to_dict() for k in PLANNED}, c.data.batch_size, c.data.max_len, c.data.buckets


@pytest.mark.parametrize("claim", CLAIMS)
def test_a_pod_scale_keeps_the_design_and_changes_the_training(claim):
    cpu = config_lib.load(claim)
    assert cpu.train.mode == "top_k_layers" and "scale" not in cpu.experiment
    ref = config_lib.load(CLAIMS[0], "qwen3-8b-lora")
    for name, s in x.SCALES.items():
        pod = config_lib.load(claim, name)
        assert _design(pod) == _design(cpu)
        assert pod.train.mode == s["mode"] and not pod.train.cache_features and pod.model.name == s["model"]
        assert pod.experiment.scale.accelerator == s["accelerator"] and pod.data.max_len == x.POD_MAX_LEN
        assert pod.experiment.budget_rows == x.POD_ROWS
        if name == "qwen3-8b-lora":  # one plan per scale serves every claim: the planned keys are the same
            assert _planned(pod) == _planned(ref)
        cpu_rows, pod_rows = ({a.name: a.get("rows") for a in c.experiment.arms} for c in (cpu, pod))
        for arm, rows in cpu_rows.items():  # an arm's own length keeps its ratio (C3's small_half)
            assert (pod_rows[arm] is None) == (rows is None)
            if rows:
                assert pod_rows[arm] / x.POD_ROWS == pytest.approx(rows / cpu.experiment.budget_rows, rel=0.01)


@pytest.mark.parametrize("name", sorted(x.SCALES))
def test_each_scale_fits_its_accelerator(name):
    configs = [config_lib.load(c, name) for c in CLAIMS]
    assert all(_planned(c) == _planned(configs[0]) for c in configs)
    c = configs[0]
    p = plan.plan(c, c.mesh.shape, c.experiment.scale.devices)
    assert p.batch_divides and p.mesh == tuple(x.SCALES[name]["mesh"][k] for k in ("data", "fsdp", "tensor"))
    assert p.total <= 0.9 * c.experiment.scale.memory, (name, p.total / 1e9)


def test_the_plan_command_reads_a_pod_config():
    out = subprocess.run([sys.executable, "-m", "monitor_jax.main", "plan",
                          "--config=configs/c2_adjacency.py:llama3-8b-full"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fsdp=16" in out.stdout and "GiB" in out.stdout, out.stdout


def test_an_unknown_scale_is_named():
    with pytest.raises(ValueError, match="unknown scale 'tpu'"):
        config_lib.load("c1_transfer", "tpu")
