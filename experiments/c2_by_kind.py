"""C2's info-hazard cell by kind of negative: from the committed per-item scores of
`experiments/results/c2_adjacency/` -> `by_kind.md` / `by_kind.json` there.

    python experiments/c2_by_kind.py [--root=experiments/results/c2_adjacency]

The info-hazard question's negatives are benign requests and harmful requests of other categories (Do-Not-Answer
risk areas, HarmBench semantic categories), among them the near arm's cyber requests and the chem/bio arm's own.
For each kind of negative: the AUROC of all positives against that kind only, per arm (mean over seeds), its
difference from the untrained model with the two-level paired bootstrap CI (seeds, then items), and the arms'
mean P(Yes) on positives and on that kind: does an arm rank info hazards below the category it was trained on?
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from monitor_jax.data import tasks
from monitor_jax.eval import metrics, two_level
from monitor_jax.experiment import item_scores

ROOT = Path(__file__).resolve().parent / "results" / "c2_adjacency"
CELL = "requests/info_hazard:primary"


def kind_of(meta: dict) -> str:
    """benign, or the harmful request's category (Do-Not-Answer risk area or HarmBench semantic category)."""
    if not meta.get("harmful"):
        return "benign"
    return str(meta.get("risk_area") or meta.get("semantic_category") or "harmful, uncategorised")


def by_kind(root: Path, n_boot: int = 1000) -> list[dict]:
    res = json.loads((root / "results.json").read_text())
    cell = item_scores.rebuild(item_scores.read(root / item_scores.FILE))[CELL]
    meta = {it.id: it.meta for it in tasks.domain_items("requests", res["split"])}
    kinds, y = np.asarray([kind_of(meta[i]) for i in cell["ids"]]), cell["labels"]
    arms = [a for a in cell["scores"] if a != "base"]
    out = []
    for kind in sorted(set(kinds[y == 0]), key=lambda k: -(kinds == k).sum()):
        keep = (y == 1) | (kinds == kind)
        row = {"negatives": kind, "n_pos": int(y[keep].sum()), "n_neg": int((1 - y[keep]).sum()), "arms": {}}
        for arm in ["base", *arms]:
            pair = {a: [s[keep] for s in cell["scores"][a]] for a in {"base", arm}}
            est, draws = two_level.seed_mean_draws(metrics.auroc, pair, y[keep], n_boot, 0)
            scores = np.mean(cell["scores"][arm], axis=0)[keep]
            row["arms"][arm] = {"auroc": float(est[arm]), "p_yes_pos": float(scores[y[keep] == 1].mean()),
                                "p_yes_neg": float(scores[y[keep] == 0].mean()), "seeds": len(cell["scores"][arm])}
            if arm != "base":
                row["arms"][arm]["diff"] = metrics.percentile_ci(est[arm] - est["base"],
                                                                 draws[arm] - draws["base"])._asdict()
        out.append(row)
    return out


def markdown(rows: list[dict]) -> str:
    arms = list(rows[0]["arms"])
    lines = ["# C2, info-hazard cell by kind of negative", "",
             "All 39 info-hazard positives against one kind of negative. Per arm: AUROC (mean over seeds), Δ vs the "
             "untrained model with its two-level paired bootstrap 95 % CI, and mean P(Yes) on positives / on those "
             "negatives (experiments/c2_by_kind.py).", "",
             "| negatives | n | " + " | ".join(arms) + " |", "|---|---|" + "---|" * len(arms)]
    for r in rows:
        cells = []
        for a in arms:
            x = r["arms"][a]
            d = x.get("diff")
            delta = "" if d is None else f" (Δ {d['estimate']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}])"
            cells.append(f"{x['auroc']:.3f}{delta}; P(Yes) {x['p_yes_pos']:.2f} / {x['p_yes_neg']:.2f}")
        lines.append(f"| {r['negatives']} | {r['n_neg']} | " + " | ".join(cells) + " |")
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
