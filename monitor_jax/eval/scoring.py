"""Jitted, batched, length-bucketed scoring: log P of each row's label words at its answer slot.

Batch convention (shared with the data pipeline and the losses): `answer_index[b]` is the slot of the answer
token in row b; the model's output at `answer_index - 1` predicts it, so whatever sits at `answer_index` (the
label token in training batches, padding when scoring) never influences the score.

`score_examples` renders with `pipeline.render_examples`, batches length-sorted rows with `sorted_batches` (the
pipeline's batch contract via `pipeline.collate`; one [batch_size, bucket] shape per bucket, so one compile per
bucket actually used) and returns arrays aligned with the input order. With a `mesh`, rows are split over its
("data", "fsdp") axes; params replicated.

Decision: `pipeline.eval_batches` pads the last batch of *every* bucket with weight-0 rows; on a 256-example
sample of the suite (15 buckets used) that is 41 % padding. `sorted_batches` cuts the length-sorted rows into
consecutive batches, each padded to the bucket of its longest row, so only the final batch has padding rows:
17 % padding on the same sample, same shapes (bench/results/scoring.md).
Multi-policy scoring that shares one input's KV cache across K questions lives in `multi_policy.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from monitor_jax.core import sharding
from monitor_jax.data import pipeline
from monitor_jax.eval import packing
from monitor_jax.model import transformer
from monitor_jax.model.tokenizer import Tokenizer

log = logging.getLogger(__name__)

MASS_WARNING = 0.5  # warn when a task's mean probability mass outside its label words exceeds this


def inference_config(cfg: transformer.ModelConfig) -> transformer.ModelConfig:
    """`cfg` for forward-only use: no rematerialisation (it only slows a forward down)."""
    return cfg if cfg.remat == "none" else cfg.replace(remat="none")


def label_head(params: dict, h: jax.Array, label_ids: jax.Array) -> dict[str, jax.Array]:
    """Label statistics from final hidden states h [B, D] and per-row label ids [B, 2] (pos, neg).

    One [D] x [V, D] product per row gives the full-vocabulary log-normaliser; the label logits are gathered from
    the same row (computing only the two label rows + a separate logsumexp costs the same: bench/scoring.py).
    """
    logits = transformer.logits(params, h)  # [B, V], fp32
    lse = jax.nn.logsumexp(logits, axis=-1)
    ids = jnp.clip(label_ids, 0, logits.shape[-1] - 1)  # padding rows carry (-1, -1)
    lab = jnp.take_along_axis(logits, ids, axis=1) - lse[:, None]  # [B, 2]
    logp_pos, logp_neg = lab[:, 0], lab[:, 1]
    return {
        "logp_pos": logp_pos,
        "logp_neg": logp_neg,
        "score": jax.nn.sigmoid(logp_pos - logp_neg),
        "mass_outside": 1.0 - jnp.exp(logp_pos) - jnp.exp(logp_neg),
    }


@functools.partial(jax.jit, static_argnums=0)
def label_logprobs(
    cfg: transformer.ModelConfig,
    params: dict,
    tokens: jax.Array,
    segment_ids: jax.Array,
    answer_index: jax.Array,
    label_ids: jax.Array,
    embeddings: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Scores one batch. label_ids: [B, 2] per row (positive id, negative id), or [2] for every row.
    `embeddings` [B, T, D]: hidden states of a frozen lower stack that replace the token lookup (then `cfg` and
    `params` are the upper layers' and the head's: `transformer.split_params`).

    Only the answer position goes through the LM head. Returns per-row `logp_pos`, `logp_neg`,
    `score` = P(pos | {pos, neg}) and `mass_outside` = 1 - P(pos) - P(neg). Scoring never differentiates, so
    `cfg.remat` is ignored (XLA CPU runs a remat-wrapped forward ~2.7x slower: bench/results/scoring.md).
    """
    cfg = inference_config(cfg)
    hidden, _ = transformer.Transformer(cfg).apply({"params": params}, tokens, segment_ids=segment_ids,
                                                   embeddings=embeddings)
    b = tokens.shape[0]
    h = hidden[jnp.arange(b), answer_index - 1]  # [B, D]
    label_ids = jnp.broadcast_to(jnp.asarray(label_ids, jnp.int32), (b, 2))
    return label_head(params, h, label_ids)


@functools.partial(jax.jit, static_argnums=0)
def packed_label_logprobs(cfg: transformer.ModelConfig, params: dict, tokens: jax.Array, positions: jax.Array,
                          segment_ids: jax.Array, answer_index: jax.Array, label_ids: jax.Array) -> dict[str, jax.Array]:
    """`label_logprobs` of a packed batch (`packing.packed_batches`): per prompt [B, S] (unused slots: garbage,
    dropped by the caller)."""
    hidden, _ = transformer.Transformer(inference_config(cfg)).apply(
        {"params": params}, tokens, positions=positions, segment_ids=segment_ids)
    b, s = answer_index.shape
    h = hidden[jnp.arange(b)[:, None], jnp.maximum(answer_index - 1, 0)]  # [B, S, D]
    res = label_head(params, h.reshape(b * s, -1), label_ids.reshape(b * s, 2))
    return {k: v.reshape(b, s) for k, v in res.items()}


@dataclasses.dataclass
class ScoreResult:
    """Per-example arrays in the input order, plus the rendering stats (counts per task)."""

    ids: np.ndarray  # str [N]
    task: np.ndarray  # str [N]
    label: np.ndarray  # int [N]
    logp_pos: np.ndarray  # float32 [N]
    logp_neg: np.ndarray
    score: np.ndarray  # P(pos | {pos, neg})
    mass_outside: np.ndarray  # 1 - P(pos) - P(neg)
    n_tokens: np.ndarray  # int [N]: prompt tokens read by the model (the answer slot excluded)
    truncated: np.ndarray  # bool [N]
    stats: pipeline.RenderStats

    def __len__(self) -> int:
        return len(self.ids)

    def mean_mass_outside(self) -> dict[str, float]:
        """Mean mass outside the label words, per task."""
        return {t: float(self.mass_outside[self.task == t].mean()) for t in sorted(set(self.task.tolist()))}


def data_axes(mesh: Mesh) -> tuple[str, ...]:
    """The mesh axes that split the batch dimension: ("data", "fsdp"), those present."""
    return tuple(a for a in sharding.BATCH_AXES if a in mesh.axis_names)


def _put(x: np.ndarray, sharding: NamedSharding | None) -> jax.Array:
    """Host array -> device array; with a sharding, each process supplies only its addressable shards."""
    if sharding is None:
        return jnp.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _fetch(res: dict[str, jax.Array]) -> dict[str, np.ndarray]:
    """Host copies of one batch's per-row results; across hosts, one gather of all of them (a collective per
    batch, not per key)."""
    if all(x.is_fully_addressable for x in res.values()):
        return {k: np.asarray(v) for k, v in res.items()}
    from jax.experimental import multihost_utils

    names = list(res)
    rows = np.asarray(multihost_utils.process_allgather(jnp.stack([res[k] for k in names], axis=-1), tiled=True))
    return {k: rows[..., i] for i, k in enumerate(names)}


def sorted_batches(
    rendered: Sequence[pipeline.RenderedExample],
    batch_size: int,
    buckets: Sequence[int] = pipeline.DEFAULT_BUCKETS,
    *,
    max_len: int | None = None,
    task_names: Sequence[str] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Every row once, sorted by length, in consecutive [batch_size, bucket] batches (bucket of the batch's longest
    row); only the last batch has weight-0 padding rows. Batch keys as `pipeline.collate`."""
    bucket_lens = pipeline.bucket_lengths(buckets, max_len)
    index = {n: i for i, n in enumerate(task_names if task_names is not None else pipeline.task_table(rendered))}
    order = sorted(range(len(rendered)), key=lambda i: (len(rendered[i]), i))
    for s in range(0, len(order), batch_size):
        rows = [rendered[i] for i in order[s:s + batch_size]]
        length = bucket_lens[pipeline.bucket_of(len(rows[-1]), bucket_lens)]
        yield pipeline.collate(rows, length, batch_size, rows[0].pad_id, index)


def score_rendered(
    cfg: transformer.ModelConfig,
    params: Any,
    rendered: Sequence[pipeline.RenderedExample],
    *,
    batch_size: int = 8,
    max_len: int | None = None,
    buckets: Sequence[int] = pipeline.DEFAULT_BUCKETS,
    mesh: Mesh | None = None,
    progress: bool = True,
    add_features: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
    pack: bool = False,
) -> dict[str, np.ndarray]:
    """Scores tokenized classification rows; returns `logp_pos`, `logp_neg`, `score`, `mass_outside` [N] in order.

    Rows are length-sorted into `sorted_batches` (one compile per bucket); the host prepares batch i+1 while the
    device runs batch i. `add_features(batch)` returns the batch with "embeddings" [B, T, D] from a frozen lower
    stack (e.g. a cache of them, `train/features.py`); `cfg`/`params` are then the upper stack's. `pack`: short
    prompts share rows (`packing.packed_batches`; whole-model scoring only).
    """
    if any(not r.is_classification for r in rendered):
        raise ValueError("score_rendered: instruction-following rows have no answer slot to score")
    if pack and add_features is not None:
        raise ValueError("score_rendered: pack=True scores with the whole model; add_features rows are unpacked")
    n = len(rendered)
    out = {k: np.full(n, np.nan, np.float32) for k in ("logp_pos", "logp_neg", "score", "mass_outside")}
    if n == 0:
        return out
    axes: tuple[str, ...] = ()
    if mesh is not None:
        axes = data_axes(mesh)
        dp = math.prod(mesh.shape[a] for a in axes)
        if batch_size % dp:
            new = -(-batch_size // dp) * dp
            log.info("batch_size %d is not a multiple of the %d-way data split of the mesh: using %d", batch_size, dp, new)
            batch_size = new
        params = jax.device_put(params, NamedSharding(mesh, PartitionSpec()))
    else:  # numpy params (as loaded) would be copied to the device on every call
        params = jax.device_put(params)

    def put(x: np.ndarray) -> jax.Array:  # rows split over the mesh's batch axes
        return _put(x, None if mesh is None else NamedSharding(mesh, PartitionSpec(axes or None,
                                                                                     *[None] * (x.ndim - 1))))
    # Ids become input positions, so results map back to the input order whatever the batch order.
    rows = [dataclasses.replace(r, id=str(i)) for i, r in enumerate(rendered)]
    n_batches = -(-n // batch_size)
    from tqdm.auto import tqdm

    bar = tqdm(total=n_batches, desc="scoring", unit="batch", disable=not progress)
    pending: tuple[np.ndarray, dict[str, jax.Array]] | None = None

    def collect(item: tuple[np.ndarray, dict[str, jax.Array]]) -> None:
        ids, res = item
        real = ids.reshape(-1) != ""
        idx = ids.reshape(-1)[real].astype(np.int64)
        got = _fetch(res)
        for k in out:
            out[k][idx] = got[k].reshape(-1)[real]
        bar.update(1)

    if pack:
        batches = list(packing.packed_batches(rows, batch_size, buckets, max_len=max_len))
        bar.total = len(batches)
    for batch in batches if pack else sorted_batches(rows, batch_size, buckets, max_len=max_len):
        if pack:
            res = packed_label_logprobs(cfg, params, *(put(batch[k]) for k in (
                "tokens", "positions", "segment_ids", "answer_index", "label_ids")))
        else:
            emb = None if add_features is None else put(add_features(batch)["embeddings"])
            res = label_logprobs(cfg, params, put(batch["tokens"]), put(batch["segment_ids"]),
                                 put(batch["answer_index"]), put(batch["label_ids"]), emb)
        if pending is not None:
            collect(pending)
        pending = (batch["id"], res)
    if pending is not None:
        collect(pending)
    bar.close()
    return out


def warn_mass_outside(task: np.ndarray, mass_outside: np.ndarray, threshold: float = MASS_WARNING) -> list[str]:
    """Logs a warning for each task whose mean mass outside the label words exceeds `threshold`; returns them."""
    flagged = []
    for t in sorted(set(task.tolist())):
        m = float(np.mean(mass_outside[task == t]))
        if m > threshold:
            log.warning("task %r: mean probability mass outside the label words is %.2f (> %.2f): the model "
                        "mostly wants to answer something else; check the label words and the prompt", t, m, threshold)
            flagged.append(t)
    return flagged


def score_examples(
    cfg: transformer.ModelConfig,
    params: Any,
    tok: Tokenizer,
    examples: Sequence[pipeline.ClassificationExample],
    *,
    batch_size: int = 8,
    max_len: int = 2048,
    buckets: Sequence[int] = pipeline.DEFAULT_BUCKETS,
    mesh: Mesh | None = None,
    progress: bool = True,
    pack: bool = False,
) -> ScoreResult:
    """Renders (chat template, truncation), batches by length bucket (`pack`: short prompts share rows), scores;
    results in the input order."""
    rendered, stats = pipeline.render_examples(tok, examples, max_len)
    res = score_rendered(cfg, params, rendered, batch_size=batch_size, max_len=max_len, buckets=buckets, mesh=mesh,
                         progress=progress, pack=pack)
    result = ScoreResult(
        ids=np.asarray([r.id for r in rendered], dtype=str),
        task=np.asarray([r.task for r in rendered], dtype=str),
        label=np.asarray([r.label for r in rendered], np.int32),
        n_tokens=np.asarray([r.answer_index for r in rendered], np.int32),
        truncated=np.asarray([r.truncated for r in rendered], bool),
        stats=stats,
        **res,
    )
    if len(result):
        warn_mass_outside(result.task, result.mass_outside)
    return result


def question_prompt(question: str) -> str:
    """The prompt template a bare question builds (`score --question`): the question, a blank line, the input."""
    return f"{question}\n\n{{input}}"


def score_texts(
    model: Any,
    prompt: str,
    texts: Sequence[str],
    *,
    label_words: tuple[str, str] = ("Yes", "No"),
    system: str | None = None,
    ids: Sequence[str] | None = None,
    labels: Sequence[int] | None = None,
    task: str = "input",
    **kwargs: Any,
) -> ScoreResult:
    """P(label word 0) for each untrusted text inside `prompt` (a template with `{input}` exactly once), scored
    through the pipeline's one renderer (control-token text escaped, long inputs cut in the middle, length
    buckets). `model` is a `registry.LoadedModel` (cfg, params, tokenizer); `kwargs` go to `score_examples`."""
    if not isinstance(prompt, str) or prompt.count("{input}") != 1:
        raise ValueError(f"the prompt must contain {{input}} exactly once, got {prompt!r}")
    ids = [f"{task}:{i}" for i in range(len(texts))] if ids is None else list(ids)
    labels = [0] * len(texts) if labels is None else list(labels)
    examples = [pipeline.ClassificationExample(id=i, task=task, input=t, label=int(y), template=prompt,
                                               label_words=tuple(label_words), system=system)
                for i, t, y in zip(ids, texts, labels, strict=True)]
    return score_examples(model.cfg, model.params, model.tokenizer, examples, **kwargs)
