"""Scoring speed vs PyTorch + transformers on SmolLM2-135M-Instruct, fp32, same batches (DESIGN.md §6).

Parts (each prints its numbers and goes into the markdown report):
  fixed   8x256 real-text tokens: `scoring.label_logprobs` vs `model(ids, mask, logits_to_keep=1)` (interleaved
          repeats, medians after warm-up); also the max |logp| difference between the two on those batches
  head    the answer-slot head alone: full log-softmax + gather vs logsumexp + gather vs the two label rows only
  remat   the same forward with cfg.remat="full" (why scoring drops remat)
  mix     the suite's real length mix (validation examples sampled across tasks.TASKS, fixed seed): our whole
          pipeline (tokenized rows -> scores, length-bucketed sorted batches) vs PyTorch fed our sorted batch
          composition with per-batch dynamic padding, and vs PyTorch with shuffled batches padded to their longest;
          levers: --fine_buckets=N ours in buckets every N tokens; --pack=1 short prompts packed into shared rows
  policies  K=5 news-topic questions on the same BBC articles: `multi_policy.score_policies` vs one policy
          (`scoring.score_examples` on one template); both from text, rendering included

    python bench/scoring.py [--parts=fixed,head,remat,mix,policies] [--repeats=5] [--out=bench/results/scoring.md]
    python bench/scoring.py --matmul_dtype=bfloat16 --parts=fixed,mix --out=bench/results/scoring_bf16.md

--matmul_dtype=bfloat16: ours with `model.matmul_dtype="bfloat16"` (bf16 matmul operands, fp32 products), PyTorch
under CPU autocast to bf16 (fp32 weights): the same mixed precision on both sides.

Tokens/s counts prompt tokens (padding excluded). PyTorch batches are left-padded with explicit position ids so
`logits_to_keep=1` reads each row's last prompt token. Run it on a quiet machine: it waits (up to --wait s) for
the 1-minute load average to drop below --max_load, and records the load around each part.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from monitor_jax.data import pipeline, tasks
from monitor_jax.eval import multi_policy, packing, scoring
from monitor_jax.model import registry

import common
from common import machine, median_time, wait_quiet

MAX_LEN = 2048
BATCH = 8
PRECISION = {"matmul_dtype": None}  # the run's --matmul_dtype, read by torch_logp and tag


def tag() -> str:
    """The measurement names' precision suffix (none for fp32, so reruns replace the fp32 rows only)."""
    mm = PRECISION["matmul_dtype"]
    return "" if mm in (None, "float32") else f", {mm} matmuls"


def torch_logp(model, rows: list[np.ndarray], label_ids: np.ndarray, pad_id: int) -> np.ndarray:
    """[n, 2] log P(label words) after each prompt row, as one left-padded batch."""
    import torch

    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, np.int64)
    mask = np.zeros((len(rows), width), np.int64)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = r
        mask[i, width - len(r):] = 1
    pos = np.maximum(mask.cumsum(-1) - 1, 0)
    with torch.inference_mode(), common.torch_precision(PRECISION["matmul_dtype"]):
        out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                    position_ids=torch.from_numpy(pos), logits_to_keep=1).logits[:, -1].float()
        logp = torch.log_softmax(out, dim=-1).numpy()
    return np.take_along_axis(logp, np.asarray(label_ids).reshape(len(rows), 2), axis=1)


@dataclasses.dataclass
class Report:
    lines: list[str] = dataclasses.field(default_factory=list)

    def add(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)


def suite_rows(tok, n: int, seed: int) -> list[pipeline.RenderedExample]:
    """n validation examples sampled uniformly across every task's primary prompt, rendered by our pipeline."""
    exs = [ex for name in sorted(tasks.TASKS) for ex in tasks.examples(name, "validation")]
    keep = np.random.default_rng(seed).choice(len(exs), n, replace=False)
    rendered, _ = pipeline.render_examples(tok, [exs[i] for i in sorted(keep)], MAX_LEN)
    return rendered


def part_fixed(rep: Report, m, tmodel, rows, repeats: int) -> float:
    stream = np.concatenate([r.tokens[:r.answer_index] for r in rows])
    tokens = stream[:BATCH * 256].reshape(BATCH, 256).astype(np.int32)
    label_ids = np.tile(rows[0].label_ids, (BATCH, 1)).astype(np.int32)
    args = (m.cfg, m.params, jnp.asarray(tokens), jnp.ones_like(jnp.asarray(tokens)),
            jnp.full((BATCH,), 256, jnp.int32), jnp.asarray(label_ids))

    def ours():
        return jax.block_until_ready(scoring.label_logprobs(*args))

    def theirs():
        return torch_logp(tmodel, list(tokens), label_ids, 0)

    t0 = time.perf_counter()
    out = ours()
    compile_s = time.perf_counter() - t0
    ref = theirs()
    diff = max(np.abs(np.asarray(out["logp_pos"]) - ref[:, 0]).max(), np.abs(np.asarray(out["logp_neg"]) - ref[:, 1]).max())
    ts_j, ts_t = [], []
    for _ in range(repeats):  # interleaved, so both sides see the same background load
        ts_j.append(median_time(ours, 1)[0])
        ts_t.append(median_time(theirs, 1)[0])
    tj, tt = float(np.median(ts_j)), float(np.median(ts_t))
    n = BATCH * 256
    rep.add(f"| fixed 8x256{tag()} | {n / tj:.0f} | {n / tt:.0f} | **{tt / tj:.2f}x** | ≥ 1.15x | "
            f"JAX {', '.join(f'{t:.2f}' for t in ts_j)} s; PyTorch {', '.join(f'{t:.2f}' for t in ts_t)} s; "
            f"first JAX call (compile + run) {compile_s:.1f} s; max abs logp difference {diff:.1e} |")
    return tj


def part_head(rep: Report, m, repeats: int) -> None:
    w = m.params["embed"]
    h = jax.random.normal(jax.random.key(0), (BATCH, w.shape[1]), jnp.float32)
    ids = jnp.tile(jnp.asarray([[10539, 5230]], jnp.int32), (BATCH, 1))
    variants = {
        "log_softmax over V, then gather": jax.jit(lambda w, h, ids: jnp.take_along_axis(
            jax.nn.log_softmax(jnp.einsum("bd,vd->bv", h, w), -1), ids, 1)),
        "logits, logsumexp + gather (ours)": jax.jit(lambda w, h, ids: scoring.label_head({"embed": w}, h, ids)),
        "two label rows only (no normaliser)": jax.jit(lambda w, h, ids: jnp.einsum("bd,bkd->bk", h, jnp.take(w, ids, 0))),
    }
    for name, fn in variants.items():
        jax.block_until_ready(fn(w, h, ids))
        t, _ = median_time(lambda: jax.block_until_ready(fn(w, h, ids)), max(repeats, 20))
        rep.add(f"| head: {name} | | | | | {t * 1e3:.2f} ms per 8-row batch |")


def part_remat(rep: Report, m, rows, tj_none: float, repeats: int) -> None:
    cfg = m.cfg.replace(remat="full")
    stream = np.concatenate([r.tokens[:r.answer_index] for r in rows])
    tokens = jnp.asarray(stream[:BATCH * 256].reshape(BATCH, 256).astype(np.int32))

    @jax.jit
    def fwd(params, tokens):  # the model's own forward with remat on (scoring.label_logprobs always drops it)
        from monitor_jax.model import transformer

        hidden, _ = transformer.Transformer(cfg).apply({"params": params}, tokens)
        return hidden[:, -1]

    jax.block_until_ready(fwd(m.params, tokens))
    t, _ = median_time(lambda: jax.block_until_ready(fwd(m.params, tokens)), repeats)
    rep.add(f"| remat=\"full\" forward 8x256 | {BATCH * 256 / t:.0f} | | | | {t:.2f} s vs {tj_none:.2f} s without remat |")


def part_mix(rep: Report, m, tmodel, rows, repeats: int, seed: int, fine: int = 0, pack: bool = False) -> None:
    """The suite's length mix: ours (sorted, bucketed) vs PyTorch on our batches (dynamic padding) and on shuffled
    ones; lever rows: `fine` > 0, ours in buckets of every multiple of `fine` tokens (less padding, more shapes);
    `pack`, ours with short prompts packed into shared rows (`scoring.score_rendered(pack=True)`)."""
    pad = m.tokenizer.pad_id
    prompts = [r.tokens[:r.answer_index] for r in rows]
    label_ids = np.asarray([r.label_ids for r in rows])
    useful = sum(len(p) for p in prompts)
    indexed = [dataclasses.replace(r, id=str(i)) for i, r in enumerate(rows)]
    sorted_batches, our_slots = [], 0
    for b in scoring.sorted_batches(indexed, BATCH, pipeline.DEFAULT_BUCKETS, max_len=MAX_LEN):
        sorted_batches.append([int(i) for i in b["id"] if i])
        our_slots += b["tokens"].size
    eval_slots = sum(b["tokens"].size for b in pipeline.eval_batches(rows, BATCH, max_len=MAX_LEN))
    perm = np.random.default_rng(seed).permutation(len(rows))
    shuffled_batches = [perm[i:i + BATCH].tolist() for i in range(0, len(rows), BATCH)]

    def ours():
        return scoring.score_rendered(m.cfg, m.params, rows, batch_size=BATCH, max_len=MAX_LEN, progress=False)

    def theirs(batches):
        out = np.zeros((len(rows), 2), np.float32)
        for idx in batches:
            out[idx] = torch_logp(tmodel, [prompts[i] for i in idx], label_ids[idx], pad)
        return out

    def slots(batches):
        return sum(len(idx) * max(len(prompts[i]) for i in idx) for idx in batches)

    t0 = time.perf_counter()
    res = ours()  # compiles every bucket used
    first = time.perf_counter() - t0
    ref = theirs(sorted_batches[:4])
    k = [i for b in sorted_batches[:4] for i in b]
    diff = np.abs(res["logp_pos"][k] - ref[k, 0]).max()
    tj, ts_j = median_time(ours, repeats)
    ts, ts_s = median_time(lambda: theirs(sorted_batches), repeats)
    tu, ts_u = median_time(lambda: theirs(shuffled_batches), max(1, repeats - 1))
    lengths = np.asarray([len(p) for p in prompts])
    bucket_lens = pipeline.bucket_lengths(pipeline.DEFAULT_BUCKETS, MAX_LEN)
    n_buckets = len({pipeline.bucket_of(len(r), bucket_lens) for r in rows})
    rep.add(f"| mix: ours, bucketed sorted batches{tag()} | {useful / tj:.0f} | | | | {len(rows)} examples, {useful} prompt "
            f"tokens (median {int(np.median(lengths))}, max {lengths.max()}); padding {1 - useful / our_slots:.0%} "
            f"(`pipeline.eval_batches` would pad {1 - useful / eval_slots:.0%}); "
            f"runs {', '.join(f'{t:.1f}' for t in ts_j)} s; first run incl. compiling {n_buckets} buckets "
            f"{first:.0f} s; max abs logp diff vs PyTorch {diff:.1e} |")
    rep.add(f"| mix: vs PyTorch, our sorted batches, dynamic padding{tag()} | {useful / tj:.0f} | {useful / ts:.0f} | "
            f"**{ts / tj:.2f}x** | ≥ 1.15x | PyTorch padding {1 - useful / slots(sorted_batches):.0%}; runs "
            f"{', '.join(f'{t:.1f}' for t in ts_s)} s |")
    rep.add(f"| mix: vs PyTorch, shuffled batches padded to their longest{tag()} | {useful / tj:.0f} | {useful / tu:.0f} | "
            f"**{tu / tj:.2f}x** | ≥ 1.5x | PyTorch padding {1 - useful / slots(shuffled_batches):.0%}; runs "
            f"{', '.join(f'{t:.1f}' for t in ts_u)} s |")
    levers = []
    if fine:
        fine_b = tuple(range(fine, MAX_LEN + 1, fine))
        levers.append((f"our sorted batches in buckets every {fine}", dict(buckets=fine_b),
                       sum(b["tokens"].size for b in scoring.sorted_batches(indexed, BATCH, fine_b, max_len=MAX_LEN))))
    if pack:
        levers.append(("our packed rows", dict(pack=True),
                       sum(b["tokens"].size for b in packing.packed_batches(indexed, BATCH, max_len=MAX_LEN))))
    for name, kw, lever_slots in levers:
        def ours_lever(kw=kw):
            return scoring.score_rendered(m.cfg, m.params, rows, batch_size=BATCH, max_len=MAX_LEN, progress=False,
                                          **kw)

        t0 = time.perf_counter()
        res_l = ours_lever()
        first_l = time.perf_counter() - t0
        tl, ts_l = median_time(ours_lever, repeats)
        rep.add(f"| mix: vs PyTorch, {name}, dynamic padding{tag()} | {useful / tl:.0f} | {useful / ts:.0f} | "
                f"**{ts / tl:.2f}x** | ≥ 1.15x | lever: padding {1 - useful / lever_slots:.0%} (default "
                f"{1 - useful / our_slots:.0%}); runs {', '.join(f'{t:.1f}' for t in ts_l)} s; first run incl. "
                f"compiles {first_l:.0f} s; max |score| diff vs default {np.abs(res_l['score'] - res['score']).max():.1e} |")


def part_policies(rep: Report, m, n_inputs: int, repeats: int, seed: int) -> None:
    news = [t for t in tasks.TASKS.values() if t.domain == "news"]
    templates = [t.prompt("primary").template for t in news]
    items = tasks.domain_items("news", "validation")
    keep = np.random.default_rng(seed).choice(len(items), min(n_inputs, len(items)), replace=False)
    inputs = [items[i].text for i in sorted(keep)]
    tok = m.tokenizer
    one_exs = [pipeline.ClassificationExample(id=str(i), task=news[0].name, input=x, label=0, template=templates[0],
                                              label_words=news[0].label_words) for i, x in enumerate(inputs)]

    def one():
        return scoring.score_examples(m.cfg, m.params, tok, one_exs, batch_size=BATCH, max_len=MAX_LEN, progress=False)

    def five():
        return multi_policy.score_policies(m.cfg, m.params, tok, inputs, templates, news[0].label_words,
                                           batch_size=BATCH, max_len=MAX_LEN, progress=False)

    r1, r5 = one(), five()  # compile
    assert all(r5.shared), "the news templates should share their head"
    diff = np.abs(r5.logp_pos[:, 0] - r1.logp_pos).max()
    ts1, ts5 = [], []
    for _ in range(repeats):
        ts1.append(median_time(one, 1)[0])
        ts5.append(median_time(five, 1)[0])
    t1, t5 = float(np.median(ts1)), float(np.median(ts5))
    tokens1 = int(r1.n_tokens.sum())
    rep.add(f"| policies: K=5 shared prefix vs 1 policy (news) | {5 * tokens1 / t5:.0f} (K=5 prompt tokens) | | "
            f"**{t5 / t1:.2f}x cost** | ≤ 1.5x | {len(inputs)} articles, {tokens1} prompt tokens per policy "
            f"(median {int(np.median(r1.n_tokens))}); 1 policy {t1:.1f} s ({tokens1 / t1:.0f} tok/s), K=5 {t5:.1f} s; "
            f"template-1 |logp| diff vs whole-prompt scoring {diff:.1e} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="fixed,head,remat,mix,policies")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mix_repeats", type=int, default=3)
    ap.add_argument("--n_examples", type=int, default=256)
    ap.add_argument("--news_inputs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fine_buckets", type=int, default=64, help="mix lever row: buckets every N tokens (0: none)")
    ap.add_argument("--pack", type=int, default=1, help="mix lever row: packed rows (0: none)")
    ap.add_argument("--matmul_dtype", default=None, help="bfloat16: mixed precision on both sides")
    ap.add_argument("--max_load", type=float, default=1.5)
    ap.add_argument("--wait", type=float, default=1800)
    ap.add_argument("--out", default="bench/results/scoring.md")
    args = ap.parse_args()
    parts = args.parts.split(",")
    start = time.time()
    m = registry.load("smollm2-135m")
    m.params = jax.device_put(m.params)  # loaded as numpy; the scoring entry points do this themselves
    m.cfg = m.cfg.replace(matmul_dtype=args.matmul_dtype)
    PRECISION["matmul_dtype"] = args.matmul_dtype
    precision = m.cfg.precision
    tmodel = common.load_torch_smollm2().eval() if {"fixed", "mix"} & set(parts) else None
    rows = suite_rows(m.tokenizer, args.n_examples, args.seed)
    rep = Report()
    rep.add("| measurement | JAX tok/s | PyTorch tok/s | ratio | target | notes |")
    rep.add("|---|---|---|---|---|---|")
    loads = []
    tj = float("nan")
    for part in parts:
        before = wait_quiet(args.max_load, args.wait)
        if part == "fixed":
            tj = part_fixed(rep, m, tmodel, rows, args.repeats)
        elif part == "head":
            part_head(rep, m, args.repeats)
        elif part == "remat":
            part_remat(rep, m, rows, tj, max(2, args.repeats // 2))
        elif part == "mix":
            part_mix(rep, m, tmodel, rows, args.mix_repeats, args.seed, args.fine_buckets, bool(args.pack))
        elif part == "policies":
            part_policies(rep, m, args.news_inputs, args.mix_repeats, args.seed)
        else:
            raise ValueError(f"unknown part {part!r}")
        loads.append(f"{part}: {before:.2f} -> {os.getloadavg()[0]:.2f}")
    head = [
        f"# Scoring speed: JAX (ours) vs PyTorch 2.13 + transformers 5.24, SmolLM2-135M-Instruct, {precision}"
        + ("" if args.matmul_dtype is None else " (PyTorch: CPU autocast)"),
        "",
        f"Command: `python {' '.join(sys.argv)}`  ",
        f"Machine: {machine()}; jax {jax.__version__}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}  ",
        f"1-minute load average before -> after each part: {'; '.join(loads)}  ",
        f"Took {time.time() - start:.0f} s. Tokens/s = prompt tokens (padding excluded) per second.",
        "",
    ]
    common.write_result(args.out, "\n".join(head + rep.lines) + "\n")


if __name__ == "__main__":
    main()
