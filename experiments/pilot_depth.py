"""The depth pilot's summary (issue 22 part 5): every `experiments/results/pilot_depth/top*/results.json` ->
`experiments/results/pilot_depth/{README.md, curves.png, summary.json}` (README.md ends with reading.md, the
hand-written reading, when it exists).

    python experiments/pilot_depth.py [--root=experiments/results/pilot_depth]

Per task and depth: the untrained model's and the chosen checkpoint's validation AUROC (paired CI of the
difference, the runner's two-level bootstrap), the step chosen, training minutes, and the selection curve (AUROC
on the 96 selection items vs row-visits and vs CPU minutes of the run, feature passes included).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "results" / "pilot_depth"


def collect(root: Path) -> list[dict]:
    """One row per (task, depth): cell AUROCs, the diff CI and the run's selection curve."""
    rows, seen = [], set()
    for path in sorted(root.glob("top*/results.json")):
        res = json.loads(path.read_text())
        depth, batch = int(res["train"]["top_k"]), int(res["train"]["batch_size"])
        for comp in res["comparisons"]:
            arm, cell = comp["b"], res["cells"][comp["cell"]]
            run = res["arms"][arm]["runs"][0]
            if (run["dir"], comp["cell"]) in seen:  # a run another folder reused
                continue
            seen.add((run["dir"], comp["cell"]))
            key = f"auroc/{comp['cell']}"
            curve = [{"rows": int(p["step"]) * batch, "minutes": p.get("minutes"), "auroc": p[key]}
                     for p in run["selection_curve"] if key in p]
            rows.append({"task": cell["task"], "depth": depth, "arm": arm, "folder": path.parent.name, "n": cell["n"],
                         "n_pos": cell["n_pos"], "base": cell["arms"]["base"]["auroc"]["estimate"],
                         "trained": cell["arms"][arm]["auroc"], "diff": comp.get("ci"),
                         "best_rows": None if run["best_step"] is None else int(run["best_step"]) * batch,
                         "train_minutes": run["train_minutes"], "curve": curve, "machine": res["machine"],
                         "command": res["command"]})
    return rows


def _ci(c: dict | None) -> str:
    return "" if not c else f"{c['estimate']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"


def markdown(rows: list[dict]) -> str:
    lines = ["# Pilot: trainable depth (validation only)", "",
             "Top 2 vs top 4 of SmolLM2-135M's 30 layers trained from cached features, one seed, in-domain arms "
             "(configs/pilot_depth.py). Validation split only; test is not read. `Δ` is AUROC(trained) − "
             "AUROC(untrained) with its paired bootstrap CI. Minutes are this machine's, feature passes included "
             "(the top-2 runs derive their features from the top-4 store: `train.feature_store_base=26`).", "",
             "| task | depth | arm (recipe) | n (pos) | untrained | trained | Δ [95% CI] | chosen at row-visits | train min |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["task"], r["depth"], r["arm"])):
        lines.append(f"| {r['task']} | top {r['depth']} | {r['arm']} | {r['n']} ({r['n_pos']}) | {r['base']:.3f} | "
                     f"{r['trained']['estimate']:.3f} | {_ci(r['diff'])} | {r['best_rows']} | "
                     f"{r['train_minutes']:.1f} |")
    lines += ["", "Selection curves (AUROC on the selection items at each evaluation, row-visits: AUROC):", ""]
    for r in sorted(rows, key=lambda r: (r["task"], r["depth"], r["arm"])):
        pts = ", ".join(f"{p['rows']}: {p['auroc']:.3f}" for p in r["curve"])
        lines.append(f"- {r['task']}, top {r['depth']}, {r['arm']}: {pts}")
    lines += ["", "Commands and machines:", ""]
    for cmd, machine in sorted({(r["command"], r["machine"]) for r in rows}):
        lines.append(f"- `{cmd}` ({machine})")
    lines += ["", "![curves](curves.png)", ""]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(2, len(tasks), figsize=(3.6 * len(tasks), 6), squeeze=False)
    for j, task in enumerate(tasks):
        for r in sorted((r for r in rows if r["task"] == task), key=lambda r: r["depth"]):
            for i, x in enumerate(("rows", "minutes")):
                pts = [p for p in r["curve"] if p[x] is not None]
                axes[i][j].plot([p[x] for p in pts], [p["auroc"] for p in pts], marker="o",
                                label=f"top {r['depth']}" + r["arm"].partition("+")[1] + r["arm"].partition("+")[2])
                axes[i][j].axhline(r["base"], color="grey", lw=0.8, ls="--")
        axes[0][j].set_title(task, fontsize=9)
        axes[0][j].set_xlabel("row-visits")
        axes[1][j].set_xlabel("CPU minutes of the run")
        for i in range(2):
            axes[i][j].set_ylabel("validation AUROC")
            axes[i][j].legend(fontsize=7)
    fig.suptitle("Depth pilot: selection curves (dashed: untrained)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=str(ROOT))
    root = Path(ap.parse_args().root)
    rows = collect(root)
    if not rows:
        raise SystemExit(f"{root}: no top*/results.json yet")
    (root / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    reading = root / "reading.md"  # the hand-written reading of the numbers, kept beside the generated table
    (root / "README.md").write_text(markdown(rows) + ("\n" + reading.read_text() if reading.exists() else ""))
    plot(rows, root / "curves.png")
    print(f"wrote {root}/README.md, curves.png, summary.json ({len(rows)} rows)")


if __name__ == "__main__":
    main()
