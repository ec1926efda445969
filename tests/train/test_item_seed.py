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
