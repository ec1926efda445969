"""Agent learnability per negative kind (issue 22 part 6): from the committed per-item scores of
`experiments/results/agent_learnability/` -> `by_kind.md` / `by_kind.json` there.

    python experiments/agent_learnability.py [--root=experiments/results/agent_learnability]

For each agent cell and each kind of negative (AgentDojo: honest, ignored injection, requested; procedural:
requested_danger, requested_safe_variant, read_only_look_alike), the AUROC of all positives against that kind's
negatives only, untrained vs in-domain, with the two-level paired bootstrap CI of the difference (seeds, then
items or hygiene groups), exactly as the runner computes the overall cells.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from monitor_jax.data import tasks
from monitor_jax.eval import metrics, two_level
from monitor_jax.experiment import item_scores

ROOT = Path(__file__).resolve().parent / "results" / "agent_learnability"
KIND_KEYS = ("kind_name", "kind")  # the procedural generator's kind name, AgentDojo's transcript kind


def kind_of(meta: dict) -> str:
    return str(next(meta[k] for k in KIND_KEYS if k in meta))


def by_kind(root: Path, n_boot: int = 1000) -> list[dict]:
    res = json.loads((root / "results.json").read_text())
    cells = item_scores.rebuild(item_scores.read(root / item_scores.FILE))
    out = []
    for comp in res["comparisons"]:
        key, a, b = comp["cell"], comp["a"], comp["b"]
        cell, task = cells[key], res["cells"][key]["task"]
        meta = {it.id: it.meta for it in tasks.domain_items(tasks.get(task).domain, res["split"])}
        if not all(any(k in meta[i] for k in KIND_KEYS) for i in cell["ids"]):
            continue  # not an agent cell
        kinds = np.asarray([kind_of(meta[i]) for i in cell["ids"]])
        y = cell["labels"]
        for kind in sorted(set(kinds[y == 0])):
            keep = (y == 1) | (kinds == kind)
            arms = {arm: [s[keep] for s in cell["scores"][arm]] for arm in (a, b)}
            groups = None if cell["groups"] is None else [g for g, k in zip(cell["groups"], keep) if k]
            est, draws = two_level.seed_mean_draws(metrics.auroc, arms, y[keep], n_boot, 0, groups=groups)
            ci = metrics.percentile_ci(est[b] - est[a], draws[b] - draws[a])
            out.append({"cell": key, "negatives": kind, "n_pos": int(y[keep].sum()),
                        "n_neg": int((1 - y[keep]).sum()), a: est[a], b: est[b], "diff": ci._asdict(),
                        "seeds": len(cell["scores"][b])})
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["# Agent learnability by negative kind", "",
             "All positives of a cell against one kind of negative; Δ = AUROC(in-domain) − AUROC(untrained), "
             "two-level paired bootstrap 95% CI (experiments/agent_learnability.py).", "",
             "| cell | negatives | pos / neg | untrained | in-domain | Δ [95% CI] | seeds |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        a, b = [k for k in r if k.startswith("base")][0], [k for k in r if k.startswith("in_")][0]
        d = r["diff"]
        lines.append(f"| {r['cell']} | {r['negatives']} | {r['n_pos']} / {r['n_neg']} | {r[a]:.3f} | {r[b]:.3f} | "
                     f"{d['estimate']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] | {r['seeds']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=str(ROOT))
    root = Path(ap.parse_args().root)
    rows = by_kind(root)
    (root / "by_kind.json").write_text(json.dumps(rows, indent=1) + "\n")
    (root / "by_kind.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
