"""User rows -> checked, deduplicated, split `Item`s -> one array_record TFDS dataset per user task.

Row checks and split assembly (`parse_row`, `finalize`) are shared with the HF/TFDS loaders in
`data/user_tasks.py`. A JSONL task's dataset lives in `assets.cache_dir()/"tfds"/jsonl_task/<config>/`, where
the config name is the task name plus a content hash of its files (and of everything that changes the items),
so an edited file builds a new dataset. All rows are validated before anything is written; a prepared dataset
is reused without re-reading the files (same hash = same rows = already validated).

Decisions: duplicates (normalized text) are removed across *all* splits, keeping the first copy in the order
train, validation, test (so no test text is also a training text); a group whose copies disagree on any label
field is dropped entirely. A missing split is carved from train by `hygiene.split_of` (seed 0): its default
share (15 %) is taken from train; shares of splits that were given stay in train.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from typing import Any, Iterable, Iterator, Mapping, Sequence

import tensorflow_datasets as tfds

from monitor_jax.core import assets, io
from monitor_jax.data import hygiene
from monitor_jax.data.builders import build
from monitor_jax.data.builders.suite import record_to_item
from monitor_jax.data.items import Item, item_id

PARSER_VERSION = 1  # bump when parsing changes what a file yields: every user dataset then rebuilds
SPLIT_SEED = 0
_LABELS = {"1": 1, "0": 0, "true": 1, "false": 0, "yes": 1, "no": 0}


class TaskFileError(io.InputError):
    """Bad user task file or data. The message is one line naming file:line or the task-file key."""


def messages_to_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """Chat messages -> text: one f"{ROLE}: {content}" block per message (role upper-cased, content as given),
    blocks joined by one blank line. [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    -> "USER: Hi\\n\\nASSISTANT: Hello"."""
    return "\n\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages)


def coerce_label(value: Any) -> int | None:
    """0/1, True/False, 0.0/1.0, or "0"/"1"/"yes"/"no"/"true"/"false" (any case) -> 0|1; anything else -> None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return _LABELS.get(value.strip().lower())
    return None


def _text(where: str, field: str, value: Any) -> tuple[str, list | None]:
    if isinstance(value, str):
        return value, None
    ok = isinstance(value, list) and value and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value)
    if not ok:
        raise TaskFileError(f"{where}: {field!r} must be a string or a non-empty list of "
                            f'{{"role": str, "content": str}} messages, got {short_repr(value)}')
    msgs = [{"role": m["role"], "content": m["content"]} for m in value]
    return messages_to_text(msgs), msgs


def short_repr(value: Any) -> str:
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


def parse_row(where: str, row: Any, *, source: str, text_field: str = "input",
              label_fields: Mapping[str, str] | None = None, id_field: str | None = "id") -> Item:
    """One checked row -> Item. `label_fields` maps question name -> row field (default {"label": "label"});
    meta = the row's other fields, with meta[question] = the coerced 0/1 label and, for list-of-messages input,
    meta["messages"]. Item id: f"{source}:{row[id_field]}" if the row has one, else the stable text hash."""
    label_fields = {"label": "label"} if label_fields is None else label_fields
    if not isinstance(row, dict):
        raise TaskFileError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for field in (text_field, *label_fields.values()):
        if field not in row:
            raise TaskFileError(f"{where}: missing {field!r}")
    text, messages = _text(where, text_field, row[text_field])
    meta = {k: v for k, v in row.items() if k not in (text_field, id_field)}
    for question, field in label_fields.items():
        y = coerce_label(row[field])
        if y is None:
            raise TaskFileError(f"{where}: {field!r} must be binary (0/1, true/false, yes/no), "
                                f"got {short_repr(row[field])}")
        meta[question] = y
    if messages is not None:
        meta["messages"] = messages
    if id_field is not None and id_field in row:
        ident = row[id_field]
        if not isinstance(ident, str) or not ident.strip():
            raise TaskFileError(f"{where}: {id_field!r} must be a non-empty string, got {short_repr(ident)}")
        return Item(f"{source}:{ident}", source, text, meta)
    return Item(item_id(source, text), source, text, meta)


def jsonl_rows(path: str | os.PathLike) -> Iterator[tuple[str, Any]]:
    """(f"{path}:{line}", parsed row) for each non-blank line; a bad line (JSON, UTF-8) or a missing file raises a
    one-line `TaskFileError` naming path:LINE or the path (`core.io.read_jsonl`)."""
    return io.read_jsonl(path, TaskFileError)


def parse_rows(parts: Mapping[str, Iterable[tuple[str, Any]]], **kwargs: Any) -> dict[str, list[Item]]:
    """`parse_row` over every (where, row) of every part; user-given ids must be unique across all parts."""
    out: dict[str, list[Item]] = {}
    first: dict[str, str] = {}
    for part, rows in parts.items():
        out[part] = []
        for where, row in rows:
            it = parse_row(where, row, **kwargs)
            if kwargs.get("id_field", "id") in row and first.setdefault(it.id, where) != where:
                raise TaskFileError(f"{where}: duplicate id {it.id.split(':', 1)[1]!r} (first at {first[it.id]})")
            out[part].append(it)
    return out


def finalize(parts: Mapping[str, list[Item]], describe: Mapping[str, str],
             label_fields: Mapping[str, str]) -> tuple[dict[str, list[Item]], dict]:
    """Dedup across parts, carve missing splits from train, check every split has both classes of every label.

    `parts` keys: a subset of train/validation/test, or just "all" (carved into all three). `describe[part]`
    names where a part came from (a file) for error messages. Returns (split -> items sorted by id, stats)."""
    parts = {("train" if k == "all" else k): v for k, v in parts.items()}
    describe = {("train" if k == "all" else k): v for k, v in describe.items()}
    order = [s for s in hygiene.SPLITS if s in parts]
    home = {id(it): s for s in order for it in parts[s]}
    kept, report = hygiene.dedup([it for s in order for it in parts[s]],
                                 label_fn=lambda it: tuple(it.meta[q] for q in label_fields))
    splits: dict[str, list[Item]] = {s: [] for s in hygiene.SPLITS}
    fractions = dict(zip(hygiene.SPLITS, hygiene.DEFAULT_FRACTIONS))
    for s in ("validation", "test"):
        if s in parts:
            fractions["train"] += fractions.pop(s)
            fractions[s] = 0.0
    carve = tuple(fractions[s] for s in hygiene.SPLITS)
    for it in kept:
        s = home[id(it)]
        splits[hygiene.split_of(it.text, SPLIT_SEED, carve) if s == "train" else s].append(it)
    for s in hygiene.SPLITS:
        where = describe.get(s) or f"{describe.get('train', '?')} ({s} carved from train)"
        if not splits[s]:
            raise TaskFileError(f"{where}: split {s!r} is empty after dedup ({report.n_in} rows read, "
                                f"{report.kept} kept in all splits)")
        for q, field in label_fields.items():
            ys = {it.meta[q] for it in splits[s]}
            if len(ys) < 2:
                raise TaskFileError(f"{where}: split {s!r} has only {field!r} = {ys.pop()} ({len(splits[s])} items);"
                                    " every split needs both classes")
    stats = {"dedup": report.as_dict(), "carved": [s for s in hygiene.SPLITS if s not in parts],
             "splits": {s: {"n": len(v), "positives": {q: sum(it.meta[q] for it in v) for q in label_fields}}
                        for s, v in splits.items()}}
    return {s: sorted(v, key=lambda it: it.id) for s, v in splits.items()}, stats


# ------------------------------------------------------------------------------------------ TFDS builder

@dataclasses.dataclass(frozen=True)
class JsonlSpec:
    """A user task's data: `files` maps train/validation/test (or "all") to a JSONL path; `label_fields` are the
    row fields holding labels (questions of the domain, "label" first); `source` prefixes item ids."""

    name: str
    source: str
    files: Mapping[str, str]
    label_fields: tuple[str, ...] = ("label",)

    def content_key(self) -> str:
        """sha256 over the parser version, source, label fields and each split's file bytes (not paths)."""
        h = hashlib.sha256(json.dumps([PARSER_VERSION, SPLIT_SEED, self.source, list(self.label_fields),
                                       sorted(self.files)]).encode())
        for split in sorted(self.files):
            with open(self.files[split], "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            h.update(b"\x00" + split.encode())
        return h.hexdigest()

    def config(self) -> tfds.core.BuilderConfig:
        slug = re.sub(r"[^A-Za-z0-9_]+", "_", self.name).strip("_")[:48] or "task"
        return tfds.core.BuilderConfig(name=f"{slug}-{self.content_key()[:16]}", description=self.name)


def read_items(spec: JsonlSpec) -> tuple[dict[str, list[Item]], dict]:
    """Validate every row of the spec's files and assemble the splits; writes nothing."""
    fields = {f: f for f in spec.label_fields}
    parts = parse_rows({s: jsonl_rows(p) for s, p in spec.files.items()}, source=spec.source, label_fields=fields)
    return finalize(parts, {s: str(p) for s, p in spec.files.items()}, fields)


class JsonlTask(tfds.core.GeneratorBasedBuilder):
    """One config per (task, content hash), created on the fly; features id, text, meta (JSON) as MonitorSuite.
    Built from items validated beforehand (`items=`); stats are kept in the dataset's metadata."""

    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, items: dict[str, list[Item]] | None = None, stats: dict | None = None, **kwargs: Any):
        self._items, self._stats = items, stats
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        text = tfds.features.Text()
        return tfds.core.DatasetInfo(builder=self, metadata=tfds.core.MetadataDict(),
                                     features=tfds.features.FeaturesDict({"id": text, "text": text, "meta": text}))

    def _split_generators(self, dl_manager):
        if self._items is None:
            raise RuntimeError("JsonlTask builds only from validated items: use builders.jsonl.prepare(spec)")
        self.info.metadata["stats"] = self._stats or {}
        return {name: self._generate_examples(items) for name, items in self._items.items()}

    def _generate_examples(self, items: list[Item]) -> Iterator[tuple[str, dict]]:
        for it in items:
            yield it.id, {"id": it.id, "text": it.text, "meta": json.dumps(it.meta, ensure_ascii=False)}


def data_dir() -> str:
    return str(assets.cache_dir() / "tfds")


def prepare(spec: JsonlSpec) -> JsonlTask:
    """The spec's prepared builder: reused if its content hash was built before, else validated, then built."""
    kwargs = dict(config=spec.config(), data_dir=data_dir(), file_format="array_record")
    with build.quiet_tfds():
        builder = JsonlTask(**kwargs)
        ready = builder.is_prepared()
    if ready:
        return builder
    items, stats = read_items(spec)  # raises before anything is written
    return build.prepared(lambda: JsonlTask(items=items, stats=stats, **kwargs), f"user task {spec.name!r}")


def load_jsonl_domain(spec: JsonlSpec) -> dict[str, list[Item]]:
    """The task's items per split (sorted by id), building its array_record dataset on first use."""
    return load_prepared(prepare(spec))


def load_prepared(builder: JsonlTask) -> dict[str, list[Item]]:
    out = {}
    for split, ds in builder.as_data_source().items():
        out[split] = sorted((record_to_item(ds[i]) for i in range(len(ds))), key=lambda it: it.id)
    return out


def jsonl_stats(builder: JsonlTask) -> dict:
    """Row/dedup/split statistics recorded when the dataset was built."""
    return dict(builder.info.metadata.get("stats", {}))
