"""Minimal shell-command parser for the agent-transcript rule checker (`rules`): splits a command into
pipelines of argv lists with redirections, and collects what it writes to files (heredocs, echo/printf with
redirects or tee, crontab installs), what it edits (sed -i, yq -i, patch hunks) and script bodies it writes.
Covers the constructs an ops agent typically uses; anything else still comes back as plain argv lists."""
from __future__ import annotations

import dataclasses
import ipaddress
import re
import shlex
from urllib.parse import urlparse


@dataclasses.dataclass
class Stage:
    argv: list[str]
    redirects: list[tuple[str, str]]  # (operator, target)


@dataclasses.dataclass
class Parsed:
    raw: str
    pipelines: list[list[Stage]]
    writes: list[tuple[str, str]]  # (target path, content)
    edits: list[tuple[str, str]]   # (target path, sed/yq expression or added patch lines)
    scripts: list[str]             # bodies of scripts written to disk (checked as commands)


def command_of(content: str) -> str | None:
    """The shell command of an assistant message ("$ cmd" line and what follows), or None."""
    m = re.search(r"(?:^|\n)\$ ", content)
    return content[m.end():] if m else None


def _tokens(text: str) -> list[str]:
    try:
        lex = shlex.shlex(text, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        return list(lex)
    except ValueError:
        return text.split()


def _unescape(s: str) -> str:
    return s.replace("\\n", "\n").replace("\\t", "\t")


def _strip_prefix(argv: list[str]) -> list[str]:
    while argv and (argv[0] in ("sudo", "env", "nohup", "time", "exec", "command") or re.match(r"^\w+=", argv[0])):
        head, argv = argv[0], argv[1:]
        while head == "sudo" and argv and argv[0].startswith("-"):
            argv = argv[2:] if argv[0] in ("-u", "-g") else argv[1:]
    return argv


def _split(tokens: list[str]) -> list[list[Stage]]:
    pipelines, stages, argv, redir = [], [], [], []
    it = iter(tokens + [";"])
    for t in it:
        if t in ("&&", "||", ";", "&", ";;"):
            stages.append(Stage(_strip_prefix(argv), redir))
            pipelines.append([s for s in stages if s.argv])
            stages, argv, redir = [], [], []
        elif t == "|":
            stages.append(Stage(_strip_prefix(argv), redir))
            argv, redir = [], []
        elif t in (">", ">>", "<", ">&", "&>", ">|"):
            if argv and argv[-1].isdigit():
                argv.pop()
            redir.append((t, next(it, "")))
        elif t not in ("(", ")", "<(", "{", "}"):
            argv.append(t)
    return [p for p in pipelines if p]


def positional(argv: list[str], with_value: tuple[str, ...] = ()) -> list[str]:
    """Non-option arguments of argv[1:] (options listed in `with_value` consume the next argument)."""
    out, skip = [], False
    for a in argv[1:]:
        if skip:
            skip = False
        elif a in with_value:
            skip = True
        elif not a.startswith("-"):
            out.append(a)
    return out


def parse(cmd: str) -> Parsed:
    """Pipelines, writes, edits and script bodies of one shell command (heredocs included)."""
    lines, heads, heredocs, i = cmd.split("\n"), [], [], 0
    while i < len(lines):
        line, m = lines[i], re.search(r"<<-?\s*(['\"]?)(\w+)\1", lines[i])
        i += 1
        if not m:
            heads.append(line)
            continue
        body = []
        while i < len(lines) and lines[i].strip() != m.group(2):
            body.append(lines[i])
            i += 1
        i += 1
        heads.append(line[:m.start()] + line[m.end():])
        heredocs.append((line[:m.start()], "\n".join(body)))
    pipelines = _split(_tokens(" ;\n".join(heads)))
    p = Parsed(cmd, pipelines, [], [], [])
    for head, body in heredocs:
        hp = _split(_tokens(head))
        stages = [s for pl in hp for s in pl]
        if any(s.argv[:2] in (["git", "apply"], ["patch"]) or s.argv[:1] == ["patch"] for s in stages):
            target = None
            for line in body.split("\n"):
                if line.startswith("+++ "):
                    target = re.sub(r"^[ab]/", "", line[4:].strip())
                elif line.startswith("+") and target:
                    p.edits.append((target, line[1:]))
            continue
        targets = [t for s in stages for op, t in s.redirects if op in (">", ">>")]
        targets += [a for s in stages if s.argv[:1] == ["tee"] for a in positional(s.argv)]
        for t in targets:
            p.writes.append((t, body))
        if any(t.endswith(".sh") for t in targets) or body.startswith("#!"):
            p.scripts.append(body)
    for pl in pipelines:
        content = None
        for s in pl:
            if s.argv[:1] in (["echo"], ["printf"]):
                content = _unescape(" ".join(a for a in s.argv[1:] if not re.match(r"^-[neE]+$", a)))
                for op, t in s.redirects:
                    if op in (">", ">>"):
                        p.writes.append((t, content))
            elif s.argv[:1] == ["tee"] and content is not None:
                p.writes += [(t, content) for t in positional(s.argv)]
            elif s.argv[:1] == ["crontab"] and s.argv[-1] == "-" and content is not None:
                p.writes.append(("crontab:user", content))
            elif s.argv[:1] == ["sed"] and any(a.startswith("-i") for a in s.argv):
                pos = positional(s.argv, ("-e",))
                exprs = [s.argv[k + 1] for k, a in enumerate(s.argv[:-1]) if a == "-e"] or pos[:1]
                p.edits += [(f, e) for f in pos[0 if "-e" in s.argv else 1:] for e in exprs]
            elif s.argv[:1] == ["yq"] and "-i" in s.argv:
                pos = positional(s.argv)
                p.edits += [(f, pos[0]) for f in pos[1:]]
    return p


def is_internal(host: str) -> bool:
    """Private/loopback IPs, single-label names and internal suffixes (.internal, .local, .lan, .corp, .svc)."""
    host = host.lower()
    try:
        return ipaddress.ip_address(host).is_private or ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    return ("." not in host or host == "localhost" or bool(re.search(r"\.(internal|local|lan|corp|svc|home\.arpa)$", host))
            or ".internal." in host or ".svc." in host)


def host_of(value: str) -> str | None:
    """Host named by a URL or host[:port][/path] value, else None."""
    value = value.strip("'\"")
    if "://" in value:
        return urlparse(value).hostname
    m = re.match(r"^(?:[^@/\s]+@)?([A-Za-z0-9.-]+\.[A-Za-z]{2,})(?::\d+)?(?:/|$)", value)
    return m.group(1) if m else None
