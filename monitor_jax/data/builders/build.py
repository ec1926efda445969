"""Preparing a TFDS builder quietly: TFDS's own output off, one progress line while it builds, nothing once built."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Callable, Iterator, TypeVar

import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import tqdm_utils

from monitor_jax.core import progress

B = TypeVar("B", bound=tfds.core.DatasetBuilder)
# TFDS warnings about what we do on purpose: custom configs (one per task / settings); a variant folder that is
# still being written (the build in progress)
_NOISE = ("Using custom data configuration", "Variant folder")


class _TfdsFilter(logging.Filter):
    """Drops TFDS's records below WARNING and its warnings about what we do on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        if f"{os.sep}tensorflow_datasets{os.sep}" not in record.pathname:
            return True
        return record.levelno >= logging.WARNING and not str(record.msg).startswith(_NOISE)


@contextlib.contextmanager
def quiet_tfds() -> Iterator[None]:
    """Inside: no TFDS progress bars ("Generating splits", "Shuffling ...incomplete..."), no stdout notices
    ("Downloading and preparing dataset ..."), and TFDS's absl logging only from WARNING up."""
    bars, noise, absl = tqdm_utils._active, _TfdsFilter(), logging.getLogger("absl")
    tfds.display_progress_bar(False)
    absl.addFilter(noise)
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):  # TFDS prints its notices (termcolor)
            yield
    finally:
        absl.removeFilter(noise)
        tfds.display_progress_bar(bars)


def prepared(make: Callable[[], B], what: str) -> B:
    """`make()`'s builder, prepared: built first (one line "[monitor_jax.data] building WHAT ... done in 3.1s") when
    it is not on disk yet; nothing is printed when it is."""
    with quiet_tfds():
        builder = make()
        if not builder.is_prepared():
            with progress.step("monitor_jax.data", f"building {what}"):
                builder.download_and_prepare()
    return builder
