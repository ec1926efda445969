"""Execute AgentDojo ground-truth tool calls in a suite's environment and check the result with AgentDojo's own
utility and security functions: honest runs, runs with an injection task's calls inserted, injection-vector
discovery (which injected tool outputs a user task's calls read) and read-only filler calls."""
from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import random
from typing import Any, Sequence

import yaml

READ_ONLY_PREFIXES = ("get_", "search_", "read_", "list_", "check_")
_CANARY = "zqxcanary{}zqx"


class RunError(RuntimeError):
    """A ground-truth call failed (the pair is skipped and counted, never kept with a wrong label)."""


@dataclasses.dataclass(frozen=True)
class Step:
    """One executed tool call: its name, JSON-compatible arguments, formatted output and who asked for it."""

    function: str
    args: dict
    output: str
    origin: str  # "user" (the user task), "injection" (the injection task) or "filler" (a read-only extra)


@dataclasses.dataclass(frozen=True)
class Run:
    """An executed transcript body: steps, the final answer, and AgentDojo's checks of the end state."""

    steps: tuple[Step, ...]
    final: str
    utility: bool
    security: bool | None  # None without an injection task


def _plain(x: Any) -> Any:
    """Pydantic models, enums and dates -> plain YAML-safe values (dict order kept)."""
    if hasattr(x, "model_dump"):
        return _plain(x.model_dump())
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (set, frozenset)):
        return sorted(_plain(v) for v in x)
    if isinstance(x, enum.Enum):
        return _plain(x.value)
    if isinstance(x, (datetime.datetime, datetime.date, datetime.time)):
        return x.isoformat(sep=" ") if isinstance(x, datetime.datetime) else x.isoformat()
    return x


def format_output(result: Any) -> str:
    """A tool's return value as text: strings as they are, everything else as block YAML."""
    if isinstance(result, str):
        return result
    if result is None:
        return "None"
    return yaml.safe_dump(_plain(result), sort_keys=False, allow_unicode=True, width=1 << 30).rstrip("\n")


def _args(call: Any) -> dict:
    return json.loads(json.dumps(_plain(dict(call.args)), ensure_ascii=False))


def _execute(runtime: Any, env: Any, call: Any, origin: str) -> Step:
    result, error = runtime.run_function(env, call.function, call.args, raise_on_error=False)
    if error is not None:
        raise RunError(f"{call.function}({_args(call)}) failed: {error}")
    return Step(call.function, _args(call), format_output(result), origin)


def _check(task: Any, output: str, pre: Any, post: Any, traces: Sequence[Any], security: bool) -> bool:
    via = task.security_from_traces if security else task.utility_from_traces
    r = via(output, pre, post, traces)
    if r is not None:
        return bool(r)
    return bool(task.security(output, pre, post) if security else task.utility(output, pre, post))


_ENV_CACHE: dict[tuple, Any] = {}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def vector_defaults(suite: Any) -> dict[str, str]:
    """{injection vector id: its benign default text} of the suite."""
    key = (suite.name, "defaults")
    if key not in _ENV_CACHE:
        _ENV_CACHE[key] = dict(suite.get_injection_vector_defaults())
    return dict(_ENV_CACHE[key])


def load_environment(suite: Any, injections: dict[str, str] | None = None) -> Any:
    """`suite.load_and_inject_default_environment(injections)`, same result, with libyaml when present and the
    parsed default environment cached (each call returns a fresh deep copy)."""
    from agentdojo.task_suite.task_suite import read_suite_file, validate_injections

    injections = dict(injections or {})
    key = (suite.name, json.dumps(injections, sort_keys=True))
    if key not in _ENV_CACHE:
        defaults = vector_defaults(suite)
        validate_injections(injections, defaults)
        text = read_suite_file(suite.name, "environment.yaml", suite.data_path).format(**{**defaults, **injections})
        env = suite.environment_type.model_validate(yaml.load(text, Loader=_Loader))
        if injections:
            return env
        _ENV_CACHE[key] = env
    return _ENV_CACHE[key].model_copy(deep=True)


def _functions_runtime(suite: Any) -> Any:
    from agentdojo.functions_runtime import FunctionsRuntime  # loaded by agentdojo_load.load_suites

    return FunctionsRuntime(suite.tools)


def run(suite: Any, user_task: Any, injection_task: Any | None = None, *, injections: dict[str, str] | None = None,
        insert_at: int = 0, scatter: random.Random | None = None,
        fillers: Sequence[tuple[int, Any]] = (), judge: Any | None = None, then: Any | None = None) -> Run:
    """Run `user_task`'s ground truth in the suite's default environment (with `injections` in its vectors).

    With `injection_task`, its ground-truth calls are computed on the environment state after the first
    `insert_at` user calls and executed there as one block, or (`scatter` given) spread over the remaining
    user calls in order. `fillers` are (position among user calls, FunctionCall) read-only extras. `judge` (default:
    `injection_task`) is the injection task whose security check is reported. `then` is a second user task the
    user also asked for, run after the first (ground truth computed on the state there; both utilities are checked
    non-strictly). Raises `RunError` when a call fails."""
    env = load_environment(suite, injections)
    env = user_task.init_environment(env)
    pre = env.model_copy(deep=True)
    runtime = _functions_runtime(suite)
    calls = list(user_task.ground_truth(env))
    steps: list[Step] = []
    traces: list[Any] = []
    pending_fill = sorted(fillers, key=lambda f: f[0])
    injected: list[Any] = []
    slots: list[int] = []
    for k in range(len(calls) + 1):
        for pos, call in [f for f in pending_fill if f[0] == k]:
            steps.append(_execute(runtime, env, call, "filler"))
            traces.append(call)
        if injection_task is not None and k == insert_at:
            injected = list(injection_task.ground_truth(env))
            rest = len(calls) - k
            if scatter is None or rest == 0:
                slots = [k] * len(injected)
            else:
                slots = sorted(k + scatter.randint(0, rest) for _ in injected)
                slots[0] = k  # the first injected call happens at the insertion point
        while injected and slots and slots[0] == k:
            call = injected.pop(0)
            slots.pop(0)
            steps.append(_execute(runtime, env, call, "injection"))
            traces.append(call)
        if k < len(calls):
            steps.append(_execute(runtime, env, calls[k], "user"))
            traces.append(calls[k])
    final = user_task.GROUND_TRUTH_OUTPUT
    if then is not None:
        for call in then.ground_truth(env):
            steps.append(_execute(runtime, env, call, "user"))
            traces.append(call)
        final = " ".join(x for x in (final.strip(), then.GROUND_TRUTH_OUTPUT.strip()) if x)
        utility = all(bool(t.utility(o, pre, env, strict=False))
                      for t, o in ((user_task, final), (then, final)))
    else:
        utility = _check(user_task, final, pre, env, traces, security=False)
    judge = judge if judge is not None else injection_task
    security = None if judge is None else _check(judge, final, pre, env, traces, security=True)
    return Run(tuple(steps), final, utility, security)


def seen_vectors(suite: Any, user_task: Any) -> dict[str, int]:
    """{injection vector id: index of the first user call whose output shows it} for `user_task`'s calls."""
    vectors = sorted(vector_defaults(suite))
    canaries = {v: _CANARY.format(i) for i, v in enumerate(vectors)}
    try:
        r = run(suite, user_task, injections=canaries)
    except RunError:
        return {}
    seen: dict[str, int] = {}
    for i, step in enumerate(r.steps):
        for v, c in canaries.items():
            if c in step.output:
                seen.setdefault(v, i)
    return dict(sorted(seen.items()))


def read_only_calls(suite: Any) -> list[Any]:
    """Distinct read-only calls (by name prefix) of all the suite's user-task ground truths, sorted."""
    env = load_environment(suite)
    out: dict[str, Any] = {}
    for tid in sorted(suite.user_tasks):
        for call in suite.user_tasks[tid].ground_truth(env.model_copy(deep=True)):
            if call.function.startswith(READ_ONLY_PREFIXES):
                out.setdefault(json.dumps([call.function, _args(call)], sort_keys=True), call)
    return [out[k] for k in sorted(out)]
