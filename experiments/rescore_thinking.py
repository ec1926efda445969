"""Re-scores the saved reasoning of a `monitor-jax think` run and reports the largest score difference.

    python experiments/rescore_thinking.py --out_dir=experiments/results/thinking_smollm2 --task=requests/harmful \
        --limit_per_task=32 --budget=64 --max_len=1024 [--model=smollm2-135m --split=validation --seed=0]

The examples are rebuilt exactly as `think` built them (same task, split, limit and seed); their ids must match
the saved rows. Only the answer slot is scored again (no generation).
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from monitor_jax.data import tasks
from monitor_jax.eval.protocols import thinking
from monitor_jax.model import registry


def main() -> None:
    ap = argparse.ArgumentParser()
    for name, default in (("out_dir", None), ("task", None), ("model", "smollm2-135m"), ("split", "validation")):
        ap.add_argument(f"--{name}", default=default, required=default is None)
    for name, default in (("limit_per_task", 200), ("budget", 128), ("max_len", 1024), ("seed", 0)):
        ap.add_argument(f"--{name}", type=int, default=default)
    args = ap.parse_args()
    path = os.path.join(args.out_dir, args.task.replace("/", "__") + ".jsonl")
    rows = [json.loads(line) for line in open(path)]
    exs = tasks.examples(args.task, args.split, limit=args.limit_per_task, seed=args.seed)
    if [ex.id for ex in exs] != [r["id"] for r in rows]:
        raise SystemExit(f"{path}: saved ids differ from the rebuilt examples; pass the think run's settings")
    m = registry.load(args.model)
    res = thinking.score_with_thinking(m.cfg, m.params, m.tokenizer, exs, thinking.Protocol(budget=args.budget),
                                       reasoning=[r["reasoning"] for r in rows], max_len=args.max_len,
                                       progress=False)
    diff = np.abs(res.score - np.asarray([r["score"] for r in rows]))
    print(json.dumps({"file": path, "n": len(rows), "max_abs_score_diff": float(diff.max())}))


if __name__ == "__main__":
    main()
