"""Verdicts of the claim experiments, recomputed from their committed results, and experiments/README.md.

    python experiments/verdict.py            # exit 1 if a stored verdict or an eval size disagrees

For every experiments/results/<name>/results.json: each comparison's verdict is recomputed from its paired CI
(`monitor_jax.experiment.compare`), the claim's verdict from its primary comparisons, and every cell's eval size
is checked against the one its config declares (configs/<name>.py, fixed before the run). The README gets one
line per claim C1-C8: verdict, scale and where the numbers are, then experiments/findings.md (what they mean).
"""
from __future__ import annotations

import importlib.util
import json
import pathlib
import sys

from monitor_jax.experiment import compare, runner

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
CLAIMS = {
    "C1": "transfer: training on other tasks improves unseen tasks with unseen prompts",
    "C2": "adjacency: more adjacent training domains recover more of the in-domain gap",
    "C3": "scaling: more adjacent data helps beside a fixed small in-domain set",
    "C4": "prompt-following failure: a new question on a trained domain is answered as the old one",
    "C5": "IF mixing keeps C1 gains and mitigates C4",
    "C6": "no-thinking training improves with-thinking classification",
    "C7": "trained summaries let a fixed judge detect bad behaviour better",
    "C8": "with-thinking pseudo-labels improve no-thinking AUROC without gold labels",
}


def declared_sizes(name: str) -> dict[str, int] | None:
    path = ROOT / "configs" / f"{name}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"_verdict_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {runner.cell_key(c): int(c.limit) for c in mod.get_config().experiment.cells}


def check(res: dict, name: str) -> tuple[str, list[str]]:
    """(recomputed claim verdict, problems)."""
    problems = []
    for c in res["comparisons"]:
        if c.get("ci") is None:
            continue
        v = compare.recompute_verdict(c) if c.get("defined", True) else "inconclusive"
        if v != c["verdict"]:
            problems.append(f"{name}: {c['kind']} on {c['cell']}: stored {c['verdict']!r}, recomputed {v!r}")
        c["verdict"] = v
    verdict = compare.claim_verdict(res["comparisons"])  # a primary comparison not run is inconclusive
    if verdict != res["verdict"]:
        problems.append(f"{name}: stored claim verdict {res['verdict']!r}, recomputed {verdict!r}")
    sizes = declared_sizes(name)
    for k, cell in res["cells"].items():
        want = (sizes or {}).get(k, cell["declared_n"])
        if cell["n"] != want:
            problems.append(f"{name}: cell {k} has n={cell['n']}, the config declares {want}")
    return verdict, problems


def scale(res: dict) -> str:
    t = res["train"]
    seeds = len(res["seeds"])
    sizes = ", ".join(dict.fromkeys(f"{c['task']} n={c['n']}" for c in res["cells"].values()))  # once per task
    return (f"{res['model']}, top-{t['top_k']} layers, {t['steps']} steps × {t['batch_size']}, {seeds} seed(s); "
            f"{res['split']}: {sizes}")


def main(argv: list[str]) -> int:
    del argv
    found, problems = {}, []
    for path in sorted(RESULTS.glob("*/results.json")):
        res = json.loads(path.read_text())
        if res.get("claim") not in CLAIMS:
            continue
        verdict, p = check(res, path.parent.name)
        problems += p
        found.setdefault(res["claim"], []).append((path.parent.name, verdict, res))
    lines = ["# Experiments", "",
             "One line per claim of DESIGN.md §1. Verdicts are computed by `python experiments/verdict.py` from the "
             "paired bootstrap CIs in each `results/<name>/results.json` (reproduced: every primary comparison's "
             "95 % CI on the claimed side of 0; refuted: every one on the other side; otherwise inconclusive). "
             "Eval sizes are fixed in `configs/<name>.py` before the run and checked here. Everything runs on "
             "the 2-core CPU at SmolLM2-135M scale: a claim that does not reproduce here is a result about this "
             "scale, not about the paper's.", "",
             "Run: `python experiments/run_all.py c3_scaling c1_transfer c2_adjacency`, "
             "`python experiments/run_all.py c4_prompt_following c5_if_mixing`, "
             "`python experiments/run_all.py c6_thinking c7_summarization`, `python experiments/c8_elicitation.py` "
             "(or one claim: `monitor-jax experiment --config=configs/<name>.py --out=experiments/results/<name>`). "
             "Finished runs are reused from `$MONITOR_JAX_CACHE/runs`.", "",
             "| claim | verdict | scale | results |", "|---|---|---|---|"]
    for claim, text in CLAIMS.items():
        for name, verdict, res in found.get(claim, []):
            lines.append(f"| {claim} {text} | **{verdict}**{' (incomplete)' if res.get('incomplete') else ''} | "
                         f"{scale(res)} | [results/{name}](results/{name}/results.md) |")
        if claim not in found:
            lines.append(f"| {claim} {text} | not run yet | | |")
    lines += ["", "Other runs (protocol smoke tests, not claims): [demo_train](results/demo_train/README.md), "
              "[thinking_smollm2](results/thinking_smollm2/README.md), "
              "[summarize_smollm2](results/summarize_smollm2/README.md).", ""]
    findings = ROOT / "experiments" / "findings.md"  # hand-written readings of the results, kept across rewrites
    if findings.exists():
        lines += [findings.read_text().strip(), ""]
    (ROOT / "experiments" / "README.md").write_text("\n".join(lines))
    for p in problems:
        print(p, file=sys.stderr)
    for claim, rows in found.items():
        for name, verdict, _ in rows:
            print(f"{claim} {name}: {verdict}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
