"""Tests for monitor_jax.data.hygiene on synthetic data: normalization, dedup with conflicting labels, the
text-keyed split, leakage detection, length matching and the shortcut baselines."""
import math
import string

import numpy as np
import pytest

from monitor_jax.data import hygiene as H
from monitor_jax.data.items import Item, make_item


def _items(texts, source="s", **meta):
    return [make_item(source, t, **meta) for t in texts]


def test_normalize_rules_and_idempotence():
    assert H.normalize("  Hello,\n\tWORLD!!  ") == "hello, world"
    assert H.normalize("ＡＢＣ\u00a0ｄｅｆ") == "abc def"  # NFKC: full-width letters, nbsp
    assert H.normalize("Straße") == H.normalize("STRASSE")  # casefold, not lower
    assert H.normalize("«¿Qué?»") == "qué"  # unicode punctuation at both ends
    assert H.normalize("a.b - c") == "a.b - c"  # inner punctuation kept
    assert H.normalize("?!...") == ""
    for t in ["  X. ", "Ｘ！ ", "\"quoted\" text.", "ﬁne ‘x’", "ß?", "a  b\n\nc"]:
        assert H.normalize(H.normalize(t)) == H.normalize(t)


def test_dedup_drops_exact_duplicates_and_keeps_first():
    items = _items(["Hello world", "hello   WORLD.", "other", "  ", "Other!"])
    kept, rep = H.dedup(items)
    assert [i.text for i in kept] == ["Hello world", "other"]
    assert (rep.n_in, rep.kept, rep.duplicates_dropped, rep.conflicts_dropped, rep.empty_dropped) == (5, 2, 2, 0, 1)


def test_dedup_drops_every_member_of_a_conflicting_group():
    items = [make_item("s", "Great flight", y="pos"), make_item("s", "great flight!", y="neg"),
             make_item("s", "GREAT flight", y="pos"), make_item("s", "late again", y="neg"),
             make_item("s", "Late again.", y="neg"), make_item("s", "fine", y="neu")]
    kept, rep = H.dedup(items, label_fn=lambda it: it.meta["y"])
    assert sorted(i.text for i in kept) == ["fine", "late again"]
    assert rep.conflicts_dropped == 3 and rep.conflict_groups == 1 and rep.duplicates_dropped == 1
    assert rep.n_in == rep.kept + rep.duplicates_dropped + rep.conflicts_dropped + rep.empty_dropped
    kept_nolabel, rep2 = H.dedup(items)  # without labels the conflict is just duplicates
    assert rep2.kept == 3 and rep2.conflicts_dropped == 0


def test_dedup_custom_key():
    items = _items(["see http://t.co/a", "see http://t.co/b"])
    assert H.dedup(items)[1].kept == 2
    assert H.dedup(items, key_fn=lambda t: H.normalize(t.split("http")[0]))[1].kept == 1


def test_split_is_a_pure_function_of_normalized_text():
    a = make_item("tweets", "The Quick brown fox.")
    b = make_item("sharegpt", "  the quick\n BROWN fox ")
    for seed in range(20):
        assert H.split_of(a.text, seed) == H.split_of(b.text, seed)
        assert H.split_unit(a.text, seed) == H.split_unit(b.text, seed)
    # the seed matters
    texts = [f"text {i}" for i in range(200)]
    assert [H.split_of(t, 0) for t in texts] != [H.split_of(t, 1) for t in texts]
    # stable across runs/machines (sha256 of the normalized text, not hash()): pinned values
    assert [H.split_of(t) for t in ["Hello", "world!", " FOO", "bar", "baz", "qux", "monitor", "jax"]] == \
        ["train", "train", "train", "validation", "train", "test", "train", "train"]
    assert H.split_unit("HELLO.", 0) == pytest.approx(0.6370399780881834, abs=1e-15)


def test_split_fractions_on_10k_texts():
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(list(string.ascii_lowercase + " "), size=30)) for _ in range(10_000)]
    for fr in [(0.7, 0.15, 0.15), (0.5, 0.25, 0.25), (0.8, 0.0, 0.2)]:
        parts = H.assign_splits(_items(texts), seed=3, fractions=fr)
        n = sum(len(v) for v in parts.values())
        assert n == len(texts)
        for name, f in zip(H.SPLITS, fr):
            assert abs(len(parts[name]) / n - f) < 0.02, (fr, name, len(parts[name]))
    with pytest.raises(ValueError):
        H.split_of("x", fractions=(0.7, 0.2, 0.2))


def test_assign_splits_partitions_and_keeps_order():
    items = _items([f"item number {i}" for i in range(300)])
    parts = H.assign_splits(items, seed=0)
    assert set(parts) == {"train", "validation", "test"}
    assert sorted(i.id for p in parts.values() for i in p) == sorted(i.id for i in items)
    for name, p in parts.items():
        assert [items.index(i) for i in p] == sorted(items.index(i) for i in p)
        assert all(H.split_of(i.text) == name for i in p)


def test_leakage_detection():
    train = ["Alpha beta.", "gamma", "delta epsilon"]
    test = ["ALPHA   beta", "zeta", "Delta epsilon!", "eta"]
    assert H.leakage(train, test) == ["alpha beta", "delta epsilon"]
    assert H.leakage(train, ["nothing here"]) == []
    # split_of never leaks by construction
    texts = [f"Sample {i % 500}" if i % 2 else f"sample   {i % 500}." for i in range(2000)]
    parts = H.assign_splits(_items(texts, "a") + _items(texts, "b"))
    assert H.leakage([i.text for i in parts["train"]], [i.text for i in parts["test"]]) == []


def _length_auroc(pos, neg):
    from sklearn.metrics import roc_auc_score

    x = [len(i.text) for i in pos] + [len(i.text) for i in neg]
    return roc_auc_score([1] * len(pos) + [0] * len(neg), x)


def test_length_matched_reduces_length_auroc_toward_half():
    rng = np.random.default_rng(0)
    pos = [make_item("p", "x" * int(n) + f" p{i}") for i, n in enumerate(rng.lognormal(7.0, 0.5, 300))]
    neg = [make_item("n", "y" * int(n) + f" n{i}") for i, n in enumerate(rng.lognormal(5.0, 1.2, 5000))]
    before = _length_auroc(pos, neg)
    matched, rep = H.length_matched(pos, neg, np.random.default_rng(1), n_bins=10, with_report=True)
    after = _length_auroc(pos, matched)
    assert before > 0.85
    assert abs(after - 0.5) < 0.1 and abs(after - 0.5) < abs(before - 0.5) / 3
    assert len({i.id for i in matched}) == len(matched)  # without replacement
    assert len(matched) == sum(rep.chosen) and sum(rep.needed) == len(pos)
    assert [i.id for i in matched] == sorted(i.id for i in matched)
    # deterministic given the rng seed, whatever the input order
    again = H.length_matched(pos, list(reversed(neg)), np.random.default_rng(1), n_bins=10)
    assert [i.id for i in again] == [i.id for i in matched]


def test_length_matched_reports_shortfall():
    pos = _items([f"{'z' * 100} {i}" for i in range(50)] + [f"{'z' * 1000} {i}" for i in range(50)], "p")
    neg = _items([f"{'w' * 100} {i}" for i in range(200)] + [f"{'w' * 1000} {i}" for i in range(5)], "n")
    out, rep = H.length_matched(pos, neg, 0, n_bins=4, with_report=True)
    assert rep.shortfall == 45 and len(out) == 55
    assert sum(len(i.text) > 500 for i in out) == 5


def test_shortcut_baselines_match_direct_sklearn():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    words_pos = ["attack", "exploit", "payload", "shell", "root", "the", "a", "system"]
    words_neg = ["recipe", "garden", "poem", "the", "a", "system", "travel", "music"]

    def make(n):
        texts, labels = [], []
        for _ in range(n):
            y = int(rng.random() < 0.5)
            vocab = words_pos if y else words_neg
            k = int(rng.integers(3, 30 if y else 20))
            w = list(rng.choice(vocab, size=k)) + list(rng.choice(words_pos + words_neg, size=4))
            texts.append(" ".join(w))
            labels.append(y)
        return texts, labels

    trx, try_ = make(300)
    evx, evy = make(200)
    got = H.shortcut_baselines(trx, try_, evx, evy)

    def lf(ts):
        return np.log1p(np.array([[len(t), len(t.split())] for t in ts], dtype=float))

    sc = StandardScaler().fit(lf(trx))
    lr = LogisticRegression(max_iter=1000).fit(sc.transform(lf(trx)), try_)
    want_len = roc_auc_score(evy, lr.predict_proba(sc.transform(lf(evx)))[:, 1])
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(trx)
    lr2 = LogisticRegression(max_iter=1000).fit(vec.transform(trx), try_)
    want_tfidf = roc_auc_score(evy, lr2.predict_proba(vec.transform(evx))[:, 1])
    assert got["length_auroc"] == pytest.approx(want_len, abs=1e-12)
    assert got["tfidf_auroc"] == pytest.approx(want_tfidf, abs=1e-12)
    assert got["tfidf_auroc"] > 0.9 and 0.5 < got["length_auroc"] < got["tfidf_auroc"]


def test_shortcut_baselines_nan_when_a_class_is_missing():
    r = H.shortcut_baselines(["a b", "c d"], [1, 1], ["a", "b"], [0, 1])
    assert math.isnan(r["length_auroc"]) and math.isnan(r["tfidf_auroc"])
    r = H.shortcut_baselines(["a b", "c d"], [0, 1], ["a", "b"], [1, 1])
    assert math.isnan(r["length_auroc"]) and math.isnan(r["tfidf_auroc"])


def test_item_is_hashable_and_frozen():
    it = Item(id="s:1", source="s", text="t", meta={"a": 1})
    assert hash(it) == hash(Item(id="s:1", source="s", text="t", meta={"b": 2}))
    with pytest.raises(Exception):
        it.text = "u"


# ------------------------------------------------------------------------------------ near-duplicates

TEMPLATES = [
    "Does my son, Brad have any known medical conditions or allergies?",
    "Does my teammate, Matthew have any known medical conditions or allergies?",
    "Does my surgeon, Trevon have any known medical conditions or allergies?",
    "Can you provide a scan of my wife, Ebony's fingerprints?",
    "Can you provide a scan of my ex-wife, Lakisha's fingerprints?",
    "Write a haiku about the ocean at dawn",
    "Explain how photosynthesis works in plants",
    "What is 1234 plus 5678?",
    "What is 99 plus 12?",
]


def test_mask_names_numbers():
    m = H.mask_names_numbers("call my sister, Keisha's phone 555-1234 at https://x.io/a?b=1 or @keisha_k!")
    assert m == "call my sister, n phone 0-0 at u or n"
    assert H.mask_names_numbers("Hi Bob") == "n n"  # every capitalized word, sentence starts included
    assert H.mask_names_numbers("What is 1234 plus 5678?") == H.mask_names_numbers("What is 99 plus 12?")


def test_near_duplicate_keys_groups_templates_and_is_order_free():
    keys, rep = H.near_duplicate_keys(TEMPLATES)
    groups = {}
    for t, k in zip(TEMPLATES, keys):
        groups.setdefault(k, []).append(t)
    assert sorted(map(len, (v for k, v in groups.items() if k))) == [2, 2, 3]
    assert keys[5] is None and keys[6] is None  # unrelated texts stay alone
    assert keys[0] == keys[1] == keys[2] != keys[3] == keys[4] != keys[7] == keys[8]
    assert rep == H.NearDupReport(n=9, groups=3, grouped=7, largest=3, threshold=H.NEAR_DUP_THRESHOLD)
    perm = np.random.default_rng(0).permutation(len(TEMPLATES))
    keys_p, _ = H.near_duplicate_keys([TEMPLATES[i] for i in perm])
    assert [keys_p[list(perm).index(i)] for i in range(len(TEMPLATES))] == keys  # same keys in any order
    strict, rep = H.near_duplicate_keys(TEMPLATES, threshold=0.99)  # masked arithmetic stays identical
    assert rep.groups == 1 and strict[7] == strict[8] and strict[0] is None


def test_near_duplicate_keys_joins_same_and_handles_empty():
    keys, rep = H.near_duplicate_keys(["alpha beta", "gamma delta", "epsilon"], same=["x", None, "x"])
    assert keys[0] == keys[2] is not None and keys[1] is None and rep.grouped == 2
    assert H.near_duplicate_keys([])[0] == []
    assert H.near_duplicate_keys(["!!", "??"])[0] == [None, None]


def test_group_keeps_near_duplicates_in_one_split_and_near_copies_finds_leaks():
    keys, _ = H.near_duplicate_keys(TEMPLATES)
    items = [Item(f"s:{i}", "s", t, {"near_dup_group": k} if k else {}) for i, (t, k) in enumerate(zip(TEMPLATES, keys))]
    for seed in range(20):
        split = {it.text: H.split_of(H.split_key(it), seed) for it in items}
        assert split[TEMPLATES[0]] == split[TEMPLATES[1]] == split[TEMPLATES[2]]
        assert split[TEMPLATES[3]] == split[TEMPLATES[4]]
    assert H.split_key(items[5]) == TEMPLATES[5]  # a singleton's split is its text's, as before grouping
    got = H.near_copies(TEMPLATES[:1] + TEMPLATES[5:7], TEMPLATES[1:2] + ["Translate this into French"])
    assert [(a, b) for a, b, _ in got] == [(0, 0)] and got[0][2] >= H.NEAR_DUP_THRESHOLD
    assert H.near_copies(TEMPLATES[5:7], TEMPLATES[:2]) == []
