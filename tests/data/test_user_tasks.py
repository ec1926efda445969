"""User tasks: task files over JSONL data (JSON/YAML), the array_record builder, every error case, HF/TFDS loaders."""
import json

import pytest
import tensorflow_datasets as tfds
import yaml

from monitor_jax.data import hygiene, tasks, user_tasks
from monitor_jax.data.builders import jsonl
from monitor_jax.data.user_tasks import TaskFileError
from monitor_jax.model.tokenizer import Tokenizer

PROMPT = "Here is an email:\n\n{input}\n\nIs this email a fraud attempt? Answer Yes or No."
URGENT = "Here is an email:\n\n{input}\n\nDoes the email ask for a reply today? Answer Yes or No."


@pytest.fixture(scope="module")
def tok(smollm2_gguf):
    return Tokenizer.from_gguf(smollm2_gguf)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache dir and a private task registry (restored after the test)."""
    c = tmp_path / "cache"
    monkeypatch.setenv("MONITOR_JAX_CACHE", str(c))
    for mod, attr in ((tasks, "TASKS"), (tasks, "DOMAINS"), (tasks, "_ITEMS"), (user_tasks, "_OWNER"),
                      (user_tasks, "_STATS")):
        monkeypatch.setattr(mod, attr, dict(getattr(mod, attr)))
    return c


def written(cache):
    return sorted(str(p) for p in cache.rglob("*")) if cache.exists() else []


def rows(n, start=0, **extra):
    """n distinct emails; label alternates (fraud on even i); `urgent` is 1 when i % 3 == 0."""
    return [{"id": f"e{i}", "input": f"Email number {i}: please review invoice {i * 7} for the account.",
             "label": ["yes", "no"][i % 2], "urgent": int(i % 3 == 0), "sender": f"s{i}@x.org", **extra}
            for i in range(start, start + n)]


def write_jsonl(path, items):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in items))
    return path


def make_task(tmp_path, ext=".yaml", splits=None, **spec):
    """A task folder with train/val/test JSONL files; `spec` overrides task-file keys (None deletes one)."""
    d = tmp_path / "task"
    files = splits or {"train": rows(24), "validation": rows(10, 100), "test": rows(10, 200)}
    for split, items in files.items():
        write_jsonl(d / "data" / f"{split}.jsonl", items)
    task = {"name": "my_org/fraud", "domain": "fraud_emails", "prompt": PROMPT, "system": None,
            "label_words": ["Yes", "No"],
            "alternative_prompts": [{"name": "paraphrase", "prompt": "Fraud check:\n{input}\nYes or No?",
                                     "relation": "same"},
                                    {"name": "urgency", "prompt": URGENT, "relation": "independent",
                                     "label_field": "urgent"}],
            "data": {s: f"data/{s}.jsonl" for s in files}}
    task.update(spec)
    task = {k: v for k, v in task.items() if v is not None}
    path = d / f"task{ext}"
    path.write_text(json.dumps(task) if ext == ".json" else yaml.safe_dump(task))
    return path


@pytest.mark.parametrize("ext", [".json", ".yaml", ".yml"])
def test_task_file_happy_path(tmp_path, cache, ext):
    path = make_task(tmp_path, ext, system="You review emails.")
    task = user_tasks.load_task_file(path)
    assert tasks.get("my_org/fraud") is task and task.domain == "fraud_emails" and task.label_words == ("Yes", "No")
    exs = tasks.examples("my_org/fraud", "train")
    want = {f"fraud_emails:e{i}": int(i % 2 == 0) for i in range(24)}
    assert {e.id: e.label for e in exs} == want
    assert all(e.template == PROMPT and e.system == "You review emails." and e.label_words == ("Yes", "No")
               for e in exs)
    assert {e.input for e in tasks.examples(task, "test")} == {r["input"] for r in rows(10, 200)}
    assert len(list((cache / "tfds" / "jsonl_task").glob("*/1.0.0/*.array_record*"))) == 3
    st = user_tasks.stats("my_org/fraud")
    assert st["splits"]["validation"] == {"n": 10, "positives": {"label": 5, "urgent": 3}}


def test_label_words_checked_with_tokenizer(tmp_path, cache, tok):
    task = user_tasks.load_task_file(make_task(tmp_path, label_words=["Real", "Safe"]), tokenizer=tok)
    assert task.label_words == ("Real", "Safe")
    assert {e.label_words for e in tasks.examples(task, "validation")} == {("Real", "Safe")}


def test_messages_input(tmp_path, cache):
    msgs = [{"role": "user", "content": "Wire me $500 now"}, {"role": "assistant", "content": "Why?"}]
    data = {"train": rows(6) + [{"id": "chat", "input": msgs, "label": True}], "validation": rows(4, 50),
            "test": rows(4, 60)}
    user_tasks.load_task_file(make_task(tmp_path, splits=data, alternative_prompts=None))
    ex = next(e for e in tasks.examples("my_org/fraud", "train") if e.id == "fraud_emails:chat")
    assert ex.input == "USER: Wire me $500 now\n\nASSISTANT: Why?" == user_tasks.messages_to_text(msgs)
    assert ex.label == 1
    item = next(it for it in tasks.domain_items("fraud_emails", "train") if it.id == "fraud_emails:chat")
    assert item.meta["messages"] == msgs


def test_all_is_split_by_hygiene(tmp_path, cache):
    data = {"all": [{"input": f"Message {i} about topic {i % 7}", "label": i % 2} for i in range(200)]}
    user_tasks.load_task_file(make_task(tmp_path, splits=data, alternative_prompts=None))
    seen = {}
    for split in hygiene.SPLITS:
        for it in tasks.domain_items("fraud_emails", split):
            assert hygiene.split_of(it.text) == split
            assert it.id.startswith("fraud_emails:") and len(it.id) == len("fraud_emails:") + 16  # hash ids
            seen[it.text] = split
    assert len(seen) == 200
    n = {s: sum(v == s for v in seen.values()) for s in hygiene.SPLITS}
    assert n["train"] > n["validation"] > 10 and n["test"] > 10


def test_alternative_prompts_labels(tmp_path, cache):
    task = user_tasks.load_task_file(make_task(tmp_path, alternative_prompts=[
        {"name": "urgency", "prompt": URGENT, "relation": "independent", "label_field": "urgent"},
        {"name": "not_fraud", "prompt": "Is this email legitimate?\n{input}", "relation": "inverted"}]))
    by = {p: {e.id: e.label for e in tasks.examples(task, "train", p)} for p in ("primary", "urgency", "not_fraud")}
    assert by["urgency"] == {f"fraud_emails:e{i}": int(i % 3 == 0) for i in range(24)}
    assert by["urgency"] != by["primary"]
    assert by["not_fraud"] == {k: 1 - v for k, v in by["primary"].items()}
    assert tasks.examples(task, "train", "urgency")[0].template == URGENT
    assert set(tasks.DOMAINS["fraud_emails"].questions) == {"label", "urgent"}


def test_dedup_conflicts_and_cross_split(tmp_path, cache):
    train = rows(24) + [{"input": "  EMAIL number 0: please review invoice 0 for the account!", "label": "YES"},
                        {"input": "Same text, two labels", "label": 1}, {"input": "same text, two labels.", "label": 0}]
    test = rows(10, 200) + [{"input": rows(1, 3)[0]["input"], "label": 0}]  # a train text again: dropped from test
    user_tasks.load_task_file(make_task(tmp_path, splits={"train": train, "validation": rows(10, 100), "test": test},
                                        alternative_prompts=None))
    texts = {s: {it.text for it in tasks.domain_items("fraud_emails", s)} for s in hygiene.SPLITS}
    assert len(texts["train"]) == 24 and "Same text, two labels" not in texts["train"]
    assert len(texts["test"]) == 10 and not texts["test"] & texts["train"]
    d = user_tasks.stats("my_org/fraud")["dedup"]
    assert (d["n_in"], d["duplicates_dropped"], d["conflicts_dropped"]) == (24 + 3 + 10 + 10 + 1, 2, 2)


def test_edited_file_rebuilds(tmp_path, cache):
    path = make_task(tmp_path, alternative_prompts=None)
    user_tasks.load_task_file(path)
    assert tasks.examples("my_org/fraud", "test")[0].label == 1  # e200 is fraud
    user_tasks.load_task_file(path)  # unchanged: the prepared dataset is reused
    assert len(list((cache / "tfds" / "jsonl_task").iterdir())) == 1
    write_jsonl(path.parent / "data" / "test.jsonl", [{**r, "label": 1 - (i % 2 == 0)} for i, r in
                                                      enumerate(rows(10, 200))])
    user_tasks.load_task_file(path)
    assert tasks.examples("my_org/fraud", "test")[0].label == 0
    assert len(list((cache / "tfds" / "jsonl_task").iterdir())) == 2


def _bad_row(line, row, urgent=True):
    def edit(data):
        data["train"].insert(line - 1, {**row, "urgent": 0} if urgent and isinstance(row, dict) else row)
    return edit


ERRORS = {  # name: (edit of the data or the task-file spec, expected text; {train} etc. are the data files)
    "bad_json": (_bad_row(3, '{"input": "x", "label": 1,,}\n'), "{train}:3: invalid JSON ("),
    "missing_input": (_bad_row(2, {"text": "x", "label": 1}), "{train}:2: missing 'input'"),
    "missing_label": (_bad_row(5, {"input": "x"}), "{train}:5: missing 'label'"),
    "label_two": (_bad_row(4, {"input": "x", "label": 2}), "{train}:4: 'label' must be binary"),
    "label_maybe": (_bad_row(1, {"input": "x", "label": "maybe"}), "{train}:1: 'label' must be binary"),
    "bad_input": (_bad_row(1, {"input": 7, "label": 1}), "{train}:1: 'input' must be a string or"),
    "duplicate_id": (_bad_row(9, {"id": "e2", "input": "another text", "label": 1}),
                     "{train}:9: duplicate id 'e2' (first at {train}:3)"),
    "alt_field_missing": (_bad_row(2, {"input": "x", "label": 1}, urgent=False), "{train}:2: missing 'urgent'"),
    "one_class": (lambda d: d.update(test=[r for r in d["test"] if r["label"] == "yes"]),
                  "{test}: split 'test' has only 'label' = 1"),
    "alt_one_class": (lambda d: d.update(validation=[{**r, "urgent": 0} for r in d["validation"]]),
                      "{validation}: split 'validation' has only 'urgent' = 0"),
    "empty_after_dedup": (lambda d: d.update(validation=[{**r, "id": f"v{i}"} for i, r in enumerate(rows(4))]),
                          "{validation}: split 'validation' is empty"),  # all copies of train texts
    "no_input": ({"prompt": "Is this fraud?"}, "{task}: prompt: must contain {{input}} exactly once"),
    "two_inputs": ({"prompt": "{input} and {input}"}, "{task}: prompt: must contain"),
    "other_field": ({"prompt": "{input} {name}"}, "{task}: prompt: must contain"),
    "alt_prompt": ({"alternative_prompts": [{"name": "a", "prompt": "{input}", "relation": "same"},
                                            {"name": "b", "prompt": "no slot", "relation": "same"}]},
                   "{task}: alternative_prompts[1].prompt: must contain"),
    "alt_relation": ({"alternative_prompts": [{"name": "a", "prompt": "{input}", "relation": "opposite"}]},
                     "{task}: alternative_prompts[0].relation: must be one of"),
    "alt_needs_field": ({"alternative_prompts": [{"name": "a", "prompt": "{input}", "relation": "independent"}]},
                        "{task}: alternative_prompts[0].label_field:"),
    "alt_unknown_key": ({"alternative_prompts": [{"name": "a", "prompt": "{input}", "relation": "same", "x": 1}]},
                        "{task}: alternative_prompts[0].x: unknown key"),
    "unknown_key": ({"promt": PROMPT}, "{task}: promt: unknown key"),
    "unknown_data_key": ({"data": {"train": "data/train.jsonl", "dev": "data/validation.jsonl"}},
                         "{task}: data.dev: unknown key"),
    "missing_file": ({"data": {"all": "data/nope.jsonl"}}, "{task}: data.all: file not found"),
    "no_name": ({"name": None}, "{task}: name: required"),
    "bundled_domain": ({"domain": "news"}, "{task}: domain: 'news' is a bundled domain"),
    "label_words_shape": ({"label_words": ["Yes"]}, "{task}: label_words: must be two"),
    "label_word_tokens": ({"label_words": ["Yes!!", "No"]},
                          "{task}: label_words: label word 'Yes!!' is not one token"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_name_the_place_and_write_nothing(tmp_path, cache, tok, case):
    edit, expected = ERRORS[case]
    data = {"train": rows(24), "validation": rows(10, 100), "test": rows(10, 200)}
    spec = {}
    if callable(edit):
        edit(data)
    else:
        spec = edit
    path = make_task(tmp_path, ".json" if case == "unknown_key" else ".yaml", splits=data, **spec)
    names = {s: str(path.parent / "data" / f"{s}.jsonl") for s in data}
    with pytest.raises(TaskFileError) as e:
        user_tasks.load_task_file(path, tokenizer=tok if case == "label_word_tokens" else None)
    msg = str(e.value)
    assert expected.format(task=path, **names) in msg and "\n" not in msg, msg
    assert written(cache) == []
    assert "my_org/fraud" not in tasks.TASKS


def test_task_file_syntax_errors_name_the_line(tmp_path, cache):
    bad = tmp_path / "t.yaml"
    bad.write_text("name: x\nprompt: [unclosed\ndata: {}\n")
    with pytest.raises(TaskFileError, match=rf"{bad}:\d+: invalid YAML"):
        user_tasks.load_task_file(bad)
    bad = tmp_path / "t.json"
    bad.write_text('{"name": "x",\n "prompt": }')
    with pytest.raises(TaskFileError, match=rf"{bad}:2: invalid JSON"):
        user_tasks.load_task_file(bad)
    assert written(cache) == []


# ------------------------------------------------------------------------------------------ HF / TFDS

def test_from_hf_dataset_local_json(tmp_path, cache):
    train = [{"text": f"I liked film {i} a lot" if i % 2 else f"Film {i} was dull", "stars": "yes" if i % 2 else "no"}
             for i in range(60)]
    test = [{"text": f"Review {i}: " + ("great" if i % 2 else "bad"), "stars": bool(i % 2)} for i in range(12)]
    files = {"train": str(write_jsonl(tmp_path / "hf" / "train.jsonl", train)),
             "test": str(write_jsonl(tmp_path / "hf" / "test.jsonl", test))}
    task = user_tasks.from_hf_dataset("json", data_files=files, cache_dir=str(tmp_path / "hf_cache"),
                                      name="hf/reviews", text_field="text", label_field="stars",
                                      prompt="Review:\n{input}\nIs it positive?")
    assert tasks.get("hf/reviews") is task
    got = {e.input: e.label for s in hygiene.SPLITS for e in tasks.examples(task, s)}
    assert got == {**{r["text"]: int(r["stars"] == "yes") for r in train}, **{r["text"]: int(r["stars"]) for r in test}}
    val = {e.input for e in tasks.examples(task, "validation")}
    carved = {r["text"] for r in train if hygiene.split_of(r["text"], 0, (0.85, 0.15, 0.0)) == "validation"}
    assert val and val == carved
    with pytest.raises(TaskFileError, match=r"from_hf_dataset\('json'\): name: required"):
        user_tasks.from_hf_dataset("json", data_files=files, text_field="text", label_field="stars", prompt="{input}")
    bad = str(write_jsonl(tmp_path / "hf" / "bad.jsonl", train[:5] + [{"text": "meh", "stars": "maybe"}]))
    with pytest.raises(TaskFileError, match=r"json\[train\] row 5: 'stars' must be binary"):
        user_tasks.from_hf_dataset("json", data_files={"train": bad}, cache_dir=str(tmp_path / "hf_cache"),
                                   name="hf/bad", text_field="text", label_field="stars", prompt="{input}")


class TinyReviews(tfds.core.GeneratorBasedBuilder):
    """A tiny IMDB-like dataset (text, ClassLabel neg/pos) with train and test splits."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
            {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=["neg", "pos"])}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(0, 50), "test": self._generate_examples(50, 66)}

    def _generate_examples(self, lo, hi):
        for i in range(lo, hi):
            yield i, {"text": f"Movie {i} was " + ("wonderful" if i % 2 else "boring"), "label": i % 2}


def test_from_tfds_local_array_record(tmp_path, cache):
    data_dir = tmp_path / "tfds_data"
    TinyReviews(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
    task = user_tasks.from_tfds("tiny_reviews", data_dir=data_dir, text_key="text", label_key="label",
                                prompt="Movie review:\n{input}\nIs the review positive?", task_name="tiny/positive")
    got = {e.input: e.label for s in hygiene.SPLITS for e in tasks.examples(task, s)}
    assert got == {f"Movie {i} was " + ("wonderful" if i % 2 else "boring"): i % 2 for i in range(66)}
    assert {e.input for e in tasks.examples(task, "test")} == {f"Movie {i} was " + ("wonderful" if i % 2 else
                                                                                       "boring") for i in range(50, 66)}
    assert tasks.examples(task, "validation")  # carved from train
    task2 = user_tasks.from_tfds("tiny_reviews", data_dir=data_dir, text_key="text", label_key="label",
                                 prompt="{input}", splits={"all": "train"}, task_name="tiny/all", domain="tiny_all")
    assert sum(len(tasks.domain_items(task2.domain, s)) for s in hygiene.SPLITS) == 50
