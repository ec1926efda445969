"""Pure losses (1-token answer CE, instruction-following token CE) and the jitted train / eval steps.

Batch convention (`data/pipeline.py`): the output at `answer_index - 1` predicts the answer token at
`answer_index`; for IF rows the output at t-1 predicts token t wherever `loss_mask[t] = 1`. One forward per
micro-batch feeds both losses; the LM head runs on one position per classification row and, for IF rows, in
chunks of positions (skipped for chunks without IF targets).

Reduction (`LossSpec.reduction`, from `config.loss.reduction`), with row weight w = weight (x if_weight on IF rows):
- "example_mean": sum_r w_r * mean token loss of row r / sum_r w_r  — every example counts once;
- "token_mean":   sum_r w_r * token-loss sum of row r / sum_r w_r * n_tokens_r (a classification row is one
  token) — long IF answers swamp the label token: the "done badly" mixing of the paper, kept for comparison.
Gradient accumulation sums numerators, denominators and numerator gradients over micro-batches and divides
once, so k micro-batches equal one batch of the same rows. A step whose loss or grad norm is not finite leaves
the state as it was and reports it (`finite` = 0 in the metrics); the loop stops on it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from monitor_jax.core import sharding as shd
from monitor_jax.model import transformer
from monitor_jax.train.mode import TrainMode
from monitor_jax.train.state import TrainState, make_optimizer, make_schedule

Batch = dict[str, jax.Array]
KINDS = ("full_vocab", "two_way")
REDUCTIONS = ("example_mean", "token_mean")
DEFAULT_IF_CHUNK = 128
_TERMS = ("num", "den", "n_examples", "n_tokens", "n_cls", "n_correct", "cls_num", "cls_den", "if_num", "if_den")


def _compute_fields(config: Any) -> dict[str, Any]:
    m = config.get("model", None)
    return {} if m is None else {k: m.get(k) for k in ("dtype", "matmul_dtype", "remat") if m.get(k, None) is not None}


def compute_config(config: Any, model_cfg: transformer.ModelConfig) -> transformer.ModelConfig:
    """`model_cfg` with the compute dtype, matmul operand dtype and remat policy of `config.model` (when set)."""
    kw = _compute_fields(config)
    return model_cfg.replace(**kw) if kw else model_cfg


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """The loss of a run: answer-token loss `kind`, `reduction`, the IF rows' weight, the IF head chunk."""

    kind: str = "full_vocab"
    reduction: str = "example_mean"
    if_weight: float = 1.0
    if_chunk: int = DEFAULT_IF_CHUNK

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"config.loss.kind must be one of {KINDS}, got {self.kind!r}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"config.loss.reduction must be one of {REDUCTIONS}, got {self.reduction!r}")

    @classmethod
    def from_config(cls, config: Any) -> "LossSpec":
        loss = config.loss
        return cls(kind=loss.kind, reduction=loss.reduction, if_weight=float(loss.if_weight))


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a step needs to know, built once from the config: the train mode and the loss."""

    mode: TrainMode
    loss: LossSpec
    compute: tuple[tuple[str, Any], ...] = ()  # ModelConfig fields of the compute (dtype, remat), from config.model

    @classmethod
    def from_config(cls, config: Any) -> "Spec":
        return cls(TrainMode.from_config(config), LossSpec.from_config(config),
                   tuple(sorted(_compute_fields(config).items())))

    def model(self, model_cfg: transformer.ModelConfig) -> transformer.ModelConfig:
        """`model_cfg` with this spec's compute dtype and remat policy."""
        return model_cfg.replace(**dict(self.compute)) if self.compute else model_cfg


def _apply(cfg: transformer.ModelConfig, params: Any, batch: Batch, embeddings: jax.Array | None = None) -> jax.Array:
    tokens = batch["tokens"] if embeddings is None else None
    hidden, _ = transformer.Transformer(cfg).apply({"params": params}, tokens, batch["positions"],
                                                    batch["segment_ids"], embeddings=embeddings)
    return hidden


def _answer_terms(head_params: Any, hidden: jax.Array, batch: Batch, kind: str) -> dict[str, jax.Array]:
    """Per-row answer NLL [B] (0 on non-classification rows) and whether the label rows rank correctly."""
    if kind not in KINDS:
        raise ValueError(f"loss kind must be one of {KINDS}, got {kind!r}")
    b = hidden.shape[0]
    h = hidden[jnp.arange(b), jnp.maximum(batch["answer_index"] - 1, 0)]  # [B, D]: only these go through the head
    label_ids = jnp.maximum(batch["label_ids"], 0)  # [B, 2]; -1 on non-classification rows
    positive = batch["label"] == 1
    if kind == "full_vocab":
        lg = transformer.logits(head_params, h)  # [B, V] fp32
        target = jnp.take_along_axis(lg, jnp.maximum(batch["answer_id"], 0)[:, None], axis=1)[:, 0]
        nll = jax.nn.logsumexp(lg, axis=-1) - target
        pair = jnp.take_along_axis(lg, label_ids, axis=1)
    else:
        rows = jnp.take(transformer.head_matrix(head_params), label_ids, axis=0)  # [B, 2, D]
        pair = jnp.einsum("bd,brd->br", h, rows.astype(h.dtype), preferred_element_type=jnp.float32)
        target = jnp.where(positive, pair[:, 0], pair[:, 1])
        nll = jax.nn.logsumexp(pair, axis=-1) - target
    is_cls = batch["is_classification"].astype(bool)
    correct = jnp.where(positive, pair[:, 0] > pair[:, 1], pair[:, 1] > pair[:, 0])
    return {"nll": jnp.where(is_cls, nll, 0.0), "correct": (correct & is_cls).astype(jnp.float32)}


def _if_terms(head_params: Any, hidden: jax.Array, batch: Batch,
              chunk: int = DEFAULT_IF_CHUNK) -> tuple[jax.Array, jax.Array]:
    """(token NLL sum [B], loss-token count [B]) over IF targets, the head computed `chunk` positions at a time."""
    b, t, d = hidden.shape
    is_cls = batch["is_classification"].astype(bool)
    mask = batch["loss_mask"][:, 1:].astype(jnp.float32) * (~is_cls)[:, None]
    targets = batch["tokens"][:, 1:]
    h = hidden[:, :-1]
    chunk = max(1, min(int(chunk), t - 1))
    n_chunks = -(-(t - 1) // chunk)
    pad = n_chunks * chunk - (t - 1)
    h = jnp.pad(h, ((0, 0), (0, pad), (0, 0))).reshape(b, n_chunks, chunk, d).swapaxes(0, 1)
    targets = jnp.pad(targets, ((0, 0), (0, pad))).reshape(b, n_chunks, chunk).swapaxes(0, 1)
    m = jnp.pad(mask, ((0, 0), (0, pad))).reshape(b, n_chunks, chunk).swapaxes(0, 1)

    @jax.checkpoint  # backward recomputes each chunk's logits instead of storing [B, T, V]
    def body(total, xs):
        hc, tc, mc = xs

        def nll_sum(_):
            lg = transformer.logits(head_params, hc)  # [B, C, V] fp32
            tgt = jnp.take_along_axis(lg, tc[..., None], axis=-1)[..., 0]
            return jnp.sum((jax.nn.logsumexp(lg, axis=-1) - tgt) * mc, axis=1)

        s = jax.lax.cond(jnp.any(mc > 0), nll_sum, lambda _: jnp.zeros((b,), jnp.float32), None)
        return total + s, None

    if n_chunks == 1:
        total, _ = body(jnp.zeros((b,), jnp.float32), (h[0], targets[0], m[0]))
    else:
        total, _ = jax.lax.scan(body, jnp.zeros((b,), jnp.float32), (h, targets, m))
    return total, jnp.sum(mask, axis=1)


def answer_loss(model_cfg: transformer.ModelConfig, params: Any, batch: Batch, kind: str) -> jax.Array:
    """Per-example answer-token NLL [B] ("full_vocab" or "two_way"); 0 on non-classification rows."""
    return _answer_terms(params, _apply(model_cfg, params, batch), batch, kind)["nll"]


def if_loss(model_cfg: transformer.ModelConfig, params: Any, batch: Batch,
            chunk: int = DEFAULT_IF_CHUNK, embeddings: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(sum of target-token NLL per row [B], number of loss tokens per row [B]) for IF rows (0 elsewhere).
    `embeddings`: a frozen lower stack's hidden states (then `model_cfg`/`params` are the upper stack's)."""
    return _if_terms(params, _apply(model_cfg, params, batch, embeddings=embeddings), batch, chunk)


def _terms(trainable: Any, frozen: Any, batch: Batch, spec: Spec, model_cfg: transformer.ModelConfig) -> dict:
    """Weighted numerator/denominator of the loss and the counts behind the metrics, for one micro-batch."""
    hidden, head = spec.mode.hidden_states(trainable, frozen, batch, model_cfg)
    ans = _answer_terms(head, hidden, batch, spec.loss.kind)
    if_sum, if_n = _if_terms(head, hidden, batch, spec.loss.if_chunk)
    is_cls = batch["is_classification"].astype(bool)
    row_sum = jnp.where(is_cls, ans["nll"], if_sum)
    row_n = jnp.where(is_cls, 1.0, if_n)
    w = batch["weight"].astype(jnp.float32) * jnp.where(is_cls, 1.0, spec.loss.if_weight)
    w = jnp.where(row_n > 0, w, 0.0)
    active = (w > 0).astype(jnp.float32)
    if spec.loss.reduction == "example_mean":
        num, den = jnp.sum(w * row_sum / jnp.maximum(row_n, 1.0)), jnp.sum(w)
    else:
        num, den = jnp.sum(w * row_sum), jnp.sum(w * row_n)
    cls_w, if_w = jnp.where(is_cls, w, 0.0), jnp.where(is_cls, 0.0, w)
    return {"num": num, "den": den, "n_examples": jnp.sum(active), "n_tokens": jnp.sum(active * row_n),
            "n_cls": jnp.sum(active * is_cls), "n_correct": jnp.sum(active * ans["correct"]),
            "cls_num": jnp.sum(cls_w * ans["nll"]), "cls_den": jnp.sum(cls_w),
            "if_num": jnp.sum(if_w * if_sum), "if_den": jnp.sum(if_w * if_n)}


def _ratio(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.where(b > 0, a / jnp.where(b > 0, b, 1.0), 0.0)


def _metrics(t: dict) -> dict[str, jax.Array]:
    return {"loss": _ratio(t["num"], t["den"]), "n_examples": t["n_examples"], "n_tokens": t["n_tokens"],
            "accuracy": _ratio(t["n_correct"], t["n_cls"]), "n_classification": t["n_cls"],
            "cls_loss": _ratio(t["cls_num"], t["cls_den"]), "if_loss": _ratio(t["if_num"], t["if_den"])}


def loss_fn(trainable: Any, frozen: Any, batch: Batch, spec: Spec,
            model_cfg: transformer.ModelConfig) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(loss, aux) for one [B, T] batch; aux: loss, n_examples, n_tokens, accuracy, n_classification,
    cls_loss (weighted mean answer NLL), if_loss (weighted token-mean IF NLL)."""
    aux = _metrics(_terms(trainable, frozen, batch, spec, spec.model(model_cfg)))
    return aux["loss"], aux


def loss_and_grads(trainable: Any, frozen: Any, batch: Batch, spec: Spec,
                   model_cfg: transformer.ModelConfig) -> tuple[jax.Array, Any, dict[str, jax.Array]]:
    """(loss, grads w.r.t. trainable, aux) for a micro-batched batch [K, B, ...]: sums over the K micro-batches,
    one division at the end."""
    model_cfg = spec.model(model_cfg)

    def micro(carry, mb):
        grads, terms = carry
        grad_fn = jax.grad(lambda p: (lambda t: (t["num"], t))(_terms(p, frozen, mb, spec, model_cfg)),
                           has_aux=True)
        g, t = grad_fn(trainable)
        return (jax.tree_util.tree_map(jnp.add, grads, g), jax.tree_util.tree_map(jnp.add, terms, t)), None

    zeros = (jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, jnp.float32), trainable),
             {k: jnp.zeros((), jnp.float32) for k in _TERMS})
    if batch["tokens"].shape[0] == 1:  # no accumulation: skip the scan (cheaper to compile)
        (grads, terms), _ = micro(zeros, jax.tree_util.tree_map(lambda x: x[0], batch))
    else:
        (grads, terms), _ = jax.lax.scan(micro, zeros, batch)
    den = terms["den"]
    grads = jax.tree_util.tree_map(lambda g, p: _ratio(g, den).astype(p.dtype), grads, trainable)
    aux = _metrics(terms)
    return aux["loss"], grads, aux


def stack_microbatches(batches: list[dict]) -> dict:
    """[B, ...] batches (same keys and shapes) -> one batch with a leading micro-batch axis [K, B, ...]."""
    if not batches:
        raise ValueError("stack_microbatches: no batches")
    keys = batches[0].keys()
    for i, b in enumerate(batches[1:], 1):
        if b.keys() != keys:
            raise ValueError(f"stack_microbatches: batch {i} has keys {sorted(b.keys())}, expected {sorted(keys)}")
    return {k: np.stack([np.asarray(b[k]) for b in batches]) for k in keys}


def _numeric_only(batch: dict) -> dict:
    # (`v.dtype` when it has one: np.asarray of a global jax.Array spanning other processes' devices fails)
    return {k: v for k, v in batch.items()
            if np.dtype(v.dtype if hasattr(v, "dtype") else np.asarray(v).dtype).kind in "biuf"}


def _dispatch(build: Callable[[bool], Callable], expect_k: int | None) -> Callable:
    """One jitted function per batch layout ([B, T] or [K, B, T]), each compiled once per shape."""
    cache: dict[bool, Callable] = {}

    def call(state: TrainState, batch: dict):
        batch = _numeric_only(batch)
        micro = np.ndim(batch["tokens"]) == 3
        if not micro and np.ndim(batch["tokens"]) != 2:
            raise ValueError(f"batch['tokens'] must be [B, T] or [K, B, T], got shape {np.shape(batch['tokens'])}")
        k = np.shape(batch["tokens"])[0] if micro else 1
        if expect_k is not None and k != expect_k:
            raise ValueError(f"config.optim.grad_accum={expect_k} but the batch has {k} micro-batches; stack "
                             f"{expect_k} batches with stack_microbatches")
        if micro not in cache:
            cache[micro] = build(micro)
        return cache[micro](state, batch)

    return call


def make_train_step(config: Any, model_cfg: transformer.ModelConfig, mesh: Mesh, state_shardings: TrainState,
                    compiler_options: dict[str, Any] | None = None
                    ) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """step(state, batch) -> (state, metrics), jitted once per batch layout with explicit shardings and the state
    donated. batch: [grad_accum, B, T] (`stack_microbatches`), or [B, T] when grad_accum == 1. Metrics: loss,
    grad_norm (before clipping), lr, n_examples, n_tokens, accuracy, n_classification, cls_loss, if_loss, finite.
    `compiler_options` go to `jax.jit` (XLA options for this program)."""
    spec = Spec.from_config(config)
    tx, schedule = make_optimizer(config.optim), make_schedule(config.optim)
    replicated = NamedSharding(mesh, P())

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        loss, grads, aux = loss_and_grads(state.trainable, state.frozen, batch, spec, model_cfg)
        grad_norm = optax.global_norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.trainable)
        trainable = optax.apply_updates(state.trainable, updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        def keep(new, old):  # a non-finite step leaves the state as it was (frozen params pass through untouched)
            return jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, old)

        new_state = state.replace(step=jnp.where(finite, state.step + 1, state.step),
                                  trainable=keep(trainable, state.trainable),
                                  opt_state=keep(opt_state, state.opt_state))
        metrics = {**aux, "grad_norm": grad_norm, "lr": jnp.asarray(schedule(state.step), jnp.float32),
                   "finite": finite.astype(jnp.float32)}
        return new_state, metrics

    def build(micro: bool):
        def fn(state, batch):
            if not micro:
                batch = jax.tree_util.tree_map(lambda x: x[None], batch)
            return train_step(state, batch)

        return jax.jit(fn, in_shardings=(state_shardings, shd.batch_sharding(mesh, micro)),
                       out_shardings=(state_shardings, replicated), donate_argnums=0,
                       compiler_options=compiler_options)

    return _dispatch(build, int(config.optim.get("grad_accum", 1) or 1))


def make_eval_loss(config: Any, model_cfg: transformer.ModelConfig, mesh: Mesh, state_shardings: TrainState,
                   compiler_options: dict[str, Any] | None = None) -> Callable[[TrainState, dict], dict]:
    """eval(state, batch) -> metrics of `loss_fn` (no update); batch [B, T] or [K, B, T] (summed like training)."""
    spec = Spec.from_config(config)
    cfg = spec.model(model_cfg)

    def eval_step(state: TrainState, batch: Batch) -> dict:
        def micro(terms, mb):
            t = _terms(state.trainable, state.frozen, mb, spec, cfg)
            return jax.tree_util.tree_map(jnp.add, terms, t), None

        zeros = {k: jnp.zeros((), jnp.float32) for k in _TERMS}
        if batch["tokens"].shape[0] == 1:
            terms, _ = micro(zeros, jax.tree_util.tree_map(lambda x: x[0], batch))
        else:
            terms, _ = jax.lax.scan(micro, zeros, batch)
        return _metrics(terms)

    def build(micro: bool):
        def fn(state, batch):
            if not micro:
                batch = jax.tree_util.tree_map(lambda x: x[None], batch)
            return eval_step(state, batch)

        return jax.jit(fn, in_shardings=(state_shardings, shd.batch_sharding(mesh, micro)),
                       out_shardings=NamedSharding(mesh, P()), compiler_options=compiler_options)

    return _dispatch(build, None)
