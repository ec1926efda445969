"""Small io helpers: whole-file writes that are atomic (a temp file in the same folder, then rename)."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Iterable


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
