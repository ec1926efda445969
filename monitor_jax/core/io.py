"""Small io helpers: atomic whole-file writes (a temp file in the same folder, then rename) and reading text and
JSONL input files whose every error is one line naming file:line, or the path that cannot be read."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Iterable, Iterator

_BOM = b"\xef\xbb\xbf"


class InputError(ValueError):
    """A bad input file: the message is one line naming file:line, or the path that cannot be read."""


def _open(path: str | os.PathLike, error: type[InputError]):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise error(f"{os.fspath(path)}: no such file") from None
    except OSError as e:
        raise error(f"{os.fspath(path)}: cannot read ({e.strerror or type(e).__name__})") from None


def _decode(path: str | os.PathLike, lineno: int, line: bytes, error: type[InputError]) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{os.fspath(path)}:{lineno}: not UTF-8 (byte 0x{line[e.start]:02x} at column {e.start + 1}); "
                    "save the file as UTF-8") from None


def read_lines(path: str | os.PathLike, error: type[InputError] = InputError) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of a UTF-8 file (a leading BOM dropped, line ends kept); a missing file or
    a line that is not UTF-8 raises `error` naming the path or path:line."""
    with _open(path, error) as f:
        for lineno, line in enumerate(f, 1):
            yield lineno, _decode(path, lineno, line[3:] if lineno == 1 and line.startswith(_BOM) else line, error)


def read_text(path: str | os.PathLike, error: type[InputError] = InputError) -> str:
    """The whole of a UTF-8 text file, with `read_lines`'s errors."""
    return "".join(text for _, text in read_lines(path, error))


def read_jsonl(path: str | os.PathLike, error: type[InputError] = InputError) -> Iterator[tuple[str, Any]]:
    """(f"{path}:{line}", parsed row) for each non-blank line; a bad line raises `error`: `path:LINE: invalid JSON
    (...)`, `path:LINE: not UTF-8 (...)`, or `path: no such file`."""
    for lineno, line in read_lines(path, error):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{os.fspath(path)}:{lineno}: invalid JSON ({e})") from None
        yield f"{os.fspath(path)}:{lineno}", row


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically: a reader sees the old file or the new one, never half of it. The temp
    name is unique, so several processes may write the same path; the file is left readable by all (0644)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """`text` (UTF-8) to `path`, atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, **kwargs: Any) -> None:
    """`json.dumps(obj, **kwargs)` to `path`, atomically."""
    write_text(path, json.dumps(obj, **kwargs))


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> None:
    """One JSON line per row to `path`, atomically."""
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
