"""Config files: every one loads and is locked; unknown override keys fail clearly; the tiny config trains end to
end through the CLI (subprocess) into a workdir with metrics, a checkpoint and a loadable HF export."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from monitor_jax.core import config as config_lib

ROOT = pathlib.Path(__file__).resolve().parents[2]
CASES = [(p.name, None) for p in sorted((ROOT / "configs").glob("*.py"))] + [("tiny.py", "lora"), ("tiny.py", "top_k")]


def _cli(*args, cache=None, timeout=600):
    env = dict(os.environ)
    if cache:
        env.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return subprocess.run([sys.executable, "-m", "monitor_jax.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


@pytest.mark.parametrize("name,arg", CASES)
def test_every_config_loads_with_every_key_and_is_locked(name, arg):
    c = config_lib.load(name, arg)
    for key in ("seed", "log_every", "model.name", "model.dtype", "model.remat", "mesh.shape", "mesh.strict",
                "train.mode", "train.top_k", "train.frozen_dtype", "train.cache_features", "train.lora.rank",
                "train.lora.alpha", "train.lora.targets", "optim.lr", "optim.warmup_steps", "optim.decay",
                "optim.total_steps", "optim.weight_decay", "optim.b1", "optim.b2", "optim.eps", "optim.clip_norm",
                "optim.grad_accum", "loss.kind", "loss.reduction", "loss.if_weight", "data.max_len",
                "data.batch_size", "data.stages", "eval.every", "eval.tasks", "eval.split", "eval.limit_per_task",
                "eval.batch_size", "checkpoint.every", "checkpoint.keep"):
        node = c
        for part in key.split("."):
            node = node[part]
    assert "buckets" in c.data and "rules" in c.mesh
    assert c.eval.split == "validation"
    arms = c.experiment.arms if "experiment" in c else ()  # an experiment's stages are its arms'
    stages = [*c.data.stages, *(st for arm in arms for st in arm.stages)]
    assert stages or name == "experiment.py"  # the experiments' shared base has no arms
    for st in stages:
        for comp in st.components:
            assert comp.get("instruction", False) or comp.tasks
    with pytest.raises(AttributeError):
        c.optim.lrr = 1.0
    for st in stages[:1]:
        with pytest.raises(AttributeError):
            st.components[0].wieght = 1.0  # dicts inside lists are locked too


def test_load_reads_paths_names_args_and_overrides_with_errors_naming_the_file(tmp_path):
    lora = config_lib.load("configs/tiny.py:lora")
    assert lora.train.mode == "lora"
    assert str(config_lib.load("tiny", "lora")) == str(config_lib.load(ROOT / "configs" / "tiny.py", "lora")) == \
        str(lora)
    c = config_lib.load("tiny.py:top_k", overrides={"optim.lr": 3e-3, "data.stages[0].components[0].weight": 2})
    assert c.train.mode == "top_k_layers" and c.optim.lr == 3e-3 and c.data.stages[0].components[0].weight == 2.0
    with pytest.raises(FileNotFoundError, match="nope.py"):
        config_lib.load("configs/nope.py")
    with pytest.raises(ValueError, match=r"configs/tiny.py: cannot set optim.lrr"):
        config_lib.load("tiny", overrides={"optim.lrr": 1.0})
    with pytest.raises(ValueError, match="give one"):
        config_lib.load("tiny:lora", "top_k")
    (tmp_path / "no_get_config.py").write_text("X = 1\n")
    with pytest.raises(ValueError, match="no_get_config.py has no get_config"):
        config_lib.load(str(tmp_path / "no_get_config.py"))


def test_bad_config_arg_fails():
    with pytest.raises(ValueError, match="unknown arg"):
        config_lib.load("tiny.py", "nope")


@pytest.mark.parametrize("override,hint", [("--config.optim.lrr=1e-3", "'lr'"),
                                           ("--config.data.stages[0].components[0].wieght=2", "'weight'")])
def test_unknown_override_key_fails_with_one_clear_line(tmp_path, override, hint):
    out = _cli("train", "--config=configs/tiny.py", f"--workdir={tmp_path}", override)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown config key" in lines[0], out.stderr
    assert override.split("=")[0] in lines[0] and f"did you mean {hint}" in lines[0], out.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_tiny_config_trains_end_to_end_through_the_cli(tmp_path, xla_cache):
    from monitor_jax.model import registry

    work = tmp_path / "run"
    out = _cli("train", "--config=configs/tiny.py", f"--workdir={work}", "--config.optim.total_steps=2",
               "--config.eval.every=2", cache=xla_cache)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["train/loss"]) for r in rows)
    assert "eval/auroc/requests/harmful" in rows[-1]
    assert (work / "checkpoints" / "2").is_dir()
    assert list((work / "tb").glob("events.out.tfevents.*"))
    best = json.loads((work / "best.json").read_text())
    assert best["step"] == 2
    result = json.loads(out.stdout[out.stdout.index("{"):])
    assert result["step"] == 2 and pathlib.Path(result["export"]) == work / "export" / "step_2"

    exported = registry.load(f"hf:{work / 'export' / 'step_2'}")
    initial = registry.load("tiny-random-llama")
    assert exported.cfg.n_layers == initial.cfg.n_layers and exported.cfg.d_model == initial.cfg.d_model
    assert exported.tokenizer.encode("Yes") == initial.tokenizer.encode("Yes")
    assert not np.allclose(np.asarray(exported.params["layers"]["attn"]["q"]["kernel"]),
                           np.asarray(initial.params["layers"]["attn"]["q"]["kernel"]))  # trained
    # The export is the evaluated model: re-scoring it reproduces the logged validation AUROC.
    from monitor_jax.experiment import run

    config = config_lib.load("tiny.py")
    auroc = run.make_evaluate(config, exported)(exported.params, 2)["auroc/requests/harmful"]
    assert auroc == pytest.approx(rows[-1]["eval/auroc/requests/harmful"], abs=1e-6)
