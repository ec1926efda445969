"""An experiment's results from the runner's raw material: `results.json`, `results.md` (AUROC with CIs, the
declared comparisons with verdicts, shortcut baselines beside each cell, eval sizes, seeds, command, wall time,
machine) and plots, written atomically into `experiments/results/<name>/`."""
from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from monitor_jax.core import distributed
from monitor_jax.data import hygiene
from monitor_jax.eval import metrics, tables
from monitor_jax.experiment import cells, compare, decide, item_scores, views


def machine() -> str:
    """One line: CPU model, cores, accelerator."""
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dev = jax.devices()[0]
    return f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} on {dev.platform} ({len(jax.devices())} device(s))"


def _baselines(config: Any, cell: Any) -> dict[str, float]:
    """Length-only and TF-IDF logistic regressions fit on the cell's train-split items, scored on its items."""
    train = cells.cell_examples(config, cell, "train")
    ev = cells.cell_examples(config, cell)
    return hygiene.shortcut_baselines([e.input for e in train], [e.label for e in train],
                                      [e.input for e in ev], [e.label for e in ev])


def summarize(config: Any, raw: dict, *, command: str, wall_minutes: float) -> dict:
    """The results.json object."""
    e = config.experiment
    keys = {cells.cell_key(c): c for c in e.cells}
    stats, est, dists = decide.cell_stats(raw["scores"], raw["labels"], raw.get("groups", {}), int(e.n_boot))
    cell_results = {}
    for k, cell in keys.items():
        if k not in raw["scores"]:  # a summary cell whose judge the budget skipped
            continue
        y = raw["labels"][k]
        cell_results[k] = {"task": cell.task, "prompt": cell.prompt, "role": cell.get("role", ""), "n": int(len(y)),
                    "subset": cell.get("subset"), "ask_with": cell.get("ask_with"),
                    "n_pos": int(y.sum()), "n_neg": int(len(y) - y.sum()), "declared_n": int(cell.limit),
                    "n_groups": None if not raw.get("groups", {}).get(k) else len(set(raw["groups"][k])),
                    "baselines": _baselines(config, cell), "arms": stats[k], "view": views.view_of(cell),
                    "budget": cell.get("budget"), "judge": cell.get("judge"),
                    "generation": raw.get("generation", {}).get(k)}
    comparisons, pre, verdict = decide.verdicts(config, [s.to_dict() for s in e.comparisons],
                                                [p.to_dict() for p in e.get("preconditions") or ()], cell_results, est,
                                                dists, raw["incomplete"])
    retention = {}
    if raw.get("retention"):
        ref = e.arms[0].name
        retention = {"if_nll": compare.mean_stats({a: [r["nll"] for r in rs] for a, rs in raw["retention"].items()},
                                                  ref, int(e.n_boot), 0),
                     "checks_passed": {a: [sum(c["passed"] for c in r["checks"]) for r in rs]
                                       for a, rs in raw["retention"].items()},
                     "n_checks": len(next(iter(raw["retention"].values()))[0]["checks"]),
                     "n_conversations": len(next(iter(raw["retention"].values()))[0]["nll"]),
                     "reference": ref,
                     "answers": {a: [r["checks"] for r in rs] for a, rs in raw["retention"].items()}}
    arms = {a.name: {"label": a.get("label", a.name), "x": a.get("x", None),
                     "runs": [_run_info(d) for d in raw["runs"].get(a.name, [])]} for a in e.arms}
    for c in cell_results.values():  # the pseudo-arms of summary cells (views.py)
        for a in c["arms"]:
            if a not in arms:
                label = ("the judge on the full input" if a == views.FULL else
                         f"first-N tokens (N = {arms[a.removesuffix(views.FIRST_N)]['label']} summary lengths)")
                arms[a] = {"label": label, "x": None, "runs": []}
    return {
        "name": e.name, "claim": e.claim, "statement": e.statement, "split": e.split, "seeds": list(e.seeds),
        "model": config.model.name, "train": {"mode": config.train.mode, "top_k": int(config.train.top_k),
                                              "steps": int(config.optim.total_steps),
                                              "budget_rows": e.get("budget_rows") or config.optim.get("total_rows"),
                                              "batch_size": int(config.data.batch_size),
                                              "max_len": int(config.data.max_len), "lr": float(config.optim.lr)},
        "n_boot": int(e.n_boot), "budget_minutes": float(e.budget_minutes), "train_minutes": raw["minutes"],
        "wall_minutes": wall_minutes, "command": command, "machine": machine(),
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "incomplete": raw["incomplete"], "cells": cell_results, "arms": arms, "comparisons": comparisons,
        "preconditions": pre, "retention": retention, "verdict": verdict, "ci_method": compare.CI_METHOD,
        "notes": list(e.get("notes", ())),
        "item_scores": {"file": item_scores.FILE, "rows": item_scores.rows(raw, keys)},  # write() keeps them apart
    }


def _run_info(rdir: Path) -> dict:
    run = json.loads((Path(rdir) / "run.json").read_text())
    return {"seed": run["seed"], "best_step": run["best_step"], "train_minutes": run["train_minutes"],
            "selected_on": run["selected_on"], "dir": Path(rdir).name,
            "steps_trained": run.get("steps_trained"), "total_steps": run.get("total_steps"),
            "stopped_early": bool(run.get("stopped_early")), "selection_curve": run.get("selection_curve", [])}


def _steps(run: dict) -> str:
    """"trained / planned" steps of a run ("" for runs made before these were recorded)."""
    if run.get("steps_trained") is None:
        return ""
    return f"{run['steps_trained']} / {run['total_steps']}"


def _comparison_row(c: dict) -> list[str]:
    roles = {r: c[r] for r in compare.KINDS[c["kind"]]}
    if c["kind"] == "diff":
        what = f"AUROC({roles['b']}) − AUROC({roles['a']})"
    elif c["kind"] == "gap":
        what = f"gap recovered by {roles['arm']} (base {roles['base']}, in-domain {roles['ref']})"
    else:
        what = f"gap({roles['arm']}) − gap({roles['other']}) (base {roles['base']}, in-domain {roles['ref']})"
    value = "undefined (denominator CI includes 0)" if c.get("ci") and not c["defined"] else tables.ci_text(c.get("ci"))
    return [c["cell"], what, "+" if int(c.get("direction", 1)) > 0 else "−", value,
            c["verdict"] + (" (primary)" if c.get("primary") else "")]


def markdown(res: dict) -> str:
    """results.md."""
    arm_names = list(res["arms"])
    t = res["train"]
    out = [f"# {res['claim']}: {res['name']}", "", f"**Claim.** {res['statement']}", "",
           f"**Verdict: {verdict_text(res)}** (computed from the paired CIs of the primary comparisons below and "
           f"the preconditions; `python experiments/verdict.py` recomputes it).", ""]
    if res["incomplete"]:
        out += [f"> **incomplete:** {res['incomplete']}", ""]
    if res.get("relabelled"):
        r = res["relabelled"]
        out += [f"> **{r['mark']}** ({r['rules']}); verdict before: {r['verdict_before']}"
                + "".join(f"; {c}" for c in r["changes"]), ""]
    length = (f"{t['budget_rows']} row-visits per run (batches of {t['batch_size']}; an arm may set its own)"
              if t.get("budget_rows") else f"{t['steps']} steps × {t['batch_size']} rows")
    out += [f"- model `{res['model']}`, {t['mode']} k={t['top_k']} from cached features, {length}, lr {t['lr']}, "
            f"max_len {t['max_len']}; seeds {res['seeds']}",
            f"- evaluation split: **{res['split']}**; checkpoints chosen on validation (each arm's own training "
            f"tasks); {res['n_boot']} paired bootstrap replicates, 95 % percentile CIs: {ci_caption(res)}; "
            "an arm's AUROC is the mean over its seeds",
            f"- command: `{res['command']}`",
            f"- training {res['train_minutes']:.1f} min (budget {res['budget_minutes']:.0f}), wall "
            f"{res['wall_minutes']:.1f} min, {res['machine']}, written {res['written']}", ""]
    rows = []
    for k, c in res["cells"].items():
        vals = []
        for a in arm_names:
            s = c["arms"].get(a)
            vals.append("—" if s is None else tables.ci_text(s["auroc"]) + (
                f"; range {s['seed_spread']:.3f}" if len(s["per_seed"]) > 1 else ""))
        b = c["baselines"]
        rows.append([k, c["role"], f"{c['n_pos']}/{c['n_neg']}", metrics.fmt_value(b["length_auroc"]),
                     metrics.fmt_value(b["tfidf_auroc"]), *vals])
    out += ["## AUROC (95 % CI; seed range = max − min of the per-seed AUROCs)", ""]
    out += tables.markdown_table(["cell", "role", "n pos/neg", "length-only", "TF-IDF",
                                  *(res["arms"][a]["label"] for a in arm_names)], rows)
    out += ["", "Shortcut baselines: logistic regressions on the task's train split (length only; TF-IDF word "
            "1–2-grams), scored on the same items. —: the arm is not scored on that cell (or its runs were "
            "skipped, see above).", ""]
    out += _generation_md(res)
    out += _preconditions_md(res)
    out += ["## Comparisons", ""]
    out += tables.markdown_table(["cell", "quantity", "claimed sign", "estimate [95 % CI]", "verdict"],
                                 [_comparison_row(c) for c in res["comparisons"]])
    if res.get("retention"):
        r = res["retention"]
        ref = r["reference"]
        out += ["", "## Instruction-following retention", "",
                f"Held-out ShareGPT answers ({r['n_conversations']} validation conversations): mean NLL per answer "
                f"token (lower is better; 95 % bootstrap CI over conversations, paired difference vs {ref}); "
                f"greedy generation checks passed (of {r['n_checks']}, per seed).", ""]
        out += tables.markdown_table(
            ["arm", "IF answer NLL", "Δ vs " + ref, "checks passed"],
            [[res["arms"][a]["label"], tables.ci_text(s["mean"]),
              tables.ci_text(s["diff_vs_" + ref]) if s.get("diff_vs_" + ref) else "",
              ", ".join(str(c) for c in r["checks_passed"][a])] for a, s in r["if_nll"].items()])
    out += ["", "## Runs", ""]
    runs = [[a, r["seed"], r["best_step"], _steps(r), "yes" if r.get("stopped_early") else "no",
             f"{r['train_minutes']:.1f}", ", ".join(r["selected_on"])]
            for a, info in res["arms"].items() for r in info["runs"]]
    out += tables.markdown_table(["arm", "seed", "chosen step", "steps trained", "stopped early", "training min",
                                  "chosen on (validation)"], runs)
    if res["notes"]:
        out += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]]
    out += ["", "![AUROC per arm](auroc.png)", ""]
    return "\n".join(out)


def ci_caption(res: dict) -> str:
    """How the CIs of `res` were made."""
    if res.get("ci_method", "items") == "items":
        return ("items only (round 1: seed variance is *not* inside these CIs; the seed range is shown beside "
                "each arm)")
    return ("two-level: seeds, then items (or hygiene groups), resampled jointly for every arm (seed variance is "
            "inside the CI; a one-seed arm has none to add)")


def verdict_text(res: dict) -> str:
    """The claim's verdict, with how many primary comparisons were not testable when some but not all were."""
    k, n = compare.untestable_primaries(res["comparisons"])
    return res["verdict"] + (f" ({k} of {n} primary comparisons not testable)" if 0 < k < n else "")


def _preconditions_md(res: dict) -> list[str]:
    """The preconditions and whether they held; a failed one makes the cells it guards not testable."""
    if not res.get("preconditions"):
        return []
    out = ["## Preconditions", "", "A failed precondition makes every comparison on the cells it guards "
           "**not testable** (never refuted).", ""]
    rows = []
    for p in res["preconditions"]:
        value = tables.ci_text(p["ci"]) if p.get("ci") else metrics.fmt_value(p.get("value"))
        side = f"CI {'above' if int(p.get('direction', 1)) > 0 else 'below'} 0"
        need = {"diff": side, "committed": side,
                "label_agreement": f"CI above {p.get('threshold')}",
                "exposure_ratio": f"≤ {p.get('threshold')}"}.get(p["kind"], f"≥ {p.get('threshold')}")
        holds = {True: "yes", False: "**no**", None: "not evaluated"}[p.get("passed")]
        rows.append([p["what"], value + (" — " + p["note"] if p.get("note") else ""), need, holds,
                     ", ".join(p.get("guards") or ["all cells"])])
    return out + tables.markdown_table(["precondition", "value", "needed", "holds", "guards"], rows) + [""]


def _generation_md(res: dict) -> list[str]:
    """How the thinking / summary cells were made, with their generated lengths per arm and seed."""
    made = {k: c for k, c in res["cells"].items() if c.get("view", "plain") != "plain"}
    if not made:
        return []
    what = {"thinking": "reasons (≤ {b} tokens, greedy), then the answer slot is scored",
            "thinking_control": "empty reasoning turn (the control), then the answer slot is scored",
            "summary": "summarizes (≤ {b} tokens, greedy); the judge (`{j}`, its first run) reads the summary"}
    out = ["## Generated text", "", "Per arm, one value per seed: mean generated tokens, the share cut at the budget, "
           "and the most common text with its share (a model writing the same words for every item does not reason "
           "or summarize).", ""]
    rows = []
    for k, c in made.items():
        how = what[c["view"]].format(b=c["budget"], j=c["judge"])
        if not c.get("generation"):
            rows.append([k, how, "", "", "", ""])
            continue
        for arm, g in c["generation"].items():
            toks = ", ".join(f"{t:.1f}" for t in g["mean_tokens"])
            cap = ", ".join(f"{100 * f:.0f} %" for f in g["at_cap"])
            top = "; ".join(f"“{t.replace(chr(10), ' ')}” ({100 * f:.0f} %)"
                            for t, f in zip(g.get("top_text", []), g.get("top_share", [])))
            rows.append([k, how, res["arms"].get(arm, {}).get("label", arm), toks, cap, top])
    header = ["cell", "how", "arm", "mean tokens", "at the cap", "most common text (share)"]
    return out + tables.markdown_table(header, rows) + [""]


def plot(res: dict, path: Path) -> None:
    """AUROC per arm and cell with CIs (bars); arms with an `x` (e.g. adjacent items) also as curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(res["cells"])
    arms = [a for a in res["arms"] if any(a in res["cells"][c]["arms"] for c in cells)]
    curve = [a for a in arms if res["arms"][a]["x"] is not None]
    fig, axes = plt.subplots(1, 2 if curve else 1, figsize=(11 if curve else 7, 3.6), squeeze=False)
    ax = axes[0, 0]
    w = 0.8 / max(1, len(arms))
    for i, a in enumerate(arms):
        for j, c in enumerate(cells):
            s = res["cells"][c]["arms"].get(a)
            if s is None:
                continue
            e = s["auroc"]
            ax.bar(j + i * w, e["estimate"], w, color=f"C{i}", label=res["arms"][a]["label"] if j == 0 else None,
                   yerr=[[e["estimate"] - e["low"]], [e["high"] - e["estimate"]]], capsize=2)
    ax.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax.set_xticks(np.arange(len(cells)) + 0.4 - w / 2, [c.removesuffix(":primary") for c in cells], rotation=15,
                  fontsize=8)
    ax.set_ylabel(f"AUROC ({res['split']})")
    ax.set_ylim(0.0, 1.0)
    ax.legend(fontsize=7)
    if curve:
        ax2 = axes[0, 1]
        for j, c in enumerate(cells):
            xs = [res["arms"][a]["x"] for a in curve if a in res["cells"][c]["arms"]]
            es = [res["cells"][c]["arms"][a]["auroc"] for a in curve if a in res["cells"][c]["arms"]]
            ax2.errorbar(xs, [e["estimate"] for e in es], yerr=[[e["estimate"] - e["low"] for e in es],
                                                                 [e["high"] - e["estimate"] for e in es]],
                         marker="o", capsize=3, label=c.split(":")[0])
        ax2.set_xlabel("adjacent training items")
        ax2.set_ylabel("AUROC")
        ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(res: dict, out_dir: str | os.PathLike) -> Path:
    """results.json, results.md, auroc.png and the per-item scores (scores.jsonl.gz, from `res["item_scores"]`
    rows, which results.json only names) into `out_dir`, replaced as a whole; by process 0 only (the others
    return the path)."""
    out = Path(out_dir)
    if not distributed.is_main():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    items = res.get("item_scores") or {}
    if "rows" in items:
        item_scores.write(tmp / items["file"], items["rows"])
        res = {**res, "item_scores": {"file": items["file"], "n_rows": len(items["rows"])}}
    (tmp / "results.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    (tmp / "results.md").write_text(markdown(res))
    plot(res, tmp / "auroc.png")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def command_line() -> str:
    return " ".join(["monitor-jax" if i == 0 else a for i, a in enumerate(sys.argv)])


def table(res: dict) -> str:
    """A compact text table: per cell, every arm's AUROC [CI] and each comparison of the cell with its reading."""
    arms = list(res["arms"])
    lines = [f"{'cell':<34} {'n+/n-':>8}  " + "  ".join(f"{res['arms'][a]['label'][:22]:<22}" for a in arms)]
    for k, c in res["cells"].items():
        vals = [tables.ci_text(c["arms"][a]["auroc"]) if a in c["arms"] else "—" for a in arms]
        lines.append(f"{k:<34} {c['n_pos']:>3}/{c['n_neg']:<4}  " + "  ".join(f"{v:<22}" for v in vals))
        for cmp in (x for x in res["comparisons"] if x["cell"] == k and x["kind"] == "diff"):
            sign = compare.recompute_verdict({**cmp, "direction": 1})  # the CI's side of 0, whatever is claimed
            reading = {"reproduced": "gain", "refuted": "worse"}.get(sign, "no clear change")
            lines.append(f"{'':<34} {'':>8}  Δ {cmp['b']} − {cmp['a']}: {tables.ci_text(cmp.get('ci'))}  -> {reading}")
    return "\n".join(lines)
