"""The command line's flag groups: one definition per flag, shared by every command that takes it, and the helpers
the command bodies share (the --config loader, the scoring mesh)."""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

Flags = flags.FlagValues

def model(fv: Flags) -> None:
    flags.DEFINE_string("model", "smollm2-135m", "The model: smollm2-135m, tiny-random-<family>, hf:DIR or "
                        "gguf:FILE.", flag_values=fv)


def models(fv: Flags) -> None:
    flags.DEFINE_list("models", None, "Models/checkpoints to compare (the first is the reference), e.g. "
                      "smollm2-135m,hf:/tmp/run/export/step_48.", flag_values=fv)


def scoring(fv: Flags) -> None:
    flags.DEFINE_list("label_words", ["Yes", "No"], "The positive and negative label words.", flag_values=fv)
    flags.DEFINE_integer("batch_size", 8, "Rows per batch.", flag_values=fv)
    flags.DEFINE_integer("max_len", 1024, "Prompt length cap in tokens (a long input loses its middle).",
                         flag_values=fv)


def items(fv: Flags, limit: int = 200) -> None:
    flags.DEFINE_list("tasks", None, "Task names (`monitor-jax tasks list`).", flag_values=fv)
    flags.DEFINE_enum("split", "validation", ["validation", "test"], "The split to read (test is read once, for "
                      "reported numbers).", flag_values=fv)
    flags.DEFINE_integer("limit_per_task", limit, "Stratified cap on examples per task (and prompt).", flag_values=fv)


def seed(fv: Flags) -> None:
    flags.DEFINE_integer("seed", 0, "Random seed (sampling is per prompt: results do not depend on batching).",
                         flag_values=fv)


def sampling(fv: Flags) -> None:
    flags.DEFINE_float("temperature", 0.0, "Sampling temperature (0 = greedy).", flag_values=fv)
    flags.DEFINE_float("top_p", 1.0, "Nucleus sampling mass (1 = off).", flag_values=fv)
    seed(fv)


def system(fv: Flags) -> None:
    flags.DEFINE_string("system", None, "A system message (default: the chat template's own).", flag_values=fv)


def rows(fv: Flags) -> None:
    flags.DEFINE_string("input", None, "A JSONL file of rows to read (score: {id?, input, label?}; generate: {id?, "
                        "prompt: str | [messages]}).", flag_values=fv)
    flags.DEFINE_string("output", None, "With --input or --inspect_log: the JSONL file to write, one line per row or "
                        "sample.", flag_values=fv)


def out(fv: Flags, what: str) -> None:
    flags.DEFINE_string("out", None, f"Output directory: {what}.", flag_values=fv)


def config(fv: Flags, what: str) -> None:
    config_flags.DEFINE_config_file("config", None, f"{what}: a config file configs/x.py[:arg]; override keys with "
                                    "--config.some.key=value (unknown keys are an error).", flag_values=fv)


def runs_dir(fv: Flags) -> None:
    flags.DEFINE_string("runs_dir", None, "Where runs are kept and reused (default: $MONITOR_JAX_CACHE/runs).",
                        flag_values=fv)


def workdir(fv: Flags) -> None:
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and exports (the same command again "
                        "resumes from it).", flag_values=fv)


def multiprocess(fv: Flags) -> None:
    flags.DEFINE_enum("distributed", None, ["auto", "on", "off"], "Multi-process JAX: auto (default) starts it when "
                      "the three flags below are given or a TPU pod, Slurm or Open MPI launch is detected; on: always.",
                      flag_values=fv)
    flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 (the same on every process).",
                        flag_values=fv)
    flags.DEFINE_integer("num_processes", None, "How many processes run this command.", flag_values=fv)
    flags.DEFINE_integer("process_id", None, "This process's index, 0..num_processes-1.", flag_values=fv)
    flags.DEFINE_enum("cpu_collectives", "gloo", ["gloo", "mpi"], "On CPU: the cross-process collectives.",
                      flag_values=fv)


MULTIPROCESS_FLAGS = ("distributed", "coordinator_address", "num_processes", "process_id", "cpu_collectives")


def load_config(fv: Flags, command: str, default: str | None = None):
    """The --config ConfigDict (or `default`'s, a path relative to the repository), with one clear error."""
    try:
        config = fv.config
        if config is not None:
            config.get("seed")  # a config file that failed to load raises here (config_flags defers it)
    except OSError as e:
        raise ValueError(f"--config: {str(e).strip().splitlines()[-1].strip()}") from None
    if config is None and default is not None:
        from monitor_jax.core import config as config_lib

        try:
            config = config_lib.load(default)
        except FileNotFoundError:
            raise ValueError(f"{command}: {default} not found next to the package; pass --config=FILE") from None
    if config is None:
        raise ValueError(f"{command} needs --config=configs/<name>.py[:arg]")
    return config


def define_question(fv: Flags) -> None:
    from monitor_jax.eval.zero_shot import DEFAULT_QUESTION

    flags.DEFINE_string("question", DEFAULT_QUESTION, "Shorthand for --prompt='QUESTION\\n\\n{input}'.",
                        flag_values=fv)


def scoring_mesh():
    """Multi-process: a data-parallel mesh over every process's devices, so scoring splits its rows over all of
    them (each process still holds every score); one process: None (scoring on its first device)."""
    import jax

    if jax.process_count() == 1:
        return None
    from monitor_jax.core import sharding

    return sharding.make_mesh({"data": -1})
