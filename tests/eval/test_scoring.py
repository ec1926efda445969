"""Batched, bucketed scoring equals scoring each example alone; padding, per-row label words, sharding."""

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from monitor_jax.data import pipeline
from monitor_jax.eval import packing, scoring
from monitor_jax.model import transformer

TEMPLATE = "Classify the text.\n<text>\n{input}\n</text>\nAnswer with one word."
WORDS = "cat dog house tree river blue green small quick sun moon road car book hand water".split()
TASK_WORDS = {"yesno": ("Yes", "No"), "truefalse": ("True", "False")}
N_WORDS = [2, 2, 2, 2, 7, 7, 7, 7, 19, 19, 19, 19]  # 3 distinct lengths: 3 reference compiles


@pytest.fixture(scope="module")
def examples():
    rng = np.random.default_rng(0)
    out = []
    for i, n in enumerate(N_WORDS):
        task = "yesno" if i % 2 else "truefalse"  # each length has rows of both tasks: mixed batches
        out.append(pipeline.ClassificationExample(
            id=f"ex{i}", task=task, input=" ".join(rng.choice(WORDS, n)), label=int(rng.integers(2)),
            template=TEMPLATE, label_words=TASK_WORDS[task]))
    return out


@pytest.fixture(scope="module")
def buckets(model, examples):
    rendered, _ = pipeline.render_examples(model[2], examples, 2048)
    lengths = sorted({len(r) for r in rendered})
    assert lengths[1] <= 64 < lengths[-1] <= 128  # two buckets, both used (test_multi_policy.py shares the shapes)
    return (64, 128)


@functools.partial(jax.jit, static_argnums=0)
def _full_logp(cfg, params, tokens):
    """Independent reference: full-vocabulary log-softmax after the last token of an unpadded batch of one."""
    hidden, _ = transformer.Transformer(cfg).apply({"params": params}, tokens)
    return jax.nn.log_softmax(transformer.logits(params, hidden[:, -1]), axis=-1)[0]


@pytest.fixture(scope="module")
def reference(model, examples):
    cfg, params, tok = model
    rendered, _ = pipeline.render_examples(tok, examples, 2048)
    out = {k: [] for k in ("logp_pos", "logp_neg")}
    for r in rendered:
        logp = np.asarray(_full_logp(cfg, params, jnp.asarray(r.tokens[None, :r.answer_index])))
        out["logp_pos"].append(logp[r.label_ids[0]])
        out["logp_neg"].append(logp[r.label_ids[1]])
    out = {k: np.asarray(v) for k, v in out.items()}
    out["score"] = 1 / (1 + np.exp(out["logp_neg"] - out["logp_pos"]))
    out["mass_outside"] = 1 - np.exp(out["logp_pos"]) - np.exp(out["logp_neg"])
    out["label_ids"] = np.asarray([r.label_ids for r in rendered])
    return out


def assert_matches(res, ref, order, atol=1e-5):
    for k in ("logp_pos", "logp_neg", "score", "mass_outside"):
        np.testing.assert_allclose(getattr(res, k) if hasattr(res, k) else res[k], ref[k][order], atol=atol, err_msg=k)


def test_reference_is_sensitive(reference):
    """The sharpened tiny model separates examples and label words, so the equalities below can fail."""
    log_odds = reference["logp_pos"] - reference["logp_neg"]
    assert np.ptp(log_odds) > 0.5 and np.ptp(reference["logp_pos"]) > 0.5
    assert np.min(np.abs(log_odds)) > 1e-3


@pytest.mark.parametrize("batch_size,seed", [(3, 0), (3, 1), (4, 2)])
def test_batched_bucketed_equals_each_example_alone(model, examples, buckets, reference, batch_size, seed):
    cfg, params, tok = model
    order = np.random.default_rng(seed).permutation(len(examples))
    shuffled = [examples[i] for i in order]
    res = scoring.score_examples(cfg, params, tok, shuffled, batch_size=batch_size, buckets=buckets, progress=False)
    assert list(res.ids) == [ex.id for ex in shuffled]
    assert list(res.task) == [ex.task for ex in shuffled]
    assert list(res.label) == [ex.label for ex in shuffled]
    assert_matches(res, reference, order)
    assert not res.truncated.any()
    assert res.stats.examples == {"yesno": 6, "truefalse": 6}


def test_sorted_batches_pad_only_the_last_batch(model, examples, buckets):
    rendered, _ = pipeline.render_examples(model[2], examples, 2048)
    batches = list(scoring.sorted_batches(rendered, 5, buckets))
    assert [b["tokens"].shape for b in batches] == [(5, buckets[0]), (5, buckets[1]), (5, buckets[1])]
    assert [int((b["weight"] > 0).sum()) for b in batches] == [5, 5, 2]
    ids = [i for b in batches for i in b["id"] if i]
    assert sorted(ids) == sorted(ex.id for ex in examples)
    lengths = [int(b["segment_ids"][j].sum()) for b in batches for j in range(5) if b["id"][j]]
    assert lengths == sorted(lengths)
    assert set(batches[0].keys()) == set(next(pipeline.eval_batches(rendered, 5, buckets)).keys())


def test_padding_rows_and_slots_never_change_real_rows(model, examples, buckets):
    cfg, params, tok = model
    rendered, _ = pipeline.render_examples(tok, examples[:5], 2048)  # 5 rows: a padded last batch
    batch = list(scoring.sorted_batches(rendered, 4, buckets))[-1]
    real = batch["weight"] > 0
    assert 0 < real.sum() < 4

    def run(b):
        return {k: np.asarray(v) for k, v in scoring.label_logprobs(
            cfg, params, b["tokens"], b["segment_ids"], b["answer_index"], b["label_ids"]).items()}

    base = run(batch)
    rng = np.random.default_rng(0)
    noisy = {k: np.array(v) for k, v in batch.items()}
    pad_slots = noisy["segment_ids"] == 0
    noisy["tokens"][pad_slots] = rng.integers(0, cfg.vocab_size, pad_slots.sum())  # garbage everywhere unread
    noisy["tokens"][~real] = rng.integers(0, cfg.vocab_size, noisy["tokens"][~real].shape)
    noisy["segment_ids"][~real] = 1
    noisy["answer_index"][~real] = 7
    noisy["label_ids"][~real] = (11, 12)
    changed = run(noisy)
    for k in base:
        np.testing.assert_allclose(changed[k][real], base[k][real], atol=1e-6, err_msg=k)


def test_per_row_label_ids(model, examples, buckets, reference):
    cfg, params, tok = model
    rendered, _ = pipeline.render_examples(tok, examples[:4], 2048)
    batch = next(scoring.sorted_batches(rendered, 4, buckets))
    assert len({tuple(x) for x in batch["label_ids"]}) == 2  # both tasks' words in one batch
    args = (cfg, params, batch["tokens"], batch["segment_ids"], batch["answer_index"])
    out = {k: np.asarray(v) for k, v in scoring.label_logprobs(*args, batch["label_ids"]).items()}
    idx = batch["id"].astype(object)
    order = [int(i[2:]) for i in idx]
    np.testing.assert_allclose(out["logp_pos"], reference["logp_pos"][order], atol=1e-5)
    swapped = {k: np.asarray(v) for k, v in scoring.label_logprobs(*args, batch["label_ids"][:, ::-1]).items()}
    np.testing.assert_allclose(swapped["logp_pos"], out["logp_neg"], atol=1e-6)
    np.testing.assert_allclose(swapped["score"], 1 - out["score"], atol=1e-6)
    # (A single [2] pair broadcast to every row is what `monitor-jax score` passes: tests/test_main.py.)


def test_sharded_equals_unsharded(model, examples, buckets, reference):
    cfg, params, tok = model
    assert len(jax.devices()) == 8, "tests/conftest.py sets 8 host devices"
    mesh = Mesh(np.asarray(jax.devices()).reshape(2, 2, 2), ("data", "fsdp", "tensor"))
    assert scoring.data_axes(mesh) == ("data", "fsdp")
    res = scoring.score_examples(cfg, params, tok, examples[:8], batch_size=3, buckets=buckets, mesh=mesh,
                                 progress=False)  # 3 rows -> 4 (the 4-way data split); one bucket: one compile
    assert_matches(res, reference, np.arange(8))


@pytest.mark.parametrize("batch_size,seed", [(2, 0), (3, 1)])
def test_packed_equals_each_example_alone(model, examples, buckets, reference, batch_size, seed):
    """Short prompts packed into shared rows (segment ids, restarting positions) score as they do alone."""
    cfg, params, tok = model
    order = np.random.default_rng(seed).permutation(len(examples))
    shuffled = [examples[i] for i in order]
    res = scoring.score_examples(cfg, params, tok, shuffled, batch_size=batch_size, buckets=buckets, progress=False,
                                 pack=True)
    assert list(res.ids) == [ex.id for ex in shuffled]
    assert_matches(res, reference, order)


def test_packed_batches_hold_every_prompt_once_in_fewer_rows(model, examples, buckets):
    rendered, _ = pipeline.render_examples(model[2], examples, 2048)
    batches = list(packing.packed_batches(rendered, 2, buckets))
    ids = [i for b in batches for i in b["id"].reshape(-1) if i]
    assert sorted(ids) == sorted(ex.id for ex in examples)
    assert len(batches) < len(list(scoring.sorted_batches(rendered, 2, buckets)))
    assert max(int((b["id"] != "").sum(axis=1).max()) for b in batches) > 1  # some row holds several prompts
    by_id = {r.id: r for r in rendered}
    for b in batches:
        assert b["tokens"].shape[1] in buckets and b["answer_index"].shape[1] == packing.MAX_SEGMENTS
        for i, j in zip(*np.nonzero(b["id"] != "")):
            r, end = by_id[b["id"][i, j]], b["answer_index"][i, j]
            span = slice(end - r.answer_index, end)
            np.testing.assert_array_equal(b["tokens"][i, span], r.tokens[:r.answer_index])
            np.testing.assert_array_equal(b["positions"][i, span], np.arange(r.answer_index))
            assert (b["segment_ids"][i, span] == j + 1).all()


def test_packed_sharded_equals_unsharded(model, examples, buckets, reference):
    cfg, params, tok = model
    mesh = Mesh(np.asarray(jax.devices()).reshape(2, 2, 2), ("data", "fsdp", "tensor"))
    res = scoring.score_examples(cfg, params, tok, examples, batch_size=4, buckets=buckets, mesh=mesh,
                                 progress=False, pack=True)
    assert_matches(res, reference, np.arange(len(examples)))


def test_truncation_counts_and_mass_warning(model, examples, buckets, caplog):
    cfg, params, tok = model
    with caplog.at_level(logging.WARNING, logger="monitor_jax.eval.scoring"):
        res = scoring.score_examples(cfg, params, tok, examples, batch_size=4, max_len=buckets[0], buckets=buckets,
                                     progress=False)
    assert res.truncated.any() and not res.truncated.all()
    assert (res.n_tokens <= buckets[0] - 1).all()
    assert res.stats.truncated["yesno"] + res.stats.truncated["truefalse"] == res.truncated.sum()
    # Random weights put almost no mass on the label words: both tasks are flagged by name.
    assert set(res.mean_mass_outside()) == {"yesno", "truefalse"}
    assert "task 'yesno'" in caplog.text and "task 'truefalse'" in caplog.text


def test_warn_mass_outside_threshold(caplog):
    task = np.asarray(["a", "a", "b", "b"])
    with caplog.at_level(logging.WARNING, logger="monitor_jax.eval.scoring"):
        flagged = scoring.warn_mass_outside(task, np.asarray([0.9, 0.7, 0.1, 0.6]))
    assert flagged == ["a"] and "task 'a'" in caplog.text and "task 'b'" not in caplog.text


def test_instruction_rows_are_refused(model):
    cfg, params, tok = model
    ex = pipeline.InstructionExample(id="i", source="if", messages=({"role": "user", "content": "hi"},
                                                                     {"role": "assistant", "content": "hello"}))
    rendered, _ = pipeline.render_examples(tok, [ex], 64)
    with pytest.raises(ValueError, match="instruction-following"):
        scoring.score_rendered(cfg, params, rendered, progress=False)
