"""Does XLA:CPU reach AMX? One 2048^3 matmul per dtype form, JAX vs PyTorch, GFLOP/s (medians of 5 after a warm-up).

    python bench/matmul_probe.py [--n=2048] [--out=bench/results/matmul_probe.md]

Forms: fp32; bf16 operands with a bf16 result; bf16 operands with a float32 result (`preferred_element_type`,
what `model.matmul_dtype="bfloat16"` emits). Each JAX form also runs under the XLA:CPU flags named in --flags, each
in a child process (flags are read when jax starts).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

import common

FLAGS = ("", "--xla_cpu_use_xnnpack=true", "--xla_cpu_use_onednn=true")


def child_jax(n: int) -> dict:
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    forms = {"fp32": (jax.jit(lambda x, y: x @ y), a, b),
             "bf16 -> bf16": (jax.jit(lambda x, y: x @ y), a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)),
             "bf16 -> fp32": (jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32)),
                              a.astype(jnp.bfloat16), b.astype(jnp.bfloat16))}
    out = {}
    for name, (f, x, y) in forms.items():
        jax.block_until_ready(f(x, y))
        t, _ = common.median_time(lambda: jax.block_until_ready(f(x, y)), 5)
        out[name] = 2 * n ** 3 / t / 1e9
    return out


def torch_side(n: int) -> dict:
    import torch

    torch.set_num_threads(os.cpu_count())
    out = {}
    for name, dt in (("fp32", torch.float32), ("bf16 -> bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
        a @ b
        t, _ = common.median_time(lambda: a @ b, 5)
        out[name] = 2 * n ** 3 / t / 1e9
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--flags", default=",".join(FLAGS))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--max_load", type=float, default=1.5)
    ap.add_argument("--wait", type=float, default=1800)
    ap.add_argument("--out", default="bench/results/matmul_probe.md")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child_jax(args.n)))
        return
    load0 = common.wait_quiet(args.max_load, args.wait)
    rows = {}
    for flags in args.flags.split(","):
        env = {**os.environ, "XLA_FLAGS": flags}
        res = subprocess.run([sys.executable, __file__, "--child", f"--n={args.n}"], env=env, capture_output=True,
                             text=True, check=True)
        rows[f"JAX, XLA_FLAGS={flags or '(none)'}"] = json.loads(res.stdout.strip().splitlines()[-1])
    rows["PyTorch 2.13"] = torch_side(args.n)
    forms = ("fp32", "bf16 -> bf16", "bf16 -> fp32")
    lines = [f"# Matmul probe: {args.n}^3, GFLOP/s (does XLA:CPU reach AMX?)", "",
             f"Command: `python {' '.join(sys.argv)}`  ",
             f"Machine: {common.machine()}; load {load0:.2f} -> {os.getloadavg()[0]:.2f}.", "",
             "| side | " + " | ".join(forms) + " |", "|---" * (len(forms) + 1) + "|"]
    for side, r in rows.items():
        lines.append(f"| {side} | " + " | ".join(f"{r[f]:.0f}" if f in r else "—" for f in forms) + " |")
    best = max(r.get("bf16 -> fp32", np.nan) for s, r in rows.items() if s.startswith("JAX"))
    lines += ["", f"JAX's bf16 operands with a float32 result reach {best:.0f} GFLOP/s, "
              f"{best / rows['PyTorch 2.13']['fp32']:.1f}x PyTorch's fp32 and "
              f"{best / rows['PyTorch 2.13']['bf16 -> bf16']:.2f}x its bf16.", ""]
    text = "\n".join(lines)
    print(text)
    common.write_result(args.out, text)


if __name__ == "__main__":
    main()
