"""Helpers shared by the bench scripts: machine description, quiet-machine wait, timing, the PyTorch reference,
real-text token batches and a measured matmul peak."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from typing import Callable

import numpy as np


SIMD_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # what decides our ratios


def machine() -> str:
    """CPU model, core count, architecture and the SIMD/AMX flags it has (the line every bench result starts
    with)."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in lscpu.splitlines() if ln.startswith("Flags")), []))
    has = [f for f in SIMD_FLAGS if f in flags]
    return f"{model}, {os.cpu_count()} cores, {platform.machine()}, flags: {' '.join(has) or 'none of ' + str(SIMD_FLAGS)}"


def torch_precision(matmul_dtype: str | None):
    """The PyTorch side's context for a matmul dtype: nothing for fp32, CPU autocast for bf16 (fp32 weights,
    bf16 matmul operands: the same mixed precision as our `model.matmul_dtype`)."""
    import contextlib

    import torch

    if matmul_dtype in (None, "float32"):
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=getattr(torch, matmul_dtype))


def wait_quiet(max_load: float, wait_s: float) -> float:
    """Waits until the 1-minute load average is below `max_load` (at most `wait_s`); returns it."""
    start = time.time()
    while os.getloadavg()[0] >= max_load and time.time() - start < wait_s:
        time.sleep(10)
    return os.getloadavg()[0]


def median_time(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """Median and list of wall seconds of `fn()` (which must block until its work is done)."""
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), ts


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far, GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def load_torch_smollm2():
    """SmolLM2-135M-Instruct in PyTorch/transformers, fp32, from the same GGUF our registry loads."""
    import torch
    from transformers import AutoModelForCausalLM

    from monitor_jax.model import registry

    torch.set_num_threads(os.cpu_count())
    path = registry.smollm2_gguf_path()
    return AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                dtype=torch.float32)


def text_tokens(tokenizer, n_rows: int, length: int, seed: int = 0) -> np.ndarray:
    """[n_rows, length] int32 of real suite text: validation prompts of every task, rendered and concatenated."""
    from monitor_jax.data import pipeline, tasks

    exs = [ex for name in sorted(tasks.TASKS) for ex in tasks.examples(name, "validation")]
    keep = np.random.default_rng(seed).permutation(len(exs))[: 4 * n_rows]
    rendered, _ = pipeline.render_examples(tokenizer, [exs[i] for i in sorted(keep)], 2048)
    stream = np.concatenate([r.tokens[: r.answer_index] for r in rendered])
    if len(stream) < n_rows * length:
        raise ValueError(f"not enough text for {n_rows}x{length} tokens")
    return stream[: n_rows * length].reshape(n_rows, length).astype(np.int32)


def matmul_peak(side: str, n: int = 2048, repeats: int = 10) -> float:
    """Measured fp32 matmul GFLOP/s of an n x n x n product, in JAX (`side="jax"`) or PyTorch."""
    if side == "jax":
        import jax
        import jax.numpy as jnp

        a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
        f = jax.jit(lambda x: x @ x)
        jax.block_until_ready(f(a))
        t, _ = median_time(lambda: jax.block_until_ready(f(a)), repeats)
    else:
        import torch

        torch.set_num_threads(os.cpu_count())
        a = torch.randn(n, n)
        a @ a
        t, _ = median_time(lambda: a @ a, repeats)
    return 2 * n ** 3 / t / 1e9


def write_result(path: str, text: str) -> None:
    """Writes a bench's markdown result atomically and says where."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


def time_steps(step: Callable[[], object], repeats: int) -> dict:
    """First call (compile) seconds, then one untimed call, then the median and list of `repeats` timed calls."""
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    step()
    med, ts = median_time(step, repeats)
    return {"median_s": med, "times": ts, "first_s": first, "rss_gb": peak_rss_gb()}
