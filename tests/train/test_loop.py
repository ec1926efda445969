"""The training loop: resume after a crash == uninterrupted (bit-identical on CPU), NaN stops with the step,
and training the tiny model on a separable toy task drives held-out AUROC >= 0.95."""
import json

import jax
import numpy as np
import pytest

from monitor_jax.core import config as config_lib
from monitor_jax.data import sources, tasks
from monitor_jax.model import registry
from monitor_jax.train import data as data_lib
from monitor_jax.train import metric_log
from monitor_jax.train import loop


@pytest.fixture(scope="module", autouse=True)
def _compile_cache(xla_cache):
    """This module's tests share the persistent compile cache (tests/conftest.py)."""


def _no_time(rows):
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "cache/"))} for r in rows]


def _exported(path):
    return jax.tree_util.tree_map(np.asarray, registry.load(f"hf:{path}").params)


def _tiny(**overrides):
    c = config_lib.load("tiny")
    for key, value in overrides.items():
        node = c
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return c


class Crash(Exception):
    pass


def test_resume_after_crash_equals_uninterrupted_run(tmp_path, model, monkeypatch):
    from monitor_jax.experiment import run

    config = _tiny(**{"optim.total_steps": 5, "checkpoint.every": 2, "eval.every": 2})
    evaluate = run.make_evaluate(config, model)
    ref = loop.train_and_evaluate(config, tmp_path / "ref", evaluate, model=model, progress=False)

    # Crash right after the metrics line of step 3 is written: checkpoint 2 exists, step 3 is logged but lost.
    real_write = metric_log.MetricLog.write

    def crashing_write(self, row):
        real_write(self, row)
        if row["step"] == 3:
            raise Crash("simulated kill after step 3")

    monkeypatch.setattr(metric_log.MetricLog, "write", crashing_write)
    with pytest.raises(Crash):
        loop.train_and_evaluate(config, tmp_path / "run", evaluate, model=model, progress=False)
    monkeypatch.undo()
    assert sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit()) == [2]
    assert [r["step"] for r in metric_log.read_metrics(tmp_path / "run")] == [1, 2, 3]

    out = loop.train_and_evaluate(config, tmp_path / "run", evaluate, model=model, progress=False)  # same command
    ref_rows, rows = metric_log.read_metrics(tmp_path / "ref"), metric_log.read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert _no_time(rows) == _no_time(ref_rows)  # bit-identical losses, grad norms, eval AUROCs, token counts
    assert {k: v for k, v in out.items() if "export" not in k} == {k: v for k, v in ref.items() if "export" not in k}
    a, b = _exported(tmp_path / "ref" / "export" / "step_5"), _exported(tmp_path / "run" / "export" / "step_5")
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
    best_ref = json.loads((tmp_path / "ref" / "best.json").read_text())
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert {**best, "export": None} == {**best_ref, "export": None}


def test_nan_loss_stops_training_naming_the_step(tmp_path, model, monkeypatch):
    config = _tiny(**{"optim.total_steps": 5, "checkpoint.every": 1, "eval.tasks": ()})
    real_next = data_lib.StepBatches.__next__
    calls = {"n": 0}

    def poisoned(self):
        batch = real_next(self)
        calls["n"] += 1
        if calls["n"] == 3:  # token ids past the vocabulary: the embedding lookup fills NaN, the loss is NaN
            batch["tokens"] = np.where(batch["segment_ids"] > 0, 10**6, batch["tokens"]).astype(np.int32)
        return batch

    monkeypatch.setattr(data_lib.StepBatches, "__next__", poisoned)
    with pytest.raises(loop.TrainingDiverged, match="step 3"):
        loop.train_and_evaluate(config, tmp_path, model=model, progress=False)
    assert [r["step"] for r in metric_log.read_metrics(tmp_path)] == [1, 2]
    assert max(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == 2


WORDS = ("the a one big small red blue green old new happy sad dog cat bird tree house car road river walks runs "
         "sits sleeps eats sees likes finds near under over behind today yesterday slowly quickly").split()
FRUIT = "banana apple cherry mango grape lemon peach plum".split()


def _toy_items(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = i % 2
        words = rng.choice(FRUIT if label else WORDS, size=int(rng.integers(6, 12)))
        out.append(sources.make_item("toyfruit", " ".join(words) + f" ({seed}.{i})", fruit=label,
                                     long=int(len(words) > 8)))
    return out


def _register_toy_task():
    questions = {"fruit": tasks._q(lambda it: it.meta["fruit"], "name fruits", "list kinds of fruit",
                                   "names no fruit"),
                 "long": tasks._q(lambda it: it.meta["long"], "have more than eight words",
                                  "run longer than eight words", "has at most eight words")}
    domain = tasks.Domain("toyfruit", lambda: {"train": _toy_items(400, 1), "validation": _toy_items(64, 2),
                                                "test": _toy_items(64, 3)}, questions, "sentence")
    task = tasks.Task("toyfruit/fruit", "toyfruit", "fruit", tasks.make_prompts(domain, "fruit", "long", "independent"))
    tasks.register(task, domain)
    return task.name


def test_training_on_a_separable_toy_task_reaches_auroc_095(tmp_path, model):
    from monitor_jax.experiment import run

    name = _register_toy_task()
    config = _tiny(**{"optim.total_steps": 6, "eval.every": 6, "eval.at_start": True, "eval.tasks": (name,),
                      "eval.limit_per_task": 64, "checkpoint.every": 6, "log_every": 3})
    config.data.stages = [config_lib.stage(None, config_lib.task_component("toy", [name]))]
    out = loop.train_and_evaluate(config, tmp_path, run.make_evaluate(config, model), model=model, progress=False)
    rows = metric_log.read_metrics(tmp_path)
    start = next(r for r in rows if r["step"] == 0)
    assert start[f"eval/auroc/{name}"] < 0.9  # the untrained random model is no monitor
    assert out[f"eval/auroc/{name}"] >= 0.95, out
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["step"] == 6 and best["eval/mean_auroc"] == out["eval/mean_auroc"]
    assert out["best_export"] == out["export"] == str(tmp_path / "export" / "step_6")


def test_step_batches_stack_one_bucket_per_step_and_follow_the_stages(model):
    config = _tiny(**{"optim.grad_accum": 2, "optim.total_steps": 3, "data.buckets": (64, 96, 128)})
    config.data.stages = [config_lib.stage(1, config_lib.task_component("a", ["requests/harmful"], limit_per_task=32)),
                          config_lib.stage(None, config_lib.task_component("b", ["requests/cyber"], limit_per_task=32))]
    stream = data_lib.train_batches(model.tokenizer, config, shard_index=0, shard_count=1)
    first = next(stream)
    assert stream.stage == 0 and first["tokens"].shape[:2] == (2, 8) and first["id"].shape == (2, 8)
    assert first["weight"].shape == (2, 8) and first["tokens"].shape[2] in (64, 96, 128)
    second = next(stream)
    assert stream.stage == 1
    names = stream.task_names
    assert {names[i] for i in first["task_index"].ravel() if i >= 0} == {"requests/harmful"}
    assert {names[i] for i in second["task_index"].ravel() if i >= 0} == {"requests/cyber"}
    state = stream.get_state()
    after = next(stream)
    again = data_lib.train_batches(model.tokenizer, config, shard_index=0, shard_count=1)
    again.set_state(json.loads(json.dumps(state)))
    np.testing.assert_array_equal(next(again)["tokens"], after["tokens"])

    config.data.stages = config.data.stages[:1]  # 1 step of data for a 3-step run
    with pytest.raises(ValueError, match="total_steps"):
        data_lib.train_batches(model.tokenizer, config)


def test_an_hf_checkpoint_streams_into_its_shards_and_trains_like_a_host_copy(tmp_path, model, monkeypatch):
    """`model.name=hf:DIR` with no model given: params come from `load_hf_sharded` (never `weights.load_hf`'s full
    host copy) and the run equals one started from the same weights loaded on the host."""
    from monitor_jax.model import loading, weights

    weights.save_hf(model.params, model.cfg, tmp_path / "ckpt", tokenizer=model.tokenizer)
    config = _tiny(**{"model.name": f"hf:{tmp_path / 'ckpt'}", "optim.total_steps": 2, "checkpoint.every": 2,
                      "eval.tasks": ()})
    host = registry.load(config.model.name)
    calls = []
    real = loading.load_hf_sharded
    monkeypatch.setattr(loading, "load_hf_sharded", lambda *a, **k: calls.append(a) or real(*a, **k))
    monkeypatch.setattr(weights, "load_hf", lambda *a, **k: pytest.fail("full host copy"))
    streamed = loop.train_and_evaluate(config, tmp_path / "streamed", progress=False)
    assert len(calls) == 1
    monkeypatch.undo()
    hosted = loop.train_and_evaluate(config, tmp_path / "host", model=host, progress=False)
    losses = [[r["train/loss"] for r in metric_log.read_metrics(d) if "train/loss" in r] for d in
              (tmp_path / "streamed", tmp_path / "host")]
    assert losses[0] and losses[0] == pytest.approx(losses[1], rel=1e-6)
    a, b = _exported(streamed["export"]), _exported(hosted["export"])
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), a, b)
