"""The training loop: `train_and_evaluate(config, workdir, evaluate)` — data stream, sharded state, jitted step,
checkpoints that resume exactly, metric files, periodic held-out evaluation, best step, HF export.

Workdir layout (written by process 0 only; checkpoints by every process, as Orbax needs):
  config.json            the config of the (latest) launch
  data_stats.json        rows/tokens per mixture component, truncations per task (this host's shard)
  checkpoints/<step>/    Orbax: `state` (step, trainable params, optimizer state; the frozen base is rebuilt
                         from the model, so LoRA/top-k checkpoints stay small) + `data` (JSON: each process's
                         iterator position, the metric window, the best-so-far record, the token count)
  metrics.jsonl          one JSON line per logged step: `train/*` (means over the log window; counts summed),
                         `train/tokens` (cumulative real tokens, all hosts), `data/<component>/loss_tokens`
                         (cumulative, process 0's shard), `eval/*` at evaluation steps; `time/*`
                         (wall clock) and `cache/*` (feature-cache counters) depend on the launch
  tb/                    the same scalars as TensorBoard event files (tensorboardX)
  best.json              the best evaluated step by `eval/mean_auroc` (validation only; the untrained model of
                         `eval.at_start` is logged as the baseline, not a candidate)
  export/step_N/         HF directories (`weights.save_hf`) of the final params and of the best step's;
                         load them with `registry.load("hf:DIR")`

Early stopping (`eval.patience` > 0, validation only): after `patience` evaluations in a row without a better
`eval/mean_auroc`, the run checkpoints that step, records {"step", "best_step", "patience", "total_steps"} as
`stopped` in the checkpoint's records (and `train/stopped_early` in that metrics row) and ends; relaunching it
trains nothing. Budgets in row-visits (`optim.total_rows`, `eval.every_rows`) become steps (`train/budget.py`).

Resume: the same command restores the latest checkpoint (state + iterator + loop records), truncates
metrics.jsonl to the restored step, purges later TensorBoard points and exports, and continues; the run is
then identical to an uninterrupted one (tests/train/test_loop.py checks bit-equality on CPU).

A step whose loss or grad norm is not finite raises `TrainingDiverged` naming the step (the state of the step
before is not saved over anything). Metrics of step s are fetched after step s+1 is dispatched, so the host
prepares the next batch while the device works; checkpoints, evaluations and the end wait for them first.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from monitor_jax.core import distributed, io
from monitor_jax.model import registry, weights
from monitor_jax.train import budget, checkpoint, metric_log
from monitor_jax.train import data as data_lib
from monitor_jax.train.mode import TrainMode
from monitor_jax.core import sharding
from monitor_jax.train import state as state_lib
from monitor_jax.train import step as step_lib

log = logging.getLogger(__name__)

Evaluate = Callable[[Any, int], dict[str, float]]
BEST_FILE = "best.json"


class TrainingDiverged(FloatingPointError):
    """The loss or gradient norm of a step was NaN or infinite."""


@jax.jit
def _count_tokens(segment_ids: jax.Array) -> jax.Array:
    return jnp.sum(segment_ids > 0, dtype=jnp.int32)


def _host(tree: Any) -> Any:
    """Params as host numpy arrays (gathered across processes when sharded over several hosts)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if leaves and not all(getattr(x, "is_fully_addressable", True) for x in leaves):
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree_util.tree_map(np.asarray, tree)


def _finite_mean(values: list[float]) -> float:
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


class _Run:
    """One launch of `train_and_evaluate` (kept in an object so the steps below stay small)."""

    def __init__(self, config: Any, workdir: str | os.PathLike, evaluate: Evaluate | None, model: Any,
                 progress: bool, feature_store: Any = None):
        import orbax.checkpoint as ocp

        self.ocp = ocp
        config = budget.resolve(config)  # optim.total_rows / eval.every_rows -> steps
        self.config, self.evaluate = config, evaluate
        self.workdir = Path(workdir).absolute()
        self.main = jax.process_index() == 0
        self.total = int(config.optim.total_steps)
        if self.total < 1:
            raise ValueError(f"config.optim.total_steps must be >= 1, got {self.total}")
        self.every = {k: int(config[k].every) for k in ("checkpoint", "eval")}
        self.log_every = max(1, int(config.log_every))
        self.track_best = evaluate is not None and config.eval.split == "validation"
        if evaluate is not None and not self.track_best:
            log.warning("config.eval.split=%r: the best step is chosen on 'validation' only; not tracking it",
                        config.eval.split)
        if self.main:
            self.workdir.mkdir(parents=True, exist_ok=True)
            text = config.to_json_best_effort(indent=2) + "\n"
            old = self.workdir / "config.json"
            if old.exists() and old.read_text(encoding="utf-8") != text:
                log.warning("%s: the config differs from the previous launch's; a resumed run follows the new one "
                            "(the old one is kept as config.previous.json)", self.workdir)
                os.replace(old, self.workdir / "config.previous.json")
            io.write_text(old, text)

        self.mesh = sharding.make_mesh(config.mesh.shape)
        if model is None:  # an hf: checkpoint streams straight into its shards (no full host copy)
            model = registry.load(config.model.name,
                                  shardings=lambda cfg: state_lib.abstract_state(config, cfg, self.mesh)[2])
        self.model = model
        self.state, self.shardings = state_lib.create_train_state(config, self.model, self.mesh)
        self.stream = data_lib.train_batches(self.model.tokenizer, config)
        self.train_step = step_lib.make_train_step(config, self.model.cfg, self.mesh, self.shardings)
        self.features = None
        if config.train.mode == "top_k_layers" and config.train.get("cache_features", False):
            from monitor_jax.train import features

            self.features = features.FeatureCache(config, self.model.cfg, self.mesh, self.shardings.frozen,
                                                  self.workdir, feature_store)

        options = ocp.CheckpointManagerOptions(max_to_keep=max(1, int(config.checkpoint.keep)), create=True)
        self.ckpt = ocp.CheckpointManager(self.workdir / "checkpoints", options=options)
        self.patience = int(config.eval.get("patience") or 0)
        if self.patience < 0:
            raise ValueError(f"config.eval.patience must be >= 0 (0: no early stopping), got {self.patience}")
        self.records = {"window": None, "best": None, "tokens": 0, "last_row": None, "evals_since_best": 0,
                        "stopped": None}
        self.start = self._restore()
        self.window = metric_log.Window(self.records["window"])
        self.metric_log = metric_log.MetricLog(self.workdir, self.start if self.start else None, self.main)
        if self.main:
            self._write_best()
            io.write_text(self.workdir / "data_stats.json", json.dumps(self.stream.stats(), indent=2) + "\n")
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, initial=self.start, desc="train", unit="step",
                        disable=not (progress and self.main), dynamic_ncols=True)
        self.last_saved = self.start if self.start else None
        self.tick = time.perf_counter()

    # --- checkpoints -------------------------------------------------------------------------------------------

    def _restore(self) -> int:
        latest = self.ckpt.latest_step()
        if latest is None:
            if self.main:  # outputs an older run left in this workdir (metrics.jsonl: MetricLog, best.json below)
                for name in ("export", "tb"):
                    shutil.rmtree(self.workdir / name, ignore_errors=True)
            return 0
        self.state, data = checkpoint.restore_checkpoint(self.ckpt, latest, self.state, self.shardings)
        self.stream.set_state(checkpoint.iterator_state(data, latest))
        self.records.update(data["records"])
        step = int(np.asarray(self.state.step))
        if step != latest:
            raise ValueError(f"checkpoint {latest} holds state step {step}")
        if latest > self.total:
            raise ValueError(f"{self.workdir} holds a checkpoint at step {latest}, beyond config.optim.total_steps="
                             f"{self.total}; use a new --workdir (or a larger total_steps)")
        if self.main:
            for d in (self.workdir / "export").glob("step_*"):  # exports a crashed launch made after the restore
                if d.name[5:].isdigit() and int(d.name[5:]) > latest:
                    shutil.rmtree(d, ignore_errors=True)
        log.info("resumed from %s at step %d", self.workdir / "checkpoints", latest)
        return latest

    def _save(self, s: int) -> None:
        ocp = self.ocp
        self.records["window"] = self.window.s
        data = {"iterators": distributed.allgather_json(self.stream.get_state()), "records": self.records}
        self.ckpt.save(s, args=ocp.args.Composite(state=ocp.args.StandardSave(checkpoint.saved_part(self.state)),
                                                  data=ocp.args.JsonSave(data)))
        self.last_saved = s

    # --- metrics -----------------------------------------------------------------------------------------------

    def _finish(self, pending: tuple) -> dict | None:
        """Fetch the metrics of a dispatched step, check them, add them to the window; a row on log steps."""
        s, metrics, real_tokens, stage = pending
        metrics, real_tokens = jax.device_get((metrics, real_tokens))
        m = {k: float(v) for k, v in metrics.items()}
        real_tokens = int(real_tokens)
        if not (m.get("finite", 1.0) > 0 and math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"])):
            raise TrainingDiverged(
                f"non-finite loss at step {s}: loss={m['loss']}, grad_norm={m['grad_norm']}, lr={m.get('lr')}; "
                f"stopped (the step was not applied; last checkpoint: {self.last_saved})")
        self.window.add(m, real_tokens)
        self.records["tokens"] += real_tokens
        self.bar.update(1)
        if s % self.log_every and s != self.total:
            return None
        now = time.perf_counter()
        elapsed, self.tick = now - self.tick, now
        row = {"step": s, **self.window.row(), "train/tokens": self.records["tokens"], "train/stage": stage}
        for name, (_, _, loss_tokens) in self.stream.get_state()["seen"].items():
            row[f"data/{name}/loss_tokens"] = loss_tokens
        tps = self.window.s.get("real_tokens", 0) / max(elapsed, 1e-9)
        row.update({"time/tokens_per_s": tps, "time/s_per_step": elapsed / max(self.window.s["steps"], 1)})
        if self.features is not None:
            row.update({f"cache/{k}": v for k, v in self.features.stats().items()})
        self.bar.set_postfix(loss=f"{row['train/loss']:.4f}", tok_s=f"{tps:.0f}", refresh=False)
        self.window = metric_log.Window()
        self.records["last_row"] = metric_log.reproducible(row)
        return row

    # --- evaluation and export ---------------------------------------------------------------------------------

    def _full_params(self) -> Any:
        return state_lib.full_params(self.state, TrainMode.from_config(self.config), self.model.cfg)

    def _export(self, s: int, params: Any | None = None) -> Path:
        path = self.workdir / "export" / f"step_{s}"
        host = _host(params if params is not None else self._full_params())
        if self.main:
            weights.save_hf(host, self.model.cfg, path, tokenizer=self.model.tokenizer)
        return path

    def _write_best(self) -> None:
        best = self.records["best"]
        if best is not None:
            io.write_text(self.workdir / BEST_FILE, json.dumps(best, indent=2) + "\n")
        elif (self.workdir / BEST_FILE).exists():
            (self.workdir / BEST_FILE).unlink()

    def _eval(self, s: int) -> dict[str, float]:
        params = self._full_params()
        res = {k: float(v) for k, v in self.evaluate(params, s).items()}
        aurocs = [v for k, v in res.items() if k.startswith("auroc/")]
        if aurocs:
            res["mean_auroc"] = _finite_mean(aurocs)
        row = {f"eval/{k}": v for k, v in res.items()}
        if self.main:
            self.bar.write(f"step {s}: " + ", ".join(f"{k}={v:.4f}" for k, v in row.items()))
        score = res.get("mean_auroc", float("nan"))
        best = self.records["best"]
        improved = math.isfinite(score) and (best is None or score > best["eval/mean_auroc"])
        if self.track_best and s > 0:
            self.records["evals_since_best"] = 0 if improved else self.records.get("evals_since_best", 0) + 1
        if self.track_best and s > 0 and improved:
            old = best["step"] if best else None
            path = self._export(s, params)
            self.records["best"] = {"step": s, "eval/mean_auroc": score, "metrics": row, "export": str(path)}
            if self.main:
                self._write_best()
                if old is not None and old != s:
                    shutil.rmtree(self.workdir / "export" / f"step_{old}", ignore_errors=True)
        return row

    # --- the loop ----------------------------------------------------------------------------------------------

    def _should_stop(self, s: int) -> bool:
        """Early stopping: `eval.patience` evaluations in a row without a better validation score; recorded."""
        if not (self.patience and self.track_best and s < self.total
                and self.records.get("evals_since_best", 0) >= self.patience):
            return False
        best = self.records["best"]
        self.records["stopped"] = {"step": s, "best_step": best["step"] if best else None,
                                   "patience": self.patience, "total_steps": self.total}
        log.info("%s: stopped early at step %d of %d (%d evaluations without improvement; best step %s)",
                 self.workdir, s, self.total, self.patience, best["step"] if best else None)
        return True

    @property
    def end(self) -> int:
        """The last step of the run: `optim.total_steps`, or the step it stopped early at."""
        stopped = self.records.get("stopped")
        return int(stopped["step"]) if stopped else self.total

    def _is(self, what: str, s: int) -> bool:
        every = self.every[what]
        return s == self.total or (every > 0 and s % every == 0)

    def _next_batch(self, s: int) -> dict:
        try:
            return next(self.stream)
        except StopIteration:
            raise ValueError(f"config.data.stages ran out of batches at step {s} of config.optim.total_steps="
                             f"{self.total}") from None

    def run(self) -> dict[str, Any]:
        try:
            if self.start >= self.total or self.records.get("stopped"):  # finished, or stopped early: not retrained
                return self._done()
            if self.start == 0 and self.evaluate is not None and self.config.eval.get("at_start", False):
                self.metric_log.write({"step": 0, **self._eval(0)})
            pending = None
            for s in range(self.start + 1, self.total + 1):
                batch = self._next_batch(s)
                stage = self.stream.stage
                if self.features is not None:
                    batch = self.features.add_features(batch, self.state.frozen)
                arrays = sharding.shard_batch(batch, self.mesh)
                real = _count_tokens(arrays["segment_ids"])  # global (all hosts), fetched with the metrics
                self.state, metrics = self.train_step(self.state, arrays)
                if pending is not None:
                    row = self._finish(pending)
                    if row is not None:
                        self.metric_log.write(row)
                pending = (s, metrics, real, stage)
                boundary = self._is("checkpoint", s) or (self.evaluate is not None and self._is("eval", s))
                if boundary:
                    row = self._finish(pending)
                    pending = None
                    stop = False
                    if self.evaluate is not None and self._is("eval", s):
                        row = {**(row or {"step": s}), **self._eval(s)}
                        stop = self._should_stop(s)
                        if stop:
                            row["train/stopped_early"] = 1.0
                        self.records["last_row"] = metric_log.reproducible(row)
                    if row is not None:
                        self.metric_log.write(row)
                    if self._is("checkpoint", s) or stop:
                        self._save(s)
                    if stop:
                        break
            if pending is not None:
                row = self._finish(pending)
                if row is not None:
                    self.metric_log.write(row)
            return self._done()
        finally:
            self.close()

    def _done(self) -> dict[str, Any]:
        end = self.end
        if self.last_saved != end:
            self._save(end)
        self.ckpt.wait_until_finished()
        best = self.records["best"]
        path = self.workdir / "export" / f"step_{end}"
        if not (best and best["step"] == end):  # (a decision every host takes alike: _export gathers)
            path = self._export(end)
        out = {**(self.records["last_row"] or {"step": end}), "export": str(path), "steps_trained": end,
               "total_steps": self.total, "stopped_early": self.records.get("stopped")}
        if best is not None:
            out.update({"best_step": best["step"], "best/eval/mean_auroc": best["eval/mean_auroc"],
                        "best_export": best["export"]})
        return out

    def close(self) -> None:
        self.bar.close()
        self.ckpt.wait_until_finished()
        self.ckpt.close()
        self.metric_log.close()
        if self.features is not None:
            self.features.close()


def train_and_evaluate(config: Any, workdir: str | os.PathLike, evaluate: Evaluate | None = None, *,
                       model: Any = None, progress: bool = True, feature_store: Any = None) -> dict[str, Any]:
    """Trains `config` in `workdir` (resuming from its latest checkpoint) and returns the final metrics.

    evaluate(params, step) -> {"auroc/<task>": x, ...}: called with the full param tree every `config.eval.every`
    steps and at the end, on every process (it may use collectives); the mean of its `auroc/*` values picks the
    best step when `config.eval.split == "validation"`. `model`: a `registry.LoadedModel` to start from
    (default `registry.load(config.model.name)`). Returns the last logged row (`train/*`, `eval/*`), `export`
    (the final HF dir) and, when tracked, `best_step`, `best/eval/mean_auroc`, `best_export`.
    `feature_store`: a store (`feature_store.open_store`) shared with other runs on the same frozen stack
    (cached-feature top_k_layers training; default: `config.train.feature_store`, the shared on-disk store).
    """
    return _Run(config, workdir, evaluate, model, progress, feature_store).run()
