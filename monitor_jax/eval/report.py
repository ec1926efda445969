"""Write what `evaluate_models` measured so every number can be traced: JSON, markdown, plots, score files.

Layout of `out_dir` (written atomically: built in a temp dir beside it, then renamed over it):
  report.json        everything (JSON, nan -> null), including the data manifest
  report.md          readable tables: AUROC with 95 % CIs, TPR@1 % FPR, thresholds, paired differences, lengths
  manifest.json      assets (package, version, sha256), split seed, suite version, tasks + prompt templates,
                     models (hashes/sizes), versions, command, seed, timestamp, digests of the example ids
  figures/           auroc_heatmap.png, roc__<task>.png, hist__<task>.png
  scores/<model_tag>/<task>__<prompt>.jsonl   one row per example: id, label, score, logp_pos, logp_neg,
                     mass_outside, n_tokens, truncated (+ `__validation.jsonl` for threshold sources)
Plots use matplotlib's object API (`Figure` + Agg canvas): no pyplot, no global backend switch.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import math
import os
import pathlib
import platform
import re
import shutil
import tempfile
from typing import Any, Iterator

import numpy as np

from monitor_jax.eval import metrics, tables
from monitor_jax.eval.evaluate import SCORE_FIELDS, EvalResults

SMALL_CLASS = 50  # a class with fewer items than this makes the CI wide: flagged in the notes


def _fname(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-")


def _jsonable(x: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, tuples to lists, nan/inf to None."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _dump(obj: Any, path: pathlib.Path) -> None:
    path.write_text(json.dumps(_jsonable(obj), indent=1, allow_nan=False) + "\n")


@contextlib.contextmanager
def _atomic_dir(out_dir: pathlib.Path) -> Iterator[pathlib.Path]:
    """Yields a temp dir beside `out_dir`; on success it replaces `out_dir`, on failure it is removed."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        yield tmp
        old = None
        if out_dir.exists():
            old = pathlib.Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent)) / "x"
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old.parent, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _ids_digest(ids: np.ndarray) -> str:
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()


def data_manifest(results: EvalResults) -> dict:
    """What the numbers were computed from: assets, suite split seed/version, tasks, models, versions."""
    from monitor_jax.core import assets
    from monitor_jax.data.builders import suite

    asset_rows = {}
    for name, a in assets.ASSETS.items():
        row: dict = {"package": a.package, "version": a.version, "wheel": a.wheel, "sha256": a.sha256}
        try:
            files = assets.manifest(name)["files"]
            lines = "".join(f"{k} {files[k]}\n" for k in sorted(files))
            row.update(n_files=len(files), files_sha256=hashlib.sha256(lines.encode()).hexdigest())
        except Exception as e:  # a missing asset is recorded, not fatal: the pinned wheel sha is the identity
            row["error"] = f"{type(e).__name__}: {e}"
        asset_rows[name] = row
    examples = []
    for c in results.cells:
        if c.model == 0:
            for split, arr in ((c.split, c.arrays), ("validation", c.val)):
                if arr is not None:
                    y = arr["label"]
                    examples.append({"task": c.task, "prompt": c.prompt, "split": split, "n": int(len(y)),
                                     "n_pos": int(y.sum()), "n_neg": int(len(y) - y.sum()),
                                     "ids_sha256": _ids_digest(arr["id"])})
    versions = {"python": platform.python_version()}
    for pkg in ("monitor_jax", "jax", "jaxlib", "flax", "numpy", "transformers", "tokenizers"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "monitor_jax_version": versions["monitor_jax"], "versions": versions, "command": results.command,
        "seed": results.config["seed"], "timestamp": results.timestamp, "split": results.split,
        "suite": {"version": suite.VERSION, "split_seed": suite.SPLIT_SEED},
        "assets": asset_rows, "tasks": results.tasks, "examples": examples,
        "models": [{k: v for k, v in m.items() if k != "render_stats"} for m in results.models],
    }


def _write_scores(results: EvalResults, root: pathlib.Path) -> dict[tuple[int, str, str], dict[str, str]]:
    """Per-example JSONL files; returns {(model, task, prompt): {split: relative path}}."""
    out: dict[tuple[int, str, str], dict[str, str]] = {}
    for c in results.cells:
        tag = results.models[c.model]["tag"]
        files = {}
        for split, arr, suffix in ((c.split, c.arrays, ""), ("validation", c.val, "__validation")):
            if arr is None:
                continue
            rel = f"scores/{tag}/{_fname(c.task)}__{_fname(c.prompt)}{suffix}.jsonl"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            cols = [arr[k].tolist() for k in SCORE_FIELDS]
            with open(root / rel, "w") as f:
                for row in zip(*cols):
                    f.write(json.dumps(_jsonable(dict(zip(SCORE_FIELDS, row))), allow_nan=False) + "\n")
            files[split] = rel
        out[(c.model, c.task, c.prompt)] = files
    return out


# ------------------------------------------------------------------------------------------ plots


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) of `score >= t` over every distinct threshold, from (0, 0) to (1, 1)."""
    s, y = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1] if s.size else np.array([], int)
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    return np.r_[0.0, fp / max(int((~y).sum()), 1)], np.r_[0.0, tp / max(int(y.sum()), 1)]


def _figure(w: float, h: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _prompts_of(results: EvalResults, task: str) -> list[str]:
    return [p for t, p in results.pairs() if t == task]


def plot_roc(results: EvalResults, task: str, path: pathlib.Path) -> None:
    """ROC curves of one task: one panel per prompt, one line per model."""
    prompts = _prompts_of(results, task)
    fig = _figure(4.0 * len(prompts) + 0.6, 4.2)
    axes = fig.subplots(1, len(prompts), squeeze=False)[0]
    styles = ["-", "--", ":", "-."]
    for ax, prompt in zip(axes, prompts):
        for m in results.models:
            c = results.cell(m["index"], task, prompt)
            fpr, tpr = roc_curve(c.arrays["score"], c.arrays["label"])
            ax.plot(fpr, tpr, lw=1.6, ls=styles[m["index"] % len(styles)],
                    label=f"{m['tag']} ({metrics.fmt_value(c.summary['auroc']['estimate'])})")
        ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate",
               title=f"{task} · {prompt}", aspect="equal")
        ax.title.set_fontsize(9)
        ax.legend(loc="lower right", fontsize=7, title="model (AUROC)", title_fontsize=7)
    fig.savefig(path)


def plot_heatmap(results: EvalResults, path: pathlib.Path) -> None:
    """(task, prompt) x model AUROC heatmap; each cell shows the estimate and its 95 % CI."""
    rows, models = results.pairs(), results.models
    grid = np.full((len(rows), len(models)), np.nan)
    text = [["" for _ in models] for _ in rows]
    for i, (t, p) in enumerate(rows):
        for j, m in enumerate(models):
            a = results.cell(m["index"], t, p).summary["auroc"]
            grid[i, j] = np.nan if a["estimate"] is None else a["estimate"]
            text[i][j] = "n/a" if a["estimate"] is None else (
                f"{a['estimate']:.3f}\n[{metrics.fmt_value(a['low'], 2)}, {metrics.fmt_value(a['high'], 2)}]")
    fig = _figure(3.2 + 1.5 * len(models), max(2.6, 1.2 + 0.5 * len(rows)))
    ax = fig.subplots()
    im = ax.imshow(grid, cmap="RdBu_r", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(models)):
            dark = np.isfinite(grid[i, j]) and abs(grid[i, j] - 0.5) > 0.3
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.set_xticks(range(len(models)), [m["tag"] for m in models], rotation=20, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), [f"{t} · {p}" for t, p in rows], fontsize=7)
    ax.set_title(f"AUROC [95 % CI], {results.split} split", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8, label="AUROC")
    fig.savefig(path)


def plot_histograms(results: EvalResults, task: str, path: pathlib.Path) -> None:
    """Score histograms per class: one panel per (model, prompt) of one task; the threshold if chosen."""
    prompts = _prompts_of(results, task)
    fig = _figure(3.4 * len(prompts) + 0.4, 2.3 * len(results.models) + 0.4)
    axes = fig.subplots(len(results.models), len(prompts), squeeze=False)
    for m, row in zip(results.models, axes):
        for prompt, ax in zip(prompts, row):
            c = results.cell(m["index"], task, prompt)
            s, y = c.arrays["score"], c.arrays["label"].astype(bool)
            lo, hi = (float(s.min()), float(s.max())) if s.size else (0.0, 1.0)
            pad = max(hi - lo, 1e-3) * 0.05  # bins over the scores' own range: untrained models sit near 0.5
            bins = np.linspace(max(lo - pad, 0.0), min(hi + pad, 1.0), 26)
            ax.hist(s[~y], bins=bins, alpha=0.6, color="tab:blue", label=f"negative (n={int((~y).sum())})")
            ax.hist(s[y], bins=bins, alpha=0.6, color="tab:red", label=f"positive (n={int(y.sum())})")
            if c.threshold and c.threshold.get("value") is not None:
                ax.axvline(c.threshold["value"], color="k", ls="--", lw=1, label="threshold (val, 1 % FPR)")
            ax.set_title(f"{m['tag']} · {prompt}", fontsize=8)
            ax.set_xlabel("score = P(positive word | both label words)", fontsize=7)
            ax.set_ylabel("examples", fontsize=7)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6, framealpha=0.7)
    fig.suptitle(f"{task}: score distributions ({results.split})", fontsize=9)
    fig.savefig(path)


# ------------------------------------------------------------------------------------------ markdown


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return tables.markdown_table(header, rows) + [""]


def _markdown(rep: dict, results: EvalResults) -> str:
    cfg, models = results.config, results.models
    tags = [m["tag"] for m in models]
    res = {(r["model"], r["task"], r["prompt"]): r for r in rep["results"]}
    L = [f"# Evaluation report — {results.split} split", "",
         f"- **models**: {len(models)}, reference `{models[0]['name']}` (paired differences are against it)",
         f"- **tasks**: {len(results.tasks)} · **prompts**: {cfg['prompts']} · **limit per task**: "
         f"{cfg['limit_per_task']} · **max_len**: {cfg['max_len']} · **seed**: {cfg['seed']} · "
         f"**bootstrap**: {cfg['n_boot']} stratified resamples, 95 % percentile CIs",
         f"- **command**: `{results.command}`", f"- **written**: {results.timestamp} · data manifest: "
         "[manifest.json](manifest.json) · everything: [report.json](report.json)", ""]
    for w in results.warnings:
        L.append(f"> **warning:** {w}")
    if results.warnings:
        L.append("")
    L += ["## Models", ""] + _table(["tag", "model", "kind"], [[f"`{m['tag']}`", f"`{m['name']}`", m["kind"]]
                                                               for m in models])
    L += ["## AUROC (95 % CI)", ""]
    L += _table(["task", "prompt", "n pos / neg"] + [f"`{t}`" for t in tags],
                [[t, p, f"{res[(0, t, p)]['n_pos']} / {res[(0, t, p)]['n_neg']}"]
                 + [tables.ci_text(res[(m['index'], t, p)]["auroc"]) for m in models] for t, p in results.pairs()])
    order = {pair: k for k, pair in enumerate(results.pairs())}
    by_pair = sorted(rep["results"], key=lambda r: (order[(r["task"], r["prompt"])], r["model"]))
    L += ["![AUROC heatmap](figures/auroc_heatmap.png)", "", "## Details per model", "",
          "TPR at 1 % / 0.1 % FPR is *n/a* with fewer than 1,000 / 10,000 negatives (DESIGN.md §5). Mass outside ="
          " mean probability the model puts on tokens other than the two label words.", ""]
    L += _table(["task", "prompt", "model", "AUROC [95 % CI]", "TPR@1 % FPR", "TPR@0.1 % FPR", "ECE",
                 "mass outside", "n pos / neg", "truncated"],
                [[r["task"], r["prompt"], f"`{tags[r['model']]}`", tables.ci_text(r["auroc"]),
                  metrics.fmt_value(r["tpr_at_fpr_1pct"]), metrics.fmt_value(r["tpr_at_fpr_0.1pct"]),
                  metrics.fmt_value(r["ece"]), metrics.fmt_value(r["mean_mass_outside"]),
                  f"{r['n_pos']} / {r['n_neg']}",
                  f"{r['n_truncated']} / {r['n']}"] for r in by_pair])
    thr = [r for r in by_pair if r.get("threshold")]
    if thr:
        L += [f"## Operating threshold (chosen on {cfg['thresholds_from']} at {cfg['target_fpr']:.0%} FPR, applied "
              f"on {results.split})", "", "Reliable = the validation split had at least 1,000 negatives.", ""]
        L += _table(["task", "prompt", "model", "threshold", "val n pos / neg", "val TPR / FPR", "reliable",
                     f"{results.split} TPR", f"{results.split} FPR"],
                    [[r["task"], r["prompt"], f"`{tags[r['model']]}`", metrics.fmt_value(r["threshold"]["value"], 4),
                      f"{r['threshold']['val_n_pos']} / {r['threshold']['val_n_neg']}",
                      f"{metrics.fmt_value(r['threshold'].get('val_tpr'))} / "
                      f"{metrics.fmt_value(r['threshold'].get('val_fpr'))}",
                      "yes" if r["threshold"]["reliable"] else "no", metrics.fmt_value(r.get("tpr_at_threshold")),
                      metrics.fmt_value(r.get("fpr_at_threshold"))] for r in thr])
    if rep["paired_differences"]:
        L += ["## Paired differences vs the reference", "",
              f"AUROC(model) − AUROC(`{tags[0]}`), both bootstrapped on the same resampled items.", ""]
        L += _table(["task", "prompt", "model", "ΔAUROC [95 % CI]", "CI"],
                    [[d["task"], d["prompt"], f"`{tags[d['model']]}`", tables.diff_text(d),
                      "n/a" if d.get("estimate") is None else "above 0" if d["low"] > 0 else "below 0"
                      if d["high"] < 0 else "includes 0"] for d in rep["paired_differences"]])
    if rep["length_buckets"]:
        L += ["## AUROC by input length", "",
              f"Quartiles of the prompt length in tokens under `{tags[0]}`'s tokenizer (same items for every "
              "model).", ""]
        L += _table(["task", "prompt", "tokens", "n pos / neg"] + [f"`{t}`" for t in tags],
                    [[b["task"], b["prompt"], f"{b['tokens_min']}–{b['tokens_max']}", f"{b['n_pos']} / {b['n_neg']}"]
                     + [tables.ci_text(a) for a in b["auroc"]] for b in rep["length_buckets"]])
    L += [f"## Truncation (max_len {cfg['max_len']})", ""]
    L += ["Inputs longer than the budget are cut in the middle (a marker shows where); counts per model and split. "
          "Escapes = control-token text inside inputs, encoded as plain text.", ""]
    rows = []
    for m in models:
        cs = [c for c in results.cells if c.model == m["index"]]
        escapes = sum(m["render_stats"]["escaped"].values())
        for split, arrs in ((results.split, [c.arrays for c in cs]), ("validation", [c.val for c in cs if c.val])):
            if arrs:
                n, t = sum(len(a["id"]) for a in arrs), sum(int(a["truncated"].sum()) for a in arrs)
                rows.append([f"`{m['tag']}`", split, n, f"{t} ({t / max(n, 1):.1%})", escapes])
                escapes = ""
    L += _table(["model", "split", "examples", "truncated", "escapes (all splits)"], rows)
    small = sorted({f"{r['task']} · {r['prompt']} ({r['n_pos']} / {r['n_neg']})" for r in rep["results"]
                    if min(r["n_pos"], r["n_neg"]) < SMALL_CLASS})
    L += ["## Notes", "",
          "- Small tasks: the harmful-request categories hold tens to a few hundred items each, and `limit_per_task` "
          "caps every task; CIs are correspondingly wide. Read differences through their paired CIs, never the "
          "point estimates."]
    if small:
        L.append(f"- Fewer than {SMALL_CLASS} items in a class here: " + "; ".join(small) + ".")
    L += ["- Every number traces to `scores/<model>/<task>__<prompt>.jsonl` (one row per example id) and "
          "`manifest.json` (assets, split seed, prompt templates, model hashes).", "", "## Figures", ""]
    for t in dict.fromkeys(t for t, _ in results.pairs()):
        L += [f"### {t}", "", f"![ROC {t}](figures/roc__{_fname(t)}.png)", "",
              f"![scores {t}](figures/hist__{_fname(t)}.png)", ""]
    return "\n".join(L)


# ------------------------------------------------------------------------------------------ entry point


def build_report(results: EvalResults) -> dict:
    """The report as a JSON-serializable dict (nan -> None), without score-file and figure paths."""
    results_rows = []
    for c in results.cells:
        s = c.summary
        results_rows.append({
            "model": c.model, "model_tag": results.models[c.model]["tag"], "task": c.task, "prompt": c.prompt,
            "split": c.split, "n": int(len(c.arrays["id"])), **s, "mean_mass_outside": c.mean_mass_outside,
            "n_truncated": c.n_truncated, "mean_tokens": float(np.mean(c.arrays["n_tokens"])) if len(c.arrays["id"])
            else None, "threshold": c.threshold,
        })
    return _jsonable({
        "schema": 1, "split": results.split, "command": results.command, "timestamp": results.timestamp,
        "config": results.config, "warnings": results.warnings, "models": results.models, "tasks": results.tasks,
        "results": results_rows, "paired_differences": results.paired, "length_buckets": results.length_buckets,
    })


def write_report(results: EvalResults, out_dir: str | os.PathLike) -> dict:
    """Writes report.json, report.md, manifest.json, figures/ and scores/ into `out_dir` atomically (nothing
    half-written on failure; an existing `out_dir` is replaced). Returns the report.json dict. Under
    multi-host JAX only process 0 writes."""
    import jax

    out = pathlib.Path(out_dir)
    rep = build_report(results)
    rep["manifest"] = _jsonable(data_manifest(results))
    if jax.process_index() != 0:
        return rep
    with _atomic_dir(out) as tmp:
        score_files = _write_scores(results, tmp)
        for r in rep["results"]:
            files = score_files[(r["model"], r["task"], r["prompt"])]
            r["scores_file"] = files[r["split"]]
            if "validation" in files and r["split"] != "validation":
                r["validation_scores_file"] = files["validation"]
        (tmp / "figures").mkdir()
        figures = ["figures/auroc_heatmap.png"]
        plot_heatmap(results, tmp / figures[0])
        for t in dict.fromkeys(t for t, _ in results.pairs()):
            figures += [f"figures/roc__{_fname(t)}.png", f"figures/hist__{_fname(t)}.png"]
            plot_roc(results, t, tmp / figures[-2])
            plot_histograms(results, t, tmp / figures[-1])
        rep["files"] = {"report_md": "report.md", "manifest": "manifest.json", "figures": figures,
                        "scores": sorted(p for f in score_files.values() for p in f.values())}
        _dump(rep["manifest"], tmp / "manifest.json")
        (tmp / "report.md").write_text(_markdown(rep, results))
        _dump(rep, tmp / "report.json")
    return rep
