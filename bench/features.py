"""The experiment path's bound: the frozen lower stack's feature pass, ours vs PyTorch running the same layers.

Rows: the depth pilot's length mix (configs/pilot_depth.py): --rows_per_task validation rows of each of
agentdojo/unrequested, agent/sabotage and requests/harmful, rendered at max_len 1024, sorted by length, batches of 8.
  ours   `train.features.lower_forward` (the FeatureCache's jitted program) on each batch padded to our bucket
         (128, 256, 512, 768, 1024)
  torch  transformers' LlamaModel cut to the same lower layers (final norm removed), each batch right-padded to
         its longest row (dynamic padding), inference mode
Each precision in --precisions is one pair: float32 (both sides fp32), bfloat16 (ours `model.matmul_dtype=
"bfloat16"`: bf16 matmul operands, fp32 products and activations; PyTorch under CPU autocast to bf16, fp32
weights). --bucket_sets adds our side padded to finer buckets ("64": every multiple of 64 up to 1024; "default" is
BUCKETS) and packed ("packed": several rows to a row of a BUCKETS width, each with its own segment id and positions):
levers on our padding (more compiled shapes, fewer padded slots; fewer rows). Both count real tokens only; medians of --repeats passes over all batches after one warm-up pass. Also
the max |difference| of the features at real positions: ours vs PyTorch (a parity check of the bench itself) and
ours bf16 vs ours fp32 (what bf16 costs in accuracy, relative to the features' largest value).

    python bench/features.py [--n_lower=28] [--rows_per_task=16] [--repeats=3] [--precisions=float32,bfloat16]
        [--bucket_sets=default,64,packed] [--out=bench/results/features.md]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import common

TASKS = ("agentdojo/unrequested", "agent/sabotage", "requests/harmful")
BUCKETS = (128, 256, 512, 768, 1024)
BATCH = 8


def bucket_set(name: str) -> tuple[int, ...]:
    """BUCKETS ("default", "packed") or every multiple of `name` tokens up to the largest bucket."""
    if name in ("default", "packed"):
        return BUCKETS
    return tuple(range(int(name), BUCKETS[-1] + 1, int(name)))


def rows(tokenizer, per_task: int) -> list[np.ndarray]:
    """The rows' real tokens (prompt and answer slot), sorted by length."""
    from monitor_jax.data import pipeline, tasks

    exs = [ex for t in TASKS for ex in tasks.examples(t, "validation", limit=per_task, seed=0)]
    rendered, _ = pipeline.render_examples(tokenizer, exs, BUCKETS[-1])
    return sorted((np.asarray(r.tokens[:len(r)], np.int32) for r in rendered), key=len)


def _fill(rs: list[np.ndarray], rows: list[list[int]], w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """(tokens, positions, segment ids) [BATCH, w] holding rows of `rs` (indices) back to back, and where each
    row's tokens went [(index, row, start)]."""
    tok, pos, seg = (np.zeros((BATCH, w), np.int32) for _ in range(3))
    where = []
    for b, row in enumerate(rows):
        at = 0
        for j, i in enumerate(row):
            n = len(rs[i])
            tok[b, at:at + n], pos[b, at:at + n], seg[b, at:at + n] = rs[i], np.arange(n), j + 1
            where.append((i, b, at))
            at += n
    return tok, pos, seg, where


def batches(rs: list[np.ndarray], width_of) -> list[tuple]:
    """(tokens, positions, segment ids [B, W], where) per batch of BATCH rows, one per row, W = width_of(longest)."""
    return [_fill(rs, [[i] for i in range(s, min(s + BATCH, len(rs)))], width_of(max(len(r) for r in rs[s:s + BATCH])))
            for s in range(0, len(rs), BATCH)]


def packed(rs: list[np.ndarray], buckets: tuple[int, ...]) -> list[tuple]:
    """The same rows packed several to a row (`eval.packing.plan`, first-fit decreasing, own segments and
    positions): the packing lever."""
    from monitor_jax.eval import packing

    return [_fill(rs, rows, w) for w, rows in packing.plan([len(r) for r in rs], BATCH, buckets)]


def ours(model, n_lower: int, bs: list, matmul_dtype: str | None = None) -> tuple[callable, list]:
    import jax
    import jax.numpy as jnp

    from monitor_jax.model import transformer
    from monitor_jax.train import features

    cfg = model.cfg.replace(n_layers=n_lower, remat="none", matmul_dtype=matmul_dtype)
    frozen = jax.device_put({k: v for k, v in transformer.split_params(model.params, n_lower)[0].items()
                             if k != "final_norm"})
    fn = jax.jit(lambda f, t, p, s: features.lower_forward(cfg, f, t, p, s))
    dev = [tuple(jnp.asarray(a) for a in (t, p, s)) for t, p, s, _ in bs]
    return (lambda: [jax.block_until_ready(fn(frozen, *d)) for d in dev]), dev


def torch_side(model, bs: list, matmul_dtype: str | None = None):
    import torch

    inputs = [(torch.from_numpy(t).long(), torch.from_numpy(s).long(),
               torch.arange(t.shape[1]).expand(t.shape[0], -1)) for t, _, s, _ in bs]

    def run():
        with torch.inference_mode(), common.torch_precision(matmul_dtype):
            return [model(input_ids=t, attention_mask=m, position_ids=p).last_hidden_state.float()
                    for t, m, p in inputs]

    return run


def torch_lower(n_lower: int):
    """transformers' SmolLM2 cut to its lower `n_lower` layers, final norm removed."""
    import torch

    model = common.load_torch_smollm2().model.eval()
    model.layers = model.layers[:n_lower]
    model.norm = torch.nn.Identity()
    return model


def per_row(out: list, bs: list) -> dict[int, np.ndarray]:
    """Each row's features [len, D], from the outputs of batches `bs` (packed or not)."""
    got = {}
    for h, (_, _, seg, where) in zip(out, bs):
        h = np.asarray(h)
        for i, b, at in where:
            n = int((seg[b] == seg[b, at]).sum())
            got[i] = h[b, at:at + n]
    return got


def max_diff(a: list, a_bs: list, b: list, b_bs: list) -> float:
    """Max |a - b| at real positions over every row."""
    ra, rb = per_row(a, a_bs), per_row(b, b_bs)
    return max(float(np.abs(ra[i] - rb[i]).max()) for i in ra)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n_lower", type=int, default=28)
    ap.add_argument("--rows_per_task", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precisions", default="float32,bfloat16")
    ap.add_argument("--bucket_sets", default="default,64,packed")
    ap.add_argument("--max_load", type=float, default=1.5)
    ap.add_argument("--wait", type=float, default=1800)
    ap.add_argument("--out", default="bench/results/features.md")
    args = ap.parse_args()
    from monitor_jax.data import pipeline
    from monitor_jax.model import registry

    start = time.time()
    model = registry.load("smollm2-135m")
    rs = rows(model.tokenizer, args.rows_per_task)
    n_tok = sum(len(r) for r in rs)
    sets = {name: bucket_set(name) for name in args.bucket_sets.split(",")}
    our_bs = {name: packed(rs, b) if name == "packed" else batches(rs, lambda n, b=b: b[pipeline.bucket_of(n, b)])
              for name, b in sets.items()}
    our_b = next(iter(our_bs.values()))
    torch_b = batches(rs, lambda n: n)
    load0 = common.wait_quiet(args.max_load, args.wait)
    tmodel = torch_lower(args.n_lower)
    table, notes, got = [], [], {}
    flags = f", XLA_FLAGS={os.environ['XLA_FLAGS']}" if os.environ.get("XLA_FLAGS") else ""  # a flag lever's rows
    for precision in args.precisions.split(","):
        mm = None if precision == "float32" else precision
        run_torch = torch_side(tmodel, torch_b, mm)
        got_torch = [h.numpy() for h in run_torch()]
        t_torch, ts_torch = common.median_time(run_torch, args.repeats)
        for name, bs in our_bs.items():
            run_ours, _ = ours(model, args.n_lower, bs, mm)
            got_ours = [np.asarray(h) for h in run_ours()]  # compiles every bucket
            t_ours, ts_ours = common.median_time(run_ours, args.repeats)
            got.setdefault(precision, got_ours)
            label = {"default": "buckets", "packed": "packed rows"}.get(name, f"buckets every {name}") + flags
            if name != next(iter(our_bs)):
                notes.append(f"{precision}, {label} vs {next(iter(our_bs))}: max |difference| "
                             f"{max_diff(got_ours, bs, got[precision], our_b):.2e}.")
            table.append(f"| features: ours, {precision} (jit, {label}) | {n_tok / t_ours:.0f} | {t_ours:.2f} | "
                         f"{', '.join(f'{t:.2f}' for t in ts_ours)} | **{t_torch / t_ours:.2f}x** | ≥ 1.1x |")
        table.append(f"| features: PyTorch, {precision} (dynamic padding) | {n_tok / t_torch:.0f} | {t_torch:.2f} | "
                     f"{', '.join(f'{t:.2f}' for t in ts_torch)} | 1.00x | |")
        got_ours = got[precision]
        notes.append(f"{precision}: max |ours − PyTorch| at real positions "
                     f"{max_diff(got_ours, our_b, got_torch, torch_b):.2e}.")
    if "float32" in got:
        scale = max(float(np.abs(np.asarray(h)[s > 0]).max()) for h, (_, _, s, _) in zip(got["float32"], our_b))
        for precision in (p for p in got if p != "float32"):
            d = max_diff(got[precision], our_b, got["float32"], our_b)
            notes.append(f"ours {precision} vs ours float32: max |difference| {d:.3g} ({d / scale:.2%} of the "
                         f"largest fp32 feature, {scale:.3g}).")
    padded = ", ".join(f"{ {'default': 'buckets ' + str(BUCKETS), 'packed': 'packed'}.get(n, 'every ' + n)}: "
                       f"{sum(b[0].size for b in bs)} slots" for n, bs in our_bs.items())
    lines = [f"# Feature pass: the lower {args.n_lower} layers of SmolLM2-135M-Instruct, ours vs PyTorch", "",
             f"Command: `python {' '.join(sys.argv)}`  ", f"Machine: {common.machine()}; load {load0:.2f} -> "
             f"{os.getloadavg()[0]:.2f}; took {time.time() - start:.0f} s.  ",
             f"Rows: {len(rs)} ({args.rows_per_task} validation rows each of {', '.join(TASKS)}), {n_tok} real tokens, "
             f"sorted, batches of {BATCH}; ours padded to buckets ({padded}), PyTorch to each batch's longest row "
             f"({sum(b[0].size for b in torch_b)} slots).", "",
             "| side | real tok/s | pass s (median) | passes | vs PyTorch | target |", "|---|---|---|---|---|---|",
             *table, "", *notes, ""]
    text = "\n".join(lines)
    print(text)
    common.write_result(args.out, text)


if __name__ == "__main__":
    main()
