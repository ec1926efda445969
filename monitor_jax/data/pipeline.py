"""Examples -> chat-rendered, tokenized, truncated rows -> fixed-shape numpy batches (the batch contract).

Training streams over these rows (bucketed, shuffled, sharded, resumable, mixed) live in `mixture.py`.

Decisions (DESIGN.md is silent on them):
- Rows are tokenized piecewise: template text around the input (trusted, may hold control tokens) and the input
  itself (untrusted: text such as "<|im_start|>" is encoded as ordinary text, never as the control token, and
  counted in `RenderStats.escaped`). The pieces decode to exactly `tok.render_chat(...)` of the whole prompt.
- The label word is resolved after the rendered text that is tokenized together with it (the prompt's tail after
  the input), cached per (label words, tail) — so two templates with different tails never share a resolution.
- Rendering is eager (per host, only its shard): bucketing needs every length up front and the stats are exact.
- Batches: right-padded with `tok.pad_id`; IF and padding rows have answer_index 0, label -1, answer_id -1,
  label_ids (-1, -1); padding rows have weight 0, task_index -1, id ''.
"""
from __future__ import annotations

import collections
import dataclasses
import math
import re
import weakref
from typing import Iterator, Mapping, Sequence

import numpy as np
import tokenizers

from monitor_jax.model.tokenizer import LabelWordError, Tokenizer

def geometric_buckets(lo: int = 32, hi: int = 2048, ratio: float = 1.2, multiple: int = 16) -> tuple[int, ...]:
    """Bucket lengths growing by `ratio` from `lo` to `hi`, rounded up to `multiple` (hardware-friendly)."""
    out, x = [], float(lo)
    while x < hi:
        v = int(math.ceil(x / multiple) * multiple)
        if not out or v > out[-1]:
            out.append(v)
        x *= ratio
    return tuple(b for b in out if b < hi) + (hi,)


# x1.2 steps from 32 (22 buckets up to 2048): ~9 % padding on the suite's real length mix, where powers of
# two waste ~29 % (bench/padding_waste.py). More buckets cost more compiles, one per bucket actually used.
DEFAULT_BUCKETS = geometric_buckets()
TRUNCATION_MARKER = "\n[... truncated ...]\n"
_SENTINEL = "\ue000{}\ue001"  # private-use code points: survive chat templates untouched
_SENTINEL_RE = re.compile("\ue000(\\d+)\ue001")


@dataclasses.dataclass(frozen=True)
class ClassificationExample:
    """One item to classify: `template` holds "{input}" once; label 1 -> label_words[0] (positive word)."""

    id: str
    task: str
    input: str
    label: int
    template: str
    label_words: tuple[str, str]
    system: str | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.template.count("{input}") != 1:
            raise ValueError(f"task {self.task!r}: template must contain '{{input}}' exactly once: {self.template!r}")
        if self.label not in (0, 1):
            raise ValueError(f"task {self.task!r} example {self.id!r}: label must be 0 or 1, got {self.label!r}")
        if len(self.label_words) != 2:
            raise ValueError(f"task {self.task!r}: label_words must be (positive, negative), got {self.label_words!r}")
        try:
            self.template.format(input="")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"task {self.task!r}: template has a format field besides {{input}} ({e!r}); "
                             "write literal braces as {{ and }}") from None


@dataclasses.dataclass(frozen=True)
class InstructionExample:
    """A chat for instruction-following loss: user/assistant turns ending with an assistant turn."""

    id: str
    source: str
    messages: tuple[dict, ...]
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.messages or self.messages[-1].get("role") != "assistant":
            raise ValueError(f"IF source {self.source!r} example {self.id!r}: messages must end with an assistant turn")


Example = ClassificationExample | InstructionExample


@dataclasses.dataclass(frozen=True, eq=False)
class RenderedExample:
    """One tokenized row. Classification: the answer token is tokens[answer_index]; IF: loss_mask marks targets."""

    tokens: np.ndarray  # int32 [L]
    answer_index: int  # -1 for IF
    label: int  # -1 for IF
    answer_id: int  # -1 for IF
    label_ids: tuple[int, int]  # (positive id, negative id); (-1, -1) for IF
    loss_mask: np.ndarray  # float32 [L]; zeros for classification
    weight: float
    id: str
    task: str  # task name, or IF source name
    truncated: bool
    input_span: tuple[int, int]  # token span [start, end) of the (possibly cut) input; (0, 0) for IF
    pad_id: int

    @property
    def is_classification(self) -> bool:
        return self.answer_index >= 0

    def __len__(self) -> int:
        return len(self.tokens)


@dataclasses.dataclass
class RenderStats:
    """Per task/source counts from rendering: examples, truncated, dropped (IF only), control-token escapes."""

    examples: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    truncated: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    dropped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    escaped: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {f.name: dict(getattr(self, f.name)) for f in dataclasses.fields(self)}


class _Encoders:
    """Per-tokenizer caches: an escaping encoder for untrusted text, template pieces, label-word resolutions."""

    def __init__(self, tok: Tokenizer):
        self.tok = tok
        self.literal = tokenizers.Tokenizer.from_str(tok.backend.to_str())
        self.literal.encode_special_tokens = True  # control-token text -> ordinary tokens
        specials = [t.content for t in tok.backend.get_added_tokens_decoder().values() if t.special and t.content]
        alternatives = "|".join(map(re.escape, sorted(specials, key=len, reverse=True)))
        self.special_re = re.compile(alternatives) if specials else None
        self.marker = tok.encode(TRUNCATION_MARKER)
        self.pieces: dict[str, list[int]] = {}
        self.prompts: dict[tuple, tuple[list[int], list[int], tuple[int, int]]] = {}

    def template(self, text: str) -> list[int]:
        if text not in self.pieces:
            self.pieces[text] = self.tok.encode(text)
        return self.pieces[text]

    def untrusted(self, text: str) -> tuple[list[int], bool]:
        """Ids of untrusted text, and whether it contained control-token text (escaped)."""
        escaped = bool(self.special_re and self.special_re.search(text))
        if not escaped:
            return self.tok.encode(text), False
        return self.literal.encode(text, add_special_tokens=False).ids, True

    def prompt(self, ex: ClassificationExample) -> tuple[list[int], list[int], tuple[int, int]]:
        """(prefix ids, suffix ids, label ids) for a template/system/label-words triple."""
        key = (ex.template, ex.system, tuple(ex.label_words))
        if key not in self.prompts:
            messages = [{"role": "system", "content": ex.system}] if ex.system is not None else []
            messages.append({"role": "user", "content": ex.template.format(input=_SENTINEL.format(0))})
            text = self.tok.render_chat(messages, add_generation_prompt=True)
            if text.count(_SENTINEL.format(0)) != 1:
                raise ValueError(f"task {ex.task!r}: the chat template did not keep the input exactly once")
            prefix, suffix = text.split(_SENTINEL.format(0))
            # The answer token is tokenized right after encode(suffix): resolve it in exactly that context.
            try:
                label_ids = self.tok.resolve_label_words(ex.label_words, context=suffix)
            except LabelWordError as e:
                raise LabelWordError(f"task {ex.task!r}: {e}") from None
            self.prompts[key] = (self.template(prefix), self.template(suffix), (label_ids[0], label_ids[1]))
        return self.prompts[key]


_ENCODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _encoders(tok: Tokenizer) -> _Encoders:
    if tok not in _ENCODERS:
        _ENCODERS[tok] = _Encoders(tok)
    return _ENCODERS[tok]


def _cut_middle(ids: list[int], budget: int, marker: list[int], head_fraction: float) -> list[int]:
    """Keep the head and tail of `ids` around `marker` in `budget` tokens (head only if the marker can't fit)."""
    keep = budget - len(marker)
    if keep <= 0:
        return ids[:budget]
    head = int(round(keep * head_fraction))
    tail = keep - head
    return ids[:head] + marker + (ids[len(ids) - tail:] if tail else [])


def encode_untrusted(tok: Tokenizer, text: str, max_tokens: int | None = None,
                     head_fraction: float = 0.5) -> tuple[list[int], bool]:
    """Ids of untrusted `text` (control-token text encoded as ordinary text), cut in the middle around the
    truncation marker to `max_tokens` (None: no cap); and whether it was cut."""
    enc = _encoders(tok)
    ids, _ = enc.untrusted(text)
    if max_tokens is None or len(ids) <= max_tokens:
        return ids, False
    return _cut_middle(ids, max(max_tokens, 0), enc.marker, head_fraction), True


def slot(i: int) -> str:
    """Placeholder for untrusted input `i` inside chat message contents passed to `encode_chat`."""
    return _SENTINEL.format(i)


@dataclasses.dataclass(frozen=True)
class ChatIds:
    """A chat rendered piecewise: ids, the [start, end) token span of each input, whether any was cut or escaped,
    and the rendered text after the last input (the context an answer token is tokenized in)."""

    ids: list[int]
    spans: tuple[tuple[int, int], ...]
    truncated: bool
    escaped: bool
    tail: str


def encode_chat(tok: Tokenizer, messages: Sequence[dict], inputs: Sequence[str], *,
                budgets: Sequence[int | None] | None = None, add_generation_prompt: bool = True,
                head_fraction: float = 0.5, template_kwargs: Mapping[str, object] | None = None) -> ChatIds:
    """Token ids of a chat whose message contents hold `slot(i)` placeholders for untrusted `inputs[i]`.

    Template text is trusted (control tokens allowed); inputs are encoded as untrusted text (like
    `render_classification`) and input i loses its middle to fit `budgets[i]` tokens (None: no cap). Each slot
    must appear exactly once. `template_kwargs` go to the chat template (e.g. {"enable_thinking": True}).
    """
    enc = _encoders(tok)
    text = tok.render_chat(list(messages), add_generation_prompt=add_generation_prompt, **(template_kwargs or {}))
    found = [int(m.group(1)) for m in _SENTINEL_RE.finditer(text)]
    if sorted(found) != list(range(len(inputs))):
        raise ValueError(f"encode_chat: the rendered chat holds input slots {found}, expected each of "
                         f"0..{len(inputs) - 1} once")
    budgets = list(budgets) if budgets is not None else [None] * len(inputs)
    ids: list[int] = []
    spans: list[tuple[int, int]] = [(0, 0)] * len(inputs)
    truncated = escaped = False
    pieces = _SENTINEL_RE.split(text)  # [text, slot, text, slot, ..., text]
    for k, piece in enumerate(pieces):
        if k % 2 == 0:
            ids += enc.template(piece) if piece else []
            continue
        i = int(piece)
        inp, esc = enc.untrusted(inputs[i])
        escaped |= esc
        if budgets[i] is not None and len(inp) > budgets[i]:
            inp, truncated = _cut_middle(inp, max(budgets[i], 0), enc.marker, head_fraction), True
        spans[i] = (len(ids), len(ids) + len(inp))
        ids += inp
    return ChatIds(ids=ids, spans=tuple(spans), truncated=truncated, escaped=escaped, tail=pieces[-1])


def render_classification(tok: Tokenizer, ex: ClassificationExample, max_len: int, *, head_fraction: float = 0.5,
                          stats: RenderStats | None = None) -> RenderedExample:
    """Prompt + input + answer token as one row; an over-long input loses its middle (template and slot never)."""
    if not 0.0 <= head_fraction <= 1.0:
        raise ValueError(f"head_fraction must be in [0, 1], got {head_fraction}")
    enc = _encoders(tok)
    prefix, suffix, label_ids = enc.prompt(ex)
    inp, escaped = enc.untrusted(ex.input)
    fixed = len(prefix) + len(suffix) + 1
    if fixed > max_len:
        raise ValueError(f"task {ex.task!r} (example {ex.id!r}): the prompt without its input is {fixed} tokens "
                         f"(template {fixed - 1} + answer 1) > max_len {max_len}")
    truncated = len(inp) > max_len - fixed
    if truncated:
        inp = _cut_middle(inp, max_len - fixed, enc.marker, head_fraction)
    answer_id = label_ids[0] if ex.label == 1 else label_ids[1]
    tokens = np.asarray(prefix + inp + suffix + [answer_id], dtype=np.int32)
    if stats is not None:
        stats.examples[ex.task] += 1
        stats.truncated[ex.task] += truncated
        stats.escaped[ex.task] += escaped
    return RenderedExample(tokens=tokens, answer_index=len(tokens) - 1, label=ex.label, answer_id=answer_id,
                           label_ids=label_ids, loss_mask=np.zeros(len(tokens), np.float32), weight=float(ex.weight),
                           id=ex.id, task=ex.task, truncated=truncated, pad_id=tok.pad_id,
                           input_span=(len(prefix), len(prefix) + len(inp)))


def render_instruction(tok: Tokenizer, ex: InstructionExample, max_len: int, *,
                       stats: RenderStats | None = None) -> RenderedExample | None:
    """The whole chat; loss on assistant contents + their end-of-turn token. Cut from the end to `max_len`;
    None (counted as dropped) when no target token of the first assistant turn fits."""
    enc = _encoders(tok)
    msgs = [dict(m) for m in ex.messages]
    text = tok.render_chat([{**m, "content": _SENTINEL.format(i)} for i, m in enumerate(msgs)],
                           add_generation_prompt=False)
    ids: list[int] = []
    mask: list[float] = []
    escaped = False
    after_assistant = False
    pos = 0
    for match in [*_SENTINEL_RE.finditer(text), None]:
        piece = enc.template(text[pos:match.start() if match else len(text)])
        ids += piece
        mask += [0.0] * len(piece)
        if after_assistant and piece and piece[0] in tok.stop_ids:
            mask[len(ids) - len(piece)] = 1.0  # the end-of-turn token is a target
        if match is None:
            break
        m = msgs[int(match.group(1))]
        content, esc = enc.untrusted(str(m.get("content", "")))
        escaped |= esc
        after_assistant = m.get("role") == "assistant"
        ids += content
        mask += [float(after_assistant)] * len(content)
        pos = match.end()
    truncated = len(ids) > max_len
    ids, mask = ids[:max_len], mask[:max_len]
    if stats is not None:
        stats.examples[ex.source] += 1
        stats.escaped[ex.source] += escaped
        stats.truncated[ex.source] += truncated
    if not any(mask):
        if stats is not None:
            stats.dropped[ex.source] += 1
        return None
    return RenderedExample(tokens=np.asarray(ids, np.int32), answer_index=-1, label=-1, answer_id=-1,
                           label_ids=(-1, -1), loss_mask=np.asarray(mask, np.float32), weight=float(ex.weight),
                           id=ex.id, task=ex.source, truncated=truncated, input_span=(0, 0), pad_id=tok.pad_id)


def render_examples(tok: Tokenizer, examples: Sequence[Example], max_len: int, *, head_fraction: float = 0.5,
                    stats: RenderStats | None = None) -> tuple[list[RenderedExample], RenderStats]:
    """Render a list of examples (dropped IF examples are left out) and return them with their stats."""
    stats = stats if stats is not None else RenderStats()
    out = []
    for ex in examples:
        if isinstance(ex, ClassificationExample):
            out.append(render_classification(tok, ex, max_len, head_fraction=head_fraction, stats=stats))
        elif isinstance(ex, InstructionExample):
            row = render_instruction(tok, ex, max_len, stats=stats)
            if row is not None:
                out.append(row)
        else:
            raise TypeError(f"not an example: {type(ex).__name__}")
    return out, stats


def example_name(ex: Example | RenderedExample) -> str:
    """The task (classification) or source (IF) an example belongs to."""
    return ex.source if isinstance(ex, InstructionExample) else ex.task


def task_table(examples: Sequence[Example | RenderedExample]) -> tuple[str, ...]:
    """The sorted task/source names: `task_index` in batches indexes this table."""
    return tuple(sorted({example_name(ex) for ex in examples}))


def bucket_lengths(buckets: Sequence[int] = DEFAULT_BUCKETS, max_len: int | None = None) -> tuple[int, ...]:
    """Sorted bucket lengths capped at `max_len` (which becomes the last bucket)."""
    out = sorted(set(int(b) for b in buckets))
    if max_len is not None:
        out = [b for b in out if b < max_len] + [int(max_len)]
    if not out or out[0] <= 0:
        raise ValueError(f"bucket lengths must be positive, got {buckets} (max_len={max_len})")
    return tuple(out)


def bucket_of(length: int, buckets: Sequence[int]) -> int:
    """Index of the smallest bucket that holds `length` tokens."""
    k = int(np.searchsorted(buckets, length))
    if k == len(buckets):
        raise ValueError(f"a row of {length} tokens exceeds the largest bucket {buckets[-1]}")
    return k


def collate(rows: Sequence[RenderedExample | None], length: int, batch_size: int, pad_id: int,
            task_index: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Rows -> the batch dict of the shared contract; missing/None rows are weight-0 padding rows."""
    b, t = batch_size, length
    out = {"tokens": np.full((b, t), pad_id, np.int32), "positions": np.zeros((b, t), np.int32),
           "segment_ids": np.zeros((b, t), np.int32), "answer_index": np.zeros(b, np.int32),
           "label": np.full(b, -1, np.int32), "label_ids": np.full((b, 2), -1, np.int32),
           "answer_id": np.full(b, -1, np.int32), "loss_mask": np.zeros((b, t), np.float32),
           "weight": np.zeros(b, np.float32), "is_classification": np.zeros(b, bool),
           "task_index": np.full(b, -1, np.int32)}
    ids = [""] * b
    for i, r in enumerate(rows):
        if r is None:
            continue
        n = len(r.tokens)
        out["tokens"][i, :n] = r.tokens
        out["positions"][i, :n] = np.arange(n, dtype=np.int32)
        out["segment_ids"][i, :n] = 1
        out["loss_mask"][i, :n] = r.loss_mask
        out["answer_index"][i] = max(r.answer_index, 0)
        out["label"][i], out["answer_id"][i], out["label_ids"][i] = r.label, r.answer_id, r.label_ids
        out["weight"][i], out["is_classification"][i] = r.weight, r.is_classification
        out["task_index"][i] = task_index[r.task]
        ids[i] = r.id
    out["id"] = np.asarray(ids, dtype=str)
    return out


def eval_batches(rendered: Sequence[RenderedExample], batch_size: int, buckets: Sequence[int] = DEFAULT_BUCKETS, *,
                 max_len: int | None = None,
                 task_names: Sequence[str] | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Every example once, sorted by length; one [batch_size, bucket] shape per bucket (last batch padded)."""
    buckets = bucket_lengths(buckets, max_len)
    index = {n: i for i, n in enumerate(task_names if task_names is not None else task_table(rendered))}
    order = sorted(range(len(rendered)), key=lambda i: (len(rendered[i]), i))
    groups: dict[int, list[RenderedExample]] = collections.defaultdict(list)
    for i in order:
        groups[bucket_of(len(rendered[i]), buckets)].append(rendered[i])
    for k in sorted(groups):
        rows = groups[k]
        for s in range(0, len(rows), batch_size):
            yield collate(rows[s:s + batch_size], buckets[k], batch_size, rows[0].pad_id, index)


def padding_waste(lengths: Sequence[int], buckets: Sequence[int], batch_size: int, *, pad_rows: bool = True) -> float:
    """Fraction of pad tokens when `lengths` are batched per bucket (`pad_rows`: eval-style padded last batches)."""
    buckets = bucket_lengths(buckets)
    per = collections.Counter(bucket_of(n, buckets) for n in lengths)
    slots = sum((math.ceil(c / batch_size) * batch_size if pad_rows else c) * buckets[k] for k, c in per.items())
    return 1.0 - sum(lengths) / slots if slots else 0.0
