"""Per-item scores of an experiment, so any verdict can be recomputed: one row per (cell, arm, seed, item) with
the item's id, hygiene group and label and the arm's score, written beside results.json as `scores.jsonl.gz`
(byte-stable gzip), read back and rebuilt into the per-cell score arrays the statistics take."""
from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from monitor_jax.core import io as core_io
from monitor_jax.data import tasks

FILE = "scores.jsonl.gz"
GROUP_KEYS = ("group", "near_dup_group", "prefix_group")  # item meta naming its hygiene group (AgentDojo: the task pair)


def cell_groups(config: Any, cell: Any, examples: list) -> list[str] | None:
    """The hygiene group of each of a cell's items (`item.meta["group"]`, e.g. an AgentDojo (user task, injection
    task) pair, or "prefix_group"), resampled whole by the bootstrap; None when no item has one (items are the
    unit). An item without a group is its own."""
    meta = {it.id: it.meta for it in tasks.domain_items(tasks.get(cell.task).domain, config.experiment.split)}
    found = [next((str(meta[e.id][k]) for k in GROUP_KEYS if meta.get(e.id, {}).get(k) is not None), None)
             for e in examples]
    if all(g is None for g in found):
        return None
    return [g if g is not None else e.id for g, e in zip(found, examples)]


def arm_seeds(raw: dict, cell: dict, arm: str) -> list:
    """The training seed of each score array of `arm` on a cell (None: the untrained model); a summary cell's
    pseudo-arms take their summarizer's seeds ("A:first_n") or the judge's first run's ("full_input")."""
    from monitor_jax.experiment import views

    seeds = raw.get("seeds", {})
    if arm in seeds:
        return list(seeds[arm])
    if arm.endswith(views.FIRST_N):
        return list(seeds.get(arm.removesuffix(views.FIRST_N), []))
    return list(seeds.get(cell.get("judge"), [None]))[:1]


def rows(raw: dict, cells: dict[str, Any]) -> list[dict]:
    """The rows of every scored cell (`cells`: cell key -> its config) of the runner's raw results."""
    out = []
    for k, by_arm in raw["scores"].items():
        ids, y = raw["ids"][k], raw["labels"][k]
        groups = raw["groups"].get(k) or ids
        for arm, per_seed in by_arm.items():
            seeds = arm_seeds(raw, cells[k], arm)
            seeds = seeds if len(seeds) == len(per_seed) else list(range(len(per_seed)))
            for s, scores in zip(seeds, per_seed):
                out += [{"cell": k, "item": i, "group": g, "label": int(l), "arm": arm, "seed": s, "score": float(v)}
                        for i, g, l, v in zip(ids, groups, y, scores)]
    return out


def write(path: str | os.PathLike, items: Iterable[dict]) -> None:
    """Rows as gzipped JSON lines, atomically, byte-stable (no time stamp in the gzip header)."""
    path = Path(path)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as f:
        for r in items:
            f.write((json.dumps(r, sort_keys=True) + "\n").encode())
    core_io.write_bytes(path, buf.getvalue())


def read(path: str | os.PathLike) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def rebuild(items: Iterable[dict]) -> dict[str, dict]:
    """{cell: {"labels", "groups", "ids", "scores": {arm: [array per seed]}, "seeds": {arm: [seed]}}}, items in
    the order of the cell's first arm and seed, arms and seeds in file order; groups None when every item is its
    own. A row set that does not give every (arm, seed) the same items is an error."""
    cells: dict[str, dict] = {}
    for r in items:
        c = cells.setdefault(r["cell"], {"runs": {}, "meta": {}})
        c["runs"].setdefault(r["arm"], {}).setdefault(r["seed"], {})[r["item"]] = r["score"]
        c["meta"].setdefault(r["item"], (r["label"], r["group"]))
    out = {}
    for k, c in cells.items():
        ids = list(c["meta"])
        for arm, by_seed in c["runs"].items():
            for s, got in by_seed.items():
                if set(got) != set(ids):
                    raise ValueError(f"{FILE}: cell {k!r} arm {arm!r} seed {s}: items differ from the cell's")
        groups = [c["meta"][i][1] for i in ids]
        out[k] = {"ids": ids, "labels": np.asarray([c["meta"][i][0] for i in ids], np.int64),
                  "groups": None if groups == ids else groups,
                  "scores": {a: [np.asarray([got[i] for i in ids], np.float64) for got in bs.values()]
                             for a, bs in c["runs"].items()},
                  "seeds": {a: list(bs) for a, bs in c["runs"].items()}}
    return out
