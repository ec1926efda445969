"""One progress line per long one-time step (an asset fetched, a dataset built) on stderr: "[who] what ... done"."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator


class Line:
    """The open line of a step; `detail` (set by the step) is printed after "done"."""

    detail: str = ""


@contextlib.contextmanager
def step(who: str, what: str) -> Iterator[Line]:
    """Prints "[who] what ..." now and " done in 1.2s (detail)" (or " failed") on the same line when the block
    ends; a block that is skipped should not open a step, so a second run prints nothing."""
    line = Line()
    print(f"[{who}] {what} ...", end="", file=sys.stderr, flush=True)
    start = time.time()
    try:
        yield line
    except BaseException:
        print(" failed", file=sys.stderr, flush=True)
        raise
    detail = f" ({line.detail})" if line.detail else ""
    print(f" done in {time.time() - start:.1f}s{detail}", file=sys.stderr, flush=True)
