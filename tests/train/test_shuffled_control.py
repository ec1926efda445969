"""The shuffled-label control (DESIGN §5): the same items and prompts with each task's labels permuted among its
items, seeded; a control arm trains on exactly that and is a different run; arms without it keep their run keys;
run keys are plain data."""
import collections

from monitor_jax.core import config as config_lib
from monitor_jax.experiment import cells
from monitor_jax.train import data as train_data

x = config_lib.load_module("configs/experiment.py")
TASKS = ["requests/harmful", "tweets/negative"]


def _examples(arm, seed=0):
    c = x.get_config()
    with c.unlocked():
        c.seed = seed
        c.data.stages = list(arm.stages)
    (stage,) = train_data.build_stages(c)
    return [e for comp in stage.components for e in comp.examples]


def test_labels_are_permuted_within_each_task_and_seeded():
    arm = x.arm("mix", x.task_component("mix", TASKS, limit_per_task=40, balance=1.0))
    control = x.control_arm(arm)
    true, shuffled = _examples(arm), _examples(control)
    assert [(e.id, e.task, e.input, e.template) for e in true] == [(e.id, e.task, e.input, e.template)
                                                                  for e in shuffled]
    for task in TASKS:
        y = [e.label for e in true if e.task == task]
        z = [e.label for e in shuffled if e.task == task]
        assert collections.Counter(y) == collections.Counter(z)  # the same label counts per task
        agree = sum(a == b for a, b in zip(y, z)) / len(y)
        assert 0.2 < agree < 0.8, agree  # the input-label relation is gone (40 balanced items: ~0.5 by chance)
    assert [e.label for e in _examples(control)] == [e.label for e in shuffled]  # deterministic
    assert [e.label for e in _examples(control, seed=1)] != [e.label for e in _examples(arm, seed=1)]
    assert [e.label for e in _examples(control, seed=1)] != [e.label for e in shuffled]  # seeded by the run seed


def test_a_control_is_its_own_run_and_other_runs_keep_their_keys():
    arm = x.mixture_arm()
    control = x.control_arm(arm)
    assert control.name == "mixture_shuffled" and "shuffle_labels" not in arm.stages[0].components[0]
    c = x.get_config()
    with c.unlocked():
        c.experiment.arms = [arm, control]
    keys = {a.name: cells.run_key(cells.run_config(c, a, 0), ["s"], 96) for a in (arm, control)}
    assert keys["mixture"] != keys["mixture_shuffled"]


def test_run_keys_do_not_depend_on_process_wide_yaml_state(monkeypatch):
    """A stage's components once entered the key as their YAML `str`, whose quoting another library could change
    mid-session (it split one run into two directories in the full suite)."""
    import yaml

    c = x.get_config()
    arm = x.mixture_arm()
    key = cells.run_key(cells.run_config(c, arm, 0), ["s"], 96)
    quoted = dict(yaml.Dumper.yaml_representers)
    quoted[str] = lambda dumper, s: dumper.represent_scalar("tag:yaml.org,2002:str", s, style='"')
    monkeypatch.setattr(yaml.Dumper, "yaml_representers", quoted)
    assert '"primary"' in str(arm.stages[0].components[0])  # the YAML state did change
    assert cells.run_key(cells.run_config(c, arm, 0), ["s"], 96) == key
