"""User tasks: a task file (JSON/YAML) over JSONL data, an HF dataset or a TFDS dataset -> a checked, registered Task.

Everything is validated before anything is written to the cache; each error is one `TaskFileError` line naming
file:line or the task-file key. The task's domain has one question per label field: "label" (the primary
prompt's) plus one per distinct `label_field` of the alternative prompts. The task file format is in README.md
("How to add a task").
"""
from __future__ import annotations

import json
import logging
import os
import string
from pathlib import Path
from typing import Any, Mapping, Sequence

from monitor_jax.core import io
from monitor_jax.data import tasks
from monitor_jax.data.builders import jsonl
from monitor_jax.data.builders.jsonl import TaskFileError, messages_to_text, short_repr  # noqa: F401 (public here)
from monitor_jax.data.builders.suite import DOMAINS as BUNDLED_DOMAINS
from monitor_jax.data.items import Item
from monitor_jax.data.tasks import RELATIONS, Domain, Prompt, Question, Task

log = logging.getLogger(__name__)

DEFAULT_LABEL_WORDS = ("Yes", "No")
TASK_KEYS = ("name", "domain", "description", "prompt", "system", "label_words", "alternative_prompts", "data")
PROMPT_KEYS = ("name", "prompt", "relation", "label_field", "system")
DATA_KEYS = ("train", "validation", "test", "all")
_SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
                  "dev": "validation", "test": "test"}
_SENTINEL = "\ue000input\ue001"
_STATS: dict[str, dict] = {}
_OWNER: dict[str, str] = {}  # user domain -> the task that registered it


def stats(task_name: str) -> dict:
    """Row, dedup and per-split label counts of a user task loaded in this process."""
    return _STATS[task_name]


# ------------------------------------------------------------------------------------------ checks

def _check_template(where: str, key: str, template: Any) -> str:
    if not isinstance(template, str):
        raise TaskFileError(f"{where}: {key}: must be a string containing {{input}} once")
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
        if fields != ["input"] or template.count("{input}") != 1:
            raise ValueError(f"found fields {fields}")
    except ValueError as e:
        raise TaskFileError(f"{where}: {key}: must contain {{input}} exactly once and no other {{...}} field "
                            f"(write literal braces as {{{{ and }}}}); {e}") from None
    return template


def _opt_str(where: str, key: str, value: Any, *, empty_ok: bool = False) -> str | None:
    if value is not None and (not isinstance(value, str) or (not value.strip() and not empty_ok)):
        raise TaskFileError(f"{where}: {key}: must be a non-empty string, got {short_repr(value)}")
    return value


def _check_label_words(where: str, words: Any) -> tuple[str, str]:
    if (not isinstance(words, (list, tuple)) or len(words) != 2 or not all(isinstance(w, str) and w for w in words)
            or words[0] == words[1]):
        raise TaskFileError(f"{where}: label_words: must be two different non-empty strings [positive, negative], "
                            f"got {short_repr(words)}")
    return (words[0], words[1])


def _check_prompts(where: str, prompt: Any, system: Any, alternatives: Any) -> tuple[Prompt, ...]:
    system = _opt_str(where, "system", system, empty_ok=True)
    out = [Prompt("primary", _check_template(where, "prompt", prompt), system=system)]
    if not isinstance(alternatives, (list, tuple)):
        raise TaskFileError(f"{where}: alternative_prompts: must be a list of {{name, prompt, relation}} mappings")
    for i, alt in enumerate(alternatives):
        key = f"alternative_prompts[{i}]"
        if not isinstance(alt, Mapping):
            raise TaskFileError(f"{where}: {key}: must be a mapping with keys {list(PROMPT_KEYS)}")
        _unknown_keys(where, key + ".", alt, PROMPT_KEYS)
        name = _opt_str(where, f"{key}.name", alt.get("name"))
        if name is None or name == "primary" or name in {p.name for p in out}:
            raise TaskFileError(f"{where}: {key}.name: needs a unique name other than 'primary', got {name!r}")
        template = _check_template(where, f"{key}.prompt", alt.get("prompt"))
        relation, field = alt.get("relation"), _opt_str(where, f"{key}.label_field", alt.get("label_field"))
        if relation not in RELATIONS:
            raise TaskFileError(f"{where}: {key}.relation: must be one of {list(RELATIONS)}, got {relation!r}")
        if field in ("id", "input"):
            raise TaskFileError(f"{where}: {key}.label_field: {field!r} is not a label field")
        if relation == "inverted" and field is not None:
            raise TaskFileError(f"{where}: {key}: relation 'inverted' flips the task's own labels; it cannot take "
                                "a label_field (use relation independent/partly_correlated/same with it)")
        if relation in ("independent", "partly_correlated") and field in (None, "label"):
            raise TaskFileError(f"{where}: {key}.label_field: relation {relation!r} asks a different question: "
                                "name the row field holding its labels")
        alt_system = _opt_str(where, f"{key}.system", alt.get("system", system), empty_ok=True)
        question = None if field in (None, "label") else field
        out.append(Prompt(name, template, relation=relation, question=question, system=alt_system))
    return tuple(out)


def _unknown_keys(where: str, prefix: str, mapping: Mapping, allowed: Sequence[str]) -> None:
    for k in mapping:
        if k not in allowed:
            raise TaskFileError(f"{where}: {prefix}{k}: unknown key (allowed: {', '.join(allowed)})")


def answer_context(tokenizer: Any, prompt: Prompt) -> str:
    """The rendered text between the input and the answer token (where the label word is tokenized)."""
    if getattr(tokenizer, "chat_template", None) is None:
        return prompt.template.format(input=_SENTINEL).split(_SENTINEL, 1)[1]
    messages = [{"role": "system", "content": prompt.system}] if prompt.system is not None else []
    messages.append({"role": "user", "content": prompt.template.format(input=_SENTINEL)})
    return tokenizer.render_chat(messages, add_generation_prompt=True).split(_SENTINEL, 1)[1]


def check_label_words(where: str, tokenizer: Any, label_words: Sequence[str], prompts: Sequence[Prompt]) -> None:
    """Each label word must be one token at every prompt's answer slot (as `pipeline` will tokenize it)."""
    from monitor_jax.model.tokenizer import LabelWordError

    for p in prompts:
        try:
            tokenizer.resolve_label_words(tuple(label_words), context=answer_context(tokenizer, p))
        except LabelWordError as e:
            raise TaskFileError(f"{where}: label_words: {e} (prompt {p.name!r})") from None


def _check_names(where: str, name: Any, domain: Any) -> tuple[str, str]:
    name = _opt_str(where, "name", name)
    if name is None:
        raise TaskFileError(f"{where}: name: required")
    domain = _opt_str(where, "domain", name if domain is None else domain)
    if name in tasks.TASKS and tasks.TASKS[name].domain in BUNDLED_DOMAINS:
        raise TaskFileError(f"{where}: name: {name!r} is a bundled task; choose another name")
    if domain in BUNDLED_DOMAINS:
        raise TaskFileError(f"{where}: domain: {domain!r} is a bundled domain; choose another name")
    if _OWNER.get(domain, name) != name:
        raise TaskFileError(f"{where}: domain: {domain!r} already belongs to task {_OWNER[domain]!r}; ask other "
                            "questions about the same data with alternative_prompts (label_field) in one task file")
    return name, domain


# ------------------------------------------------------------------------------------------ registering

def _register(name: str, domain: str, description: str, prompts: tuple[Prompt, ...], label_words: tuple[str, str],
              splits: dict[str, list[Item]], label_fields: Sequence[str], stats_: dict) -> Task:
    questions = {}
    for q in label_fields:
        text = next((p.template for p in prompts if (p.question or "label") == q), q)
        questions[q] = Question(lambda it, q=q: int(it.meta[q]), text, text, text)
    task = Task(name, domain, "label", prompts, label_words, description)
    tasks.register(task, Domain(domain, lambda: splits, questions, item_noun="input"))
    _OWNER[domain] = name
    _STATS[name] = stats_
    counts = " ".join(f"{s}={v['n']}({v['positives']['label']}+)" for s, v in stats_["splits"].items())
    d = stats_["dedup"]
    log.info("user task %s: %s; dedup: %d rows, %d duplicates and %d conflicting dropped, %d empty", name, counts,
             d["n_in"], d["duplicates_dropped"], d["conflicts_dropped"], d["empty_dropped"])
    return task


def _label_fields(prompts: Sequence[Prompt]) -> tuple[str, ...]:
    return ("label", *dict.fromkeys(p.question for p in prompts if p.question))


def _source(domain: str) -> str:
    return domain.replace(":", "_")  # item ids are "source:..."; the source must not contain ":"


# ------------------------------------------------------------------------------------------ task files

def read_task_file(path: str | os.PathLike) -> dict:
    """The task file's mapping (JSON for .json, YAML for .yaml/.yml); syntax errors name file:line."""
    path = Path(path)
    text = io.read_text(path, TaskFileError)
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as e:
            raise TaskFileError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise TaskFileError(f"{path}{line}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
    else:
        raise TaskFileError(f"{path}: task files end in .json, .yaml or .yml")
    if not isinstance(spec, dict):
        raise TaskFileError(f"{path}: the task file must be a mapping with keys {', '.join(TASK_KEYS)}")
    return spec


def load_task_file(path: str | os.PathLike, tokenizer: Any = None) -> Task:
    """Validate a task file and all its JSONL rows, build (or reuse) its dataset, register and return the task.

    With a `tokenizer` (`model.tokenizer.Tokenizer`), each label word must be one token at the answer slot of
    every prompt. Counts (rows, duplicates, conflicts, per-split labels) are logged and kept in `stats(name)`."""
    path = Path(path)
    spec, where = read_task_file(path), str(path)
    _unknown_keys(where, "", spec, TASK_KEYS)
    name, domain = _check_names(where, spec.get("name"), spec.get("domain"))
    description = _opt_str(where, "description", spec.get("description", ""), empty_ok=True)
    if "prompt" not in spec:
        raise TaskFileError(f"{where}: prompt: required (a template containing {{input}} once)")
    prompts = _check_prompts(where, spec["prompt"], spec.get("system"), spec.get("alternative_prompts") or [])
    label_words = _check_label_words(where, spec.get("label_words", list(DEFAULT_LABEL_WORDS)))
    files = _data_files(where, path.parent, spec.get("data"))
    if tokenizer is not None:
        check_label_words(where, tokenizer, label_words, prompts)
    label_fields = _label_fields(prompts)
    builder = jsonl.prepare(jsonl.JsonlSpec(name, _source(domain), files, label_fields))
    return _register(name, domain, description or "", prompts, label_words, jsonl.load_prepared(builder),
                     label_fields, jsonl.jsonl_stats(builder))


def _data_files(where: str, base: Path, data: Any) -> dict[str, str]:
    if not isinstance(data, Mapping) or not data:
        raise TaskFileError(f"{where}: data: required: a mapping of train/validation/test (or all) to JSONL files")
    _unknown_keys(where, "data.", data, DATA_KEYS)
    if "all" in data and len(data) > 1:
        raise TaskFileError(f"{where}: data.all: give either 'all' alone or train/validation/test files")
    files = {}
    for split, rel in data.items():
        if not isinstance(rel, str) or not rel:
            raise TaskFileError(f"{where}: data.{split}: must be a file path, got {short_repr(rel)}")
        p = base / Path(rel).expanduser()
        if not p.is_file():
            raise TaskFileError(f"{where}: data.{split}: file not found: {p}")
        files[split] = str(p)
    return files


# ------------------------------------------------------------------------------------------ HF and TFDS

def _plain(value: Any) -> Any:
    """A JSON-compatible copy of a dataset value (bytes decoded, numpy scalars/arrays to Python)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def _check_spec(where: str, name: str, domain: str | None, prompt: Any, system: Any, label_words: Any,
                alternative_prompts: Sequence[Mapping], tokenizer: Any) -> tuple[str, str, tuple[Prompt, ...], tuple]:
    """The HF/TFDS loaders' checks, run before any data is loaded."""
    name, domain = _check_names(where, name, domain)
    prompts = _check_prompts(where, prompt, system, list(alternative_prompts))
    label_words = _check_label_words(where, label_words)
    if tokenizer is not None:
        check_label_words(where, tokenizer, label_words, prompts)
    return name, domain, prompts, label_words


def _from_rows(where: str, parts: Mapping[str, tuple[str, Any]], checked: tuple, *, text_field: str,
               label_field: str, description: str) -> Task:
    """Shared tail of the HF/TFDS loaders: `parts` maps our split names to (description, rows)."""
    name, domain, prompts, label_words = checked
    fields = {"label": label_field, **{f: f for f in _label_fields(prompts)[1:]}}
    rows = {s: ((f"{desc} row {i}", _plain(dict(r))) for i, r in enumerate(ds)) for s, (desc, ds) in parts.items()}
    items = jsonl.parse_rows(rows, source=_source(domain), text_field=text_field, label_fields=fields, id_field=None)
    splits, st = jsonl.finalize(items, {s: desc for s, (desc, _) in parts.items()}, fields)
    return _register(name, domain, description, prompts, label_words, splits, tuple(fields), st)


def _split_parts(where: str, available: Sequence[str], split_map: Mapping[str, str] | None) -> dict[str, str]:
    """Our split -> source split: `split_map` as given (checked), else train/validation/test by common names."""
    if split_map is None:
        split_map = {}
        for src in available:
            split_map.setdefault(_SPLIT_ALIASES.get(src.lower(), ""), src)
        split_map.pop("", None)
    if not split_map or ("all" in split_map and len(split_map) > 1) or set(split_map) - set(DATA_KEYS):
        raise TaskFileError(f"{where}: split_map: need our splits (train/validation/test, or all alone) -> source "
                            f"splits; got {dict(split_map)!r} (source splits: {list(available)})")
    return dict(split_map)


def from_hf_dataset(path_or_name: str, *, text_field: str, label_field: str, prompt: str,
                    split_map: Mapping[str, str] | None = None, name: str | None = None, domain: str | None = None,
                    system: str | None = None, label_words: Sequence[str] = DEFAULT_LABEL_WORDS,
                    alternative_prompts: Sequence[Mapping] = (), tokenizer: Any = None, description: str = "",
                    **load_kwargs: Any) -> Task:
    """A task over a Hugging Face dataset: `datasets.load_dataset(path_or_name, **load_kwargs)`.

    `split_map` maps our splits to the dataset's (e.g. {"train": "train", "validation": "dev"}, slices allowed);
    by default train/validation(valid, val, dev)/test are used; a missing validation/test split is carved from
    train by hash. `text_field` may hold a string or chat messages; `label_field` 0/1-like labels. `name` is
    required for the generic builders ("json", "csv", "parquet", ...)."""
    import datasets

    where = f"from_hf_dataset({path_or_name!r})"
    if name is None and path_or_name in ("json", "csv", "parquet", "text", "arrow", "pandas", "webdataset"):
        raise TaskFileError(f"{where}: name: required for a generic '{path_or_name}' dataset")
    checked = _check_spec(where, name or path_or_name, domain, prompt, system, label_words, alternative_prompts,
                          tokenizer)  # fail before downloading anything
    if split_map is None:
        dd = datasets.load_dataset(path_or_name, **load_kwargs)
        chosen = _split_parts(where, list(dd), None)
        parts = {s: (f"{path_or_name}[{src}]", dd[src]) for s, src in chosen.items()}
    else:
        chosen = _split_parts(where, [], split_map)
        parts = {s: (f"{path_or_name}[{src}]", datasets.load_dataset(path_or_name, split=src, **load_kwargs))
                 for s, src in chosen.items()}
    return _from_rows(where, parts, checked, text_field=text_field, label_field=label_field, description=description)


def _records(source: Any) -> Any:
    return (source[i] for i in range(len(source)))


def from_tfds(name: str, *, text_key: str, label_key: str, prompt: str, data_dir: str | os.PathLike | None = None,
              splits: Mapping[str, str] | None = None, task_name: str | None = None, domain: str | None = None,
              system: str | None = None, label_words: Sequence[str] = DEFAULT_LABEL_WORDS,
              alternative_prompts: Sequence[Mapping] = (), tokenizer: Any = None, description: str = "") -> Task:
    """A task over a TFDS dataset read with `tfds.data_source(name, data_dir=...)` (array_record; no TensorFlow).

    E.g. `from_tfds("imdb_reviews", text_key="text", label_key="label", prompt=...)`. `splits` maps our splits to
    TFDS splits (slices allowed); by default train/validation/test by common names, missing ones carved from
    train. The task is named `task_name` (default: `name`)."""
    import tensorflow_datasets as tfds

    where = f"from_tfds({name!r})"
    checked = _check_spec(where, task_name or name, domain, prompt, system, label_words, alternative_prompts,
                          tokenizer)
    ddir = None if data_dir is None else os.fspath(data_dir)
    if splits is None:
        sources = tfds.data_source(name, data_dir=ddir)
        chosen = _split_parts(where, list(sources), None)
        parts = {s: (f"{name}[{src}]", sources[src]) for s, src in chosen.items()}
    else:
        chosen = _split_parts(where, [], splits)
        parts = {s: (f"{name}[{src}]", tfds.data_source(name, split=src, data_dir=ddir)) for s, src in chosen.items()}
    parts = {s: (d, _records(ds)) for s, (d, ds) in parts.items()}
    return _from_rows(where, parts, checked, text_field=text_key, label_field=label_key, description=description)


