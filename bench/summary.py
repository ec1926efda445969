"""Collects the latest benchmark results into one file, bench/results.md (the last step of `make bench`).

    python bench/summary.py [--results=bench/results] [--out=bench/results.md]

Reads the tables that bench/scoring.py, bench/train_step.py and bench/generate.py wrote (each from one run with
both sides interleaved or back to back on the same machine; a partial rerun's rows replace the older ones), lists every ratio against its DESIGN.md §6 target
with met / missed, then appends each file's own header and table, and bench/notes.md (what the profiles show).
"""
from __future__ import annotations

import argparse
import pathlib
import re

# `make bench-levers` files first: a row of the same measurement in a later file (its baseline, rerun by `make bench`)
# replaces the earlier one, as does a partial rerun's (e.g. `bench/scoring.py --parts=fixed,mix --out=...`)
FILES = ("train_step_levers.md", "features_packed.md", "features_xnnpack.md", "features_threads.md",
         "features_scheduler.md", "generate_b32.md", "bf16_accuracy.md", "train_step.md",
         "features.md", "scoring.md", "scoring_bf16.md", "generate.md", "arm.md")
RATIO = re.compile(r"\*\*([0-9.]+)x( cost)?\*\*")
TARGET = re.compile(r"([≥≤])\s*([0-9.]+)x")
DEFAULT_TARGETS = {"jax:": "≥ 1.1x"}  # rows of result files written before they had a target column


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def target_rows(text: str, source: str) -> list[tuple[str, float, str, bool | None, str]]:
    """(measurement, ratio, target, met, source) of every table row carrying a bold ratio."""
    out = []
    header: list[str] = []
    for line in text.splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = _cells(line)
        if not header:
            header = cells
            continue
        m = next((RATIO.search(c) for c in cells if RATIO.search(c)), None)
        if m is None:
            continue
        ratio = float(m.group(1))
        t = next((TARGET.search(c) for c in cells if TARGET.search(c)), None)
        if t is None:
            t = next((TARGET.search(v) for k, v in DEFAULT_TARGETS.items() if cells[0].startswith(k)), None)
        if t is None:
            out.append((cells[0], ratio, "", None, source))
            continue
        bound = float(t.group(2))
        met = ratio >= bound if t.group(1) == "≥" else ratio <= bound
        out.append((cells[0], ratio, f"{t.group(1)} {t.group(2)}x", met, source))
    return out


def machine_of(text: str) -> str:
    """The CPU model a result file names on its "Machine:" line (before the first comma)."""
    line = next((ln for ln in text.splitlines() if ln.startswith("Machine:")), "Machine: ?")
    return line.split(":", 1)[1].split(",")[0].split(";")[0].strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(pathlib.Path(__file__).with_name("results")))
    ap.add_argument("--out", default=str(pathlib.Path(__file__).with_name("results.md")))
    args = ap.parse_args()
    root = pathlib.Path(args.results)
    texts = {f: (root / f).read_text() for f in FILES if (root / f).exists()}
    latest: dict[str, tuple] = {}
    for f, t in texts.items():
        for r in target_rows(t, f):
            latest[r[0]] = r
    rows = list(latest.values())
    machines = {f: machine_of(t) for f, t in texts.items()}
    lines = ["# Benchmarks: monitor_jax vs PyTorch 2.13 + transformers 5.24 (SmolLM2-135M-Instruct, fp32)", "",
             "Written by `make bench` (bench/summary.py) from the result files below; each ratio comes from one "
             "run of both sides on the same machine, shapes and batches. Targets: DESIGN.md §6 (stretch targets).",
             "", f"Machines: {'; '.join(sorted(set(machines.values())))}.", "",
             "| measurement | ratio | target | | from | machine |", "|---|---|---|---|---|---|"]
    screen = []
    for name, ratio, target, met, source in rows:
        verdict = "" if met is None else ("met" if met else f"**missed** by {abs(ratio - float(target[2:-1])):.2f}x")
        lines.append(f"| {name} | {ratio:.2f}x | {target} | {verdict} | [{source}](results/{source}) | "
                     f"{machines[source]} |")
        screen.append(f"  {name[:72]:<72} {ratio:>5.2f}x  {target:<8} {verdict.replace('**', '')}")
    for f, t in texts.items():
        lines += ["", "---", "", t.replace("# ", "## ", 1).strip()]
    notes = pathlib.Path(__file__).with_name("notes.md")
    if notes.exists():
        lines += ["", "---", "", notes.read_text().strip()]
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join([f"bench summary ({'; '.join(sorted(set(machines.values())))}):", *screen,
                     f"{args.out}: {len(rows)} ratios, {sum(1 for r in rows if r[3] is False)} targets missed"]))


if __name__ == "__main__":
    main()
