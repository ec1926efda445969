"""Train-step speed and memory vs PyTorch + transformers on SmolLM2-135M-Instruct, fp32, same batch (DESIGN.md §6).

Each measurement runs in its own child process (so peak RSS is that side's alone), one after the other:
  torch        1-token SFT step: forward with `logits_to_keep=2` (the output at T-2 predicts the answer token at
               T-1), full-vocabulary cross-entropy, backward, global-norm clip 1.0, AdamW
  jax:<remat>  our jitted `train.step.make_train_step` on the same batch (full fine-tuning, full_vocab loss,
               clip 1.0, AdamW), for each remat policy in --remat (none, full, dots)
  topk:plain   top_k_layers (k=2) training without the feature cache: the frozen 28 lower layers run every step
  topk:cached  the same with `train.features.FeatureCache`: steady state (every row cached) and first step (all misses)
The batch is 8x256 tokens of real suite text (validation prompts of every task, concatenated), the last token of
each row being the answer. MFU = model FLOPs / step time / measured fp32 matmul peak (2048^3 product), with model
FLOPs = 6 x (non-embedding matmul params) x tokens + causal attention 6 x L x T x d per token (the LM head at one
position per row is negligible).

    python bench/train_step.py [--parts=torch,jax,topk] [--remat=none,full] [--levers=xnnpack] [--repeats=5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

import common

B, T = 8, 256
ANSWER = 10539  # "Yes" in SmolLM2's vocabulary


def model_flops_per_token(cfg) -> float:
    """Training FLOPs per token: 6 x non-embedding matmul params + causal attention (see the module docstring)."""
    d, hd = cfg.d_model, cfg.head_dim
    attn = d * hd * (2 * cfg.n_heads + 2 * cfg.n_kv_heads)
    mlp = 3 * d * cfg.d_ff
    n = cfg.n_layers * (attn + mlp)
    return 6 * n + 6 * cfg.n_layers * T * cfg.n_heads * hd


def base_config(**changes):
    """configs/base.py without warmup, full-vocabulary loss, and `changes` {"model.remat": "none", ...}."""
    from monitor_jax.core import config as config_lib

    return config_lib.load("configs/base.py", overrides={"optim.warmup_steps": 0, "loss.kind": "full_vocab",
                                                          **changes})


def train_batch(tokens: np.ndarray) -> dict[str, np.ndarray]:
    """A classification batch in `train/data.py`'s layout: every row's answer is its last token."""
    b, t = tokens.shape
    tokens = tokens.copy()
    tokens[:, t - 1] = ANSWER
    return {
        "tokens": tokens, "positions": np.tile(np.arange(t, dtype=np.int32), (b, 1)),
        "segment_ids": np.ones((b, t), np.int32), "answer_index": np.full((b,), t - 1, np.int32),
        "label": np.ones((b,), np.int32), "label_ids": np.tile(np.array([[ANSWER, 5230]], np.int32), (b, 1)),
        "answer_id": np.full((b,), ANSWER, np.int32), "loss_mask": np.zeros((b, t), np.float32),
        "weight": np.ones((b,), np.float32), "is_classification": np.ones((b,), bool),
        "task_index": np.zeros((b,), np.int32),
    }


def child_torch(repeats: int) -> dict:
    import torch

    from monitor_jax.model import registry

    tok = registry.load("smollm2-135m").tokenizer
    tokens = common.text_tokens(tok, B, T)
    model = common.load_torch_smollm2().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    ids = torch.from_numpy(train_batch(tokens)["tokens"]).long()
    target = ids[:, T - 1]

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=ids, logits_to_keep=2).logits[:, 0]
        loss = torch.nn.functional.cross_entropy(logits.float(), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    return {**common.time_steps(step, repeats), "peak_gflops": common.matmul_peak("torch")}


def _jax_state(config):
    import jax

    from monitor_jax.model import registry
    from monitor_jax.core import sharding
    from monitor_jax.train import state, step

    m = registry.load(config.model.name)
    mesh = sharding.make_mesh(dict(config.mesh.shape))
    st, shardings = state.create_train_state(config, m, mesh)
    fn = step.make_train_step(config, m.cfg, mesh, shardings)
    tokens = common.text_tokens(m.tokenizer, B, T)
    return jax, m, mesh, st, shardings, fn, train_batch(tokens)


def child_jax(repeats: int, remat: str) -> dict:
    from monitor_jax.core import sharding

    jax, m, mesh, st, _, fn, batch = _jax_state(base_config(**{"model.remat": remat}))
    dev_batch = sharding.shard_batch(batch, mesh)
    holder = {"s": st}

    def step():
        holder["s"], metrics = fn(holder["s"], dev_batch)
        return float(jax.block_until_ready(metrics["loss"]))

    return {**common.time_steps(step, repeats), "peak_gflops": common.matmul_peak("jax"),
            "flops_per_token": model_flops_per_token(m.cfg)}


def child_topk(repeats: int, cached: bool) -> dict:
    from monitor_jax.core import sharding
    from monitor_jax.train import features

    config = base_config(**{"model.remat": "none", "train.mode": "top_k_layers", "train.top_k": 2,
                            "train.cache_features": cached})
    jax, m, mesh, st, shardings, fn, batch = _jax_state(config)
    holder = {"s": st}
    cache = features.FeatureCache(config, m.cfg, mesh, shardings.frozen) if cached else None

    def step():
        b = cache.add_features(batch, holder["s"].frozen) if cached else batch
        holder["s"], metrics = fn(holder["s"], sharding.shard_batch(b, mesh))
        return float(jax.block_until_ready(metrics["loss"]))

    return common.time_steps(step, repeats)  # the first step compiles; with the cache, every row is a miss


FLAG_LEVERS = {"xnnpack": "--xla_cpu_use_xnnpack=true"}  # part "jax:dots@xnnpack": that part under the XLA flag


def run_child(part: str, repeats: int) -> dict:
    """One part in a fresh process (a part "<part>@<lever>" under FLAG_LEVERS[lever] as XLA_FLAGS)."""
    part, _, lever = part.partition("@")
    env = {**os.environ, "XLA_FLAGS": FLAG_LEVERS[lever]} if lever else None
    out = subprocess.run([sys.executable, os.path.abspath(__file__), f"--child={part}", f"--repeats={repeats}"],
                         capture_output=True, text=True, env=env)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode or not lines:
        raise RuntimeError(f"{part} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    res = json.loads(lines[-1][len("RESULT "):])
    print(part, json.dumps(res), flush=True)
    return res


def child_main(part: str, repeats: int) -> None:
    kind, _, arg = part.partition(":")
    if kind == "torch":
        res = child_torch(repeats)
    elif kind == "jax":
        res = child_jax(repeats, arg)
    elif kind == "topk":
        res = child_topk(repeats, arg == "cached")
    else:
        raise ValueError(f"unknown part {part!r}")
    print("RESULT " + json.dumps(res), flush=True)


def report(results: dict, args, took: float, loads: list[str]) -> str:
    n = B * T
    torch_r = results.get("torch")
    lines = [
        "# Train step: JAX (ours) vs PyTorch 2.13 + transformers 5.24, SmolLM2-135M-Instruct fp32, 8x256",
        "",
        f"Command: `python {' '.join(sys.argv)}`  ",
        f"Machine: {common.machine()}; each side in its own process, one after the other; medians of "
        f"{args.repeats} timed steps after 2 untimed ones.  ",
        f"1-minute load average before -> after each part: {'; '.join(loads)}. Took {took:.0f} s.",
        "",
        "| measurement | tok/s | step s (median) | vs PyTorch (same work) | target | peak RSS GB | MFU | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for part, r in results.items():
        ratio = f"**{torch_r['median_s'] / r['median_s']:.2f}x**" if torch_r and part.startswith("jax:") else ""
        flops = results.get(next((p for p in results if p.startswith("jax:")), ""), {}).get("flops_per_token")
        mfu = f"{flops * n / r['median_s'] / 1e9 / r['peak_gflops']:.0%}" if flops and "peak_gflops" in r else ""
        notes = f"steps {', '.join(f'{t:.2f}' for t in r['times'])} s; first step {r['first_s']:.1f} s"
        if "peak_gflops" in r:
            notes += f"; matmul peak {r['peak_gflops']:.0f} GFLOP/s"
        target = f"≥ 1.1x; RSS ≤ {torch_r['rss_gb']:.2f} GB" if ratio else ""
        if "@" in part:
            notes += f"; XLA_FLAGS={FLAG_LEVERS[part.partition('@')[2]]}"
        lines.append(f"| {part} | {n / r['median_s']:.0f} | {r['median_s']:.2f} | {ratio} | {target} | "
                     f"{r['rss_gb']:.2f} | {mfu} | {notes} |")
    if "topk:plain" in results and "topk:cached" in results:
        sp = results["topk:plain"]["median_s"] / results["topk:cached"]["median_s"]
        lines += ["", f"Cached-feature top-2 training: **{sp:.1f}x** faster per step than plain top-2 once rows are "
                      f"cached (first step, all misses: {results['topk:cached']['first_s']:.1f} s incl. compiles)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="torch,jax,topk")
    ap.add_argument("--remat", default="none,full")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--levers", default="", help="XLA-flag levers (FLAG_LEVERS) to run jax:dots under, e.g. xnnpack")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--max_load", type=float, default=1.5)
    ap.add_argument("--wait", type=float, default=1800)
    ap.add_argument("--out", default="bench/results/train_step.md")
    args = ap.parse_args()
    if args.child:
        return child_main(args.child, args.repeats)
    start = time.time()
    parts = []
    for p in args.parts.split(","):
        parts += ([f"jax:{r}" for r in args.remat.split(",")] if p == "jax" else
                  ["topk:plain", "topk:cached"] if p == "topk" else [p])
    parts += [f"jax:dots@{lever}" for lever in args.levers.split(",") if lever]
    results, loads = {}, []
    for part in parts:
        before = common.wait_quiet(args.max_load, args.wait)
        results[part] = run_child(part, args.repeats)
        loads.append(f"{part}: {before:.2f} -> {os.getloadavg()[0]:.2f}")
    text = report(results, args, time.time() - start, loads)
    common.write_result(args.out.replace(".md", ".json"), json.dumps({"results": results, "loads": loads}, indent=1))
    print(text)
    common.write_result(args.out, text)


if __name__ == "__main__":
    main()
