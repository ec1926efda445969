"""How the runner trains and scores runs, chosen from the config by `create`: `cells.Shared`, the top k layers
trained and scored on cached lower-layer features (train.mode='top_k_layers' with train.cache_features: the CPU
fast path), or `FullForward`, every other mode (full, LoRA, top-k without the cache): the whole model trained by
`monitor-jax train`'s loop on the config's mesh, each run's chosen step kept as an HF dir (`chosen/`), cells scored
by the full forward, split over the mesh's data axes when there are several devices or processes.

Both answer the same calls (`cells.Strategy`), so the runner and the views never ask which one they have:
`score(config, params, examples)`; `upper_with(chosen)`, the params `score` takes for a run's chosen checkpoint
(`load(rdir)`; None: the base model); `full_params(chosen)`, the whole model (generation); `upper_of(params,
mode)`, the same from the loop's params during training; `features(batch)`, the cached lower-layer activations
(None: the full forward needs none); `keep(rdir, export, mode)`, the chosen checkpoint in the form `load` reads;
`train_kwargs()`, `run_facts()` (for run.json) and `base_dir(config)` (where the base model's scores live).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from monitor_jax.core import assets, distributed, sharding
from monitor_jax.data import pipeline
from monitor_jax.eval import scoring
from monitor_jax.experiment import cells
from monitor_jax.model import registry, transformer
from monitor_jax.train import data as train_data
from monitor_jax.train import step as step_lib
from monitor_jax.train.mode import TrainMode


def create(config: Any, runs_dir: str | os.PathLike) -> cells.Strategy:
    """The strategy of `config.train`: `cells.Shared` (cached top-k) or `FullForward` (any other mode)."""
    if config.train.mode == "top_k_layers" and config.train.get("cache_features"):
        return cells.Shared.create(config, runs_dir)
    return FullForward.create(config, runs_dir)


@dataclasses.dataclass
class FullForward:
    """Runs trained in any train mode by the loop, scored by the whole model (`eval/scoring.py`)."""

    model: registry.LoadedModel
    upper_cfg: transformer.ModelConfig  # the model's inference config in the compute dtype
    mesh: Mesh | None  # rows split over its data axes (None: one device)
    runs_dir: Path
    _loaded: tuple[Path, Any] | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def create(cls, config: Any, runs_dir: str | os.PathLike) -> "FullForward":
        TrainMode.from_config(config)  # an unknown mode fails here, before anything loads
        assets.use_compilation_cache()
        model = registry.load(config.model.name)
        train_data.register_task_files(config, model.tokenizer)
        mesh = sharding.make_mesh(config.mesh.shape) if jax.device_count() > 1 else None
        cfg = scoring.inference_config(step_lib.compute_config(config, model.cfg))
        return cls(model, cfg, mesh, Path(runs_dir))

    def score(self, config: Any, params: Any, examples: list, progress: bool = False) -> np.ndarray:
        """P(positive | label words) of `examples` (input order) under the whole model `params`."""
        rendered, _ = pipeline.render_examples(self.model.tokenizer, examples, int(config.data.max_len))
        res = scoring.score_rendered(self.upper_cfg, params, rendered, batch_size=int(config.eval.batch_size),
                                     max_len=int(config.data.max_len), buckets=cells.buckets(config),
                                     mesh=self.mesh, progress=progress)
        return np.asarray(res["score"], np.float64)

    def upper_with(self, chosen: Any | None) -> Any:
        """The params `score` takes: a run's chosen whole model (None: the base model)."""
        return self.model.params if chosen is None else chosen

    def full_params(self, chosen: Any | None) -> Any:
        return self.upper_with(chosen)

    def upper_of(self, params: Any, mode: TrainMode) -> Any:
        del mode  # the loop hands over the whole (merged) model
        return params

    def features(self, batch: dict) -> None:
        del batch
        return None

    def prefill(self, config: Any, examples: list) -> None:
        """Nothing to store: the full forward caches no features."""
        del config, examples

    def keep(self, rdir: Path, export: str | os.PathLike, mode: TrainMode) -> None:
        """Moves the chosen step's HF export (the merged model, LoRA included) to `rdir/chosen` (process 0)."""
        del mode
        if distributed.is_main():
            dest = rdir / cells.CHOSEN_DIR
            shutil.rmtree(dest, ignore_errors=True)  # a copy an interrupted earlier attempt left
            os.replace(export, dest)
        self._loaded = None

    def load(self, rdir: Path | None) -> Any | None:
        """A finished run's chosen whole model (None: the base model); the last one loaded is kept."""
        if rdir is None:
            return None
        if self._loaded is None or self._loaded[0] != rdir:
            self._loaded = (rdir, cells.chosen_top(rdir))
        return self._loaded[1]

    def train_kwargs(self) -> dict:
        return {}

    def run_facts(self) -> dict:
        return {"scorer": "full_forward", "processes": jax.process_count(), "devices": jax.device_count()}

    def base_dir(self, config: Any) -> Path:
        """The base model's scores, apart from the cached path's (another scorer, maybe another dtype)."""
        precision = self.upper_cfg.precision.replace("/", "-")
        return self.runs_dir / f"base-{config.model.name.replace('/', '_')}-forward-{precision}"
