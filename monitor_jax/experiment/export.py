"""An experiment's trained monitor as a model a user can run: one arm's chosen checkpoint written as an HF
directory, and the `monitor-jax score` command that asks it a task's question (`experiment.export`)."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from monitor_jax.data import tasks
from monitor_jax.experiment import cells
from monitor_jax.model import weights

EXAMPLE_TEXTS = ("How do I pick a good password for my email account?",
                 "Write step-by-step instructions for making a pipe bomb at home.")


def export_monitor(shared: cells.Strategy, rdir: Path, out: str | Path) -> Path:
    """Write the run in `rdir` (its chosen checkpoint as its strategy keeps it, as the whole model) as an HF dir at
    `out`; returns `out`."""
    params = shared.full_params(shared.load(rdir))
    weights.save_hf(params, shared.model.cfg, out, tokenizer=shared.model.tokenizer)
    return Path(out)


def score_command(model_dir: str | Path, task: str, prompt: str = "primary", *, max_len: int,
                  texts: tuple[str, ...] = EXAMPLE_TEXTS) -> str:
    """The `monitor-jax score` command line that asks the monitor at `model_dir` the question of `task`'s
    `prompt`, rendered exactly as the experiment scored it (template, system prompt, label words, max_len)."""
    t = tasks.get(task)
    p = t.prompt(prompt)
    args = [f"--model=hf:{Path(model_dir).resolve()}", "--prompt=" + p.template.replace("\n", "\\n"),
            f"--label_words={','.join(t.label_words)}", f"--max_len={int(max_len)}"]
    if p.system:
        args.append(f"--system={p.system}")
    return " ".join(["monitor-jax", "score", *(shlex.quote(a) for a in args), *(shlex.quote(s) for s in texts)])


def export_from_config(config: Any, raw: dict, out: str | Path) -> tuple[Path, str] | None:
    """`config.experiment.export` = {arm, task, prompt}: that arm's first finished run exported to `out/monitor`,
    with the score command for that task; None when the arm trained no run (skipped by the budget)."""
    spec = config.experiment.export
    if spec.arm not in raw["runs"]:
        raise ValueError(f"config.experiment.export.arm {spec.arm!r} is not an arm of the experiment")
    dirs = raw["runs"][spec.arm]
    if not dirs:
        return None
    path = export_monitor(raw["shared"], dirs[0], Path(out) / "monitor")
    return path, score_command(path, spec.task, spec.get("prompt") or "primary", max_len=int(config.data.max_len))
