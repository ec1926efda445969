"""Padding waste of bucket schemes on the real suite's length mix (DESIGN.md §5 Shapes; target <= 10 %).

Renders every task's validation examples (primary prompt, SmolLM2 chat template, max_len 2048) and reports
the fraction of pad tokens for several bucket schemes, eval-style (sorted by length, last batch of a bucket
padded with weight-0 rows). Also reports the usual unsorted batching with per-batch dynamic padding.

    python bench/padding_waste.py [--batch_size=8] [--out=bench/results/padding_waste.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from monitor_jax.data import pipeline, tasks
from monitor_jax.model import registry
from monitor_jax.model.tokenizer import Tokenizer

MAX_LEN = 2048
SCHEMES = {
    "powers of 2 (128..2048)": (128, 256, 512, 1024, 2048),
    "x1.5 steps (128..2048)": (128, 192, 256, 384, 512, 768, 1024, 1536, 2048),
    "multiples of 128": tuple(range(128, MAX_LEN + 1, 128)),
    "multiples of 64": tuple(range(64, MAX_LEN + 1, 64)),
    "x1.2 steps from 32 (default)": pipeline.DEFAULT_BUCKETS,
    "x1.15 steps from 32, multiples of 8": pipeline.geometric_buckets(32, MAX_LEN, 1.15, 8),
}


def lengths_by_domain(tok: Tokenizer) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for name in sorted(tasks.TASKS):
        task = tasks.get(name)
        rendered, _ = pipeline.render_examples(tok, tasks.examples(task, "validation"), MAX_LEN)
        out.setdefault(task.domain, []).extend(len(r) for r in rendered)
    return out


def unsorted_dynamic_waste(lengths: list[int], batch_size: int, seed: int = 0) -> float:
    """Shuffled batches, each padded to its own longest row."""
    order = np.random.default_rng(seed).permutation(len(lengths))
    arr = np.asarray(lengths)[order]
    slots = sum(arr[i : i + batch_size].max() * batch_size for i in range(0, len(arr), batch_size))
    return 1.0 - arr.sum() / slots


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--out", default="bench/results/padding_waste.md")
    args = ap.parse_args()
    start = time.time()
    tok = Tokenizer.from_gguf(registry.smollm2_gguf_path())
    by_domain = lengths_by_domain(tok)
    all_lengths = [n for v in by_domain.values() for n in v]
    cols = list(SCHEMES) + ["unsorted, dynamic padding"]
    lines = [
        f"# Padding waste on the suite's validation examples (batch size {args.batch_size})",
        "",
        f"Command: `python bench/padding_waste.py --batch_size={args.batch_size}`; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores; {len(all_lengths)} examples, {len(tasks.TASKS)} tasks; median length "
        f"{int(np.median(all_lengths))} tokens, p95 {int(np.percentile(all_lengths, 95))}.",
        "",
        "Each cell: eval batches (last batch of a bucket padded with weight-0 rows) / training batches (full).",
        "",
        "| domain | n | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for domain, lens in sorted(by_domain.items()) + [("**all**", all_lengths)]:
        cells = [
            f"{pipeline.padding_waste(lens, b, args.batch_size):.1%} / {pipeline.padding_waste(lens, b, args.batch_size, pad_rows=False):.1%}"
            for b in SCHEMES.values()
        ]
        cells.append(f"{unsorted_dynamic_waste(lens, args.batch_size):.1%}")
        lines.append(f"| {domain} | {len(lens)} | " + " | ".join(cells) + " |")
    lines.append(f"\nTook {time.time() - start:.0f} s.")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
