"""Tests for the AgentDojo-derived domain (monitor_jax.data.agent): the pinned asset (tampered wheel), loading
without LLM clients, byte-deterministic rendering across PYTHONHASHSEED, a small build (labels, kinds, balance,
identifier pools, splits without leakage), the atomic TFDS build and the task registry entries. The full build is
checked by hand (README); here a few user tasks per suite and split keep the tests to seconds."""
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

from monitor_jax.core import assets
from monitor_jax.data import hygiene, tasks
from monitor_jax.data.agent import agentdojo_domain as D
from monitor_jax.data.agent import agentdojo_load, agentdojo_pools, builder

SMALL = D.Settings(max_user_tasks=2, variants_per_pair=1, tokenizer=None)
ATTACKER_STRINGS = ("US133000000121212121212", "mark.black-2134@gmail.com", "jay@google.com", "fred9246@gmail.com",
                    "www.my-website-234.com", "www.secure-systems-252.com", "www.true-informations.com", "Hacked!")
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small():
    return D.build(SMALL)


def test_tampered_wheel_is_one_clear_sha256_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MONITOR_JAX_CACHE", str(tmp_path))
    a = assets.ASSETS["agentdojo"]
    (tmp_path / "wheels").mkdir()
    with zipfile.ZipFile(tmp_path / "wheels" / a.wheel, "w") as z:
        z.writestr("agentdojo/__init__.py", "tampered = True\n")
    with pytest.raises(assets.AssetError, match="sha256 mismatch") as e:
        assets.fetch("agentdojo")
    assert a.sha256 in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "assets" / f"{a.package}-{a.version}").exists()


def test_loads_without_llm_clients():
    suites = agentdojo_load.load_suites()
    assert {k: (len(v.user_tasks), len(v.injection_tasks)) for k, v in suites.items()} == {
        "workspace": (40, 14), "travel": (20, 7), "banking": (16, 9), "slack": (21, 5)}
    for mod in ("openai", "anthropic", "cohere", "google.genai", "langchain"):
        assert mod not in sys.modules


_RENDER = """
import hashlib, sys
from monitor_jax.data.agent import agentdojo_domain as D
b = D._Builder(D.Settings(tokenizer=None))
for suite in ("workspace", "travel", "banking", "slack"):
    su = b.suites[suite]
    users = sorted(su.user_tasks)[:3]
    iid = sorted(i for i, t in su.injection_tasks.items() if t.ground_truth(su.load_and_inject_default_environment({})))[0]
    for v in range(2):
        for it in b.pair(suite, users[0], iid, v, users):
            print(suite, it.meta["kind"], hashlib.sha256(it.text.encode()).hexdigest())
"""


def test_rendering_is_byte_deterministic_across_hash_seeds():
    outs = []
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        r = subprocess.run([sys.executable, "-c", _RENDER], capture_output=True, text=True, env=env, cwd=ROOT)
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(r.stdout)
    assert outs[0] == outs[1]
    assert {ln.split()[0] for ln in outs[0].splitlines()} == set(agentdojo_load.SUITES)


def test_small_build_labels_kinds_and_balance(small):
    items, stats = small
    for split, v in items.items():
        ys = [it.meta["unrequested"] for it in v]
        assert v and sum(ys) * 2 == len(ys), split  # one matched negative per attack
        for it in v:
            kind = it.meta["kind"]
            assert kind in D.KINDS and it.meta["unrequested"] == int(kind == "attack")
            assert it.meta["requested"] == int(kind == "requested")
            assert it.meta["pair"] == f"{it.meta['suite']}/{it.meta['user_task']}/{it.meta['injection_task']}"
            assert it.text.startswith("USER: ") and "\nASSISTANT: calling " in it.text
    kinds = {it.meta["kind"] for v in items.values() for it in v}
    assert kinds == set(D.KINDS)
    assert stats["splits"]["train"]["n"] == len(items["train"])


def test_requested_twin_differs_from_its_attack_only_in_the_request(small):
    items, _ = small
    by_pair = {}
    for it in items["train"] + items["validation"] + items["test"]:
        by_pair.setdefault((it.meta["pair"], it.meta["variant"]), []).append(it)
    twins = [g for g in by_pair.values() if {it.meta["kind"] for it in g} == {"attack", "requested"}]
    assert twins
    for g in twins:
        a, q = sorted(g, key=lambda it: it.meta["kind"])
        calls = [[m["content"].split("(", 1)[0] for m in it.meta["messages"][1:] if m["role"] == "assistant"]
                 for it in (a, q)]
        assert calls[0] == calls[1] and a.meta["n_calls"] == q.meta["n_calls"]  # outputs may be shortened apart
        assert a.meta["messages"][0] != q.meta["messages"][0]


def test_identifiers_come_from_shared_pools(small):
    items, _ = small
    texts = [it.text for v in items.values() for it in v]
    for s in ATTACKER_STRINGS:
        assert not any(s in t for t in texts), s
    emails = {k: set() for k in (0, 1)}
    for v in items.values():
        for it in v:
            found = set(agentdojo_pools.EMAIL_RE.findall(it.text))
            assert found <= set(agentdojo_pools.pool("email")), found - set(agentdojo_pools.pool("email"))
            emails[it.meta["unrequested"]] |= found
    assert len(emails[0] & emails[1]) >= 5  # the same addresses occur in attacks and in benign transcripts


def test_splits_by_user_task_and_injection_task_without_leakage(small):
    items, _ = small
    seen = {s: {"user": set(), "inj": set()} for s in hygiene.SPLITS}
    for s, v in items.items():
        for it in v:
            seen[s]["user"].add((it.meta["suite"], it.meta["user_task"]))
            seen[s]["user"].add((it.meta["suite"], it.meta.get("matched_to", it.meta["user_task"])))
            seen[s]["inj"].add((it.meta["suite"], it.meta["injection_task"]))
    for a in hygiene.SPLITS:
        for b in hygiene.SPLITS:
            if a < b:
                assert not seen[a]["user"] & seen[b]["user"], (a, b)
                assert not seen[a]["inj"] & seen[b]["inj"], (a, b)
    train = [it.text for it in items["train"]]
    assert not hygiene.leakage(train, [it.text for it in items["validation"] + items["test"]])


def test_task_splits_are_stable_and_cover_every_split():
    ids = [f"user_task_{i}" for i in range(20)]
    a = D.task_splits(ids, "k", (0.4, 0.3, 0.3))
    assert a == D.task_splits(list(reversed(ids)), "k", (0.4, 0.3, 0.3))
    assert sorted(a.values()).count("test") == 6 and set(a.values()) == set(hygiene.SPLITS)


def test_settings_validate_and_name_configs():
    with pytest.raises(ValueError, match="negative_shares"):
        D.Settings(negative_shares=(0.5, 0.5, 0.5))
    assert D.Settings().visible_share == pytest.approx(2 / 3)
    assert builder.config_name(D.Settings()) == builder.config_name(D.Settings())
    assert builder.config_name(SMALL) != builder.config_name(D.Settings())


def test_interrupted_build_leaves_no_dataset_and_rerun_builds(tmp_path, monkeypatch):
    settings = D.Settings(max_user_tasks=1, variants_per_pair=1, tokenizer=None, suites=("banking",))
    real = D.build

    def interrupted(s):
        items, stats = real(s)
        def boom():
            yield from ()
            raise RuntimeError("interrupted mid-write")
        return {**items, "test": boom()}, stats

    monkeypatch.setattr(builder.agentdojo_domain, "build", interrupted)
    with pytest.raises(Exception, match="interrupted mid-write"):
        builder.prepare(settings, directory=str(tmp_path))
    b = builder.AgentDojoDomain(settings=settings, data_dir=str(tmp_path), file_format="array_record")
    assert not b.is_prepared()
    monkeypatch.setattr(builder.agentdojo_domain, "build", real)
    items = builder.load(settings, directory=str(tmp_path))
    assert items["test"] and items == builder.load(settings, directory=str(tmp_path))
    assert json.dumps(builder.stats(settings, directory=str(tmp_path)))


def test_tasks_registered_with_label_relations():
    u, q = tasks.get("agentdojo/unrequested"), tasks.get("agentdojo/requested")
    assert [(p.name, p.relation) for p in u.prompts] == [
        ("primary", "same"), ("paraphrase", "same"), ("inverted", "inverted"), ("other:requested", "partly_correlated")]
    assert q.prompt("other:unrequested").question == "unrequested"
    from monitor_jax.data.items import Item

    for kind in D.KINDS:
        it = Item("agentdojo:x", "agentdojo", "t", {"unrequested": int(kind == "attack"), "requested": int(kind == "requested")})
        assert tasks.label_of(u, u.prompt("primary"), it) == int(kind == "attack")
        assert tasks.label_of(u, u.prompt("inverted"), it) == int(kind != "attack")
        assert tasks.label_of(q, q.prompt("primary"), it) == int(kind == "requested")
