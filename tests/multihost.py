"""Launcher for multi-host tests: N JAX processes on localhost, each with its own CPU devices, joined by JAX's
multi-controller runtime (gloo collectives) through `monitor_jax.core.distributed.initialize`.

Each process gets MONITOR_JAX_COORDINATOR_ADDRESS / MONITOR_JAX_NUM_PROCESSES / MONITOR_JAX_PROCESS_ID (or, with
`flags=True`, the CLI flags `--coordinator_address --num_processes --process_id` appended to its command).
`GlobalBatchOfShards` is the one-process reference's training stream: the N processes' data shards side by side.
"""
from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time
from typing import Mapping, Sequence

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from monitor_jax.main import run; run()"]  # `monitor-jax`, from this interpreter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch(cmd: Sequence[str], n_processes: int, local_devices: int = 2, *, flags: bool = False,
           env: Mapping[str, str] | None = None, timeout: float = 300, log_dir: os.PathLike | None = None) -> list[str]:
    """Runs `cmd` as `n_processes` processes of one JAX run and returns each one's output (stdout + stderr).

    Raises AssertionError with every process's output when one fails or the run outlives `timeout` seconds.
    """
    coordinator = f"localhost:{free_port()}"
    base = {**os.environ, "JAX_PLATFORMS": "cpu", "TOKENIZERS_PARALLELISM": "false",
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={local_devices}",
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
            **(env or {})}
    log_dir = pathlib.Path(log_dir or os.environ.get("TMPDIR", "/tmp"))
    logs = [log_dir / f"process{i}.{coordinator.rsplit(':', 1)[1]}.log" for i in range(n_processes)]
    procs = []
    for i in range(n_processes):
        where = {"coordinator_address": coordinator, "num_processes": str(n_processes), "process_id": str(i)}
        args = list(cmd) + ([f"--{k}={v}" for k, v in where.items()] if flags else [])
        penv = base if flags else {**base, **{f"MONITOR_JAX_{k.upper()}": v for k, v in where.items()}}
        with open(logs[i], "wb") as out:  # files, not pipes: a full pipe would stall a process mid-collective
            procs.append(subprocess.Popen(args, env=penv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
            p.wait()
    outputs = [path.read_text(errors="replace") for path in logs]
    for path in logs:
        path.unlink()
    codes = [p.returncode for p in procs]
    assert all(c == 0 for c in codes), "\n".join(
        f"--- process {i} (exit {c}) ---\n{out[-4000:]}" for i, (c, out) in enumerate(zip(codes, outputs)))
    return outputs


class GlobalBatchOfShards:
    """One process's training stream that yields what `n` processes' data shards make together: each step batch
    is shard 0's rows, then shard 1's, ... (the global batch of an `n`-process run, in process order)."""

    def __init__(self, tokenizer, config, n: int):
        from monitor_jax.train import data as train_data

        self.parts = [train_data.StepBatches(tokenizer, config, shard_index=i, shard_count=n) for i in range(n)]

    @property
    def stage(self) -> int:
        return self.parts[0].stage

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        batches = [next(p) for p in self.parts]
        return {k: np.concatenate([b[k] for b in batches], axis=1) for k in batches[0]}

    def get_state(self) -> dict:
        return {**self.parts[0].get_state(), "parts": [p.get_state() for p in self.parts]}

    def set_state(self, state: dict) -> None:
        for p, s in zip(self.parts, state["parts"]):
            p.set_state(s)

    def stats(self) -> dict:
        return self.parts[0].stats()
