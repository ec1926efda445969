"""Jitted, batched KV-cache sampler: prefill right-padded prompts, then decode one token per row per step.

One `lax.while_loop` per batch with static shapes [B, prompt bucket + max_new_tokens]: greedy (temperature 0),
temperature and top-p (nucleus) sampling, stop tokens, per-row lengths and positions (rows of different lengths
decode together: each row's padding slots are invalid in the cache and its positions continue from its own
length). The loop exits as soon as every row has stopped.

Decisions:
- Randomness is per prompt, not per batch: prompt i of a call samples with `fold_in(fold_in(key(seed), i), step)`,
  so a prompt's sample does not depend on which batch or batch size it landed in.
- Prompts are length-sorted into buckets (`pipeline.DEFAULT_BUCKETS`, one compile per bucket and
  `max_new_tokens`), results come back in input order.
- A stop token ends its row and is not part of the returned tokens (`finish="stop"`); a row that hits
  `max_new_tokens` ends with `finish="length"`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from monitor_jax.data import pipeline
from monitor_jax.eval.scoring import inference_config
from monitor_jax.model import transformer
from monitor_jax.model.tokenizer import Tokenizer


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How to pick tokens: `temperature` 0 is greedy; `top_p` < 1 keeps the smallest set of tokens whose
    probability reaches top_p."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclasses.dataclass
class Generation:
    """One prompt's continuation: new token ids (stop token excluded), why it ended, and its text when decoded."""

    tokens: np.ndarray
    finish: str  # "stop" | "length"
    prompt_tokens: int
    text: str | None = None


def sample_logits(logits: jax.Array, keys: jax.Array, temperature: float, top_p: float) -> jax.Array:
    """Next token ids [B] from fp32 logits [B, V] with one PRNG key per row [B]."""
    if temperature == 0.0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    scaled = logits / temperature
    if top_p < 1.0:
        desc = jnp.sort(scaled, axis=-1)[:, ::-1]
        probs = jax.nn.softmax(desc, axis=-1)
        before = jnp.cumsum(probs, axis=-1) - probs  # mass strictly above each sorted token
        n_keep = jnp.maximum(jnp.sum(before < top_p, axis=-1), 1)
        threshold = jnp.take_along_axis(desc, (n_keep - 1)[:, None], axis=-1)
        scaled = jnp.where(scaled < threshold, -jnp.inf, scaled)
    return jax.vmap(jax.random.categorical)(keys, scaled).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("cfg", "max_new", "temperature", "top_p", "stop_ids", "pad_id", "in_place"))
def generate_batch(cfg: transformer.ModelConfig, params: Any, tokens: jax.Array, lengths: jax.Array,
                   row_keys: jax.Array, *, max_new: int, temperature: float, top_p: float,
                   stop_ids: tuple[int, ...], pad_id: int, in_place: bool = True) -> tuple[jax.Array, jax.Array]:
    """Continuations of right-padded prompts tokens [B, P] (row lengths [B]); `in_place`: each decode step writes
    the cache in place per layer (`Transformer(in_place=True)`; False: the scan's copied slices, the old path).

    Rows of length 0 are filler: they stop at once. Returns (new tokens [B, max_new], padded with `pad_id` after a row stops; number of new tokens per row [B],
    counting its stop token).
    """
    b, p = tokens.shape
    model = transformer.Transformer(cfg)
    stops = jnp.asarray(stop_ids if stop_ids else (-1,), jnp.int32)
    cache = transformer.init_cache(cfg, b, p + max_new)
    slots = jnp.arange(p, dtype=jnp.int32)[None, :]
    seg = (slots < lengths[:, None]).astype(jnp.int32)
    hidden, cache = model.apply({"params": params}, tokens, jnp.broadcast_to(slots, (b, p)), seg, cache=cache,
                                fresh_cache=True)
    last = jnp.take_along_axis(hidden, jnp.maximum(lengths - 1, 0)[:, None, None], axis=1)[:, 0]

    def pick(h: jax.Array, step: jax.Array) -> jax.Array:
        keys = jax.vmap(jax.random.fold_in, (0, None))(row_keys, step)
        return sample_logits(transformer.logits(params, h), keys, temperature, top_p)

    first = pick(last, jnp.int32(0))
    out = jnp.full((b, max_new), pad_id, jnp.int32).at[:, 0].set(first)
    done = jnp.isin(first, stops) | (lengths == 0)  # length-0 rows are batch filler
    count = jnp.ones((b,), jnp.int32)

    def cond(state):
        step, _, _, _, done, _ = state
        return (step < max_new) & ~jnp.all(done)

    def body(state):
        step, cache, prev, out, done, count = state
        pos = (lengths + step - 1)[:, None]
        h, cache = model.apply({"params": params}, prev[:, None], pos, jnp.ones((b, 1), jnp.int32), cache=cache,
                               in_place=in_place)
        nxt = pick(h[:, 0], step)
        out = out.at[:, step].set(jnp.where(done, pad_id, nxt))
        count = count + (~done).astype(jnp.int32)
        done = done | jnp.isin(nxt, stops)
        return step + 1, cache, nxt, out, done, count

    state = (jnp.int32(1), cache, first, out, done, count)
    _, _, _, out, _, count = jax.lax.while_loop(cond, body, state)
    return out, count


def generate_ids(
    cfg: transformer.ModelConfig,
    params: Any,
    prompts: Sequence[Sequence[int]],
    sampling: Sampling = Sampling(),
    *,
    stop_ids: Sequence[int] = (),
    pad_id: int = 0,
    batch_size: int = 8,
    buckets: Sequence[int] = pipeline.DEFAULT_BUCKETS,
    progress: bool = True,
    in_place: bool = True,
) -> list[Generation]:
    """Continuations of token-id prompts, in input order (see the module docstring for batching and seeds);
    `in_place`: `generate_batch`'s cache update (False: the old copied slices, for the bench's before/after)."""
    if any(len(p) == 0 for p in prompts):
        raise ValueError("generate: every prompt needs at least one token")
    cfg = inference_config(cfg)
    params = jax.device_put(params)
    bucket_lens = pipeline.bucket_lengths(buckets, max(max(map(len, prompts), default=1), max(buckets)))
    base = jax.random.key(sampling.seed)
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    results: list[Generation | None] = [None] * len(prompts)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(prompts), desc="generating", unit="prompt", disable=not progress)
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        width = bucket_lens[pipeline.bucket_of(len(prompts[idx[-1]]), bucket_lens)]
        tokens = np.full((batch_size, width), pad_id, np.int32)
        lengths = np.zeros((batch_size,), np.int32)  # filler rows: length 0, output dropped
        for r, i in enumerate(idx):
            tokens[r, : len(prompts[i])] = prompts[i]
            lengths[r] = len(prompts[i])
        keys = jax.vmap(jax.random.fold_in, (None, 0))(base, jnp.asarray(idx + [0] * (batch_size - len(idx))))
        out, count = generate_batch(cfg, params, jnp.asarray(tokens), jnp.asarray(lengths), keys,
                                    max_new=sampling.max_new_tokens, temperature=float(sampling.temperature),
                                    top_p=float(sampling.top_p), stop_ids=tuple(int(t) for t in stop_ids),
                                    pad_id=int(pad_id), in_place=bool(in_place))
        out, count = np.asarray(out), np.asarray(count)
        for r, i in enumerate(idx):
            new = out[r, : count[r]]
            stopped = len(new) > 0 and int(new[-1]) in stop_ids
            results[i] = Generation(tokens=new[:-1] if stopped else new, finish="stop" if stopped else "length",
                                    prompt_tokens=len(prompts[i]))
        bar.update(len(idx))
    bar.close()
    return results  # type: ignore[return-value]


def chat_prompt_ids(tok: Tokenizer, messages: Sequence[dict], *, system: str | None = None) -> list[int]:
    """Token ids of a chat ending in a fresh assistant header (the model's turn). Every message's content is
    untrusted text through the pipeline's renderer: control-token text in it never becomes a turn boundary."""
    msgs = [{"role": "system", "content": system}, *messages] if system is not None else list(messages)
    slotted = [{**m, "content": pipeline.slot(i)} for i, m in enumerate(msgs)]
    return pipeline.encode_chat(tok, slotted, [str(m["content"]) for m in msgs]).ids


def generate_text(
    cfg: transformer.ModelConfig,
    params: Any,
    tok: Tokenizer,
    prompts: Sequence[str | Sequence[dict]],
    sampling: Sampling = Sampling(),
    *,
    chat: bool = True,
    system: str | None = None,
    **kwargs: Any,
) -> list[Generation]:
    """Continuations of text prompts: each a user message (or a list of chat messages) rendered with the chat
    template (`chat=True`), or raw text continued as is. Stops at the tokenizer's end-of-turn tokens."""
    ids = []
    for p in prompts:
        if not chat:
            raw = p if isinstance(p, str) else "".join(m["content"] for m in p)
            ids.append(pipeline.encode_untrusted(tok, raw)[0])
        else:
            msgs = [{"role": "user", "content": p}] if isinstance(p, str) else p
            ids.append(chat_prompt_ids(tok, msgs, system=system))
    gens = generate_ids(cfg, params, ids, sampling, stop_ids=tok.stop_ids, pad_id=tok.pad_id, **kwargs)
    for g in gens:
        g.text = tok.decode(g.tokens, skip_special_tokens=True)
    return gens
