"""K policies sharing the input's KV cache score exactly like each whole prompt scored by `score_examples`."""

import logging

import numpy as np
import pytest

from monitor_jax.data import pipeline
from monitor_jax.eval import multi_policy, scoring

HEAD = "Here is a text to check.\n\n<text>\n{input}\n</text>\n\n"
TEMPLATES = [  # one head, five questions after the input (different lengths), mixed label words
    HEAD + "Does the text mention an animal, whether wild, domestic or imaginary, anywhere at all? Answer Yes or No.",
    HEAD + "Is it about water? Answer Yes or No.",
    HEAD + "Is the text long? Answer True or False.",
    HEAD + "Does it name a colour?",
    HEAD + "Is there a vehicle in the text? Answer Yes or No.",
]
WORDS = [("Yes", "No"), ("Yes", "No"), ("True", "False"), ("Yes", "No"), ("Yes", "No")]
VOCAB = "cat dog house tree river blue green small quick sun moon road car book hand water".split()
BUCKETS = (64, 128)
BATCH = 3  # with BUCKETS, the shapes test_scoring.py compiles too


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(1)
    return [" ".join(rng.choice(VOCAB, n)) for n in (3, 41, 9, 27, 14)]  # rows of different lengths, 2 buckets


def whole_prompts(model, inputs, k, max_len=2048):
    """Job 1 on the pipeline's rendering of each whole prompt under template k."""
    cfg, params, tok = model
    exs = [pipeline.ClassificationExample(id=str(i), task=f"t{k}", input=x, label=0, template=TEMPLATES[k],
                                          label_words=WORDS[k]) for i, x in enumerate(inputs)]
    return scoring.score_examples(cfg, params, tok, exs, batch_size=BATCH, max_len=max_len, buckets=BUCKETS,
                                  progress=False)


@pytest.fixture(scope="module")
def reference(model, inputs):
    return [whole_prompts(model, inputs, k) for k in range(len(TEMPLATES))]


def assert_policies_match(res, reference, ks):
    for c, k in enumerate(ks):
        for key in ("logp_pos", "logp_neg", "score", "mass_outside"):
            np.testing.assert_allclose(getattr(res, key)[:, c], getattr(reference[k], key), atol=1e-4,
                                       err_msg=f"template {k} {key}")
        np.testing.assert_array_equal(res.n_tokens[:, c], reference[k].n_tokens)


def test_reference_is_sensitive(reference):
    log_odds = np.stack([r.logp_pos - r.logp_neg for r in reference])
    assert np.ptp(log_odds, axis=1).min() > 0.1  # varies across inputs under every template
    assert np.ptp(log_odds, axis=0).min() > 0.1  # and across templates for every input


@pytest.mark.parametrize("ks", [[0], [0, 2, 3], [0, 1, 2, 3, 4], [3, 4, 1, 2, 0]])
def test_shared_prefix_equals_whole_prompts(model, inputs, reference, ks, caplog):
    cfg, params, tok = model
    with caplog.at_level(logging.INFO, logger="monitor_jax.eval.multi_policy"):
        res = multi_policy.score_policies(cfg, params, tok, inputs, [TEMPLATES[k] for k in ks], [WORDS[k] for k in ks],
                                          batch_size=BATCH, buckets=BUCKETS, progress=False)
    assert res.score.shape == (len(inputs), len(ks))
    assert res.shared == (True,) * len(ks) and "whole prompts" not in caplog.text
    assert_policies_match(res, reference, ks)


def test_templates_with_other_heads_fall_back(model, inputs, reference, caplog):
    cfg, params, tok = model
    other = "Question first: is it about water?\n\n{input}"  # head differs (question before the input)
    with caplog.at_level(logging.INFO, logger="monitor_jax.eval.multi_policy"):
        res = multi_policy.score_policies(cfg, params, tok, inputs, [TEMPLATES[0], other, TEMPLATES[2]],
                                          [WORDS[0], ("Yes", "No"), WORDS[2]], batch_size=BATCH, buckets=BUCKETS,
                                          progress=False)
    assert res.shared == (True, False, True)
    assert "templates [1] share no text before {input}" in caplog.text
    assert_policies_match(res, reference, [0])
    np.testing.assert_allclose(res.score[:, 2], reference[2].score, atol=1e-4)
    exs = [pipeline.ClassificationExample(id=str(i), task="o", input=x, label=0, template=other,
                                          label_words=("Yes", "No")) for i, x in enumerate(inputs)]
    full = scoring.score_examples(cfg, params, tok, exs, batch_size=BATCH, buckets=BUCKETS, progress=False)
    np.testing.assert_allclose(res.score[:, 1], full.score, atol=1e-5)


def test_truncated_inputs_fit_the_longest_suffix(model, inputs):
    """An over-long input is cut once; the longest-suffix template then sees exactly the pipeline's rendering."""
    cfg, params, tok = model
    max_len = BUCKETS[-1]
    inputs = inputs + [" ".join(VOCAB * 5)]  # 80 words: longer than max_len allows
    res = multi_policy.score_policies(cfg, params, tok, inputs, TEMPLATES[:2], WORDS[:2], batch_size=BATCH,
                                      max_len=max_len, buckets=BUCKETS, progress=False)
    ref = whole_prompts(model, inputs, 0, max_len=max_len)  # template 0 has the longest suffix
    assert res.truncated[:, 0].any() and (res.truncated[:, 0] == ref.truncated).all()
    assert (res.n_tokens < max_len).all()
    np.testing.assert_allclose(res.score[:, 0], ref.score, atol=1e-4)


def test_bad_arguments(model, inputs):
    cfg, params, tok = model
    with pytest.raises(ValueError, match="label-word pairs"):
        multi_policy.score_policies(cfg, params, tok, inputs, TEMPLATES[:3], WORDS[:2], progress=False)
    with pytest.raises(ValueError, match="no templates"):
        multi_policy.score_policies(cfg, params, tok, inputs, [], progress=False)
