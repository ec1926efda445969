"""The command line: `monitor-jax COMMAND [flags]`; each command parses its own flags and calls one library function.

`monitor-jax --help` lists the commands; `monitor-jax COMMAND --help` lists that command's flags. A flag means the
same thing in every command that takes it (`--prompt` is always a template with `{input}`, `--out` always a
directory, `--output` always a file).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import textwrap
import time
from typing import Callable

from absl import flags, logging
from ml_collections import config_flags

Flags = flags.FlagValues
_PROG = "monitor-jax"


@dataclasses.dataclass(frozen=True)
class Command:
    """One command: its synopsis, a line of help, its flags (defined into a fresh FlagValues) and its body."""

    name: str
    synopsis: str
    help: str
    define: Callable[[Flags], None]
    body: Callable[[Flags, list[str]], int]
    positional: str = ""  # what positional words the body takes ("" = none)
    multiprocess: bool = True  # takes the multi-process flags (commands that run a model)


# ---- flag groups: one definition per flag, shared by every command that takes it ----

def _model(fv: Flags) -> None:
    flags.DEFINE_string("model", "smollm2-135m", "The model: smollm2-135m, tiny-random-<family>, hf:DIR or "
                        "gguf:FILE.", flag_values=fv)


def _models(fv: Flags) -> None:
    flags.DEFINE_list("models", None, "Models/checkpoints to compare (the first is the reference), e.g. "
                      "smollm2-135m,hf:/tmp/run/export/step_48.", flag_values=fv)


def _scoring(fv: Flags) -> None:
    flags.DEFINE_list("label_words", ["Yes", "No"], "The positive and negative label words.", flag_values=fv)
    flags.DEFINE_integer("batch_size", 8, "Rows per batch.", flag_values=fv)
    flags.DEFINE_integer("max_len", 1024, "Prompt length cap in tokens (a long input loses its middle).",
                         flag_values=fv)


def _items(fv: Flags, limit: int = 200) -> None:
    flags.DEFINE_list("tasks", None, "Task names (`monitor-jax tasks list`).", flag_values=fv)
    flags.DEFINE_enum("split", "validation", ["validation", "test"], "The split to read (test is read once, for "
                      "reported numbers).", flag_values=fv)
    flags.DEFINE_integer("limit_per_task", limit, "Stratified cap on examples per task (and prompt).", flag_values=fv)


def _seed(fv: Flags) -> None:
    flags.DEFINE_integer("seed", 0, "Random seed (sampling is per prompt: results do not depend on batching).",
                         flag_values=fv)


def _sampling(fv: Flags) -> None:
    flags.DEFINE_float("temperature", 0.0, "Sampling temperature (0 = greedy).", flag_values=fv)
    flags.DEFINE_float("top_p", 1.0, "Nucleus sampling mass (1 = off).", flag_values=fv)
    _seed(fv)


def _system(fv: Flags) -> None:
    flags.DEFINE_string("system", None, "A system message (default: the chat template's own).", flag_values=fv)


def _rows(fv: Flags) -> None:
    flags.DEFINE_string("input", None, "A JSONL file of rows to read (score: {id?, input, label?}; generate: {id?, "
                        "prompt: str | [messages]}).", flag_values=fv)
    flags.DEFINE_string("output", None, "With --input or --inspect_log: the JSONL file to write, one line per row or "
                        "sample.", flag_values=fv)


def _out(fv: Flags, what: str) -> None:
    flags.DEFINE_string("out", None, f"Output directory: {what}.", flag_values=fv)


def _config(fv: Flags, what: str) -> None:
    config_flags.DEFINE_config_file("config", None, f"{what}: a config file configs/x.py[:arg]; override keys with "
                                    "--config.some.key=value (unknown keys are an error).", flag_values=fv)


def _runs_dir(fv: Flags) -> None:
    flags.DEFINE_string("runs_dir", None, "Where runs are kept and reused (default: $MONITOR_JAX_CACHE/runs).",
                        flag_values=fv)


def _workdir(fv: Flags) -> None:
    flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and exports (the same command again "
                        "resumes from it).", flag_values=fv)


def _multiprocess(fv: Flags) -> None:
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


# ---- command bodies: parse nothing, call one library function ----

def _assets(fv: Flags, args: list[str]) -> int:
    from monitor_jax.core import assets

    if args == ["fetch"]:
        assets.fetch_all(force=fv.force, verify=fv.verify)  # one line per asset fetched; silent when all are valid
        return 0
    print(assets.describe())
    return 0


def _define_assets(fv: Flags) -> None:
    flags.DEFINE_bool("force", False, "fetch: download again even when the cache is valid.", flag_values=fv)
    flags.DEFINE_bool("verify", True, "fetch: re-hash every cached file against its manifest.", flag_values=fv)


def _tasks(fv: Flags, args: list[str]) -> int:
    from monitor_jax.data import task_table

    print(task_table.format_table(task_table.rows(fv.tasks)))
    return 0


def _define_tasks(fv: Flags) -> None:
    flags.DEFINE_list("tasks", None, "Task names (`monitor-jax tasks list`).", flag_values=fv)


def _load_config(fv: Flags, command: str, default: str | None = None):
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


def _experiment(fv: Flags, args: list[str], demo: bool = False) -> int:
    from monitor_jax.core import assets, distributed
    from monitor_jax.experiment import runner, write

    config = _load_config(fv, "demo" if demo else "experiment", "configs/demo.py" if demo else None)
    if "experiment" not in config:
        raise ValueError("--config has no `experiment` section (see configs/experiment.py)")
    if not demo and fv.dry_run:
        from monitor_jax.experiment import cost

        print(cost.dry_run(config))
        return 0
    out = fv.out or ("/tmp/monitor-jax-demo" if demo else None)
    if not out:
        raise ValueError("experiment needs --out=DIR (e.g. experiments/results/<name>)")
    start = time.time()
    raw = runner.run_experiment(config, fv.runs_dir or assets.cache_dir() / "runs")
    if not distributed.is_main():
        return 0  # process 0 summarizes and writes the results
    res = write.summarize(config, raw, command=write.command_line(), wall_minutes=(time.time() - start) / 60)
    path = write.write(res, out)
    print(write.table(res))
    if not demo:
        print(f"\nverdict: {res['verdict']}")
    print(f"{path}/results.md written in {(time.time() - start) / 60:.1f} min")
    if config.experiment.get("export"):
        from monitor_jax.experiment import export

        exported = export.export_from_config(config, raw, out)
        if exported:
            print(f"\nthe trained monitor is in {exported[0]}; ask it the question of "
                  f"{config.experiment.export.task} about your own texts (or --input=rows.jsonl --output=scores.jsonl):")
            print(exported[1])
    return 0


def _define_experiment(fv: Flags, demo: bool = False) -> None:
    _config(fv, "The experiment (default configs/demo.py)" if demo else "The experiment")
    _out(fv, "results.md, results.json, auroc.png" + (" (default /tmp/monitor-jax-demo)" if demo else ""))
    _runs_dir(fv)
    if not demo:
        flags.DEFINE_bool("dry_run", False, "Print the estimated wall time (measured per-token costs on this "
                          "machine x every arm, seed and cell; cold cache) and exit; nothing trains.", flag_values=fv)


def _zero_shot(fv: Flags, args: list[str]) -> int:
    from monitor_jax.eval import zero_shot
    from monitor_jax.model import registry

    start = time.time()
    model = registry.load(fv.model)
    print(zero_shot.zero_shot_table(model, fv.model, fv.question, tuple(fv.label_words)))
    print(f"done in {time.time() - start:.1f}s")
    return 0


def _define_question(fv: Flags) -> None:
    from monitor_jax.eval.zero_shot import DEFAULT_QUESTION

    flags.DEFINE_string("question", DEFAULT_QUESTION, "Shorthand for --prompt='QUESTION\\n\\n{input}'.",
                        flag_values=fv)


def _define_zero_shot(fv: Flags) -> None:
    _model(fv)
    _define_question(fv)
    flags.DEFINE_list("label_words", ["Yes", "No"], "The positive and negative label words.", flag_values=fv)


def _plan(fv: Flags, args: list[str]) -> int:
    from monitor_jax.train import plan

    print(plan.report(_load_config(fv, "plan"), fv.mesh_shapes, fv.num_devices))
    return 0


def _define_plan(fv: Flags) -> None:
    _config(fv, "The training run to plan")
    flags.DEFINE_multi_string("mesh_shapes", None, "A mesh shape to plan for, e.g. fsdp=8 or data=2,fsdp=64 (repeat "
                              "the flag for several; default: the config's mesh.shape).", flag_values=fv)
    flags.DEFINE_integer("num_devices", None, "The device count for a mesh shape with a -1 axis.", flag_values=fv)


def _train(fv: Flags, args: list[str], elicit: bool = False) -> int:
    command = "elicit" if elicit else "train"
    config = _load_config(fv, command)
    if not fv.workdir:
        raise ValueError(f"{command} needs --workdir=DIR (checkpoints, metrics and exports go there)")
    if "://" in fv.workdir:
        raise ValueError(f"--workdir={fv.workdir}: give a directory path; for a bucket, mount it on every host "
                         "(e.g. gcsfuse) and pass the mount point")
    from monitor_jax.core import distributed
    from monitor_jax.experiment import run

    if elicit and "elicit" not in config:
        raise ValueError("elicit needs a config with an `elicit` section, e.g. --config=configs/elicit.py")
    result = run.elicit(config, fv.workdir) if elicit else run.train(config, fv.workdir)
    if distributed.is_main():
        print(json.dumps(result, indent=2))
    return 0


def _define_train(fv: Flags, elicit: bool = False) -> None:
    _config(fv, "The elicitation run (with an `elicit` section)" if elicit else "The training run")
    _workdir(fv)


def _score(fv: Flags, args: list[str]) -> int:
    from monitor_jax.eval import score_file, scoring
    from monitor_jax.model import registry

    if [bool(args), bool(fv.input), bool(fv.inspect_log)].count(True) != 1:
        raise ValueError("score takes TEXT..., --input=rows.jsonl or --inspect_log=RUN.eval (one of the three); the "
                         "files with --output=scores.jsonl")
    if fv.prompt is not None and fv["question"].present:
        raise ValueError("score: give --prompt or --question, not both")
    if fv.inspect_label and not fv.inspect_log:
        raise ValueError("score: --inspect_label goes with --inspect_log")
    prompt = fv.prompt.replace("\\n", "\n") if fv.prompt else scoring.question_prompt(fv.question)
    if (fv.input or fv.inspect_log) and not fv.output:
        raise ValueError(f"score --{'input' if fv.input else 'inspect_log'} needs --output=FILE")
    model = registry.load(fv.model)
    common = dict(label_words=tuple(fv.label_words), system=fv.system, batch_size=fv.batch_size, max_len=fv.max_len,
                  mesh=_scoring_mesh())
    if fv.input or fv.inspect_log:
        summary = (score_file.score_file(model, fv.input, fv.output, prompt, **common) if fv.input else
                   score_file.score_inspect_logs(model, fv.inspect_log, fv.output, prompt,
                                                 label_key=fv.inspect_label, **common))
        print(score_file.format_summary(summary))
        print(f"scores written to {fv.output}")
        return 0
    res = scoring.score_texts(model, prompt, args, progress=False, **common)
    for text, score, outside in zip(args, res.score, res.mass_outside):
        print(f"{score:.4f}\t{outside:.4f}\t{text}")
    note = score_file.truncation_note(int(res.truncated.sum()), len(args), fv.max_len)
    if note:
        print(note, file=sys.stderr)
    return 0


def _define_score(fv: Flags) -> None:
    _model(fv)
    flags.DEFINE_string("prompt", None, "The prompt template, with {input} exactly once (a typed \\n is a newline).",
                        flag_values=fv)
    _define_question(fv)
    _system(fv)
    _rows(fv)
    flags.DEFINE_multi_string("inspect_log", None, "An Inspect AI eval log (.eval or .json): one score per sample and "
                              "epoch, its conversation rendered like the agent domains; repeat the flag for several "
                              "logs (needs the [inspect] extra).", flag_values=fv)
    flags.DEFINE_string("inspect_label", None, "With --inspect_log: a sample-metadata key whose true value labels a "
                        "sample positive (as does ControlArena's eval_mode == \"attack\").", flag_values=fv)
    _scoring(fv)


def _scoring_mesh():
    """Multi-process: a data-parallel mesh over every process's devices, so scoring splits its rows over all of
    them (each process still holds every score); one process: None (scoring on its first device)."""
    import jax

    if jax.process_count() == 1:
        return None
    from monitor_jax.core import sharding

    return sharding.make_mesh({"data": -1})


def _eval(fv: Flags, args: list[str]) -> int:
    from monitor_jax.core import distributed
    from monitor_jax.eval import evaluate, report

    if not fv.models or not fv.out:
        raise ValueError("eval needs --models=A[,B,...] (the first is the reference) and --out=DIR")
    prompts = fv.prompts if fv.prompts == "all" else tuple(fv.prompts.split(","))
    results = evaluate.evaluate_models(
        fv.models, fv.tasks, prompts=prompts, split=fv.split, limit_per_task=fv.limit_per_task,
        batch_size=fv.batch_size, max_len=fv.max_len, command=" ".join(sys.argv), mesh=_scoring_mesh(),
        progress=distributed.is_main(),
    )
    report.write_report(results, fv.out)
    print(f"report: {os.path.join(fv.out, 'report.md')}")
    return 0


def _define_eval(fv: Flags) -> None:
    _models(fv)
    _items(fv)
    flags.DEFINE_string("prompts", "primary", "'primary', 'all', or a comma-separated list of prompt names.",
                        flag_values=fv)
    _scoring(fv)
    _out(fv, "report.md, report.json, figures/, scores/")


def _generate(fv: Flags, args: list[str]) -> int:
    from monitor_jax.eval import generate, generate_file
    from monitor_jax.model import registry

    sampling = generate.Sampling(max_new_tokens=fv.max_new_tokens, temperature=fv.temperature, top_p=fv.top_p,
                                 seed=fv.seed)
    if bool(fv.input) == bool(fv.message):
        raise ValueError("generate needs either --message=TEXT or --input=F.jsonl --output=F")
    if fv.input and not fv.output:
        raise ValueError("generate --input needs --output=FILE")
    model = registry.load(fv.model)
    if fv.input:
        n = generate_file.generate_file(model, fv.input, fv.output, sampling, system=fv.system,
                                        batch_size=fv.batch_size)
        print(f"{n} generations written to {fv.output}")
        return 0
    (g,) = generate.generate_text(model.cfg, model.params, model.tokenizer, [fv.message.replace("\\n", "\n")],
                                  sampling, system=fv.system, progress=False)
    print(g.text)
    return 0


def _define_generate(fv: Flags) -> None:
    _model(fv)
    flags.DEFINE_string("message", None, "A user message to answer (a typed \\n is a newline).", flag_values=fv)
    _rows(fv)
    _system(fv)
    flags.DEFINE_integer("max_new_tokens", 128, "New tokens per prompt at most.", flag_values=fv)
    _sampling(fv)
    flags.DEFINE_integer("batch_size", 8, "Rows per batch.", flag_values=fv)


def _think(fv: Flags, args: list[str]) -> int:
    from monitor_jax.eval.protocols import think_file, thinking
    from monitor_jax.model import registry

    if not fv.tasks or not fv.out:
        raise ValueError("think needs --tasks=A[,B] and --out=DIR")
    protocol = thinking.Protocol(budget=fv.budget, temperature=fv.temperature, top_p=fv.top_p, seed=fv.seed)
    think_file.think_tasks(registry.load(fv.model), fv.tasks, fv.out, protocol, split=fv.split,
                           limit_per_task=fv.limit_per_task, seed=fv.seed, control=fv.control,
                           batch_size=fv.batch_size, max_len=fv.max_len, command=" ".join(sys.argv))
    return 0


def _define_think(fv: Flags) -> None:
    _model(fv)
    _items(fv)
    flags.DEFINE_integer("budget", 128, "Reasoning tokens at most before the answer slot.", flag_values=fv)
    flags.DEFINE_bool("control", False, "The empty-reasoning control (same answer slot, no reasoning).",
                      flag_values=fv)
    _sampling(fv)
    _scoring(fv)
    _out(fv, "<task>.jsonl (scores and reasoning per example), summary.json")


def _summarize(fv: Flags, args: list[str]) -> int:
    from monitor_jax.core import distributed
    from monitor_jax.eval.protocols import summarize_file
    from monitor_jax.model import registry

    if not fv.models or not fv.tasks or not fv.out:
        raise ValueError("summarize needs --models=A[,B] (the first is the reference), --tasks=T[,U] and --out=DIR")
    models = {name: registry.load(name) for name in fv.models}
    judge_name = fv.judge or fv.models[0]
    judge = models.get(judge_name) or registry.load(judge_name)
    summarize_file.summarize_tasks(models, judge, judge_name, fv.tasks, fv.out, split=fv.split,
                                   command=" ".join(sys.argv), limit=fv.limit_per_task,
                                   max_summary_tokens=fv.max_summary_tokens, seed=fv.seed, batch_size=fv.batch_size,
                                   judge_max_len=fv.max_len, progress=distributed.is_main())
    return 0


def _define_summarize(fv: Flags) -> None:
    _models(fv)
    flags.DEFINE_string("judge", None, "The fixed judge model (default: the first of --models); it should be "
                        "trained independently of the compared models.", flag_values=fv)
    _items(fv)
    flags.DEFINE_integer("max_summary_tokens", 64, "The summary length cap in tokens.", flag_values=fv)
    _seed(fv)
    _scoring(fv)
    _out(fv, "<task>.json and <task>.md")


COMMANDS = {c.name: c for c in (
    Command("assets", "assets {fetch|list}", "download + verify the pinned offline assets; list what is cached where",
            _define_assets, _assets, positional="fetch|list", multiprocess=False),
    Command("tasks", "tasks list [--tasks=A,B]", "every bundled task: counts per split and label, shortcut baselines",
            _define_tasks, _tasks, positional="list", multiprocess=False),
    Command("demo", "demo [--out=DIR]", "train SmolLM2-135M as a monitor, compare it untrained vs trained, export it (~10 min)", lambda fv: _define_experiment(fv, demo=True),
            lambda fv, a: _experiment(fv, a, demo=True)),
    Command("zero-shot", "zero-shot [--model=NAME]", "the untrained model on six hand-written requests (seconds)",
            _define_zero_shot, _zero_shot),
    Command("experiment", "experiment --config=FILE --out=DIR", "arms x seeds, checkpoints chosen on validation, "
            "test cells scored once, CIs, verdict", _define_experiment, _experiment),
    Command("score", "score [--prompt=P | --question=Q] {TEXT... | --input=F.jsonl --output=F | "
            "--inspect_log=RUN.eval... --output=F}", "P(Yes) of each text, row or Inspect sample under one prompt; metrics when they carry "
            "labels", _define_score, _score, positional="TEXT..."),
    Command("train", "train --config=FILE --workdir=DIR", "train (or resume) a monitor, evaluating on validation",
            _define_train, _train),
    Command("eval", "eval --models=A,B --out=DIR", "score models on tasks: report, plots, per-example scores",
            _define_eval, _eval),
    Command("generate", "generate {--message=TEXT | --input=F.jsonl --output=F}", "continue chats with the KV-cache "
            "sampler", _define_generate, _generate),
    Command("think", "think --tasks=T --out=DIR", "with-thinking classification: reason, then score the answer slot",
            _define_think, _think),
    Command("summarize", "summarize --models=A,B --tasks=T --out=DIR", "each model summarizes, a fixed judge "
            "detects from the summaries (claim C7)", _define_summarize, _summarize),
    Command("elicit", "elicit --config=FILE --workdir=DIR", "with-thinking pseudo-labels, then 1-token SFT on them "
            "(claim C8)", lambda fv: _define_train(fv, elicit=True), lambda fv, a: _train(fv, a, elicit=True)),
    Command("plan", "plan --config=FILE [--mesh_shapes=fsdp=8 ...]", "bytes per device of a config on a mesh, "
            "nothing allocated", _define_plan, _plan, multiprocess=False),
)}


def overview() -> str:
    """`monitor-jax --help`: every command with its line."""
    width = max(len(c.name) for c in COMMANDS.values())
    lines = [f"usage: {_PROG} COMMAND [flags]   ({_PROG} COMMAND --help lists a command's flags)", "", "commands:"]
    lines += [f"  {c.name:<{width}}  {c.help}" for c in COMMANDS.values()]
    return "\n".join(lines)


def flag_values(command: Command) -> Flags:
    """A fresh FlagValues holding exactly `command`'s flags."""
    fv = flags.FlagValues()
    command.define(fv)
    if command.multiprocess:
        _multiprocess(fv)
    return fv


def _flag_line(flag: flags.Flag) -> str:
    """`  --name=DEFAULT` and its help, wrapped under it."""
    if isinstance(flag, flags.BooleanFlag):
        head = f"--[no]{flag.name} (default {str(flag.default).lower()})"
    else:
        default = flag.default_as_str.strip("'") if flag.default is not None else ""
        head = f"--{flag.name}=" + (default or "...")
    return f"  {head}\n" + textwrap.fill(flag.help, 110, initial_indent=" " * 6, subsequent_indent=" " * 6)


def command_help(command: Command) -> str:
    """`monitor-jax COMMAND --help`: the synopsis, its line, and only its own flags with their help."""
    fv = flag_values(command)
    names = [n for n in fv if fv[n].name == n]
    own = [n for n in names if n not in MULTIPROCESS_FLAGS]
    lines = [f"usage: {_PROG} {command.synopsis}", "", command.help[:1].upper() + command.help[1:] + ".", ""]
    lines += ["flags:"] + ([_flag_line(fv[n]) for n in own] or ["  (none)"])
    if command.multiprocess:
        lines += ["", "multi-process flags (one process per host; README 'Running on a TPU pod slice'):"]
        lines += [_flag_line(fv[n]) for n in MULTIPROCESS_FLAGS]
    return "\n".join(lines)


def _split_argv(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the command, the rest in order): the command is the first word that is not a flag."""
    rest = list(argv[1:])
    for i, a in enumerate(rest):
        if not a.startswith("-"):
            return a, rest[:i] + rest[i + 1:]
    return None, rest


def _parse(command: Command, rest: list[str]) -> tuple[Flags, list[str]]:
    """The command's flags parsed from `rest`, and its positional words; bad flags raise `flags.Error`."""
    fv = flag_values(command)
    args = fv([f"{_PROG} {command.name}", *rest])[1:]
    if command.positional.endswith("..."):
        return fv, args
    allowed = command.positional.split("|") if command.positional else []
    if allowed and not args:
        raise flags.Error(f"{command.name}: needs a subcommand ({' | '.join(allowed)}); usage: {_PROG} "
                          f"{command.synopsis}")
    if (allowed and (len(args) != 1 or args[0] not in allowed)) or (not allowed and args):
        raise flags.Error(f"{command.name}: unexpected arguments {args}; usage: {_PROG} {command.synopsis}")
    return fv, args


def _config_key_error(rest: list[str], e: Exception) -> str:
    """One line for an override naming a key the (locked) config does not have."""
    text = str(e)
    bad = [a.split("=", 1)[0] for a in rest if a.startswith("--config.")]
    named = [b for b in bad if re.split(r"[.\]]", b)[-1].split("[")[0] in text] or bad
    hint = re.search(r'Did you mean "([^"]+)"', text)
    return (f"unknown config key {', '.join(named) or text}" + (f" (did you mean {hint.group(1)!r}?)" if hint else "")
            + "; configs are locked: monitor_jax/core/config.py lists every key")


def _flag_error(e: flags.Error) -> str:
    """absl's message in one line (config_flags embeds the config file's traceback: keep its first and last)."""
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[0] if len(lines) < 2 or "Traceback" not in str(e) else f"{lines[0]} {lines[-1].strip()}"


def _start_processes(fv: Flags) -> None:
    """JAX's multi-controller runtime when this launch is one process of several (`monitor_jax.core.distributed`);
    processes other than 0 then print nothing to stdout and log only errors (process 0 says it all once)."""
    from monitor_jax.core import distributed

    if distributed.initialize(fv.coordinator_address, fv.num_processes, fv.process_id, mode=fv.distributed,
                              cpu_collectives=fv.cpu_collectives):
        if not distributed.is_main():
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
            logging.set_verbosity(logging.ERROR)  # warnings too are process 0's to say


def main(argv: list[str]) -> int:
    """Runs one command line (`argv[0]` is the program); returns the exit code: 0 done, 1 a user error (bad input,
    missing assets, a path that cannot be read or written: one line on stderr), 2 bad usage."""
    from monitor_jax.core.assets import AssetError

    name, rest = _split_argv(argv)
    wants_help = any(a in ("--help", "-h", "--helpfull", "-help") for a in rest)
    if name is None:
        print(overview(), file=sys.stdout if wants_help else sys.stderr)
        return 0 if wants_help else 2
    command = COMMANDS.get(name)
    if command is None:
        print(f"{_PROG}: error: unknown command {name!r}\n\n{overview()}", file=sys.stderr)
        return 2
    if wants_help:
        print(command_help(command))
        return 0
    try:
        fv, args = _parse(command, rest)
    except flags.Error as e:
        print(f"{_PROG}: error: {_flag_error(e)}  ({_PROG} {name} --help lists its flags)", file=sys.stderr)
        return 2
    except (AttributeError, KeyError) as e:  # ml_collections: an override names a key the config does not have
        print(f"{_PROG}: error: {_config_key_error(rest, e)}", file=sys.stderr)
        return 2
    try:
        if command.multiprocess:
            _start_processes(fv)
        return command.body(fv, args)
    except (ValueError, KeyError, AssetError, FloatingPointError, OSError) as e:
        if os.environ.get("MONITOR_JAX_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        if isinstance(e, OSError) and e.filename is not None:  # a path we could not read or write
            msg = f"{e.filename}: {e.strerror or type(e).__name__}"
        print(f"{_PROG}: error: {msg}  (MONITOR_JAX_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def run() -> None:
    """Console-script entry point."""
    logging.use_absl_handler()  # python logging through absl's handler, as `absl.app.run` would set it up
    logging.set_verbosity(logging.WARNING)
    flags.FLAGS.mark_as_parsed()  # libraries that read absl's global flags see their defaults
    sys.exit(main(sys.argv))


if __name__ == "__main__":
    run()
