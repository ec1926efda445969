"""K policies (questions) about the same inputs, sharing each input's KV cache: prefill once, score K suffixes.

When every template puts `{input}` before its question, a rendered prompt is
`[chat prefix + template head] + input + [question tail + assistant header]`. Templates whose token prefix
(everything before the input) is identical share one prefill of `prefix + input` (right-padded rows, per-row
lengths); each template's suffix is then written at slot P (the bucket length) with each row's own positions
(`len(prefix + input) + j`), so rows of different lengths run together, and its answer slot is scored like
`scoring.label_logprobs` does. The K suffix passes loop over one B-row cache (no K-fold cache copy in memory).

Rendering follows `pipeline.render_classification` exactly (same pieces, same label-word resolution). One
decision: an over-long input is cut once, to fit the longest suffix of its group, so every template sees the
same input; the pipeline cuts per template, so a truncated input can differ by a few tokens from the
pipeline's rendering for the templates with shorter suffixes. Templates that share their prefix with no other
template are scored as whole prompts by `scoring.score_examples` (logged).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from monitor_jax.data import pipeline
from monitor_jax.eval import scoring
from monitor_jax.model import transformer
from monitor_jax.model.tokenizer import Tokenizer

log = logging.getLogger(__name__)
_KEYS = ("logp_pos", "logp_neg", "score", "mass_outside")


@dataclasses.dataclass
class PolicyScores:
    """[N, K] arrays: input i scored under template k; `shared[k]`: template k used a shared prefix cache."""

    score: np.ndarray  # P(pos | {pos, neg})
    logp_pos: np.ndarray
    logp_neg: np.ndarray
    mass_outside: np.ndarray
    n_tokens: np.ndarray  # int [N, K]: prompt tokens (the answer slot excluded)
    truncated: np.ndarray  # bool [N, K]
    shared: tuple[bool, ...]


@dataclasses.dataclass(frozen=True)
class _Template:
    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    label_ids: tuple[int, int]


def _example(i: int, k: int, text: str, template: str, words: tuple[str, str], system: str | None):
    return pipeline.ClassificationExample(id=str(i), task=f"policy {k}", input=text, label=0, template=template,
                                          label_words=words, system=system)


def _split_template(tok: Tokenizer, k: int, template: str, words: tuple[str, str], system: str | None,
                    max_len: int) -> _Template:
    """The pipeline's token pieces of a template: rendered with an empty input, then cut at the input span."""
    r = pipeline.render_classification(tok, _example(0, k, "", template, words, system), max_len)
    start, end = r.input_span
    if r.answer_index == end:
        raise ValueError(f"template {k}: nothing follows the input, so no suffix predicts the answer")
    return _Template(tuple(r.tokens[:start].tolist()), tuple(r.tokens[end:r.answer_index].tolist()), r.label_ids)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _prefill(cfg: transformer.ModelConfig, params: Any, tokens: jax.Array, segment_ids: jax.Array,
             cache_len: int) -> transformer.Cache:
    """Runs `tokens` [B, P] into a fresh cache of `cache_len` slots; returns the cache."""
    cfg = scoring.inference_config(cfg)
    cache = transformer.init_cache(cfg, tokens.shape[0], cache_len)
    _, cache = transformer.Transformer(cfg).apply({"params": params}, tokens, segment_ids=segment_ids, cache=cache,
                                                  fresh_cache=True)
    return cache


@functools.partial(jax.jit, static_argnums=0)
def _suffix_logprobs(cfg: transformer.ModelConfig, params: Any, cache: transformer.Cache, tokens: jax.Array,
                     positions: jax.Array, segment_ids: jax.Array, last: jax.Array,
                     label_ids: jax.Array) -> dict[str, jax.Array]:
    """Writes one template's suffix [B, S] after the cached prefix and scores the slot after `last`."""
    cfg = scoring.inference_config(cfg)
    hidden, _ = transformer.Transformer(cfg).apply({"params": params}, tokens, positions, segment_ids, cache)
    h = hidden[jnp.arange(tokens.shape[0]), last]
    return scoring.label_head(params, h, label_ids)


def _score_shared(cfg: transformer.ModelConfig, params: Any, tok: Tokenizer, inputs: Sequence[str],
                  members: list[int], specs: list[_Template], templates: Sequence[str],
                  words: list[tuple[str, str]], system: str | None, *, batch_size: int, max_len: int,
                  buckets: Sequence[int], bar: Any) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """One prefix group: returns {key: [N, len(members)]}, prefix+input lengths [N], truncated [N]."""
    n, kk = len(inputs), len(members)
    suffix_lens = [len(specs[k].suffix) for k in members]
    longest = members[int(np.argmax(suffix_lens))]
    s_pad = max(suffix_lens)
    # Render with the longest-suffix template: the input is cut (if at all) so that every member fits max_len.
    rendered, _ = pipeline.render_examples(
        tok, [_example(i, longest, x, templates[longest], words[longest], system) for i, x in enumerate(inputs)],
        max_len)
    heads = [r.tokens[:r.input_span[1]] for r in rendered]
    lengths = np.asarray([len(h) for h in heads], np.int32)
    bucket_lens = pipeline.bucket_lengths(buckets, max_len)
    out = {key: np.full((n, kk), np.nan, np.float32) for key in _KEYS}
    order = sorted(range(n), key=lambda i: (lengths[i], i))
    for s in range(0, n, batch_size):  # consecutive length-sorted batches, as `scoring.sorted_batches`
        rows = order[s:s + batch_size]
        p = bucket_lens[pipeline.bucket_of(int(lengths[rows[-1]]), bucket_lens)]
        tokens = np.full((batch_size, p), tok.pad_id, np.int32)
        segs = np.zeros((batch_size, p), np.int32)
        for j, i in enumerate(rows):
            tokens[j, :lengths[i]] = heads[i]
            segs[j, :lengths[i]] = 1
        cache = _prefill(cfg, params, jnp.asarray(tokens), jnp.asarray(segs), p + s_pad)
        row_len = np.zeros(batch_size, np.int32)
        row_len[:len(rows)] = lengths[rows]
        pending = []
        for c, k in enumerate(members):
            suffix = np.asarray(specs[k].suffix, np.int32)
            sl = len(suffix)
            s_tok = np.full((batch_size, s_pad), tok.pad_id, np.int32)
            s_tok[:, :sl] = suffix
            s_seg = np.zeros((batch_size, s_pad), np.int32)
            s_seg[:len(rows), :sl] = 1
            s_pos = row_len[:, None] + np.arange(s_pad, dtype=np.int32)[None]
            res = _suffix_logprobs(cfg, params, cache, jnp.asarray(s_tok), jnp.asarray(s_pos), jnp.asarray(s_seg),
                                   jnp.full((batch_size,), sl - 1, jnp.int32),
                                   jnp.asarray(np.tile(specs[k].label_ids, (batch_size, 1)), jnp.int32))
            pending.append((c, res))
        for c, res in pending:
            for key in _KEYS:
                out[key][rows, c] = np.asarray(res[key])[:len(rows)]
        bar.update(len(rows))
    truncated = np.asarray([r.truncated for r in rendered], bool)
    return out, lengths, truncated


def score_policies(
    cfg: transformer.ModelConfig,
    params: Any,
    tok: Tokenizer,
    inputs: Sequence[str],
    templates: Sequence[str],
    label_words: tuple[str, str] | Sequence[tuple[str, str]] = ("Yes", "No"),
    *,
    system: str | None = None,
    batch_size: int = 8,
    max_len: int = 2048,
    buckets: Sequence[int] = pipeline.DEFAULT_BUCKETS,
    progress: bool = True,
) -> PolicyScores:
    """Scores every input under every template (K policies); `label_words`: one pair, or one pair per template.

    Templates with identical text before `{input}` (after chat rendering) share one prefill per input batch.
    """
    templates = list(templates)
    if not templates:
        raise ValueError("score_policies: no templates")
    if len(label_words) == 2 and all(isinstance(w, str) for w in label_words):
        words = [tuple(label_words)] * len(templates)
    else:
        words = [tuple(w) for w in label_words]
        if len(words) != len(templates):
            raise ValueError(f"score_policies: {len(words)} label-word pairs for {len(templates)} templates")
    params = jax.device_put(params)  # once: numpy params would be copied to the device on every call
    specs = [_split_template(tok, k, t, w, system, max_len) for k, (t, w) in enumerate(zip(templates, words))]
    by_prefix: dict[tuple[int, ...], list[int]] = collections.defaultdict(list)
    for k, spec in enumerate(specs):
        by_prefix[spec.prefix].append(k)
    # A lone template (K=1) runs the prefill + suffix path too; with K>1, a template sharing its prefix with no
    # other one is scored as a whole prompt (bucketed on its full length, the cheaper shape).
    alone = [m[0] for m in by_prefix.values() if len(m) == 1] if len(templates) > 1 else []
    if alone:
        log.info("templates %s share no text before {input} with another template: scoring them as whole prompts",
                 alone)
    n, kk = len(inputs), len(templates)
    out = {key: np.full((n, kk), np.nan, np.float32) for key in _KEYS}
    n_tokens = np.zeros((n, kk), np.int32)
    truncated = np.zeros((n, kk), bool)
    from tqdm.auto import tqdm

    shared_groups = [m for m in by_prefix.values() if m[0] not in alone]
    with tqdm(total=n * len(shared_groups), desc="shared-prefix scoring", unit="input",
              disable=not progress or not shared_groups) as bar:
        for members in shared_groups:
            res, lengths, trunc = _score_shared(cfg, params, tok, inputs, members, specs, templates, words, system,
                                                batch_size=batch_size, max_len=max_len, buckets=buckets, bar=bar)
            for c, k in enumerate(members):
                for key in _KEYS:
                    out[key][:, k] = res[key][:, c]
                n_tokens[:, k] = lengths + len(specs[k].suffix)
                truncated[:, k] = trunc
    for k in alone:
        full = scoring.score_examples(
            cfg, params, tok, [_example(i, k, x, templates[k], words[k], system) for i, x in enumerate(inputs)],
            batch_size=batch_size, max_len=max_len, buckets=buckets, progress=progress)
        for key in _KEYS:
            out[key][:, k] = getattr(full, key)
        n_tokens[:, k], truncated[:, k] = full.n_tokens, full.truncated
    for k in (k for k in range(kk) if k not in alone and n):  # score_examples warned for the others
        scoring.warn_mass_outside(np.full(n, f"policy {k}"), out["mass_outside"][:, k])
    return PolicyScores(n_tokens=n_tokens, truncated=truncated, shared=tuple(k not in alone for k in range(kk)), **out)
