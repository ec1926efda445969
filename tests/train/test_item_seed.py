"""`task_component(item_seed=...)`: the limited items are drawn with a fixed seed, so every run seed trains on the
same set (C3's small in-domain set), while the default keeps drawing them with the run seed."""
from monitor_jax.core import config as config_lib
from monitor_jax.experiment import cells
from monitor_jax.train import data as train_data

x = config_lib.load_module("configs/experiment.py")
TASK = "requests/harmful"


def _ids(component, seed):
    c = x.get_config()
    with c.unlocked():
        c.seed = seed
        c.data.stages = [x.stage(None, component)]
    (stage,) = train_data.build_stages(c)
    return [e.id for comp in stage.components for e in comp.examples]


def test_a_fixed_item_seed_keeps_one_set_across_run_seeds():
    fixed = x.task_component("in", [TASK], limit_per_task=32, balance=1.0, item_seed=0)
    drawn = x.task_component("in", [TASK], limit_per_task=32, balance=1.0)
    assert len(_ids(fixed, 0)) == 32
    assert _ids(fixed, 1) == _ids(fixed, 2) == _ids(fixed, 0) == _ids(drawn, 0)
    assert set(_ids(drawn, 1)) != set(_ids(drawn, 0))  # without it the run seed draws another set


def test_item_seed_enters_the_run_key_only_when_set():
    plain = x.arm("a", x.task_component("in", [TASK], limit_per_task=32))
    fixed = x.arm("a", x.task_component("in", [TASK], limit_per_task=32, item_seed=0))
    assert "item_seed" not in plain.stages[0].components[0]
    c = x.get_config()
    keys = [cells.run_key(cells.run_config(c, a, 1), ["s"], 96) for a in (plain, fixed)]
    assert keys[0] != keys[1]


def test_a_task_file_enters_the_run_key_by_content_and_only_where_its_task_is_trained(tmp_path, monkeypatch):
    """C8's labeller is one run whether or not the pseudo-label task files are in `data.task_files` (it does not read
    them); an arm that trains on a task file's task is keyed by the file's data, so new pseudo-labels retrain it."""
    import json

    from monitor_jax.data import tasks, user_tasks

    for mod, attr in ((tasks, "TASKS"), (tasks, "DOMAINS"), (tasks, "_ITEMS"), (user_tasks, "_OWNER"),
                      (user_tasks, "_STATS")):
        monkeypatch.setattr(mod, attr, dict(getattr(mod, attr)))
    monkeypatch.setenv("MONITOR_JAX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(train_data, "_REGISTERED", {})
    data = tmp_path / "task" / "train.jsonl"
    data.parent.mkdir()

    def write(flip: int) -> str:
        data.write_text("".join(json.dumps({"id": f"r{i}", "input": f"request number {i}", "label": (i + flip) % 2})
                                + "\n" for i in range(24)))
        train_data._REGISTERED.clear()
        return str(path)

    path = tmp_path / "task" / "task.json"
    path.write_text(json.dumps({"name": "mine/pseudo", "domain": "mine", "prompt": "Harmful?\n{input}",
                                "data": {"all": "train.jsonl"}}))
    other = x.arm("other", x.task_component("in", [TASK], limit_per_task=32))
    mine = x.arm("mine", x.task_component("in", ["mine/pseudo"]))

    def key(arm, files) -> str:
        c = x.get_config()
        with c.unlocked():
            c.data.task_files = tuple(files)
        return cells.run_key(cells.run_config(c, arm, 0), ["s"], 96)

    first = write(0)
    assert key(other, [first]) == key(other, [])  # a file the run does not read leaves its key alone
    k0 = key(mine, [first])
    assert key(mine, [write(0)]) == k0  # same content, same key
    assert key(mine, [write(1)]) != k0  # other labels: another run
