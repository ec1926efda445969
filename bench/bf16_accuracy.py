"""What bf16 matmuls cost in accuracy: P(Yes) and AUROC of the untrained SmolLM2-135M-Instruct on validation
items, `model.matmul_dtype="bfloat16"` vs float32, per task (the bound of issue 23: mean |ΔP(Yes)| <= 0.005 and
|ΔAUROC| <= 0.005).

    python bench/bf16_accuracy.py [--per_task=48] [--tasks=...] [--out=bench/results/bf16_accuracy.md]

P(Yes) is the score every experiment reads: P(positive label word | the two label words) at the answer slot.
Both precisions score the same rendered rows in the same batches; the times are the two passes' wall seconds
(each after a warm-up pass that compiles its buckets).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import common

TASKS = ("agentdojo/unrequested", "agent/sabotage", "requests/harmful", "requests/info_hazard", "jailbreak/jailbreak",
         "news/sports", "tweets/negative", "toxicity/threat")
BOUND = 0.005


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per_task", type=int, default=48)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--max_len", type=int, default=1024)
    ap.add_argument("--max_load", type=float, default=1.5)
    ap.add_argument("--wait", type=float, default=1800)
    ap.add_argument("--out", default="bench/results/bf16_accuracy.md")
    args = ap.parse_args()
    import jax

    from monitor_jax.data import pipeline, tasks
    from monitor_jax.eval import metrics, scoring
    from monitor_jax.model import registry

    start = time.time()
    names = args.tasks.split(",")
    m = registry.load("smollm2-135m")
    params = jax.device_put(m.params)
    exs = [ex for t in names for ex in tasks.examples(t, "validation", limit=args.per_task, seed=0)]
    rendered, _ = pipeline.render_examples(m.tokenizer, exs, args.max_len)
    load0 = common.wait_quiet(args.max_load, args.wait)
    scores, secs = {}, {}
    for mm in ("float32", "bfloat16"):
        cfg = m.cfg.replace(matmul_dtype=None if mm == "float32" else mm)

        def run():
            return scoring.score_rendered(cfg, params, rendered, batch_size=8, max_len=args.max_len, progress=False)

        run()  # compiles every bucket
        t0 = time.perf_counter()
        scores[mm] = np.asarray(run()["score"], np.float64)
        secs[mm] = time.perf_counter() - t0
    task = np.asarray([r.task for r in rendered])
    label = np.asarray([r.label for r in rendered])
    d = np.abs(scores["bfloat16"] - scores["float32"])
    n_tok = sum(r.answer_index for r in rendered)
    lines = ["# bf16 matmuls vs float32: P(Yes) and AUROC of the untrained SmolLM2-135M-Instruct (validation)", "",
             f"Command: `python {' '.join(sys.argv)}`  ",
             f"Machine: {common.machine()}; jax {jax.__version__}; load {load0:.2f} -> {os.getloadavg()[0]:.2f}; took "
             f"{time.time() - start:.0f} s.  ",
             f"{len(rendered)} rows, {n_tok} prompt tokens (max_len {args.max_len}); a scoring pass: float32 "
             f"{secs['float32']:.1f} s, bf16 matmuls {secs['bfloat16']:.1f} s "
             f"(**{secs['float32'] / secs['bfloat16']:.2f}x**).", "",
             "| task | n (pos) | mean abs ΔP(Yes) | max abs ΔP(Yes) | AUROC fp32 | AUROC bf16 | abs ΔAUROC | within bound |",
             "|---|---|---|---|---|---|---|---|"]
    worst = 0.0
    for t in names:
        k = task == t
        a32, a16 = metrics.auroc(scores["float32"][k], label[k]), metrics.auroc(scores["bfloat16"][k], label[k])
        ok = d[k].mean() <= BOUND and abs(a16 - a32) <= BOUND
        worst = max(worst, abs(a16 - a32))
        lines.append(f"| {t} | {k.sum()} ({label[k].sum()}) | {d[k].mean():.4f} | {d[k].max():.4f} | {a32:.4f} | "
                     f"{a16:.4f} | {abs(a16 - a32):.4f} | {'yes' if ok else '**no**'} |")
    lines += ["", f"All rows: mean |ΔP(Yes)| {d.mean():.4f}, max {d.max():.4f}; largest |ΔAUROC| {worst:.4f} "
              f"(bound {BOUND} each).", ""]
    text = "\n".join(lines)
    print(text)
    common.write_result(args.out, text)


if __name__ == "__main__":
    main()
