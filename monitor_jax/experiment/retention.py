"""Instruction-following retention of a trained monitor (claim C5): the log-likelihood of held-out ShareGPT
answers, scored like every other evaluation (from the cached lower-layer features, or the full forward: the
strategy's `features`), and a few greedy generation checks with the full model (a question with a short known
answer; passed when the answer contains an expected word)."""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import numpy as np

from monitor_jax.data import pipeline, tasks
from monitor_jax.eval import generate, scoring
from monitor_jax.train import step as step_lib

CHECKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("What is the capital of France?", ("paris",)),
    ("How many legs does a spider have?", ("8", "eight")),
    ("What colour is the sky on a clear day?", ("blue",)),
    ("Which planet do we live on?", ("earth",)),
    ("What is 12 plus 7?", ("19", "nineteen")),
    ("Translate 'thank you' into Spanish.", ("gracias",)),
    ("What do bees make?", ("honey",)),
    ("What is the opposite of 'hot'?", ("cold",)),
)


def if_examples(limit: int) -> list[pipeline.InstructionExample]:
    """`limit` held-out (validation) ShareGPT conversations, seed 0."""
    return tasks.instruction_examples("validation", limit=limit, seed=0)


def if_nll(shared: Any, config: Any, upper: Any, examples: Sequence[pipeline.InstructionExample]) -> np.ndarray:
    """Mean NLL per answer token of each conversation's assistant turns (input order, leaving out conversations
    that do not fit `data.max_len` at all: the same ones for every model), under `upper` (`shared.upper_with`:
    the upper stack on the shared lower-layer features, or the whole model; `strategy.py`)."""
    rendered, _ = pipeline.render_examples(shared.model.tokenizer, list(examples), int(config.data.max_len))
    rows = [dataclasses.replace(r, id=str(i)) for i, r in enumerate(rendered)]
    fn = jax.jit(lambda p, b, e: step_lib.if_loss(shared.upper_cfg, p, b, embeddings=e))
    total, count = np.zeros(len(rows)), np.zeros(len(rows))
    buckets = tuple(config.data.get("buckets") or pipeline.DEFAULT_BUCKETS)
    for batch in scoring.sorted_batches(rows, int(config.eval.batch_size), buckets, max_len=int(config.data.max_len)):
        emb = shared.features(batch)  # None: the full forward
        arrays = {k: batch[k] for k in ("tokens", "positions", "segment_ids", "loss_mask", "is_classification")}
        s, n = fn(upper, arrays, emb)
        real = batch["id"] != ""
        idx = batch["id"][real].astype(np.int64)
        total[idx], count[idx] = np.asarray(s)[real], np.asarray(n)[real]
    return total / np.maximum(count, 1)


def generation_checks(shared: Any, params: Any, checks: Sequence[tuple[str, Sequence[str]]] = CHECKS,
                      max_new_tokens: int = 32) -> list[dict]:
    """Greedy answers of the full model `params` to `checks`; each {"prompt", "answer", "passed"}."""
    gens = generate.generate_text(shared.model.cfg, params, shared.model.tokenizer, [q for q, _ in checks],
                                  generate.Sampling(max_new_tokens=max_new_tokens))
    return [{"prompt": q, "answer": g.text, "passed": any(w in (g.text or "").lower() for w in words)}
            for (q, words), g in zip(checks, gens)]
