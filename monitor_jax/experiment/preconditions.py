"""A claim's preconditions, declared in its config and evaluated with its results: a failed (or unevaluated)
precondition makes every comparison on the cells it guards "not testable", never "refuted" (DESIGN.md §1).

Kinds (`configs/experiment.py: precondition`), each deciding `passed` from the record's `value` / `ci` alone, so
`experiments/verdict.py` re-decides stored records without trusting a stored bool:
- "diff": a paired difference (cell, a, b, direction) whose CI lies strictly on `direction`'s side of 0
  (an in-domain gap that exists: base -> in-domain > 0; C5: the C4 failure it mends, base -> cls < 0);
- "auroc_at_least": an arm's seed-mean AUROC estimate on a cell >= threshold (C7: the judge on full inputs);
- "generation_ratio": an arm's mean generated tokens on a cell / the `ref` arm's >= threshold (C6: the trained
  model still reasons);
- "label_agreement": the share of items whose label in `task` equals their label in `reference` (same item ids),
  Wilson CI low > threshold (C8: pseudo-labels better than chance);
- "exposure_ratio": the most / fewest expected row visits of `task` across `arms` <= threshold (C3: the arms
  compared must see the in-domain set equally often), from the arms' stages and the training config;
- "committed": a paired difference already committed by another experiment (`result`: its results.json, relative
  to the repo root; the comparison on `cell` between its arms `a` and `b`), passing as "diff" does, e.g. the
  agent-learnability gap that every agent claim needs, read instead of retrained.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from monitor_jax.data import tasks
from monitor_jax.eval import metrics
from monitor_jax.experiment import cells, compare, views

KINDS = {"diff": ("cell", "a", "b"), "auroc_at_least": ("cell", "arm", "threshold"),
         "generation_ratio": ("cell", "arm", "ref", "threshold"), "label_agreement": ("task", "reference", "threshold"),
         "exposure_ratio": ("task", "arms", "threshold"), "committed": ("result", "cell", "a", "b")}
SPLITS = ("train", "validation", "test")
ROOT = Path(__file__).resolve().parents[2]  # the repo root, where experiments/results/ lives


def passes(rec: Mapping[str, Any]) -> bool | None:
    """Whether a precondition record holds, from its value / CI (None: it could not be evaluated)."""
    kind, ci, value = rec["kind"], rec.get("ci"), rec.get("value")
    if kind in ("diff", "committed") and ci is None:  # no paired CI (round 1): an estimate on the wrong side of 0 still fails
        return False if value is not None and int(rec.get("direction", 1)) * value <= 0 else None
    if kind in ("diff", "committed"):
        return metrics.verdict(metrics.CI(**ci), int(rec.get("direction", 1))) == "reproduced"
    if kind == "label_agreement":
        return None if ci is None else bool(ci["low"] > float(rec["threshold"]))
    if value is None or not np.isfinite(value):
        return None
    if kind == "exposure_ratio":
        return bool(value <= float(rec["threshold"]))
    return bool(value >= float(rec["threshold"]))


def exposure(config: Any, arm: Any, task: str) -> float:
    """Expected training rows of `task` in one run of `arm`: per stage, its steps x batch size x the weight share
    of each component holding `task` / that component's number of tasks (equal rows per task assumed)."""
    rc = cells.run_config(config, arm, 0)
    left, rows = int(rc.optim.total_steps), 0.0
    for st in arm.stages:
        steps = left if st.get("steps") is None else min(int(st.steps), left)
        left -= steps
        weights = sum(float(c.weight) for c in st.components)
        for c in st.components:
            if not c.get("instruction") and task in tuple(c.tasks):
                rows += steps * int(rc.data.batch_size) * float(c.weight) / weights / len(c.tasks)
    return rows


def _agreement(task: str, reference: str) -> tuple[int, int]:
    """(items with the same label in both tasks, items in both), over every split, matched by item id (an example's
    id is `<task>:<item id>`: the task's name is not part of the match)."""
    def labels(name: str) -> dict[str, int]:
        return {e.id.removeprefix(f"{name}:"): e.label for split in SPLITS for e in tasks.examples(name, split)}

    a, b = labels(task), labels(reference)
    both = sorted(set(a) & set(b))
    return sum(a[i] == b[i] for i in both), len(both)


def committed(spec: Mapping[str, Any]) -> dict:
    """The CI (and the experiment's split) of a committed comparison: `spec.result`'s diff on `cell`, arms a, b."""
    path = ROOT / spec["result"]
    if not path.exists():
        raise ValueError(f"precondition {spec.get('what')!r}: {spec['result']} is not committed (run that experiment)")
    res = json.loads(path.read_text())
    for c in res["comparisons"]:
        if c["kind"] == "diff" and (c["cell"], c["a"], c["b"]) == (spec["cell"], spec["a"], spec["b"]):
            return {"ci": c["ci"], "split": res["split"], "seeds": res.get("seeds")}
    raise ValueError(f"precondition {spec.get('what')!r}: {spec['result']} has no diff {spec['a']} -> {spec['b']} on "
                     f"{spec['cell']}")


FROM_CONFIG = ("label_agreement", "exposure_ratio")  # evaluated from the task registry / the arms' stages


def evaluate(config: Any | None, specs: Sequence[Mapping[str, Any]], cells: Mapping[str, dict],
             est: Mapping[str, Mapping[str, float]], dists: Mapping[str, Mapping[str, np.ndarray]]) -> list[dict]:
    """One record per declared precondition: the spec with `value` and/or `ci`, `passed` and a `note`.
    `cells`: results.json's cells (arm stats, generation); `est` / `dists`: each cell's seed-mean AUROCs and
    their two-level draws (`compare.arm_stats`). With `config` None (recomputing stored results), the kinds in
    FROM_CONFIG keep the value / CI already in `specs` (stored records)."""
    out = []
    for spec in specs:
        kind, cell = spec["kind"], spec.get("cell")
        keep = config is None and kind in FROM_CONFIG
        rec: dict = {**dict(spec), "note": spec.get("note", "")} if keep else \
            {**dict(spec), "value": None, "ci": None, "note": ""}
        try:
            if keep:
                pass
            elif kind == "diff":
                rec["ci"] = compare.compare({**spec, "kind": "diff"}, est[cell], dists[cell])["ci"]
                rec["value"] = rec["ci"]["estimate"]
            elif kind == "auroc_at_least":
                rec["value"] = cells[cell]["arms"][spec["arm"]]["auroc"]["estimate"]
            elif kind == "generation_ratio":
                tokens = {a: np.mean(cells[cell]["generation"][a]["mean_tokens"]) for a in (spec["arm"], spec["ref"])}
                rec["value"] = float(tokens[spec["arm"]] / tokens[spec["ref"]])
            elif kind == "label_agreement":
                k, n = _agreement(spec["task"], spec["reference"])
                rec["ci"], rec["value"], rec["n"] = metrics.proportion_ci(k, n)._asdict(), k / n if n else None, n
            elif kind == "committed":
                rec.update(committed(spec))
                rec["value"] = rec["ci"]["estimate"]
            elif kind == "exposure_ratio":
                arms = {a.name: a for a in config.experiment.arms}
                rows = {a: exposure(config, arms[a], spec["task"]) for a in spec["arms"]}
                rec["rows"], rec["value"] = rows, max(rows.values()) / max(min(rows.values()), 1e-9)
        except (KeyError, TypeError, ValueError) as err:  # an arm or cell the budget skipped
            rec["note"] = f"not evaluated ({type(err).__name__}: {err})"
        rec["passed"] = passes(rec)
        out.append(rec)
    return out


def guard(comparisons: Sequence[dict], records: Sequence[Mapping[str, Any]], cells: Sequence[str]) -> list[dict]:
    """`comparisons` with the verdict of every one on a cell guarded by a failed or unevaluated precondition set
    to "not testable" (its CI is kept; `blocked_by` names the preconditions). Empty `guards`: every cell."""
    blocked: dict[str, list[str]] = {}
    for r in records:
        if r["passed"] is not True:
            for k in (r.get("guards") or cells):
                blocked.setdefault(k, []).append(r["what"])
    out = []
    for c in comparisons:
        c = dict(c)
        c.pop("blocked_by", None)
        if c["cell"] in blocked:
            c["verdict"], c["blocked_by"] = compare.NOT_TESTABLE, blocked[c["cell"]]
        out.append(c)
    return out


def validate(config: Any) -> None:
    """Clear errors before any training: known kinds, the keys each needs, cells and arms of the experiment."""
    e = config.experiment
    cell_names = {cells.cell_key(c) for c in e.cells}
    arms = {a.name for a in e.arms}
    for p in e.get("preconditions") or ():
        where = f"config.experiment.preconditions {p.get('what')!r}"
        if p.kind not in KINDS:
            raise ValueError(f"{where}: kind must be one of {sorted(KINDS)}, got {p.kind!r}")
        missing = [k for k in KINDS[p.kind] + ("what",) if p.get(k) is None]
        if missing:
            raise ValueError(f"{where}: needs {missing}")
        own = p.kind != "committed"  # a committed comparison names another experiment's cell and arms
        named_cells = tuple(p.get("guards") or ()) + ((p.cell,) if p.get("cell") and own else ())
        bad = [k for k in named_cells if k not in cell_names]
        named = [p.get(r) for r in ("a", "b", "arm", "ref") if p.get(r) and own] + list(p.get("arms") or ())
        bad += [a for a in named if a not in arms and a != views.FULL and not a.endswith(views.FIRST_N)]
        if bad:
            raise ValueError(f"{where}: {bad} are not cells / arms of the experiment")
