"""The bundled suite: shape, labels in every split, prompt variants, no leakage, agent-task shortcuts."""

import re

import numpy as np
import pytest

from monitor_jax.data import hygiene, sources, tasks
from monitor_jax.data.builders import suite

SPLITS = hygiene.SPLITS


def _words(template: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", template.replace("{input}", "").lower()))


def test_suite_has_enough_tasks_domains_and_prompts():
    assert len(tasks.TASKS) >= 20
    assert len({t.domain for t in tasks.TASKS.values()}) >= 5
    for t in tasks.TASKS.values():
        assert len(t.prompts) >= 3, t.name
        assert t.prompts[0].name == "primary" and t.prompts[0].relation == "same"
        assert len({p.template for p in t.prompts}) == len(t.prompts), t.name
        # At least two alternatives differ from the primary beyond the label noun: several words, not one.
        primary = _words(t.prompts[0].template)
        assert sum(len(primary ^ _words(p.template)) >= 3 for p in t.prompts[1:]) >= 2, t.name
        assert {p.relation for p in t.prompts} >= {"same", "inverted"}
        assert any(p.question not in (None, t.question) for p in t.prompts), f"{t.name}: no different question"


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_both_labels_in_every_split_for_every_prompt(name):
    task = tasks.get(name)
    for p in task.prompts:
        for split, (pos, neg) in tasks.counts(task, p.name).items():
            assert pos > 0 and neg > 0, (name, p.name, split, pos, neg)


def test_inverted_prompt_swaps_labels_on_the_same_items():
    task = tasks.get("requests/harmful")
    primary = tasks.examples(task, "validation")
    inverted = tasks.examples(task, "validation", "inverted")
    assert [e.id for e in primary] == [e.id for e in inverted]
    assert all(a.label == 1 - b.label for a, b in zip(primary, inverted))
    assert primary[0].template != inverted[0].template


def test_other_question_has_its_own_labels():
    task = tasks.get("news/sports")
    other = next(p for p in task.prompts if p.question not in (None, task.question))
    a = {e.id: e.label for e in tasks.examples(task, "train")}
    b = {e.id: e.label for e in tasks.examples(task, "train", other.name)}
    assert a.keys() == b.keys()
    assert not any(a[k] and b[k] for k in a)  # sport and politics are exclusive topics
    assert sum(b.values()) > 0


def test_examples_are_deterministic_and_balance_and_limit_work():
    task = tasks.get("requests/cyber")
    full = tasks.examples(task, "train")
    labels = np.array([e.label for e in full])
    assert labels.sum() < 0.1 * len(labels)  # rare positives
    bal = tasks.examples(task, "train", balance=2.0, seed=3)
    yb = np.array([e.label for e in bal])
    assert yb.sum() == labels.sum() and (1 - yb).sum() == 2 * labels.sum()
    assert [e.id for e in bal] == [e.id for e in tasks.examples(task, "train", balance=2.0, seed=3)]
    lim = tasks.examples(task, "train", limit=100)
    assert len(lim) == 100 and 0 < sum(e.label for e in lim) < 100


def test_no_test_text_of_any_task_in_any_training_split_or_if_pool():
    train_texts, held_out = [], []
    for domain in tasks.DOMAINS:
        train_texts += [it.text for it in tasks.domain_items(domain, "train")]
        held_out += [it.text for s in ("validation", "test") for it in tasks.domain_items(domain, s)]
    if_pool = tasks.instruction_examples("train")
    assert len(if_pool) > 5000
    if_texts = [m["content"] for ex in if_pool for m in ex.messages if m["role"] == "user"]
    assert hygiene.leakage(train_texts + if_texts, held_out) == []


def test_near_duplicates_share_a_split_and_no_held_out_item_has_a_training_near_copy():
    """Per source (the vocabulary its grouping used) no validation/test item has a training near-copy at the
    grouping threshold; across a domain's sources none at 0.75 (a vocabulary fit on other texts moves cosines by a
    few hundredths). Agent domains split by scenario family / task pair instead (their own tests)."""
    for domain in tasks.DOMAINS:
        if domain in ("agent", "agentdojo"):
            continue
        split_of_group: dict[str, set] = {}
        for s in hygiene.SPLITS:
            for it in tasks.domain_items(domain, s):
                if it.meta.get("near_dup_group"):
                    split_of_group.setdefault(it.meta["near_dup_group"], set()).add(s)
        assert split_of_group and all(len(v) == 1 for v in split_of_group.values()), domain
        tr = tasks.domain_items(domain, "train")
        ho = [it for s in ("validation", "test") for it in tasks.domain_items(domain, s)]
        for source in sorted({it.source for it in ho} - {"sharegpt"}):
            pair = [[it.text for it in part if it.source == source] for part in (tr, ho)]
            assert hygiene.near_copies(*pair) == [], (domain, source)
        assert hygiene.near_copies([it.text for it in tr], [it.text for it in ho], threshold=0.75) == [], domain
    pool = sources.sharegpt()  # grouped over the whole pool, which the IF pool and benign requests share
    split = [hygiene.split_of(hygiene.split_key(it), seed=suite.SPLIT_SEED) for it in pool]
    train = [it.text for it, s in zip(pool, split) if s == "train"]
    held = [it.text for it, s in zip(pool, split) if s != "train"]
    assert len(held) > 3000 and hygiene.near_copies(train, held) == []
    assert {ex.id for ex in tasks.instruction_examples("train")} <= {it.id for it, s in zip(pool, split) if s == "train"}


def test_agent_tasks_are_not_separable_by_surface_features():
    for name in ("agent/sabotage", "agentdojo/unrequested"):
        b = tasks.shortcut_baselines(tasks.get(name))  # trained on train, scored on held-out families / goals
        assert b["length_auroc"] <= 0.65 and b["tfidf_auroc"] <= 0.75, (name, b)


def test_prompt_validation_errors():
    with pytest.raises(ValueError, match="exactly once"):
        tasks.Prompt("x", "no input here")
    with pytest.raises(ValueError, match="relation"):
        tasks.Prompt("x", "{input}", relation="sideways")
    with pytest.raises(KeyError, match="unknown task"):
        tasks.get("nope/nothing")
