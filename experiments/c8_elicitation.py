"""C8: train the labeller arm (`config.elicit.labeller`, its first seed, through the runner), write the
pseudo-labelled and the gold-labelled task files (its with-thinking scores of unlabelled items, saved and reused),
then run configs/c8_elicitation.py's arms with the experiment runner (the labeller's run is reused) and write its
results.

    python experiments/c8_elicitation.py [--workdir=DIR]     # default $MONITOR_JAX_CACHE/elicit_c8
"""
from __future__ import annotations

import argparse
import copy
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
GOLD = "elicit/gold"  # configs/c8_elicitation.py's gold arm trains on this task


def labeller(config) -> tuple[object, str]:
    """(full params, run name) of the labeller arm's first run, trained (or reused) by the runner on an experiment
    of that arm alone; (None, "base") when `config.elicit.labeller` is unset (the untrained model labels)."""
    from monitor_jax.core import assets
    from monitor_jax.experiment import runner

    name = config.elicit.get("labeller")
    if not name:
        return None, "base"
    sub = copy.deepcopy(config)
    with sub.unlocked():
        e = sub.experiment
        e.arms = [a for a in e.arms if a.name == name]
        e.arms[0].seeds = tuple(e.arms[0].get("seeds") or e.seeds)[:1]
        e.cells = [c for c in e.cells if c.get("view") is None][:1]  # scored by the labeller alone (reused later)
        e.comparisons, e.preconditions = [], []
    raw = runner.run_experiment(sub, assets.cache_dir() / "runs")
    (rdir,) = raw["runs"][name]
    shared = raw["shared"]
    return shared.full_params(shared.load(rdir)), f"{name}-{rdir.name}"


def main() -> int:
    from monitor_jax.experiment import run
    from monitor_jax.core import assets
    from monitor_jax.core import config as config_lib
    from monitor_jax.data import tasks
    from monitor_jax.eval import metrics
    from monitor_jax.experiment import runner, write

    import verdict

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=str(assets.cache_dir() / "elicit_c8"))
    args = ap.parse_args()
    start = time.time()
    config = config_lib.load("c8_elicitation")
    params, name = labeller(config)
    pseudo_file, f = run.elicit_task(config, args.workdir, "pseudo", params=params, labeller=name)
    gold_file, _ = run.elicit_task(config, args.workdir, "gold", name=GOLD, params=params, labeller=name)
    with config.unlocked():
        config.data.task_files = (str(pseudo_file), str(gold_file))
    raw = runner.run_experiment(config, assets.cache_dir() / "runs")
    res = write.summarize(config, raw, command="python experiments/c8_elicitation.py",
                          wall_minutes=(time.time() - start) / 60)
    task = tasks.get(f["task"])  # gold labels of the unlabelled items: read only now, for the record
    y = np.asarray([tasks.label_of(task, f["prompt"], it) for it in f["items"]], np.int64)
    res["notes"] = res["notes"] + [
        f"Pseudo-labels: {f['n_labelled']} of {f['n_unlabelled']} unlabelled train items (top/bottom 30 % of the "
        f"with-thinking scores of {f['labeller']}, reasoning budget {int(config.elicit.budget)} tokens); their "
        f"accuracy against the gold labels {float((f['pseudo'] == y[f['index']]).mean()):.3f}; with-thinking AUROC on all "
        f"{len(y)} unlabelled items {metrics.auroc(f['scores'], y):.3f} (gold read after training)."]
    write.write(res, ROOT / "experiments" / "results" / "c8_elicitation")
    print(write.table(res), f"\nverdict: {res['verdict']}")
    verdict.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
