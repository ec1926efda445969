"""Round 1 relabelled under the protocol of issue 21, from the numbers its results.json files stored (no
per-item scores were committed then): run once, kept as the record of how it was done.

    python experiments/relabel_round1.py     # rewrites round-1 results.json / results.md, then verdict.py

- each claim config's preconditions are evaluated from stored numbers: a stored paired CI where one exists (C2's
  in-domain gaps; C1's agent gap is C2's: the same in_agent runs on the same 96 items), stored AUROC estimates,
  generated lengths, the C8 note's pseudo-label accuracy (41 of 96), C3's arms' stages (row visits);
- claimed directions are those of the configs now (C5's if_diluted / if_little, C7's full-input reference);
- C2's base -> in-domain differences move from the comparisons to the preconditions;
- verdicts are recomputed by verdict.py's rules from the stored items-only CIs: seed variance is not inside them,
  which the tables say ("items only"). A result written since has "ci_method" and is left alone.
"""
from __future__ import annotations

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))
import verdict  # noqa: E402

from monitor_jax.eval import metrics, tables  # noqa: E402
from monitor_jax.experiment import compare, preconditions, write  # noqa: E402

MARK = "round 1, relabelled from stored items-only CIs"
ROLES = ("a", "b", "arm", "other", "base", "ref")


def _key(c: dict) -> tuple:
    return (c["cell"], c["kind"], *(c.get(r) for r in ROLES))


def _stored_diff(results: dict, name: str, spec: dict) -> dict | None:
    for c in results[name]["comparisons"]:
        if _key(c) == _key({**spec, "kind": "diff"}) and c.get("ci"):
            return c
    return None


def _record(spec: dict, res: dict, results: dict, name: str, config) -> dict:
    rec = {**spec, "value": None, "ci": None, "note": ""}
    kind, cell = spec["kind"], spec.get("cell")
    if kind == "diff":
        own = _stored_diff(results, name, spec)
        other = None if own else _stored_diff(results, "c2_adjacency", spec)
        found = own or other
        if found:
            rec["ci"], rec["value"] = found["ci"], found["ci"]["estimate"]
            rec["note"] = "" if own else "C2's stored paired CI: the same in_agent runs on the same items"
        else:
            arms = res["cells"][cell]["arms"]
            rec["value"] = arms[spec["b"]]["auroc"]["estimate"] - arms[spec["a"]]["auroc"]["estimate"]
            rec["note"] = (f"no paired CI stored; unpaired {spec['a']} {tables.ci_text(arms[spec['a']]['auroc'])}, "
                           f"{spec['b']} {tables.ci_text(arms[spec['b']]['auroc'])}")
    elif kind == "auroc_at_least":
        rec["value"] = res["cells"][cell]["arms"][spec["arm"]]["auroc"]["estimate"]
    elif kind == "generation_ratio":
        gen = res["cells"][cell]["generation"]
        rec["value"] = sum(gen[spec["arm"]]["mean_tokens"]) / len(gen[spec["arm"]]["mean_tokens"]) / (
            sum(gen[spec["ref"]]["mean_tokens"]) / len(gen[spec["ref"]]["mean_tokens"]))
    elif kind == "label_agreement":  # the note: "... their accuracy against the gold labels 0.427" of 96 items
        n, acc = 96, 0.427
        k = round(acc * n)
        rec["ci"], rec["value"], rec["n"] = metrics.proportion_ci(k, n)._asdict(), k / n, n
        rec["note"] = f"{k} of {n} pseudo-labelled items agree with gold (from the stored note)"
    elif kind == "exposure_ratio":
        arms = {a.name: a for a in config.experiment.arms}
        rows = {a: preconditions.exposure(config, arms[a], spec["task"]) for a in spec["arms"]}
        rec["rows"], rec["value"] = rows, max(rows.values()) / min(rows.values())
        rec["note"] = "expected in-domain rows per arm: " + ", ".join(f"{a} {r:.0f}" for a, r in rows.items())
    rec["passed"] = preconditions.passes(rec)
    return rec


def relabel(name: str, results: dict) -> dict:
    res = results[name]
    config = verdict.load_config(name)
    e = config.experiment
    directions = {_key(c.to_dict()): int(c.direction) for c in e.comparisons}
    pre_specs = [p.to_dict() for p in e.get("preconditions") or ()]
    pre = [_record(p, res, results, name, config) for p in pre_specs]
    as_pre = {_key({**p, "kind": "diff"}) for p in pre_specs if p["kind"] == "diff"}
    changed = []
    comparisons = []
    for c in res["comparisons"]:
        if _key(c) in as_pre:
            changed.append(f"{c['kind']} {c['cell']} {c.get('a')} -> {c.get('b')}: now a precondition")
            continue
        d = directions.get(_key(c), int(c.get("direction", 1)))
        if d != int(c.get("direction", 1)):
            changed.append(f"{c['kind']} {c['cell']} {c.get('a')} -> {c.get('b')}: claimed sign {d:+d}")
        comparisons.append({**c, "direction": d})
    cmp = preconditions.guard([{**c, "verdict": compare.recompute_verdict(c)} for c in comparisons], pre,
                              list(res["cells"]))
    old = res["verdict"]
    res.update(comparisons=cmp, preconditions=pre, verdict=compare.claim_verdict(cmp), ci_method="items",
               relabelled={"mark": MARK, "rules": "issue 21: preconditions, claimed signs from the configs",
                           "verdict_before": old, "changes": changed})
    return res


def main() -> int:
    paths = {p.parent.name: p for p in sorted(verdict.RESULTS.glob("c*/results.json"))}
    stored = {n: json.loads(p.read_text()) for n, p in paths.items()}
    for name, path in paths.items():
        if "ci_method" in stored[name]:
            continue
        res = relabel(name, {**stored, name: json.loads(path.read_text())})  # lookups see the stored files
        path.write_text(json.dumps(res, indent=1, default=float) + "\n")
        (path.parent / "results.md").write_text(write.markdown(res))
        print(f"{name}: {res['relabelled']['verdict_before']} -> {res['verdict']}")
    return verdict.main([])


if __name__ == "__main__":
    sys.exit(main())
