"""Every task of the bundled suite through the real pipeline: answer slot and question survive truncation."""

import numpy as np
import pytest

from monitor_jax.data import pipeline, tasks
from monitor_jax.model.tokenizer import Tokenizer

MAX_LEN = 256  # small, so the long inputs (news, jailbreaks, agent transcripts) are truncated


@pytest.fixture(scope="module")
def tok(smollm2_gguf):
    return Tokenizer.from_gguf(smollm2_gguf)


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_answer_slot_and_question_survive_truncation(tok, name):
    task = tasks.get(name)
    for prompt in (task.prompts[0], task.prompts[-1]):
        exs = tasks.examples(task, "validation", prompt.name)
        exs = sorted(exs, key=lambda e: len(e.input))[-6:] + exs[:6]  # the longest and a few others
        rendered, stats = pipeline.render_examples(tok, exs, MAX_LEN)
        suffix = prompt.template.split("{input}")[1].strip()
        prefix = prompt.template.split("{input}")[0].strip()
        for r in rendered:
            text = tok.decode(r.tokens[: r.answer_index].tolist())
            assert suffix in text and prefix in text, (name, r.id)  # the question is never cut
        n = 0
        for batch in pipeline.eval_batches(rendered, 4, max_len=MAX_LEN):
            real = batch["weight"] > 0
            rows = np.flatnonzero(real)
            idx = batch["answer_index"][rows]
            assert (batch["tokens"][rows, idx] == batch["answer_id"][rows]).all()
            pos_or_neg = np.where(batch["label"][rows] == 1, 0, 1)
            assert (batch["label_ids"][rows, pos_or_neg] == batch["answer_id"][rows]).all()
            assert (batch["segment_ids"][rows, idx] == 1).all() and (batch["tokens"].shape[1] <= MAX_LEN)
            n += len(rows)
        assert n == len(exs)
    if task.domain in ("news", "jailbreak", "agent"):
        assert sum(stats.truncated.values()) > 0, "long-input domain was not truncated: the test lost its point"
