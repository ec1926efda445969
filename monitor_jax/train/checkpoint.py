"""Checkpoints of a training run (Orbax): what a checkpoint holds of the state (everything but the frozen base),
restoring it onto any mesh, and each process's data-iterator position."""
from __future__ import annotations

import logging
from typing import Any

import jax

log = logging.getLogger(__name__)


def saved_part(tree: Any) -> dict:
    """What a checkpoint holds of a TrainState (of arrays or of shardings): everything but the frozen base."""
    return {"step": tree.step, "trainable": tree.trainable, "opt_state": tree.opt_state}


def restore_checkpoint(manager: Any, step: int, state: Any, shardings: Any) -> tuple[Any, dict]:
    """Checkpoint `step` of an Orbax `manager` (as `train_and_evaluate` writes them) restored into `state`'s
    trainable params, optimizer state and step, laid out by `shardings` (a TrainState of NamedShardings on this
    run's mesh, whatever mesh or process count wrote it); returns (state, the checkpoint's JSON data)."""
    import orbax.checkpoint as ocp

    target = jax.tree_util.tree_map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                                    saved_part(state), saved_part(shardings))
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                             data=ocp.args.JsonRestore()))
    return state.replace(**restored["state"]), restored["data"]


def iterator_state(data: dict, step: int) -> dict:
    """This process's data-iterator state from a checkpoint's JSON (`iterators`: one per process that wrote it).

    Launched with a different process count, every process takes process 0's position (stage, step, batches
    drawn): the stage schedule continues, but the hosts' data shards differ, so the batches after the restore
    are not those of an uninterrupted run (parameters and optimizer state are restored exactly)."""
    states = data.get("iterators") or [data["iterator"]]  # "iterator": checkpoints written before multi-host
    if len(states) == jax.process_count():
        return states[jax.process_index()]
    log.warning("checkpoint %d was written by %d process(es), this run has %d: resuming the data stream at its "
                "position (stage %s, step %s) over this run's shards, so later batches differ from an "
                "uninterrupted run", step, len(states), jax.process_count(), states[0].get("stage"),
                states[0].get("step"))
    return states[0]
