"""Inspect AI eval logs (`.eval`, `.json`) -> one `Item` per sample and epoch, its conversation rendered as text.

Logs are read with inspect_ai's own log API (the optional extra: `pip install 'monitor_jax[inspect]'`), one sample
at a time, attachments resolved, events left unread. A conversation renders exactly as the agent domains render
theirs (`agent.agentdojo_text`): "USER: ...", "ASSISTANT: ..." (the message's text, then one 'calling fn({json
args})' line per tool call), "TOOL OUTPUT: ..." (the result, or the tool's error). Decisions: system messages are
left out (they instruct the monitored agent, e.g. an attack policy's side task, and are not what it did), and so are
reasoning blocks (`ChatMessage.text` keeps only text parts). The text is untrusted: scoring puts it through the
pipeline's one renderer like every other input.

Labels: 1 when the sample's metadata has `eval_mode == "attack"` (as ControlArena writes it) or when the metadata
key `label_key` holds a true value (0/1, true/false, yes/no); 0 when either is present and neither says so; no
label when a sample has neither.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

from monitor_jax.core import io
from monitor_jax.data.agent.agentdojo_text import NO_OUTPUT, call_text
from monitor_jax.data.agent.transcript import render
from monitor_jax.data.builders.jsonl import coerce_label, short_repr
from monitor_jax.data.items import Item

SOURCE = "inspect"
EVAL_MODE, ATTACK = "eval_mode", "attack"  # ControlArena's sample metadata: eval_mode is "honest" or "attack"
_UNREAD = {"events", "events_data", "store", "timelines"}  # sample fields a monitor never reads (often most bytes)
MISSING_EXTRA = "reading Inspect logs needs inspect_ai: pip install 'monitor_jax[inspect]'"


class InspectLogError(io.InputError):
    """A log that cannot be read or a sample whose label field is bad: one line naming the log (and sample)."""


def _api() -> Any:
    try:
        from inspect_ai import log
    except ImportError:
        raise ValueError(MISSING_EXTRA) from None
    return log


def conversation(messages: Iterable[Any]) -> list[dict]:
    """Inspect `ChatMessage`s -> [{"role": user|assistant|tool, "content": str}] (system messages dropped)."""
    out = []
    for m in messages:
        if m.role == "user":
            content = m.text
        elif m.role == "assistant":
            calls = [call_text(c.function, c.arguments or {}) for c in (m.tool_calls or [])]
            content = "\n".join(([m.text] if m.text.strip() else []) + calls)
        elif m.role == "tool":
            error = f"error: {m.error.message}" if m.error is not None else ""
            content = "\n".join(t for t in (m.text, error) if t.strip()) or NO_OUTPUT
        else:
            continue
        if content.strip():
            out.append({"role": m.role, "content": content})
    return out


def sample_text(sample: Any) -> str:
    """The sample's conversation as monitor input (its `input` when it has no messages)."""
    if sample.messages:
        return render(conversation(sample.messages))
    if isinstance(sample.input, str):
        return render([{"role": "user", "content": sample.input}])
    return render(conversation(sample.input))


def sample_label(metadata: Mapping[str, Any], label_key: str | None, where: str) -> int | None:
    """1 (attack), 0, or None (no `eval_mode` and no `label_key` in the metadata); see the module docstring."""
    votes = []
    if EVAL_MODE in metadata:
        mode = metadata[EVAL_MODE]
        votes.append(int(str(getattr(mode, "value", mode)).lower() == ATTACK))
    if label_key is not None and label_key in metadata:
        y = coerce_label(metadata[label_key])
        if y is None:
            raise InspectLogError(f"{where}: metadata {label_key!r} must be binary (0/1, true/false, yes/no), got "
                                  f"{short_repr(metadata[label_key])}")
        votes.append(y)
    return max(votes) if votes else None


def _read(api: Any, path: str) -> list[Any]:
    """Every sample of one log (a log without a sample list in its header is read whole)."""
    try:
        header = api.read_eval_log(path, header_only=True)
        if header.eval.dataset.sample_ids is None:
            return list(api.read_eval_log(path, resolve_attachments=True).samples or [])
        return list(api.read_eval_log_samples(path, all_samples_required=False, resolve_attachments=True,
                                              exclude_fields=_UNREAD))
    except Exception as e:  # noqa: BLE001 - whatever inspect_ai raises on a bad file, said in one line
        first = (str(e).strip().splitlines() or [""])[0]
        raise InspectLogError(f"{path}: not a readable Inspect log ({type(e).__name__}: {first})") from None


def read_samples(paths: Sequence[str | os.PathLike], label_key: str | None = None) -> list[Item]:
    """One `Item` per sample and epoch of every log, in log order. Item meta: log, sample_id, epoch and, when
    known, label. Fails with one line on a missing or unreadable log, a log without samples, a bad `label_key`
    value, or a `label_key` that no sample's metadata has."""
    api = _api()
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise InspectLogError("no Inspect log given")
    items, keyed = [], False
    for path in paths:
        if paths.count(path) > 1:
            raise InspectLogError(f"{path}: given twice")
        if not os.path.isfile(path):
            raise InspectLogError(f"{path}: no such file")
        samples = _read(api, path)
        if not samples:
            raise InspectLogError(f"{path}: the log has no samples")
        for s in samples:
            meta = dict(s.metadata or {})
            keyed = keyed or (label_key is not None and label_key in meta)
            where = f"{path}: sample {s.id!r} epoch {s.epoch}"
            label = sample_label(meta, label_key, where)
            info = {"log": path, "sample_id": s.id, "epoch": s.epoch}
            items.append(Item(f"{SOURCE}:{path}#{s.id}#{s.epoch}", SOURCE, sample_text(s),
                              info if label is None else {**info, "label": label}))
    if label_key is not None and not keyed:
        raise InspectLogError(f"{', '.join(paths)}: no sample's metadata has {label_key!r}")
    return items
