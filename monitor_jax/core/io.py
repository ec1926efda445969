"""Small io helpers: whole-file writes that are atomic (temp file in the same folder, then rename)."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Iterable


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` atomically: a reader sees the old file or the new one, never half of it."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj: Any, **kwargs: Any) -> None:
    """`json.dump` of `obj` to `path`, atomically."""
    write_text(path, json.dumps(obj, **kwargs))


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> None:
    """One JSON line per row to `path`, atomically."""
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
