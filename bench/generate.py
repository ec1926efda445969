"""Generation speed vs `transformers.generate` on SmolLM2-135M-Instruct, fp32, same prompts (DESIGN.md §6).

Batch 8 (`--batch`) of 128-token prompts (real suite text), 64 new tokens, greedy, no stop tokens on either side (every row
generates all 64). Ours: `eval.generate.generate_ids` (prefill + `lax.while_loop` decode with the KV cache);
PyTorch: `model.generate(..., do_sample=False, min_new_tokens=64, max_new_tokens=64)` with its KV cache.
Timed repeats are interleaved after one warm-up each; new tokens/s = batch x 64 / wall seconds. Also reports how many
generated tokens agree between the two (greedy, fp32: they should, up to near-ties). A lever's before/after in the
same run: ours with the decode step's cache written in place per layer (the default) and with the old copied
per-layer slices out of the layer scan (`generate_ids(in_place=False)`).

    python bench/generate.py [--repeats=5] [--batch=8] [--out=bench/results/generate.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

import common

PROMPT, NEW = 128, 64


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8, help="rows per batch on both sides (a lever row when not 8)")
    ap.add_argument("--max_load", type=float, default=1.5)
    ap.add_argument("--wait", type=float, default=1800)
    ap.add_argument("--out", default="bench/results/generate.md")
    args = ap.parse_args()
    import torch

    from monitor_jax.eval import generate
    from monitor_jax.model import registry

    B = args.batch
    at = "" if B == 8 else f", batch {B}"  # the rows of another batch size are their own measurements
    start = time.time()
    m = registry.load("smollm2-135m")
    prompts = common.text_tokens(m.tokenizer, B, PROMPT)
    tmodel = common.load_torch_smollm2().eval()
    sampling = generate.Sampling(max_new_tokens=NEW)
    params = jax.device_put(m.params)

    def ours(in_place: bool = True):
        return generate.generate_ids(m.cfg, params, list(prompts), sampling, stop_ids=(), batch_size=B,
                                     buckets=(PROMPT,), progress=False, in_place=in_place)

    ids = torch.from_numpy(prompts.astype(np.int64))

    def theirs():
        with torch.inference_mode():
            return tmodel.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                   min_new_tokens=NEW, max_new_tokens=NEW, pad_token_id=m.tokenizer.pad_id)

    load = common.wait_quiet(args.max_load, args.wait)
    t0 = time.perf_counter()
    got = ours()
    first = time.perf_counter() - t0
    ref = theirs()[:, PROMPT:].numpy()
    copied = ours(False)
    same = all(np.array_equal(a.tokens, b.tokens) for a, b in zip(got, copied))
    agree = float(np.mean([np.mean(g.tokens == r) for g, r in zip(got, ref)]))
    prefix = float(np.mean([np.argmax(np.append(g.tokens != r, True)) for g, r in zip(got, ref)]))
    tj, tc, tt = [], [], []
    for _ in range(args.repeats):
        tj.append(common.median_time(ours, 1)[0])
        tc.append(common.median_time(lambda: ours(False), 1)[0])
        tt.append(common.median_time(theirs, 1)[0])
    mj, mc, mt = float(np.median(tj)), float(np.median(tc)), float(np.median(tt))
    n = B * NEW
    text = "\n".join([
        "# Generation: JAX KV-cache sampler (ours) vs transformers.generate, SmolLM2-135M-Instruct fp32",
        "",
        f"Command: `python {' '.join(sys.argv)}`  ",
        f"Machine: {common.machine()}; jax {jax.__version__}, torch {torch.__version__}; load before "
        f"{load:.2f}, after {os.getloadavg()[0]:.2f}. Took {time.time() - start:.0f} s.  ",
        f"Batch {B}, {PROMPT}-token prompts, {NEW} new tokens, greedy; medians of {args.repeats} interleaved runs.",
        "",
        "| measurement | ours | transformers.generate | ratio | target |",
        "|---|---|---|---|---|",
        f"| new tokens/s{at} | {n / mj:.1f} | {n / mt:.1f} | **{mt / mj:.2f}x** | ≥ 1x |",
        f"| new tokens/s{at}, cache slices copied out of the layer scan (before the in-place lever) | {n / mc:.1f} | "
        f"{n / mt:.1f} | **{mt / mc:.2f}x** | ≥ 1x |",
        f"| wall s per batch | {', '.join(f'{t:.2f}' for t in tj)} (copied: {', '.join(f'{t:.2f}' for t in tc)}) | "
        f"{', '.join(f'{t:.2f}' for t in tt)} | | |",
        f"| first call (ours: compile + run) | {first:.1f} s | | | |",
        f"| greedy tokens equal to transformers' | {agree:.1%} (mean identical prefix {prefix:.0f}/{NEW}) | | | |",
        f"| in place vs copied slices: greedy tokens identical | {'yes' if same else 'NO'} | | | |",
        "",
    ])
    print(text)
    common.write_result(args.out, text)


if __name__ == "__main__":
    main()
