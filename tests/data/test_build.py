"""A TFDS build prints one progress line and nothing else; a prepared dataset is used without a word."""
import logging

import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import tqdm_utils

from monitor_jax.data.builders import build, jsonl
from monitor_jax.data.items import Item


def _builder(data_dir, items=None):
    config = tfds.core.BuilderConfig(name="quiet-probe", description="a custom config: TFDS warns about those")
    return jsonl.JsonlTask(items=items, stats={}, config=config, data_dir=str(data_dir), file_format="array_record")


def test_first_build_prints_one_line_and_the_second_nothing(tmp_path, capfd, caplog):
    caplog.set_level(logging.INFO)  # TFDS logs its build at INFO, and warns about custom configs
    items = {s: [Item(f"x:{s}{i}", "x", f"text {s} {i}", {"label": i % 2}) for i in range(4)]
             for s in ("train", "validation", "test")}
    absl = logging.getLogger("absl")
    filters = list(absl.filters)
    b = build.prepared(lambda: _builder(tmp_path, items), "probe domain")
    assert {k: len(v) for k, v in b.as_data_source().items()} == {"train": 4, "validation": 4, "test": 4}
    out, err = capfd.readouterr()
    assert out == ""  # no "Downloading and preparing dataset ..." notice
    assert len(err.splitlines()) == 1 and "\r" not in err, err  # no tqdm bars, no absl info/warnings
    assert err.startswith("[monitor_jax.data] building probe domain ... done in ")
    build.prepared(lambda: _builder(tmp_path), "probe domain")
    assert capfd.readouterr() == ("", "")
    assert [r.getMessage() for r in caplog.records if "tensorflow_datasets" in r.pathname] == []
    assert tqdm_utils._active and absl.filters == filters  # TFDS's settings are back as they were
