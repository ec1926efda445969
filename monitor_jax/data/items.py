"""What every source yields: `Item` (one text with its source and metadata), its stable id, and the text
normalization that defines identity (dedup, splits and leakage checks all compare normalized text)."""
from __future__ import annotations

import dataclasses
import hashlib
import unicodedata
from typing import Any


def _is_edge_junk(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith("P")


def normalize(text: str) -> str:
    """Canonical form for dedup and leakage checks: NFKC, casefold, whitespace runs collapsed to one space,
    punctuation (Unicode category P*) and whitespace stripped from both ends. Idempotent."""
    t = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    t = " ".join(t.split())
    i, j = 0, len(t)
    while i < j and _is_edge_junk(t[i]):
        i += 1
    while j > i and _is_edge_junk(t[j - 1]):
        j -= 1
    return t[i:j]


@dataclasses.dataclass(frozen=True)
class Item:
    """One text to classify. `id` = f"{source}:{sha1(normalize(text))[:16]}"; `meta` is JSON-compatible."""

    id: str
    source: str
    text: str
    meta: dict = dataclasses.field(default_factory=dict, hash=False)


def item_id(source: str, text: str) -> str:
    """The stable id of `text` in `source` (same on every run and machine)."""
    return f"{source}:{hashlib.sha1(normalize(text).encode('utf-8')).hexdigest()[:16]}"


def make_item(source: str, text: str, **meta: Any) -> Item:
    return Item(id=item_id(source, text), source=source, text=text, meta=meta)
