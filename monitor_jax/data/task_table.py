"""The suite overview behind `monitor-jax tasks list`: counts per split and label, shortcut baselines, flags,
and per domain the near-duplicate groups that hygiene kept inside one split.

Shortcut baselines (length-only and TF-IDF logistic regressions trained on train, scored on validation) are
cached per task version in the asset cache, since TF-IDF on thousands of long articles takes seconds per task.
"""

from __future__ import annotations

import json
import math

from monitor_jax.core import assets, io
from monitor_jax.data import hygiene, tasks
from monitor_jax.data.builders import suite

SHORTCUT_FLAG = 0.95  # a task whose TF-IDF baseline reaches this AUROC measures little about monitors


def _cache_path() -> str:
    return str(assets.cache_dir() / f"baselines-suite{suite.VERSION}.json")


def _load_cache() -> dict:
    try:
        with open(_cache_path()) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _save_cache(cache: dict) -> None:
    io.write_json(_cache_path(), cache, indent=1, sort_keys=True)


def baselines(task: tasks.Task) -> dict[str, float]:
    """Cached `tasks.shortcut_baselines` of the task (validation split)."""
    cache = _load_cache()
    data_version = tasks.DOMAINS[task.domain].data_version
    key = f"{task.name}@v{task.version}" + (f"@{data_version}" if data_version else "")
    if key not in cache:
        cache[key] = tasks.shortcut_baselines(task)
        _save_cache(cache)
    return cache[key]


def rows(names: list[str] | None = None) -> list[dict]:
    """One dict per task: name, domain, prompts, per-split (pos, neg) counts, baselines, flag."""
    out = []
    for name in names or sorted(tasks.TASKS):
        task = tasks.get(name)
        b = baselines(task)
        out.append(
            {
                "task": name,
                "domain": task.domain,
                "prompts": [f"{p.name}({p.relation})" for p in task.prompts],
                "counts": tasks.counts(task),
                **b,
                "flag": _flag(b),
            }
        )
    return out


def _flag(b: dict[str, float]) -> str:
    if math.isnan(b["tfidf_auroc"]):
        return "a split lacks a class"
    return "TF-IDF-separable" if b["tfidf_auroc"] >= SHORTCUT_FLAG else ""


def near_duplicate_counts(domain: str) -> dict[str, int]:
    """{"groups": near-duplicate groups of >= 2 items in the domain, "items": items in them} (all splits)."""
    sizes: dict[str, int] = {}
    for split in hygiene.SPLITS:
        for it in tasks.domain_items(domain, split):
            if it.meta.get("near_dup_group"):
                sizes[it.meta["near_dup_group"]] = sizes.get(it.meta["near_dup_group"], 0) + 1
    return {"groups": sum(1 for n in sizes.values() if n > 1), "items": sum(n for n in sizes.values() if n > 1)}


def format_table(table: list[dict]) -> str:
    """Fixed-width text table for the terminal."""
    head = f"{'task':28} {'domain':10} {'train +/-':>11} {'val +/-':>9} {'test +/-':>9} {'len':>5} {'tfidf':>5}  flag / prompts"
    lines = [head, "-" * len(head)]
    for r in table:
        c = r["counts"]
        cells = [f"{c[s][0]}/{c[s][1]}" for s in ("train", "validation", "test")]
        lines.append(
            f"{r['task']:28} {r['domain']:10} {cells[0]:>11} {cells[1]:>9} {cells[2]:>9} "
            f"{r['length_auroc']:5.2f} {r['tfidf_auroc']:5.2f}  {r['flag'] or '-'}  {len(r['prompts'])} prompts: "
            + ", ".join(r["prompts"][1:])
        )
    domains = sorted({r["domain"] for r in table})
    lines.append(
        f"\n{len(table)} tasks in {len(domains)} domains. Baselines: AUROC on validation of logistic regressions trained on "
        f"train (length-only; TF-IDF word 1-2 grams). Flagged at TF-IDF >= {SHORTCUT_FLAG}."
    )
    near = {d: near_duplicate_counts(d) for d in domains}
    lines.append(
        f"Near-duplicate groups kept in one split (names/numbers masked, TF-IDF cosine >= {hygiene.NEAR_DUP_THRESHOLD}; "
        "agent domains split by scenario family / task instead): "
        + ", ".join(f"{d} {c['groups']} ({c['items']} items)" for d, c in near.items()))
    return "\n".join(lines)
