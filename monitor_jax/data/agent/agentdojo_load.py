"""Import AgentDojo's task suites from the extracted pinned wheel without its LLM clients, with a frozen clock.

AgentDojo 0.1.35's `agentdojo.task_suite` imports `agentdojo.agent_pipeline`, whose package `__init__` imports
every LLM client library (openai, anthropic, cohere, google-genai). We need none of them: the suites, their
environments and the tasks' ground truths use pydantic, pyyaml, docstring-parser and deepdiff only. So
`agentdojo.agent_pipeline` is registered as a bare package (its `__init__` never runs; its light submodules
`base_pipeline_element` and `errors` import from the real files) and `ground_truth_pipeline` (which pulls in the
Google client through `tool_execution`) is a stub — we execute ground truths ourselves (`agentdojo_run`).

Determinism: tools stamp `datetime.datetime.now()` (e-mails, files) — those modules see a clock frozen at
`FROZEN_NOW`; `calendar_client` builds a participant list from a `set` — it sees a `set` that returns a sorted
list. With these two patches a rendering is byte-identical across runs and PYTHONHASHSEED values (tested).
"""
from __future__ import annotations

import datetime as _dt
import functools
import importlib
import pathlib
import sys
import types
from typing import Any

from monitor_jax.core import assets

BENCHMARK_VERSION = "v1.2.2"
FROZEN_NOW = _dt.datetime(2024, 5, 15, 9, 0, 0)
SUITES = ("workspace", "travel", "banking", "slack")
_CLIENT_PACKAGES = ("openai", "anthropic", "cohere", "google.genai", "langchain")


class AgentDojoError(RuntimeError):
    """AgentDojo's code could not be loaded from the asset."""


class _FrozenDatetime(_dt.datetime):
    """`datetime.datetime` whose now()/today()/utcnow() return `FROZEN_NOW`."""

    @classmethod
    def now(cls, tz: Any = None) -> _dt.datetime:  # noqa: D102
        return FROZEN_NOW if tz is None else FROZEN_NOW.replace(tzinfo=tz)

    @classmethod
    def today(cls) -> _dt.datetime:  # noqa: D102
        return FROZEN_NOW

    @classmethod
    def utcnow(cls) -> _dt.datetime:  # noqa: D102
        return FROZEN_NOW


def _frozen_datetime_module() -> types.ModuleType:
    mod = types.ModuleType("datetime")
    mod.__dict__.update({k: v for k, v in vars(_dt).items() if not k.startswith("__")})
    mod.datetime = _FrozenDatetime
    return mod


def _sorted_set(items: Any = ()) -> list:
    return sorted(set(items))


def _stub_pipeline(root: pathlib.Path) -> None:
    pkg = types.ModuleType("agentdojo.agent_pipeline")
    pkg.__path__ = [str(root / "agentdojo" / "agent_pipeline")]
    pkg.__doc__ = "monitor_jax stub: AgentDojo's agent_pipeline package without its __init__ (no LLM clients)"
    sys.modules["agentdojo.agent_pipeline"] = pkg
    gt = types.ModuleType("agentdojo.agent_pipeline.ground_truth_pipeline")

    class GroundTruthPipeline:  # referenced by TaskSuite.check only, which we never call
        def __init__(self, task: Any) -> None:
            raise AgentDojoError("AgentDojo's GroundTruthPipeline is stubbed out; use monitor_jax agentdojo_run")

    gt.GroundTruthPipeline = GroundTruthPipeline
    sys.modules[gt.__name__] = gt


def _freeze(tools_prefix: str) -> None:
    frozen = _frozen_datetime_module()
    for name in ("email_client", "cloud_drive_client", "calendar_client", "types"):
        importlib.import_module(f"{tools_prefix}.{name}").datetime = frozen
    importlib.import_module(f"{tools_prefix}.calendar_client").set = _sorted_set
    tool_types = importlib.import_module(f"{tools_prefix}.types")
    field = tool_types.Email.model_fields["timestamp"]
    field.default_factory = _FrozenDatetime.now
    tool_types.Email.model_rebuild(force=True)


def package_root() -> pathlib.Path:
    """The directory holding the extracted `agentdojo/` package (fetched and sha256-checked on first use)."""
    return assets.asset_dir("agentdojo")


@functools.lru_cache(maxsize=None)
def load_suites(version: str = BENCHMARK_VERSION) -> dict[str, Any]:
    """AgentDojo's task suites of benchmark `version` ({suite name: TaskSuite}), loaded once per process."""
    root = package_root()
    existing = sys.modules.get("agentdojo")
    if existing is not None and not str(getattr(existing, "__file__", "")).startswith(str(root)):
        raise AgentDojoError(f"another agentdojo package is already imported ({existing.__file__}); "
                             f"monitor_jax reads the pinned copy in {root}")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    _stub_pipeline(root)
    try:
        load = importlib.import_module("agentdojo.task_suite.load_suites")
    except ImportError as e:
        raise AgentDojoError(f"could not import AgentDojo from {root}: {e} (its runtime needs pydantic, "
                             "email-validator, pyyaml, docstring-parser and deepdiff)") from e
    _freeze("agentdojo.default_suites.v1.tools")
    leaked = [p for p in _CLIENT_PACKAGES if p in sys.modules]
    if leaked:
        raise AgentDojoError(f"loading AgentDojo imported LLM client packages {leaked}")
    suites = load.get_suites(version)
    if not suites:
        raise AgentDojoError(f"AgentDojo has no benchmark version {version!r}")
    return {name: suites[name] for name in SUITES}
