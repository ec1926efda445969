"""Multi-host runs on localhost: CPU processes joined by JAX's multi-controller runtime (gloo collectives) through
`monitor-jax`'s own start-up give the training, evaluation and checkpoints of one process (DESIGN.md §7).

The 2-process training run (2 x 2 CPU devices, `configs/tiny.py`) is launched once and shared by the tests.
"""
import json
import shutil
import sys

import jax
import numpy as np
import pytest

from monitor_jax.core import config as config_lib
from monitor_jax.core import distributed
from monitor_jax.model import registry
from monitor_jax.train import checkpoint, metric_log
from monitor_jax.train import data as train_data
from monitor_jax.train import loop
from monitor_jax.train.mode import TrainMode
from multihost import CLI, launch
from multihost import GlobalBatchOfShards as _GlobalBatchOfShards

CONFIG = "configs/tiny.py"  # 2 steps, global batch 8, checkpoint every step, eval (16 examples) at step 2
N_PROCESSES = 2


@pytest.fixture(scope="module")
def launch_env(tmp_path_factory):
    """A compile cache shared by this module's launches (identical programs compile once)."""
    return {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("xla-multihost")),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, launch_env):
    """`monitor-jax train --config=configs/tiny.py` as 2 processes x 2 CPU devices (the distributed flags)."""
    work = tmp_path_factory.mktemp("multihost") / "run"
    outputs = launch(CLI + ["train", f"--config={CONFIG}", f"--workdir={work}"], N_PROCESSES, 2, flags=True,
                     env=launch_env, log_dir=work.parent)
    return work, outputs


def _params(export_dir) -> dict:
    return jax.tree_util.tree_map(np.asarray, registry.load(f"hf:{export_dir}").params)


def _assert_trees_close(a, b, atol: float) -> float:
    paths_a = jax.tree_util.tree_flatten_with_path(a)[0]
    leaves_b = jax.tree_util.tree_leaves(b)
    assert len(paths_a) == len(leaves_b)
    worst = 0.0
    for (path, x), y in zip(paths_a, leaves_b):
        diff = float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        assert diff <= atol, f"{jax.tree_util.keystr(path)}: max |diff| {diff} > {atol}"
        worst = max(worst, diff)
    return worst


def test_two_processes_train_like_one_process_on_the_same_global_batch(two_process_run, tmp_path, monkeypatch,
                                                                       xla_cache, model):
    """Loss, grad norm, token count, held-out AUROC and params after 2 steps: 2 processes x 2 devices == 1 process
    x 8 devices fed the same global batches (the two processes' data shards side by side)."""
    from monitor_jax.experiment import run

    work, outputs = two_process_run
    assert '"step": 2' in outputs[0] and '"step": 2' not in outputs[1]  # results printed by process 0 only
    assert "mass outside" in outputs[0] and "mass outside" not in outputs[1]  # warnings logged by process 0 only
    assert sorted(p.name for p in work.iterdir()) == ["best.json", "checkpoints", "config.json", "data_stats.json",
                                                      "export", "metrics.jsonl", "tb"]

    monkeypatch.setattr(train_data, "train_batches", lambda tok, config: _GlobalBatchOfShards(tok, config, 2))
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "set")  # run.train: keep the xla_cache fixture's cache
    ref = tmp_path / "ref"
    run.train(config_lib.load(CONFIG), ref, model, progress=False)

    multi, single = metric_log.read_metrics(work), metric_log.read_metrics(ref)
    assert [r["step"] for r in multi] == [r["step"] for r in single] == [1, 2]
    for m, s in zip(multi, single):
        assert m["train/tokens"] == s["train/tokens"]  # every process's rows counted once
        for key in ("train/loss", "train/grad_norm", "train/accuracy", "train/n_examples"):
            assert m[key] == pytest.approx(s[key], rel=1e-5, abs=1e-6), key
    assert multi[-1]["eval/auroc/requests/harmful"] == pytest.approx(single[-1]["eval/auroc/requests/harmful"])
    assert multi[-1]["eval/mass_outside/requests/harmful"] == pytest.approx(
        single[-1]["eval/mass_outside/requests/harmful"], abs=1e-6)
    initial = jax.tree_util.tree_map(np.asarray, model.params)
    moved = _assert_trees_close(_params(work / "export" / "step_2"), initial, atol=1.0)
    assert moved > 1e-3  # the comparison below is between trained params, not two copies of the start
    _assert_trees_close(_params(work / "export" / "step_2"), _params(ref / "export" / "step_2"), atol=2e-5)


SCORE_WORKER = r'''
import json, sys
from monitor_jax.core import distributed
distributed.initialize()  # the MONITOR_JAX_* variables tests/multihost.py sets
import jax
import numpy as np
from monitor_jax.data.pipeline import ClassificationExample
from monitor_jax.eval import scoring
from monitor_jax.model import registry
from monitor_jax.core import sharding

n = int(sys.argv[1])
examples = [ClassificationExample(id=f"e{j}", task="t", input="word " * (2 + 9 * j) + str(j), label=j % 2,
                                  template="Is this long? {input}", label_words=("Yes", "No")) for j in range(n)]
model = registry.load("tiny-random-llama")
real_rows, jitted = [], scoring.label_logprobs

def counting(cfg, params, tokens, segment_ids, answer_index, label_ids, *rest):
    # rows this process's devices hold (padding rows carry label ids -1)
    real_rows.append(sum(int((s.data[:, 0] >= 0).sum()) for s in label_ids.addressable_shards))
    return jitted(cfg, params, tokens, segment_ids, answer_index, label_ids, *rest)

scoring.label_logprobs = counting
kw = dict(batch_size=4, max_len=128, buckets=(64, 128), progress=False)
res = scoring.score_examples(model.cfg, model.params, model.tokenizer, examples,
                             mesh=sharding.make_mesh({"data": -1}), **kw)
out = {"ids": res.ids.tolist(), "score": res.score.tolist(), "logp_pos": res.logp_pos.tolist(),
       "real_rows": sum(real_rows), "devices": jax.device_count()}
if jax.process_index() == 0:  # the reference: this process alone, on one device, no mesh
    scoring.label_logprobs = jitted
    ref = scoring.score_examples(model.cfg, model.params, model.tokenizer, examples, **kw)
    out.update(ref_score=ref.score.tolist(), ref_logp_pos=ref.logp_pos.tolist())
json.dump(out, open(f"{sys.argv[2]}/scores{jax.process_index()}.json", "w"))
'''


@pytest.mark.parametrize("n_processes", [2, 4])
def test_evaluation_scores_every_example_exactly_once(n_processes, tmp_path, launch_env):
    """13 examples (2 length buckets) over 2 or 4 processes x 2 devices, batch 4 rounded up to the data-parallel
    width: each example is held by exactly one device, and every process gets all 13 scores, in input order,
    equal to one process scoring alone."""
    n = 13
    (tmp_path / "worker.py").write_text(SCORE_WORKER)
    launch([sys.executable, str(tmp_path / "worker.py"), str(n), str(tmp_path)], n_processes, 2, env=launch_env,
           log_dir=tmp_path)
    outs = [json.loads((tmp_path / f"scores{p}.json").read_text()) for p in range(n_processes)]
    assert {o["devices"] for o in outs} == {2 * n_processes}
    assert sum(o["real_rows"] for o in outs) == n  # no example dropped or scored twice across the devices
    for o in outs:
        assert o["ids"] == [f"e{j}" for j in range(n)]
        assert not np.isnan(o["score"]).any()
        np.testing.assert_allclose(o["logp_pos"], outs[0]["ref_logp_pos"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(o["score"], outs[0]["ref_score"], rtol=1e-5, atol=1e-6)


def test_checkpoint_moves_between_two_processes_and_one(two_process_run, tmp_path, launch_env, xla_cache, model):
    """The 2-process checkpoint restores in one process (== the 2-process export); one process trains on from it
    and checkpoints; 2 processes restore that checkpoint and export exactly the params the one process had."""
    import orbax.checkpoint as ocp

    from monitor_jax.core import sharding
    from monitor_jax.train import state as state_lib

    work = tmp_path / "run"
    shutil.copytree(two_process_run[0], work)
    config = config_lib.load(CONFIG)
    mesh = sharding.make_mesh(config.mesh.shape)  # 8 devices in this process
    state, shardings = state_lib.create_train_state(config, model, mesh)
    with ocp.CheckpointManager(work / "checkpoints") as manager:
        state, data = checkpoint.restore_checkpoint(manager, 2, state, shardings)
    assert int(state.step) == 2 and len(data["iterators"]) == N_PROCESSES
    full = state_lib.full_params(state, TrainMode.from_config(config), model.cfg)
    restored = jax.tree_util.tree_map(np.asarray, full)
    _assert_trees_close(restored, _params(work / "export" / "step_2"), atol=0.0)

    three_steps = config_lib.load(CONFIG, overrides={"optim.total_steps": 3})
    one = loop.train_and_evaluate(three_steps, work, None, model=model, progress=False)
    assert one["step"] == 3 and np.isfinite(one["train/loss"])
    trained_alone = _params(work / "export" / "step_3")

    outputs = launch(CLI + ["train", f"--config={CONFIG}", f"--workdir={work}", "--config.optim.total_steps=3"],
                     N_PROCESSES, 2, flags=True, env=launch_env, log_dir=tmp_path)
    assert "written by 1 process(es), this run has 2" in outputs[0]
    _assert_trees_close(_params(work / "export" / "step_3"), trained_alone, atol=0.0)


def test_single_process_launches_do_not_start_the_runtime(monkeypatch):
    """Flags, MONITOR_JAX_* variables and cluster variables decide; nothing given means one process."""
    no_tpu = {"tpu_vm": False}
    assert distributed.resolve(env={}, **no_tpu) is None
    assert distributed.resolve(num_processes=1, env={}, **no_tpu) is None
    assert distributed.resolve(mode="off", coordinator_address="h:1", num_processes=2, process_id=0) is None
    assert distributed.resolve(env={"MONITOR_JAX_COORDINATOR_ADDRESS": "h:1", "MONITOR_JAX_NUM_PROCESSES": "2",
                                    "MONITOR_JAX_PROCESS_ID": "1"}, **no_tpu) == {
        "coordinator_address": "h:1", "num_processes": 2, "process_id": 1}
    slurm = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "n[1-2]", "SLURM_NTASKS": "2", "SLURM_PROCID": "1",
             "SLURM_LOCALID": "0"}
    assert distributed.detect_cluster(slurm, **no_tpu) == "slurm"
    assert distributed.resolve(env=slurm, **no_tpu) == {"coordinator_address": None, "num_processes": None,
                                                        "process_id": None}  # JAX reads Slurm's variables
    assert distributed.resolve(env={**slurm, "SLURM_NTASKS": "1"}, **no_tpu) is None
    assert distributed.detect_cluster({"OMPI_MCA_orte_hnp_uri": "1.0;tcp://h:1", "OMPI_COMM_WORLD_SIZE": "4"},
                                      **no_tpu) == "openmpi"
    assert distributed.detect_cluster({"TPU_WORKER_HOSTNAMES": "a,b"}, **no_tpu) == "gke-tpu"
    assert distributed.detect_cluster({}, tpu_vm=True) == "tpu-vm"
    with pytest.raises(ValueError, match="--process_id missing"):
        distributed.resolve(coordinator_address="h:1", num_processes=2, env={}, **no_tpu)
    with pytest.raises(ValueError, match=r"--process_id=2 is not in \[0, --num_processes=2\)"):
        distributed.resolve(coordinator_address="h:1", num_processes=2, process_id=2, env={}, **no_tpu)
    monkeypatch.setattr(distributed, "_on_tpu_vm", lambda: False)
    for var in ("TPU_WORKER_HOSTNAMES", "TPU_PROCESS_ADDRESSES", "SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri",
                "MONITOR_JAX_COORDINATOR_ADDRESS", "MONITOR_JAX_NUM_PROCESSES", "MONITOR_JAX_PROCESS_ID"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.initialize() is False and distributed.is_main()
    assert distributed.allgather_json({"a": [1]}) == [{"a": [1]}]
