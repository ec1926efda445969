"""The metric log of a training run: `metrics.jsonl` (crash-safe appends, truncated on resume) and TensorBoard
scalars, and the running window of per-step metrics between two log lines."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from monitor_jax.core import io

METRICS_FILE = "metrics.jsonl"
_MEAN_KEYS = ("loss", "accuracy", "grad_norm", "cls_loss", "if_loss")
_SUM_KEYS = ("n_examples", "n_tokens", "n_classification")


def read_metrics(workdir: str | os.PathLike) -> list[dict]:
    """The complete lines of `workdir/metrics.jsonl` (a torn last line, if any, is ignored)."""
    path = Path(workdir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.endswith("\n"):
            rows.append(json.loads(line))
    return rows


def _summary_writer() -> type:
    """tensorboardX's SummaryWriter, imported without torch: tensorboardX imports torch when it is installed
    (seconds, and the product never imports torch); it works without it."""
    import sys

    if "tensorboardX" in sys.modules or "torch" in sys.modules:
        from tensorboardX import SummaryWriter
        return SummaryWriter
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class MetricLog:
    """metrics.jsonl (each line appended with one write(2) on an O_APPEND fd: a crash leaves no half line) and
    TensorBoard scalars. On resume, lines and TensorBoard points after `resume_step` are dropped."""

    def __init__(self, workdir: Path, resume_step: int | None, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        self.path = workdir / METRICS_FILE
        if resume_step is not None:
            keep = [r for r in read_metrics(workdir) if r.get("step", 0) <= resume_step]
            io.write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))
        elif self.path.exists():
            self.path.unlink()  # a fresh run (no checkpoint): start a fresh log
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        # TensorBoard hides points at steps >= purge_step: those a crashed launch wrote after the checkpoint.
        self.tb = _summary_writer()(str(workdir / "tb"), purge_step=resume_step + 1 if resume_step else None)

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        os.write(self._fd, (json.dumps(row) + "\n").encode("utf-8"))
        step = int(row["step"])
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                self.tb.add_scalar(key, value, step)
        self.tb.flush()

    def close(self) -> None:
        if self.enabled:
            os.close(self._fd)
            self.tb.close()


class Window:
    """Running sums of the per-step metrics between two log lines (JSON round-trips exactly)."""

    def __init__(self, state: dict | None = None):
        self.s = dict(state) if state else {"steps": 0}

    def add(self, m: dict[str, float], real_tokens: int) -> None:
        self.s["steps"] += 1
        for k in _MEAN_KEYS + _SUM_KEYS:
            if k in m:
                self.s[k] = self.s.get(k, 0.0) + m[k]
        self.s["lr"] = m.get("lr", 0.0)
        self.s["real_tokens"] = self.s.get("real_tokens", 0) + real_tokens

    def row(self) -> dict[str, float]:
        n = max(self.s["steps"], 1)
        out = {f"train/{k}": self.s[k] / n for k in _MEAN_KEYS if k in self.s}
        out.update({f"train/{k}": self.s[k] for k in _SUM_KEYS if k in self.s})
        out["train/lr"] = self.s.get("lr", 0.0)
        return out


def reproducible(row: dict) -> dict:
    """A metrics row without the keys that depend on the machine or the launch: `time/*` and `cache/*`."""
    return {k: v for k, v in row.items() if not k.startswith(("time/", "cache/"))}
