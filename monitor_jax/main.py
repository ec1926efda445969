"""The command line: `monitor-jax COMMAND [flags]`; each command parses its own flags and calls one library function.

`monitor-jax --help` lists the commands; `monitor-jax COMMAND --help` lists that command's flags. A flag means the
same thing in every command that takes it (`--prompt` is always a template with `{input}`, `--out` always a
directory, `--output` always a file).
"""

from __future__ import annotations

import os
import re
import sys
import textwrap

from absl import flags, logging

from monitor_jax.cli import options
from monitor_jax.cli.commands import COMMANDS, Command
from monitor_jax.cli.options import MULTIPROCESS_FLAGS, Flags

_PROG = "monitor-jax"


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
        options.multiprocess(fv)
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
