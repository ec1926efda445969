"""The command line's commands: each one's flags (from `cli.options`) and its body, which parses nothing and calls
one library function; `COMMANDS` is the table `monitor-jax` dispatches on."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Callable

from absl import flags

from monitor_jax.cli import options
from monitor_jax.cli.options import Flags


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


def _experiment(fv: Flags, args: list[str], demo: bool = False) -> int:
    from monitor_jax.core import assets, distributed
    from monitor_jax.experiment import runner, write

    config = options.load_config(fv, "demo" if demo else "experiment", "configs/demo.py" if demo else None)
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
    options.config(fv, "The experiment (default configs/demo.py)" if demo else "The experiment")
    options.out(fv, "results.md, results.json, auroc.png" + (" (default /tmp/monitor-jax-demo)" if demo else ""))
    options.runs_dir(fv)
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


def _define_zero_shot(fv: Flags) -> None:
    options.model(fv)
    options.define_question(fv)
    flags.DEFINE_list("label_words", ["Yes", "No"], "The positive and negative label words.", flag_values=fv)


def _plan(fv: Flags, args: list[str]) -> int:
    from monitor_jax.train import plan

    print(plan.report(options.load_config(fv, "plan"), fv.mesh_shapes, fv.num_devices))
    return 0


def _define_plan(fv: Flags) -> None:
    options.config(fv, "The training run to plan")
    flags.DEFINE_multi_string("mesh_shapes", None, "A mesh shape to plan for, e.g. fsdp=8 or data=2,fsdp=64 (repeat "
                              "the flag for several; default: the config's mesh.shape).", flag_values=fv)
    flags.DEFINE_integer("num_devices", None, "The device count for a mesh shape with a -1 axis.", flag_values=fv)


def _train(fv: Flags, args: list[str], elicit: bool = False) -> int:
    command = "elicit" if elicit else "train"
    config = options.load_config(fv, command)
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
    options.config(fv, "The elicitation run (with an `elicit` section)" if elicit else "The training run")
    options.workdir(fv)


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
    rows = (score_file.file_items(fv.input) if fv.input else  # bad input fails before the model loads
            score_file.log_items(fv.inspect_log, fv.inspect_label) if fv.inspect_log else None)
    model = registry.load(fv.model)
    common = dict(label_words=tuple(fv.label_words), system=fv.system, batch_size=fv.batch_size, max_len=fv.max_len,
                  mesh=options.scoring_mesh())
    if rows is not None:
        items, labels, key = rows
        print(score_file.format_summary(score_file.score_items(model, items, labels, fv.output, prompt, key,
                                                               **common)))
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
    options.model(fv)
    flags.DEFINE_string("prompt", None, "The prompt template, with {input} exactly once (a typed \\n is a newline).",
                        flag_values=fv)
    options.define_question(fv)
    options.system(fv)
    options.rows(fv)
    flags.DEFINE_multi_string("inspect_log", None, "An Inspect AI eval log (.eval or .json): one score per sample and "
                              "epoch, its conversation rendered like the agent domains; repeat the flag for several "
                              "logs (needs the [inspect] extra).", flag_values=fv)
    flags.DEFINE_string("inspect_label", None, "With --inspect_log: a sample-metadata key whose true value labels a "
                        "sample positive (as does ControlArena's eval_mode == \"attack\").", flag_values=fv)
    options.scoring(fv)


def _eval(fv: Flags, args: list[str]) -> int:
    from monitor_jax.core import distributed
    from monitor_jax.eval import evaluate, report

    if not fv.models or not fv.out:
        raise ValueError("eval needs --models=A[,B,...] (the first is the reference) and --out=DIR")
    prompts = fv.prompts if fv.prompts == "all" else tuple(fv.prompts.split(","))
    results = evaluate.evaluate_models(
        fv.models, fv.tasks, prompts=prompts, split=fv.split, limit_per_task=fv.limit_per_task,
        batch_size=fv.batch_size, max_len=fv.max_len, command=" ".join(sys.argv), mesh=options.scoring_mesh(),
        progress=distributed.is_main(),
    )
    report.write_report(results, fv.out)
    print(f"report: {os.path.join(fv.out, 'report.md')}")
    return 0


def _define_eval(fv: Flags) -> None:
    options.models(fv)
    options.items(fv)
    flags.DEFINE_string("prompts", "primary", "'primary', 'all', or a comma-separated list of prompt names.",
                        flag_values=fv)
    options.scoring(fv)
    options.out(fv, "report.md, report.json, figures/, scores/")


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
    options.model(fv)
    flags.DEFINE_string("message", None, "A user message to answer (a typed \\n is a newline).", flag_values=fv)
    options.rows(fv)
    options.system(fv)
    flags.DEFINE_integer("max_new_tokens", 128, "New tokens per prompt at most.", flag_values=fv)
    options.sampling(fv)
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
    options.model(fv)
    options.items(fv)
    flags.DEFINE_integer("budget", 128, "Reasoning tokens at most before the answer slot.", flag_values=fv)
    flags.DEFINE_bool("control", False, "The empty-reasoning control (same answer slot, no reasoning).",
                      flag_values=fv)
    options.sampling(fv)
    options.scoring(fv)
    options.out(fv, "<task>.jsonl (scores and reasoning per example), summary.json")


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
    options.models(fv)
    flags.DEFINE_string("judge", None, "The fixed judge model (default: the first of --models); it should be "
                        "trained independently of the compared models.", flag_values=fv)
    options.items(fv)
    flags.DEFINE_integer("max_summary_tokens", 64, "The summary length cap in tokens.", flag_values=fv)
    options.seed(fv)
    options.scoring(fv)
    options.out(fv, "<task>.json and <task>.md")


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


