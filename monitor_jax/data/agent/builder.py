"""TFDS builder (array_record, no TensorFlow) for the `agentdojo` domain: one config per `Settings`, built whole.

The config name is "v{VERSION}-{sha of the settings}", so changed settings build a new dataset beside the old.
TFDS writes into a temporary directory and renames it when every split is written: an interrupted build leaves
no prepared dataset, and the next call builds it again. The build statistics (skips, kinds, cut items) are stored
in the dataset's metadata (`stats`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Iterator

import tensorflow_datasets as tfds

from monitor_jax.data.agent import agentdojo_domain
from monitor_jax.data.builders import build, suite
from monitor_jax.data.items import Item

VERSION = "1.0.0"  # bump whenever the items change for the same settings


def config_name(settings: agentdojo_domain.Settings) -> str:
    """The TFDS config name of `settings` (stable across runs and machines)."""
    key = json.dumps(dataclasses.asdict(settings), sort_keys=True)
    return f"s-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


class AgentDojoDomain(tfds.core.GeneratorBasedBuilder):
    """One config per settings; features id, text, meta (JSON) like MonitorSuite."""

    VERSION = tfds.core.Version(VERSION)

    def __init__(self, *, settings: agentdojo_domain.Settings, **kwargs: Any):
        self._settings = settings
        cfg = tfds.core.BuilderConfig(name=config_name(settings), description=json.dumps(dataclasses.asdict(settings)))
        super().__init__(config=cfg, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        text = tfds.features.Text()
        return tfds.core.DatasetInfo(builder=self, metadata=tfds.core.MetadataDict(),
                                     features=tfds.features.FeaturesDict({"id": text, "text": text, "meta": text}))

    def _split_generators(self, dl_manager: Any) -> dict:
        items, stats = agentdojo_domain.build(self._settings)
        self.info.metadata["stats"] = stats
        return {name: self._generate_examples(v) for name, v in items.items()}

    def _generate_examples(self, items: list[Item]) -> Iterator[tuple[str, dict]]:
        return suite.tfds_examples(items)


def prepare(settings: agentdojo_domain.Settings = agentdojo_domain.Settings(), *,
            directory: str | None = None) -> AgentDojoDomain:
    """The prepared builder of `settings` (built on first use, atomically)."""
    return build.prepared(lambda: AgentDojoDomain(settings=settings, data_dir=directory or suite.data_dir(),
                                                  file_format="array_record"),
                          f"agentdojo domain {config_name(settings)}")


def load(settings: agentdojo_domain.Settings = agentdojo_domain.Settings(), *,
         directory: str | None = None) -> dict[str, list[Item]]:
    """The domain's items per split (sorted by id), building its dataset on first use."""
    from monitor_jax.data.builders.suite import record_to_item

    out = {}
    for split, ds in prepare(settings, directory=directory).as_data_source().items():
        out[split] = sorted((record_to_item(ds[i]) for i in range(len(ds))), key=lambda it: it.id)
    return out


def stats(settings: agentdojo_domain.Settings = agentdojo_domain.Settings(), *,
          directory: str | None = None) -> dict:
    """The build statistics recorded in the dataset's metadata."""
    return dict(prepare(settings, directory=directory).info.metadata.get("stats", {}))
