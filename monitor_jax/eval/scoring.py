"""Jitted scoring: log P of the label tokens at the answer slot, P(Yes) over {Yes, No}, mass outside them.

Batch convention (shared with the data pipeline and the losses): `answer_index[b]` is the slot of the answer
token in row b; the model's output at `answer_index - 1` predicts it, so whatever sits at `answer_index` (the
label token in training batches, padding when scoring) never influences the score.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from monitor_jax.model import transformer


@functools.partial(jax.jit, static_argnums=0)
def label_logprobs(
    cfg: transformer.ModelConfig,
    params: dict,
    tokens: jax.Array,
    segment_ids: jax.Array,
    answer_index: jax.Array,
    label_ids: jax.Array,
) -> dict[str, jax.Array]:
    """Scores one batch. label_ids: [2] = (positive word id, negative word id).

    Only the answer position goes through the LM head (one [D] x [V, D] product per row), so the full-vocabulary
    normaliser — and with it the probability mass outside the label words — costs almost nothing.
    Returns per-row `logp_pos`, `logp_neg`, `score` = P(pos | {pos, neg}) and `mass_outside` = 1 - P(pos) - P(neg).
    """
    hidden, _ = transformer.Transformer(cfg).apply({"params": params}, tokens, segment_ids=segment_ids)
    rows = jnp.arange(tokens.shape[0])
    h = hidden[rows, answer_index - 1]  # [B, D]
    logp = jax.nn.log_softmax(transformer.logits(params, h), axis=-1)  # [B, V] in fp32
    logp_pos, logp_neg = logp[:, label_ids[0]], logp[:, label_ids[1]]
    return {
        "logp_pos": logp_pos,
        "logp_neg": logp_neg,
        "score": jax.nn.sigmoid(logp_pos - logp_neg),
        "mass_outside": 1.0 - jnp.exp(logp_pos) - jnp.exp(logp_neg),
    }
