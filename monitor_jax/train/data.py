"""Config -> the training stream: task/IF mixture stages -> step batches [grad_accum, B, T] (resumable).

Decisions:
- Micro-batches of one step share T because each optimizer step is ONE mixture batch of grad_accum x B rows
  (all from one length bucket), reshaped to [grad_accum, B, T]. Gradient accumulation is therefore exactly a
  bigger batch split for memory; the mixture's stage `steps` count optimizer steps; the iterator state is the
  mixture's own JSON state (no buffered batches to save); bucket proportions are what the mixture draws.
- `config.data.batch_size` is global (all hosts); each host draws batch_size / process_count rows of its own
  data shard (`jax.process_index()`), and `sharding.shard_batch` assembles the global batch.
- Examples are read once per process: task components from the train split of their tasks
  (`tasks.examples(..., split="train")`), IF components from `tasks.instruction_examples("train")`.
"""
from __future__ import annotations

import dataclasses
import os
import zlib
from typing import Any, Iterator

import numpy as np

from monitor_jax.data import mixture, pipeline, tasks
from monitor_jax.model.tokenizer import Tokenizer


_REGISTERED: dict[str, str] = {}  # resolved task-file path -> task name (loaded once per process)


def register_task_files(config: Any, tokenizer: Tokenizer | None = None) -> list[str]:
    """Registers the user task files of `config.data.task_files` (once per process); returns their task names."""
    files = tuple(config.data.get("task_files", ()) or ())
    if not files:
        return []
    from monitor_jax.data import user_tasks

    names = []
    for f in files:
        key = str(os.path.realpath(f))
        if key not in _REGISTERED:
            _REGISTERED[key] = user_tasks.load_task_file(f, tokenizer=tokenizer).name
        names.append(_REGISTERED[key])
    return names


def shuffled_labels(examples: list, seed: int, task: str) -> list:
    """The shuffled-label control of one task's examples: the same inputs and prompts, the labels permuted among
    them (seeded by `seed` and the task name), so the label counts stay and any input-label relation is gone."""
    rng = np.random.default_rng([int(seed), zlib.crc32(task.encode())])
    labels = rng.permutation([e.label for e in examples])
    return [dataclasses.replace(e, label=int(y)) for e, y in zip(examples, labels)]


def _component(c: Any, seed: int, where: str) -> mixture.MixtureComponent:
    if c.get("instruction", False):
        examples = tasks.instruction_examples("train", limit=c.get("limit"), seed=seed)
        if not examples:
            raise ValueError(f"{where}: the instruction-following pool is empty")
    else:
        if not c.get("tasks"):
            raise ValueError(f"{where}: a task component needs `tasks` (or `instruction=True`)")
        examples = []
        for name in c.tasks:
            if name not in tasks.TASKS:
                raise ValueError(f"{where}.tasks: unknown task {name!r}; known tasks: {sorted(tasks.TASKS)}")
            try:
                ex = tasks.examples(name, "train", c.get("prompt", "primary"), limit=c.get("limit_per_task"),
                                    balance=c.get("balance"), seed=int(c.get("item_seed", seed)))
            except KeyError as e:
                raise ValueError(f"{where}: {e.args[0] if e.args else e}") from None
            examples += shuffled_labels(ex, seed, name) if c.get("shuffle_labels") else ex
        if not examples:
            raise ValueError(f"{where}: tasks {tuple(c.tasks)} have no train examples")
    return mixture.MixtureComponent(str(c.name), examples, float(c.weight), float(c.get("loss_weight", 1.0)))


def build_stages(config: Any) -> list[mixture.Stage]:
    """The mixture stages of `config.data.stages` (stage steps = optimizer steps); checks they cover the run."""
    stages = list(config.data.stages)
    if not stages:
        raise ValueError("config.data.stages: needs at least one stage")
    out = []
    for i, st in enumerate(stages):
        where = f"config.data.stages[{i}]"
        comps = [_component(c, int(config.seed), f"{where}.components[{j}]") for j, c in enumerate(st.components)]
        steps = st.get("steps")
        if steps is None and i != len(stages) - 1:
            raise ValueError(f"{where}.steps: None (until the end) is only allowed on the last stage")
        out.append(mixture.Stage(comps, None if steps is None else int(steps)))
    total = int(config.optim.total_steps)
    covered = sum(s.steps for s in out if s.steps is not None)
    if out[-1].steps is not None and covered < total:
        raise ValueError(f"config.data.stages: the stages cover {covered} steps but config.optim.total_steps is "
                         f"{total}; lengthen a stage or set the last stage's steps to None")
    return out


def local_batch_size(config: Any, process_count: int) -> int:
    """Rows per micro-batch on this host."""
    b = int(config.data.batch_size)
    if b <= 0 or b % process_count:
        raise ValueError(f"config.data.batch_size={b} must be a positive multiple of the {process_count} processes")
    return b // process_count


class StepBatches:
    """Infinite-until-the-stages-end iterator of step batches: numeric arrays [grad_accum, B_local, T] plus `id`.

    `stage`, `get_state`/`set_state` (JSON), `token_counts` and `stats` come from the mixture underneath.
    """

    def __init__(self, tokenizer: Tokenizer, config: Any, *, shard_index: int | None = None,
                 shard_count: int | None = None):
        shard_index, shard_count = mixture.resolve_shard(shard_index, shard_count)
        self.grad_accum = int(config.optim.grad_accum)
        if self.grad_accum < 1:
            raise ValueError(f"config.optim.grad_accum must be >= 1, got {self.grad_accum}")
        self.batch_size = local_batch_size(config, shard_count)
        buckets = config.data.get("buckets") or pipeline.DEFAULT_BUCKETS
        self.mixture = mixture.mixture_batches(
            tokenizer, build_stages(config), self.batch_size * self.grad_accum, int(config.data.max_len),
            seed=int(config.seed), buckets=tuple(buckets), shard_index=shard_index, shard_count=shard_count)
        self.task_names = self.mixture.task_names

    @property
    def stage(self) -> int:
        return self.mixture.stage

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        return to_microbatches(next(self.mixture), self.grad_accum)

    def get_state(self) -> dict[str, Any]:
        return self.mixture.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.mixture.set_state(state)

    def token_counts(self) -> dict[str, dict[str, int]]:
        return self.mixture.token_counts()

    def stats(self) -> dict[str, Any]:
        return self.mixture.stats()


def to_microbatches(batch: dict[str, np.ndarray], grad_accum: int) -> dict[str, np.ndarray]:
    """[A*B, ...] -> [A, B, ...] for every array (row r goes to micro-batch r // B)."""
    n = len(batch["tokens"])
    if n % grad_accum:
        raise ValueError(f"a batch of {n} rows does not split into {grad_accum} micro-batches")
    return {k: np.asarray(v).reshape(grad_accum, n // grad_accum, *np.shape(v)[1:]) for k, v in batch.items()}


def train_batches(tokenizer: Tokenizer, config: Any, **kwargs: Any) -> StepBatches:
    """The step-batch stream of `config` for this host (registers `config.data.task_files` first)."""
    register_task_files(config, tokenizer)
    return StepBatches(tokenizer, config, **kwargs)
