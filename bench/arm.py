"""The wall time of one standard arm: the protocol default on `agentdojo/unrequested` in-domain, one seed, cold
and warm feature store.

The arm is the depth pilot's (configs/pilot_depth.py "2,agentdojo": top 2 of 30 layers trained from cached lower-
layer features, 1,200 row-visits in batches of 8, validation AUROC every 200 row-visits on 96 items choosing the
checkpoint), and its cell the pilot's (the AgentDojo validation split, base model and the arm). Each pass is the
whole `monitor-jax experiment` path (`runner.run_experiment`) in this process:
  cold  an empty feature store and an empty runs dir: every training, selection and cell row runs the frozen
        lower 28 layers once (the experiment's first arm on a new machine)
  warm  the same store, a new runs dir: the lower stack is read from the store (every later arm, seed or claim
        sharing those rows); training, selection and scoring run again
Also the split of a pass (from the run's own record): training minutes (features of missed rows included) and the
rest (base and arm scoring of the cell). No PyTorch side: this row is what sizes a claim (`--dry_run` estimates
from the same costs; its estimates, cold and warm, are printed beside the measurement).

    python bench/arm.py [--passes=cold,warm] [--out=bench/results/arm.md]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import common

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = "configs/pilot_depth.py"
ARG = "2,agentdojo"


SMOKE = 8  # --smoke: row-visits, selection items and cell items (a check that the bench runs, not a timing)


def config(store: str, smoke: bool = False):
    """The pilot's AgentDojo arm with its feature store at `store`."""
    from monitor_jax.core import config as config_lib

    c = config_lib.load_module(ROOT / CONFIG).get_config(ARG)
    with c.unlocked():
        c.train.feature_store_dir = store
        if smoke:
            c.experiment.budget_rows = c.experiment.select_limit = SMOKE
            c.eval.every_rows = SMOKE
            for cell in c.experiment.cells:
                cell.limit = SMOKE
    return c


def one_pass(store: str, runs: str, smoke: bool = False) -> dict:
    """Runs the experiment once; wall seconds, training minutes and the run's facts."""
    from monitor_jax.experiment import runner

    t = time.perf_counter()
    raw = runner.run_experiment(config(store, smoke), runs, progress=False)
    wall = time.perf_counter() - t
    (rdir,) = [d for dirs in raw["runs"].values() for d in dirs]
    run = json.loads((pathlib.Path(rdir) / "run.json").read_text())
    return {"wall_s": wall, "train_min": float(run["train_minutes"]), "steps": run.get("steps_trained"),
            "best_step": run.get("best_step")}


def estimates(store: str, smoke: bool = False) -> tuple[float, float]:
    """What `--dry_run` says of this experiment on this machine: minutes with a cold store and with `store` as it
    is (after the cold pass: its rows cached)."""
    from monitor_jax.experiment import cost
    from monitor_jax.model import registry

    c = config(store, smoke)
    model = registry.load(c.model.name)
    costs = cost.measure(c, model)
    cold = cost.estimate(c, costs, model.tokenizer)
    warm = cost.estimate(c, costs, model.tokenizer, cost.stored_layers(c, model))
    return cold["total_min"], warm["total_min"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passes", default="cold,warm")
    ap.add_argument("--max_load", type=float, default=1.5)
    ap.add_argument("--wait", type=float, default=1800)
    ap.add_argument("--smoke", action="store_true", help=f"{SMOKE} rows each: checks the bench runs (no result)")
    ap.add_argument("--out", default="bench/results/arm.md")
    args = ap.parse_args()
    start = time.time()
    load0 = os.getloadavg()[0] if args.smoke else common.wait_quiet(args.max_load, args.wait)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-arm-") as tmp:
        store = os.path.join(tmp, "features")
        for i, name in enumerate(args.passes.split(",")):
            if name not in ("cold", "warm"):
                raise SystemExit(f"bench/arm.py: unknown pass {name!r} (cold | warm)")
            if name == "cold" and i:
                raise SystemExit("bench/arm.py: a cold pass must come first (later passes share its store)")
            r = one_pass(store, os.path.join(tmp, f"runs-{i}"), args.smoke)
            rows.append(f"| arm: agentdojo/unrequested in-domain, 1 seed, {name} store | {r['wall_s'] / 60:.1f} | "
                        f"{r['train_min']:.1f} | {(r['wall_s'] / 60 - r['train_min']):.1f} | {r['steps']} | "
                        f"{r['best_step']} |")
            print(rows[-1], flush=True)
        dry_cold, dry_warm = estimates(store, args.smoke)
    lines = ["# One standard arm: wall time of the experiment path", "",
             f"Command: `python {' '.join(sys.argv)}`  ",
             f"Machine: {common.machine()}; load {load0:.2f} -> {os.getloadavg()[0]:.2f}; took "
             f"{time.time() - start:.0f} s.  ",
             f"Experiment: `{CONFIG}:{ARG}` (top 2 of 30 layers from cached features, 1,200 row-visits, selection on "
             f"96 validation items every 200 row-visits; cell: the AgentDojo validation split, base and arm). "
             f"`--dry_run` estimate on this machine: cold store {dry_cold:.1f} min, warm {dry_warm:.1f} min.", "",
             "| pass | wall min | training min | scoring and the rest, min | steps | chosen step |",
             "|---|---|---|---|---|---|", *rows, ""]
    text = "\n".join(lines)
    print(text)
    if not args.smoke:
        common.write_result(args.out, text)


if __name__ == "__main__":
    main()
