"""Packed scoring batches: several short prompts share one row, kept apart by segment ids.

A row of width W (the bucket of the batch's longest prompt) holds up to `MAX_SEGMENTS` prompts back to back; each
prompt's tokens carry their own segment id (1, 2, ...) and positions restarting at 0, so attention stays inside a
prompt (`transformer.attention_mask`) and RoPE sees the positions it would alone: a packed prompt's score equals
its unpacked one up to float rounding (tests/eval/test_scoring.py). Batches are built first-fit decreasing: rows
sorted longest first; a batch's first B prompts open its B rows, later (shorter) ones go into the first row with
room, and a prompt that fits nowhere starts the next batch (narrower, its own bucket). On the suite's length mix
this cuts padding and the number of calls (bench/scoring.py, the mix lever rows). Scored by
`scoring.packed_label_logprobs` (`scoring.score_rendered(pack=True)`).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from monitor_jax.data import pipeline

MAX_SEGMENTS = 16  # prompts per packed row (a static shape: answer_index [B, MAX_SEGMENTS])


def _collate(rows: list[list[pipeline.RenderedExample]], width: int, pad_id: int) -> dict[str, np.ndarray]:
    b, s = len(rows), MAX_SEGMENTS
    out = {"tokens": np.full((b, width), pad_id, np.int32), "positions": np.zeros((b, width), np.int32),
           "segment_ids": np.zeros((b, width), np.int32), "answer_index": np.ones((b, s), np.int32),
           "label_ids": np.full((b, s, 2), -1, np.int32)}
    ids = np.full((b, s), "", dtype=object)
    for i, row in enumerate(rows):
        at = 0
        for j, r in enumerate(row):
            n = r.answer_index  # the prompt: the answer slot itself is not read when scoring
            out["tokens"][i, at:at + n] = r.tokens[:n]
            out["positions"][i, at:at + n] = np.arange(n, dtype=np.int32)
            out["segment_ids"][i, at:at + n] = j + 1
            out["answer_index"][i, j] = at + n
            out["label_ids"][i, j] = r.label_ids
            ids[i, j] = r.id
            at += n
    out["id"] = ids.astype(str)
    return out


def plan(lengths: Sequence[int], batch_size: int, bucket_lens: Sequence[int]) -> Iterator[tuple[int, list[list[int]]]]:
    """First-fit-decreasing packing of rows of `lengths` tokens: (width, rows of indices into `lengths`) per batch
    of `batch_size` rows (the last may have fewer), at most MAX_SEGMENTS per row."""
    pending = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    while pending:
        width = bucket_lens[pipeline.bucket_of(lengths[pending[0]], bucket_lens)]
        rows: list[list[int]] = []
        room: list[int] = []
        rest: list[int] = []
        for at, i in enumerate(pending):
            n = lengths[i]
            if len(rows) < batch_size:  # the batch's longest prompts open its rows
                rows.append([i])
                room.append(width - n)
                continue
            if max(room) < lengths[pending[-1]]:  # nothing left fits: the rest start the next batch
                rest += pending[at:]
                break
            k = next((j for j, left in enumerate(room) if left >= n and len(rows[j]) < MAX_SEGMENTS), None)
            if k is None:
                rest.append(i)
                continue
            rows[k].append(i)
            room[k] -= n
        pending = rest
        yield width, rows


def packed_batches(rendered: Sequence[pipeline.RenderedExample], batch_size: int,
                   buckets: Sequence[int] = pipeline.DEFAULT_BUCKETS, *,
                   max_len: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Every classification row once, packed (see the module docstring); keys tokens, positions, segment_ids
    [B, W]; answer_index [B, MAX_SEGMENTS] (the slot after each prompt; 1 where unused); label_ids
    [B, MAX_SEGMENTS, 2]; id [B, MAX_SEGMENTS] ("" where unused)."""
    bucket_lens = pipeline.bucket_lengths(buckets, max_len)
    for width, rows in plan([r.answer_index for r in rendered], batch_size, bucket_lens):
        packed = [[rendered[i] for i in row] for row in rows] + [[] for _ in range(batch_size - len(rows))]
        yield _collate(packed, width, rendered[0].pad_id)
