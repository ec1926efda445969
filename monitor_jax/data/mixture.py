"""Training streams: examples (one source, or weighted mixtures of tasks and IF data in stages) -> infinite,
shuffled, length-bucketed, sharded, resumable batches.

Each bucket is drawn from its own epoch-reshuffled, repeated source per component; components are interleaved
within a bucket and buckets with each other by `grain.MapDataset.mix` (deterministic interleaving in proportion to
the weights), then batches are window-shuffled. Bucket proportions use the *global* row counts (summed over hosts
with one allgather when `jax.process_count() > 1`), so all hosts emit the same bucket length T at every step (as
`jax.make_array_from_process_local_data` needs), and every row of a component is drawn at the same rate whatever
its length. A stage mixes components by sampling weight for `steps` batches, then the next stage starts. A row's
loss weight is its example weight x its component's `loss_weight`. Iterator state — stage, step within the stage,
grain's `{"next_index": k}` of the stage stream, tokens seen per component — is a JSON-serializable dict.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any, Sequence

import grain
import numpy as np

from monitor_jax.data import pipeline
from monitor_jax.model.tokenizer import Tokenizer

_READ = grain.ReadOptions(num_threads=2, prefetch_buffer_size=8)


def resolve_shard(shard_index: int | None, shard_count: int | None) -> tuple[int, int]:
    """Defaults to this host's `jax.process_index()` of `jax.process_count()`."""
    if shard_index is None or shard_count is None:
        import jax

        shard_index = jax.process_index() if shard_index is None else shard_index
        shard_count = jax.process_count() if shard_count is None else shard_count
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index {shard_index} not in [0, shard_count={shard_count})")
    return shard_index, shard_count


def shard(examples: Sequence[Any], shard_index: int, shard_count: int) -> list[Any]:
    """This host's share: every `shard_count`-th example from `shard_index` (disjoint; union = all)."""
    return list(examples[shard_index::shard_count])


def global_counts(local: np.ndarray) -> np.ndarray:
    """Sum a per-host count array over all JAX processes (one collective; every host must call it)."""
    if "jax" not in sys.modules:  # jax.distributed was never initialised: one process
        return local
    import jax

    if jax.process_count() == 1:
        return local
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(local)).sum(axis=0)


def sub_seed(*parts: int) -> int:
    """A well-spread 32-bit seed (grain shuffles round r with seed + r, so nearby seeds would share orders)."""
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


class EpochShuffled:
    """Grain data source: `rows` repeated forever, in a fresh seeded permutation each epoch.

    Used instead of `MapDataset.shuffle(seed).repeat()`: grain 0.2.18's index_shuffle cycle-walks a fixed-size
    Feistel domain, costing ~1 ms per element at 100 rows and ~7 ms at 10 (small buckets are common here).
    """

    def __init__(self, rows: Sequence[Any], seed: int):
        if not rows:
            raise ValueError("EpochShuffled needs at least one row")
        self.rows, self.seed = list(rows), seed
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return sys.maxsize

    def __getitem__(self, index: int) -> Any:
        epoch, j = divmod(int(index), len(self.rows))
        perm = self._perms.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))
            self._perms = {e: p for e, p in self._perms.items() if abs(e - epoch) <= 1} | {epoch: perm}
        return self.rows[perm[j]]


def bucketed_dataset(parts: Sequence[tuple[Sequence[pipeline.RenderedExample], float]], *, batch_size: int, seed: int,
                     buckets: Sequence[int], task_names: Sequence[str], pad_id: int, window: int = 64,
                     counts: np.ndarray | None = None) -> grain.MapDataset:
    """An infinite, seeded grain MapDataset of batches drawn from weighted `parts` (part = this host's rows).

    Each batch holds rows of one bucket. P(row from part c) = weight_c / sum(weights); within a part every row
    has the same rate. `counts` [parts, buckets] are the global row counts (default: `global_counts` of ours).
    Batches carry an extra "_part" int32[B] (-1 on padding rows) for per-part accounting; pop it before use.
    """
    buckets = tuple(buckets)
    index = {n: i for i, n in enumerate(task_names)}
    local = np.zeros((len(parts), len(buckets)), np.int64)
    by_bucket: list[list[list[tuple[int, pipeline.RenderedExample]]]] = [[[] for _ in parts] for _ in buckets]
    for c, (rows, _) in enumerate(parts):
        for r in rows:
            k = pipeline.bucket_of(len(r), buckets)
            by_bucket[k][c].append((c, r))
            local[c, k] += 1
    counts = global_counts(local) if counts is None else np.asarray(counts)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # [C, K]: fraction of part c in bucket k
    rate = np.asarray([w for _, w in parts], np.float64)[:, None] * share  # P(part c, bucket k), unnormalised
    if rate.sum() <= 0:
        raise ValueError("nothing to sample: every part is empty or has weight 0")

    def batch_fn(k: int):
        def fn(items: Sequence[tuple[int, pipeline.RenderedExample | None]]) -> dict[str, np.ndarray]:
            out = pipeline.collate([r for _, r in items], buckets[k], batch_size, pad_id, index)
            out["_part"] = np.asarray([c for c, _ in items], np.int32)
            return out
        return fn

    streams, bucket_weights = [], []
    for k in range(len(buckets)):
        if rate[:, k].sum() <= 0:
            continue
        live = [c for c in range(len(parts)) if rate[c, k] > 0 and by_bucket[k][c]]
        sources = [grain.MapDataset.source(EpochShuffled(by_bucket[k][c], sub_seed(seed, k, c))) for c in live]
        if not sources:  # this host has no row of bucket k: shorter rows fit, else weight-0 padding rows
            shorter = [item for kk in range(k) for rows in by_bucket[kk] for item in rows] or [(-1, None)]
            sources = [grain.MapDataset.source(EpochShuffled(shorter, sub_seed(seed, k, -1)))]
        ds = sources[0] if len(sources) == 1 else grain.MapDataset.mix(sources, weights=[rate[c, k] for c in live])
        streams.append(ds.batch(batch_size, batch_fn=batch_fn(k)))
        bucket_weights.append(rate[:, k].sum())
    mixed = streams[0] if len(streams) == 1 else grain.MapDataset.mix(streams, weights=bucket_weights)
    return grain.experimental.WindowShuffleMapDataset(mixed, window_size=window, seed=sub_seed(seed, -7))


class TrainStream:
    """Infinite, shuffled, bucketed training batches; resumable via JSON-serializable `get_state`/`set_state`."""

    def __init__(self, dataset: grain.MapDataset, task_names: Sequence[str], stats: pipeline.RenderStats | None = None):
        self.task_names = tuple(task_names)
        self.render_stats = stats
        self._it = dataset.to_iter_dataset(_READ).__iter__()

    def __iter__(self) -> TrainStream:
        return self

    def next_with_parts(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        batch = dict(next(self._it))
        return batch, batch.pop("_part")

    def __next__(self) -> dict[str, np.ndarray]:
        return self.next_with_parts()[0]

    def get_state(self) -> dict[str, Any]:
        return self._it.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self._it.set_state(state)


def train_batches(tok: Tokenizer, examples: Sequence[pipeline.Example], *, batch_size: int, max_len: int, seed: int,
                  buckets: Sequence[int] = pipeline.DEFAULT_BUCKETS, shard_index: int | None = None,
                  shard_count: int | None = None, head_fraction: float = 0.5) -> TrainStream:
    """Training batches over this host's shard of `examples` (rendered here); see `bucketed_dataset`."""
    shard_index, shard_count = resolve_shard(shard_index, shard_count)
    names = pipeline.task_table(examples)
    mine = shard(examples, shard_index, shard_count)
    rows, stats = pipeline.render_examples(tok, mine, max_len, head_fraction=head_fraction)
    ds = bucketed_dataset([(rows, 1.0)], batch_size=batch_size, seed=seed,
                          buckets=pipeline.bucket_lengths(buckets, max_len),
                          task_names=names, pad_id=tok.pad_id)
    return TrainStream(ds, names, stats)


@dataclasses.dataclass(frozen=True)
class MixtureComponent:
    """Named examples drawn with probability ∝ `weight`; their loss is scaled by `loss_weight`."""

    name: str
    examples: Sequence[pipeline.Example]
    weight: float
    loss_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.weight < 0 or self.loss_weight < 0:
            raise ValueError(f"component {self.name!r}: weight and loss_weight must be >= 0")


@dataclasses.dataclass(frozen=True)
class Stage:
    """Components mixed for `steps` batches (None: forever; only the last stage may say so)."""

    components: Sequence[MixtureComponent]
    steps: int | None


class MixtureIterator:
    """Training batches of all stages in order; `StopIteration` after the last stage's steps."""

    def __init__(self, tok: Tokenizer, stages: Sequence[Stage], *, batch_size: int, max_len: int, seed: int,
                 buckets: Sequence[int] = pipeline.DEFAULT_BUCKETS, shard_index: int | None = None,
                 shard_count: int | None = None, head_fraction: float = 0.5, window: int = 64):
        if not stages:
            raise ValueError("a mixture needs at least one stage")
        for i, st in enumerate(stages):
            if st.steps is None and i != len(stages) - 1:
                raise ValueError(f"stage {i}: steps=None (forever) is only allowed for the last stage")
            if st.steps is not None and st.steps <= 0:
                raise ValueError(f"stage {i}: steps must be a positive number of batches, got {st.steps}")
            if not st.components or sum(c.weight for c in st.components) <= 0:
                raise ValueError(f"stage {i}: needs components with a positive total weight")
        self.stages = tuple(stages)
        self.batch_size, self.seed, self.window, self.pad_id = batch_size, seed, window, tok.pad_id
        self.buckets = pipeline.bucket_lengths(buckets, max_len)
        shard_index, shard_count = resolve_shard(shard_index, shard_count)
        comps: dict[str, MixtureComponent] = {}
        for st in stages:
            for c in st.components:
                if comps.setdefault(c.name, c) != c:
                    raise ValueError(f"two different components are named {c.name!r}")
        self.task_names = pipeline.task_table([ex for c in comps.values() for ex in c.examples])
        self.render_stats = pipeline.RenderStats()
        self.rows: dict[str, list[pipeline.RenderedExample]] = {}
        for name, c in comps.items():
            rows, _ = pipeline.render_examples(tok, shard(c.examples, shard_index, shard_count), max_len,
                                               head_fraction=head_fraction, stats=self.render_stats)
            if c.loss_weight != 1.0:
                rows = [dataclasses.replace(r, weight=r.weight * c.loss_weight) for r in rows]
            self.rows[name] = rows
        self._seen = {name: [0, 0, 0] for name in comps}  # examples, real tokens, loss tokens
        # Global (all-host) rows per component and bucket, gathered once here so that stage switches and
        # restores need no collective; every host then interleaves buckets identically.
        local = np.asarray([np.bincount(np.asarray([pipeline.bucket_of(len(r), self.buckets) for r in self.rows[n]],
                                                   np.int64), minlength=len(self.buckets)) for n in comps], np.int64)
        self._counts = dict(zip(comps, global_counts(local)))
        self._start(0)

    def _start(self, stage: int, state: dict[str, Any] | None = None) -> None:
        self._stage, self._step = stage, 0
        comps = self.stages[stage].components
        parts = [(self.rows[c.name], c.weight) for c in comps]
        ds = bucketed_dataset(parts, batch_size=self.batch_size, seed=sub_seed(self.seed, stage),
                              buckets=self.buckets, task_names=self.task_names, pad_id=self.pad_id,
                              window=self.window, counts=np.stack([self._counts[c.name] for c in comps]))
        self._stream = TrainStream(ds, self.task_names)
        if state is not None:
            self._stream.set_state(state)

    @property
    def stage(self) -> int:
        """Index of the stage the next batch comes from."""
        return self._stage

    def __iter__(self) -> MixtureIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        steps = self.stages[self._stage].steps
        if steps is not None and self._step >= steps:
            if self._stage + 1 == len(self.stages):
                raise StopIteration
            self._start(self._stage + 1)
        batch, parts = self._stream.next_with_parts()
        self._step += 1
        names = [c.name for c in self.stages[self._stage].components]
        real = batch["segment_ids"].sum(axis=1)
        loss = batch["loss_mask"].sum(axis=1) + batch["is_classification"]
        for p, n, l in zip(parts, real, loss):
            if p >= 0:
                seen = self._seen[names[p]]
                seen[0], seen[1], seen[2] = seen[0] + 1, seen[1] + int(n), seen[2] + int(l)
        return batch

    def get_state(self) -> dict[str, Any]:
        return {"stage": self._stage, "step": self._step, "data": self._stream.get_state(),
                "seen": {k: list(v) for k, v in self._seen.items()}}

    def set_state(self, state: dict[str, Any]) -> None:
        self._start(int(state["stage"]), state["data"])
        self._step = int(state["step"])
        self._seen = {k: list(state["seen"].get(k, [0, 0, 0])) for k in self._seen}

    def token_counts(self) -> dict[str, dict[str, int]]:
        """Per component: rows/real tokens/loss tokens of this host's rendered data, and of the batches so far."""
        out = {}
        for name, rows in self.rows.items():
            ex, tok, loss = self._seen[name]
            out[name] = {"rows": len(rows), "tokens": int(sum(len(r) for r in rows)),
                         "loss_tokens": int(sum(float(r.loss_mask.sum()) + r.is_classification for r in rows)),
                         "seen_rows": ex, "seen_tokens": tok, "seen_loss_tokens": loss}
        return out

    def stats(self) -> dict[str, Any]:
        """Token counts per component, render stats (truncations, drops, escapes) per task, and the position."""
        return {"stage": self._stage, "step_in_stage": self._step, "token_counts": self.token_counts(),
                "render": self.render_stats.as_dict()}


def mixture_batches(tok: Tokenizer, stages: Sequence[Stage], batch_size: int, max_len: int, seed: int,
                    buckets: Sequence[int] = pipeline.DEFAULT_BUCKETS, shard_index: int | None = None,
                    shard_count: int | None = None, **kwargs: Any) -> MixtureIterator:
    """The resumable training stream of `stages` (kwargs: head_fraction, window)."""
    return MixtureIterator(tok, stages, batch_size=batch_size, max_len=max_len, seed=seed, buckets=buckets,
                           shard_index=shard_index, shard_count=shard_count, **kwargs)
