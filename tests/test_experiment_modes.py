"""The experiment runner in the modes that train the whole model (`experiment/strategy.py` FullForward), on the
tiny random model: a claim config (C1, shrunk) trains LoRA and full arms through the runner on 8 devices and its
cell scores are the chosen checkpoint's own full forward (`score_examples`); the same experiment as 2 processes
(gloo, `monitor-jax experiment`) gives one process's per-item scores and verdicts; a run killed mid-arm resumes
from its checkpoint and ends as the uninterrupted run.

The one-process reference reads the 2 processes' data shards side by side (`multihost.GlobalBatchOfShards`), the
global batch the 2 processes train on; one length bucket keeps that exact."""
import copy
import dataclasses
import gzip
import json

import jax
import numpy as np
import pytest

from monitor_jax.core import config as config_lib
from monitor_jax.eval import scoring
from monitor_jax.experiment import cells, runner, write
from monitor_jax.model import registry
from monitor_jax.train import data as train_data
from monitor_jax.train import loop
from multihost import CLI, GlobalBatchOfShards, launch

CLAIM = '''"""configs/c1_transfer.py on the tiny random model, in train mode `mode` (lora | full) without cached
features: the base model, its mixture arm and an in-domain info-hazard arm on the two request cells (the agent
cells and the shuffled control left out for time; the precondition guards the info-hazard cell with the in-domain
arm), one seed, 4 steps, 16 items a cell.
get_config("mode+arm"): only the base model and that arm, and the comparisons between them."""
from monitor_jax.core import config as config_lib

x = config_lib.load_module("configs/experiment.py")


def get_config(arg):
    mode, *only = arg.split("+")
    c = config_lib.load("c1_transfer")
    with c.unlocked():
        c.model.name = "tiny-random-llama"
        c.train.mode, c.train.cache_features, c.train.lora.rank = mode, False, 4
        c.optim.lr, c.optim.warmup_steps, c.optim.total_steps = 1e-2, 0, 4
        c.eval.every, c.eval.every_rows, c.checkpoint.every = 2, None, 4
        c.data.max_len, c.data.buckets = 128, (128,)
        e = c.experiment
        e.seeds, e.select_limit, e.n_boot, e.budget_rows = (0,), 16, 200, None
        e.cells = [cell for cell in e.cells if cell.task.startswith("requests/")]
        e.arms = [arm for arm in e.arms if arm.name in ("base", "mixture")] + [
            x.arm("in_info", x.balanced("info", x.INFO, x.TRAIN_ITEMS), label="in-domain info_hazard")]
        e.preconditions = [x.in_domain_gap(x.INFO + ":primary", "in_info")]
        keep = {arm.name for arm in e.arms} & ({"base", *only} if only else {arm.name for arm in e.arms})
        e.arms = [arm for arm in e.arms if arm.name in keep]
        e.comparisons = [cmp for cmp in e.comparisons if cmp.cell.startswith("requests/")
                         and {cmp.get(r) for r in ("a", "b", "arm", "other", "base", "ref")} - {None} <= keep]
        e.preconditions = [p for p in e.preconditions if {p.a, p.b} <= keep]
        for cell in e.cells:
            cell.limit = 16
        for arm in e.arms:
            for st in arm.stages:
                for comp in st.components:
                    comp.limit_per_task = 8
    return c
'''
SHARDS = 2
x = config_lib.load_module("configs/experiment.py")


@pytest.fixture(scope="module")
def claim(tmp_path_factory):
    path = tmp_path_factory.mktemp("claim") / "tiny_c1.py"
    path.write_text(CLAIM)
    return path


def _run(config, runs):
    """The experiment in this process (8 devices), fed the global batches of SHARDS processes."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_data, "train_batches", lambda tok, c: GlobalBatchOfShards(tok, c, SHARDS))
        return runner.run_experiment(config, runs, progress=False)


def _summary(config, raw, arms):
    """results.json of the runs of `arms` only (the shortcut baselines, TF-IDF on whole train splits, left out:
    not under test here, and ~8 s)."""
    raw = {**raw, "scores": {k: {a: v for a, v in d.items() if a in arms} for k, d in raw["scores"].items()},
           "runs": {a: v for a, v in raw["runs"].items() if a in arms},
           "seeds": {a: v for a, v in raw["seeds"].items() if a in arms}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(write, "_baselines", lambda config, cell: {})
        return write.summarize(config, raw, command="test", wall_minutes=0.0)


@pytest.fixture(scope="module")
def lora(claim, tmp_path_factory, xla_cache):
    del xla_cache
    assert len(jax.devices()) == 8, "tests/conftest.py sets 8 host devices"
    config = config_lib.load(f"{claim}:lora")
    return config, _run(config, tmp_path_factory.mktemp("runs"))


def _checkpoint_scores(config, raw, model_dir=None):
    """Per cell: the whole model in `model_dir` (None: the base model) scored by `score_examples`, one device."""
    model = raw["shared"].model
    params = model.params if model_dir is None else registry.load(f"hf:{model_dir}").params
    out = {}
    for cell in config.experiment.cells:
        ex = cells.cell_examples(config, cell)
        out[cells.cell_key(cell)] = scoring.score_examples(model.cfg, params, model.tokenizer, ex,
                                                           max_len=int(config.data.max_len), buckets=(128,),
                                                           progress=False).score
    return out


def _check_runs_score_like_their_checkpoints(config, raw) -> dict:
    """Every arm's cell scores == its chosen HF dir's full forward; returns {arm: chosen params}."""
    base = _checkpoint_scores(config, raw)
    for k, want in base.items():
        np.testing.assert_allclose(raw["scores"][k]["base"][0], want, rtol=1e-5, atol=1e-5)
    chosen = {}
    for arm, dirs in raw["runs"].items():
        for rdir in dirs:
            run = json.loads((rdir / "run.json").read_text())
            assert run["scorer"] == "full_forward" and run["devices"] == 8 and run["processes"] == 1
            assert run["best_step"] in (2, 4) and [r["step"] for r in run["selection_curve"]] == [2, 4]
            mean = {r["step"]: np.mean([v for n, v in r.items() if n.startswith("auroc/")])
                    for r in run["selection_curve"]}
            if np.isfinite(list(mean.values())).all():
                assert run["best_step"] == max(mean, key=mean.get)  # the first best (ties: the earlier step)
            assert sorted(p.name for p in rdir.iterdir()) == ["chosen", "run.json", "scores.json", "work"]
            assert not (rdir / "work" / "checkpoints").exists() and not (rdir / "work" / "export").exists()
            want = _checkpoint_scores(config, raw, rdir / "chosen")
            for k in want:
                got = raw["scores"][k][arm][0]
                np.testing.assert_allclose(got, want[k], rtol=1e-5, atol=1e-5)
                assert not np.allclose(got, base[k], atol=1e-4), (arm, k)  # training moved the scores
            chosen[arm] = jax.tree_util.tree_map(np.asarray, registry.load(f"hf:{rdir / 'chosen'}").params)
    return chosen


def test_lora_arms_train_through_the_runner_and_score_like_their_checkpoint(lora, monkeypatch):
    """C1's arms in LoRA mode on 8 devices: each run keeps its chosen step as an HF dir (the merged adapter: only
    the adapted projections moved), every cell scores as that dir's full forward, and a rerun reuses it all."""
    config, raw = lora
    assert sorted(raw["runs"]) == ["base", "in_info", "mixture"] and raw["incomplete"] is None
    chosen = _check_runs_score_like_their_checkpoints(config, raw)
    start = jax.tree_util.tree_map(np.asarray, raw["shared"].model.params)
    targets = set(config.train.lora.targets)
    for arm, params in chosen.items():
        for path, x in jax.tree_util.tree_flatten_with_path(params)[0]:
            names = [getattr(k, "key", k) for k in path]
            y = start
            for n in names:
                y = y[n]
            if targets & set(names):  # a LoRA target: the merged adapter moved it
                assert not np.allclose(x, y), (arm, names)
            else:  # embedding, norms: frozen
                np.testing.assert_array_equal(x, y, err_msg=f"{arm} {names}")

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(loop, "train_and_evaluate", no_training)
    again = runner.run_experiment(config, raw["shared"].runs_dir, shared=raw["shared"], progress=False)
    for k in raw["scores"]:
        for arm in raw["scores"][k]:
            np.testing.assert_array_equal(again["scores"][k][arm][0], raw["scores"][k][arm][0])


def test_generated_views_and_retention_use_the_runs_whole_model(lora, monkeypatch):
    """A summary cell (the run summarizes, the run judges) and IF retention on the LoRA runs (reused, not
    retrained): the numbers of the protocols run directly on the chosen HF dir's model. (Thinking cells take the
    same `full_params`; this claim's max_len of 128 leaves no room for the thinking conversation.)"""
    import ml_collections

    from monitor_jax.data import pipeline
    from monitor_jax.eval.protocols import summarize
    from monitor_jax.experiment import retention
    from monitor_jax.train import step as step_lib

    config, raw = lora
    config = copy.deepcopy(config)
    task = "requests/harmful"
    with config.unlocked():
        e = config.experiment
        e.cells = [x.cell(task, 4, "s", name="summary", view="summary", budget=2, judge="in_info",
                          arms=("in_info",))]
        e.comparisons, e.preconditions = [], []
        e.retention = ml_collections.ConfigDict({"if_limit": 4, "checks": False})
    monkeypatch.setattr(loop, "train_and_evaluate", lambda *a, **k: pytest.fail("a finished run was retrained"))
    got = runner.run_experiment(config, raw["shared"].runs_dir, shared=raw["shared"], progress=False)
    model, (rdir,) = raw["shared"].model, raw["runs"]["in_info"]
    params = registry.load(f"hf:{rdir / 'chosen'}").params
    summary = cells.cell_examples(config, config.experiment.cells[0])
    gens = summarize.summarize(model.cfg, params, model.tokenizer, [e.input for e in summary], noun="request",
                               max_summary_tokens=2, max_input_tokens=128, progress=False)
    rows = [dataclasses.replace(e, input=g.text or "") for e, g in zip(summary, gens)]
    judged = scoring.score_examples(model.cfg, params, model.tokenizer, rows, max_len=128, buckets=(128,),
                                    progress=False).score
    np.testing.assert_allclose(got["scores"]["summary"]["in_info"][0], judged, rtol=1e-5, atol=1e-5)
    assert got["generation"]["summary"]["in_info"]["mean_tokens"] == [np.mean([len(g.tokens) for g in gens])]
    ex = retention.if_examples(4)
    rendered, _ = pipeline.render_examples(model.tokenizer, ex, 128)
    nll = []
    for r in rendered:
        b = pipeline.collate([r], 128, 1, r.pad_id, {pipeline.example_name(r): 0})
        total, n = step_lib.if_loss(model.cfg, params, {k: v for k, v in b.items() if k != "id"})
        nll.append(float(total[0] / n[0]))
    np.testing.assert_allclose(got["retention"]["in_info"][0]["nll"], nll, rtol=1e-4)
    assert not np.allclose(got["retention"]["base"][0]["nll"], nll)


def test_full_fine_tuning_arms_train_through_the_runner(claim, tmp_path, xla_cache):
    """C1's in-domain arm in full mode on 8 devices: every weight trains (the embedding too), and every cell
    scores as the chosen HF dir's full forward."""
    del xla_cache
    config = config_lib.load(f"{claim}:full+in_info")
    raw = _run(config, tmp_path / "runs")
    chosen = _check_runs_score_like_their_checkpoints(config, raw)
    start = jax.tree_util.tree_map(np.asarray, raw["shared"].model.params)
    for arm, params in chosen.items():
        for path, x in jax.tree_util.tree_flatten_with_path(params)[0]:
            y = start
            for k in path:
                y = y[getattr(k, "key", k)]
            assert not np.allclose(x, y), (arm, jax.tree_util.keystr(path))  # every weight trained


def test_top_k_without_cached_features_trains_through_the_runner(claim, tmp_path, xla_cache):
    """Top-k layers without the feature cache (the full forward, frozen lower stack run every step): only the top
    layer and the final norm move, and every cell scores as the chosen HF dir's full forward."""
    del xla_cache
    config = config_lib.load(f"{claim}:top_k_layers+in_info")
    with config.unlocked():
        config.train.top_k = 1
    raw = _run(config, tmp_path / "runs")
    chosen = _check_runs_score_like_their_checkpoints(config, raw)
    start = jax.tree_util.tree_map(np.asarray, raw["shared"].model.params)
    for path, x in jax.tree_util.tree_flatten_with_path(chosen["in_info"])[0]:
        y = start
        for k in path:
            y = y[getattr(k, "key", k)]
        name = jax.tree_util.keystr(path)
        if name.startswith("['layers']"):  # [layer, ...]: the lower layer frozen, the top one trained
            np.testing.assert_array_equal(x[0], y[0], err_msg=name)
            assert not np.allclose(x[1], y[1]), name
        elif name.startswith("['final_norm']"):
            assert not np.allclose(x, y), name
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


def _rows(res) -> dict:
    return {(r["cell"], r["arm"], r["seed"], r["item"]): r for r in res["item_scores"]["rows"]}


def test_two_processes_give_the_per_item_scores_and_verdicts_of_one(lora, claim, tmp_path, xla_cache):
    """`monitor-jax experiment` (C1's base and mixture arms) as 2 processes x 2 CPU devices (gloo): each host reads
    its data shard, process 0 writes the results, and the per-item scores (within 1e-5) and every verdict are
    one process's (the fixture's runs of those arms: a run's directory and result do not depend on the others)."""
    config = config_lib.load(f"{claim}:lora+mixture")
    assert [a.name for a in config.experiment.arms] == ["base", "mixture"] and config.experiment.comparisons
    one = _summary(config, lora[1], ("base", "mixture"))
    out, runs = tmp_path / "out", tmp_path / "runs"
    outputs = launch(CLI + ["experiment", f"--config={claim}:lora+mixture", f"--out={out}", f"--runs_dir={runs}"],
                     SHARDS, 2, flags=True, log_dir=tmp_path, timeout=240,
                     env={"JAX_COMPILATION_CACHE_DIR": xla_cache, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
    assert "verdict:" in outputs[0] and "verdict:" not in outputs[1]  # process 0 reports
    two = json.loads((out / "results.json").read_text())
    with gzip.open(out / two["item_scores"]["file"], "rt") as f:
        rows = {(r["cell"], r["arm"], r["seed"], r["item"]): r for r in map(json.loads, f)}
    want = _rows(one)
    assert rows.keys() == want.keys() and len(rows) == 2 * 2 * 16  # arms x cells x items
    for key, r in want.items():
        assert rows[key]["label"] == r["label"]
        assert rows[key]["score"] == pytest.approx(r["score"], abs=1e-5), key
    assert two["verdict"] == one["verdict"]
    assert [c["verdict"] for c in two["comparisons"]] == [c["verdict"] for c in one["comparisons"]]
    assert [p.get("passed") for p in two["preconditions"]] == [p.get("passed") for p in one["preconditions"]]
    for arm, info in two["arms"].items():
        assert [r["best_step"] for r in info["runs"]] == [r["best_step"] for r in one["arms"][arm]["runs"]]
        assert [r["dir"] for r in info["runs"]] == [r["dir"] for r in one["arms"][arm]["runs"]]
    (rdir,) = runs.glob("mixture-*")
    assert json.loads((rdir / "run.json").read_text())["processes"] == SHARDS


class _Killed(RuntimeError):
    pass


def test_a_run_killed_mid_arm_resumes_from_its_checkpoint(lora, claim, tmp_path, monkeypatch):
    """An arm stopped right after its step-2 checkpoint (of 4) resumes there on the rerun and ends as the
    uninterrupted run: same run dir, chosen step, selection curve and per-item scores."""
    raw = lora[1]
    config = config_lib.load(f"{claim}:lora+in_info")
    with config.unlocked():
        config.checkpoint.every = 2  # not part of the run's key: the run is the fixture's
    save, restore, starts = loop._Run._save, loop._Run._restore, []

    def save_then_die(self, s):
        save(self, s)
        if s == 2:
            self.ckpt.wait_until_finished()
            raise _Killed(f"killed after the checkpoint of step {s}")

    monkeypatch.setattr(loop._Run, "_save", save_then_die)
    with pytest.raises(_Killed):
        _run(config, tmp_path / "runs")
    monkeypatch.setattr(loop._Run, "_save", save)
    monkeypatch.setattr(loop._Run, "_restore", lambda self: starts.append(restore(self)) or starts[-1])
    again = _run(config, tmp_path / "runs")
    assert starts == [2]  # resumed from the checkpoint, not from step 0
    (rdir,), (ref,) = again["runs"]["in_info"], raw["runs"]["in_info"]
    assert rdir.name == ref.name
    got, want = (json.loads((d / "run.json").read_text()) for d in (rdir, ref))
    assert got["best_step"] == want["best_step"] and got["steps_trained"] == 4
    assert [{k: v for k, v in r.items() if k != "minutes"} for r in got["selection_curve"]] == \
        [{k: v for k, v in r.items() if k != "minutes"} for r in want["selection_curve"]]
    for k in again["scores"]:
        np.testing.assert_allclose(again["scores"][k]["in_info"][0], raw["scores"][k]["in_info"][0], atol=1e-6)


def test_the_strategy_follows_the_train_mode(claim, tmp_path):
    """Top-k from cached features keeps the cached path; every other mode (top-k without the cache included)
    gets the full forward; the cached path refuses the others, naming the config keys."""
    from monitor_jax.experiment import strategy

    config = config_lib.load(f"{claim}:lora")
    for mode, cache, kind in (("top_k_layers", True, cells.Shared), ("top_k_layers", False, strategy.FullForward),
                              ("lora", False, strategy.FullForward), ("full", False, strategy.FullForward)):
        with config.unlocked():
            config.train.mode, config.train.cache_features, config.train.top_k = mode, cache, 1
        assert type(strategy.create(config, tmp_path)) is kind, (mode, cache)
    with pytest.raises(ValueError, match="config.train.mode='top_k_layers' and config.train.cache_features=True"):
        cells.Shared.create(config, tmp_path)
