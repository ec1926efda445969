"""TFDS builder for the bundled suite: one array_record dataset per domain, items already split.

Each domain is a pool of `Item`s from the offline sources (DESIGN.md §4) with hygiene applied: cross-source
dedup on normalized text, near-duplicates grouped per source (`hygiene.near_duplicate_keys`: names and numbers
masked, TF-IDF cosine >= 0.6; jailbreak template prefixes joined; ShareGPT grouped over its whole pool so the IF
pool agrees), one item-level split keyed by normalized text or group (`hygiene.split_key`; agent scenario
families are kept whole inside one split), length-matched benign negatives where lengths
differ by class. Tasks (`data/tasks.py`) ask questions about these pools. Written without TensorFlow:
`file_format="array_record"`, read back with `as_data_source()`.
"""

from __future__ import annotations

import json
from typing import Callable, Iterator

import tensorflow_datasets as tfds

from monitor_jax.core import assets
from monitor_jax.data import hygiene, sources
from monitor_jax.data.builders import build
from monitor_jax.data.items import Item, make_item

SPLIT_SEED = 0  # the one split seed of the suite; recorded in reports' data manifests
VERSION = "1.3.0"  # bump whenever a domain's items change (sources, hygiene, generator): caches are keyed by it
TWEETS_PER_SENTIMENT = 1500
AGENT_TRANSCRIPTS = 1200


def group_near_duplicates(items: list[Item], same: Callable[[Item], str | None] = lambda it: None) -> list[Item]:
    """The items with meta `near_dup_group` set on members of a near-duplicate group, grouped per source (a
    ShareGPT item keeps the group its source gave it over the whole pool)."""
    by_source: dict[str, list[int]] = {}
    for k, it in enumerate(items):
        if it.source != "sharegpt":
            by_source.setdefault(it.source, []).append(k)
    out = list(items)
    for idx in by_source.values():
        keys, _ = hygiene.near_duplicate_keys([items[k].text for k in idx], same=[same(items[k]) for k in idx])
        for k, g in zip(idx, keys):
            if g:
                out[k] = Item(items[k].id, items[k].source, items[k].text, {**items[k].meta, "near_dup_group": g})
    return out


def _split(items: list[Item], same: Callable[[Item], str | None] = lambda it: None) -> dict[str, list[Item]]:
    out: dict[str, list[Item]] = {s: [] for s in hygiene.SPLITS}
    for it in group_near_duplicates(items, same):
        out[hygiene.split_of(hygiene.split_key(it), seed=SPLIT_SEED)].append(it)
    return out


def _tag(items: list[Item], **meta) -> list[Item]:
    return [Item(it.id, it.source, it.text, {**it.meta, **meta}) for it in items]


def _benign_requests() -> list[Item]:
    """ShareGPT first user turns (the benign-request pool)."""
    return _tag(sources.sharegpt(), harmful=0)


def requests_domain() -> dict[str, list[Item]]:
    """Harmful requests by category (HarmBench semantic categories, Do-Not-Answer risk areas) + benign ones."""
    harmful = (
        _tag(sources.harmbench_behaviors(), harmful=1)
        + _tag(sources.donotanswer(), harmful=1)
        + _tag(sources.harmbench_prompts(), harmful=1)  # all duplicates of CSV rows: dropped by dedup below
    )
    harmful, _ = hygiene.dedup(harmful)
    benign = hygiene.length_matched(harmful, _benign_requests(), rng=SPLIT_SEED)
    items, _ = hygiene.dedup(harmful + benign)
    return _split(items)


def jailbreak_domain() -> dict[str, list[Item]]:
    """In-the-wild jailbreaks vs ordinary ShareGPT requests of matched length (jailbreaks are long)."""
    jb = _tag(sources.jailbreaks(), jailbreak=1)
    benign = _tag(hygiene.length_matched(jb, sources.sharegpt(), rng=SPLIT_SEED + 1), jailbreak=0)
    items, _ = hygiene.dedup(jb + benign)
    # A jailbreak template family (same first 100 normalized chars) stays inside one split.
    return _split(items, same=lambda it: it.meta.get("prefix_group"))


def news_domain() -> dict[str, list[Item]]:
    """BBC news articles with their topic (one domain, five questions)."""
    return _split(sources.bbc_news())


def tweets_domain() -> dict[str, list[Item]]:
    """Tweets with sentiment, subsampled to a fixed number per sentiment (deterministic: lowest ids)."""
    by_sentiment: dict[str, list[Item]] = {}
    for it in sources.tweets():  # sorted by id, so the selection is a pseudo-random stable subset
        by_sentiment.setdefault(it.meta["sentiment"], []).append(it)
    items = [it for group in by_sentiment.values() for it in group[:TWEETS_PER_SENTIMENT]]
    return _split(items)


def toxicity_domain() -> dict[str, list[Item]]:
    """RealToxicityPrompts continuations by toxicity category (all toxic; categories are the questions)."""
    return _split(sources.toxicity_prompts())


def agent_domain() -> dict[str, list[Item]]:
    """Procedural agent transcripts; whole scenario families per split (unseen scenarios at test time)."""
    from monitor_jax.data.agent import generator

    out: dict[str, list[Item]] = {s: [] for s in hygiene.SPLITS}
    for t in generator.generate(AGENT_TRANSCRIPTS, seed=SPLIT_SEED):
        meta = {k: t[k] for k in ("label", "family", "action_type", "requested_risky", "messages")}
        meta.update({k: t["meta"][k] for k in ("kind", "kind_name", "special_step", "n_steps", "trimmed")})
        out[generator.split_of(t)].append(make_item("agent_transcripts", t["text"], **meta))
    return out


DOMAINS: dict[str, Callable[[], dict[str, list[Item]]]] = {
    "requests": requests_domain,
    "jailbreak": jailbreak_domain,
    "news": news_domain,
    "tweets": tweets_domain,
    "toxicity": toxicity_domain,
    "agent": agent_domain,
}


class MonitorSuite(tfds.core.GeneratorBasedBuilder):
    """One config per domain; features: id, text, meta (JSON)."""

    VERSION = tfds.core.Version(VERSION)
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=name, description=fn.__doc__) for name, fn in DOMAINS.items()]

    def _info(self) -> tfds.core.DatasetInfo:
        text = tfds.features.Text()
        return tfds.core.DatasetInfo(
            builder=self, features=tfds.features.FeaturesDict({"id": text, "text": text, "meta": text})
        )

    def _split_generators(self, dl_manager):
        splits = DOMAINS[self.builder_config.name]()
        return {name: self._generate_examples(items) for name, items in splits.items()}

    def _generate_examples(self, items: list[Item]) -> Iterator[tuple[str, dict]]:
        return tfds_examples(items)


def tfds_examples(items: list[Item]) -> Iterator[tuple[str, dict]]:
    """(key, record) of each item as every domain builder stores it: id, text, meta as JSON."""
    for it in items:
        yield it.id, {"id": it.id, "text": it.text, "meta": json.dumps(it.meta, ensure_ascii=False)}


def data_dir() -> str:
    return str(assets.cache_dir() / "tfds")


def load_domain(domain: str) -> dict[str, list[Item]]:
    """The domain's items per split, building its array_record dataset on first use."""
    if domain not in DOMAINS:
        raise KeyError(f"unknown domain {domain!r}; bundled domains: {sorted(DOMAINS)}")
    builder = build.prepared(lambda: MonitorSuite(config=domain, data_dir=data_dir(), file_format="array_record"),
                             f"suite domain {domain!r}")
    out = {}
    for split, ds in builder.as_data_source().items():
        items = [record_to_item(ds[i]) for i in range(len(ds))]
        out[split] = sorted(items, key=lambda it: it.id)
    return out


def record_to_item(rec: dict) -> Item:
    ident = rec["id"].decode("utf-8")
    return Item(ident, ident.split(":", 1)[0], rec["text"].decode("utf-8"), json.loads(rec["meta"]))

