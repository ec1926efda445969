"""Tests for monitor_jax.data.mixture: proportions, loss weights, stages, resume across stages, shards, counts."""
import json

import numpy as np
import pytest

from monitor_jax.data import mixture as M
from monitor_jax.data import pipeline as P
from monitor_jax.model.tokenizer import Tokenizer

TEMPLATE = "Input:\n{input}\nIs this positive? Answer Yes or No."


@pytest.fixture(scope="module")
def tok(smollm2_gguf):
    return Tokenizer.from_gguf(smollm2_gguf)


def examples(task, n, mean_words, seed):
    rng = np.random.default_rng(seed)
    lengths = np.maximum(1, rng.lognormal(mean_words, 0.8, size=n).astype(int))
    return [P.ClassificationExample(f"{task}-{i}", task, " ".join(["word"] * int(lengths[i])),
                                    int(rng.integers(2)), TEMPLATE, ("Yes", "No"), weight=1.0 + (i % 2))
            for i in range(n)]


def chats(source, n):
    return [P.InstructionExample(f"{source}-{i}", source,
                                 ({"role": "user", "content": f"Question {i}?"},
                                  {"role": "assistant", "content": "An answer. " * (1 + i % 7)}))
            for i in range(n)]


@pytest.fixture(scope="module")
def comps():
    return [M.MixtureComponent("short", examples("short", 60, 2.0, 0), 0.6),
            M.MixtureComponent("long", examples("long", 40, 4.5, 1), 0.3, loss_weight=0.5),
            M.MixtureComponent("ifdata", chats("ifdata", 30), 0.1)]


def _take(it, n):
    return [next(it) for _ in range(n)]


def _same(a, b):
    return len(a) == len(b) and all(x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
                                    for x, y in zip(a, b))


def test_proportions_match_weights_and_loss_weights_apply(tok, comps):
    it = M.mixture_batches(tok, [M.Stage(comps, None)], 8, 512, seed=0, shard_index=0, shard_count=1)
    batches = _take(it, 260)
    task = np.concatenate([b["task_index"] for b in batches])
    n = len(task)
    assert n >= 2000 and (task >= 0).all()
    for c in comps:
        p = c.weight
        got = (task == it.task_names.index(c.name)).mean()
        assert abs(got - p) < 3 * np.sqrt(p * (1 - p) / n), (c.name, got, p)
    by_id = {e.id: e.weight for c in comps for e in c.examples}
    for b in batches:
        for i, w, cls in zip(b["id"], b["weight"], b["is_classification"]):
            expect = by_id[i] * (0.5 if i.startswith("long") else 1.0)
            assert w == pytest.approx(expect)
        for r in range(8):  # IF rows carry loss tokens, classification rows the answer token only
            assert b["is_classification"][r] == (b["loss_mask"][r].sum() == 0)
            if b["is_classification"][r]:
                assert b["tokens"][r, b["answer_index"][r]] == b["answer_id"][r] == b["label_ids"][r, 1 - b["label"][r]]
    counts = it.token_counts()
    assert sum(v["seen_rows"] for v in counts.values()) == n
    assert sum(v["seen_tokens"] for v in counts.values()) == sum(int(b["segment_ids"].sum()) for b in batches)
    assert counts["ifdata"]["seen_loss_tokens"] == sum(int(b["loss_mask"].sum()) for b in batches)
    assert counts["short"]["rows"] == 60 and counts["short"]["loss_tokens"] == 60


def test_stages_switch_resume_across_the_boundary_and_stop(tok, comps):
    stages = [M.Stage(comps[:2], 5), M.Stage(comps[2:], 4)]
    kw = dict(batch_size=4, max_len=512, shard_index=0, shard_count=1)
    a = M.mixture_batches(tok, stages, seed=7, **kw)
    first = _take(a, 3)
    state = json.loads(json.dumps(a.get_state()))
    rest = list(a)
    assert len(rest) == 6  # 5 + 4 steps in all, then StopIteration
    stage_of = [a.task_names[t] for b in first + rest for t in b["task_index"]]
    assert set(stage_of[:5 * 4]) <= {"short", "long"} and set(stage_of[5 * 4:]) == {"ifdata"}
    b = M.mixture_batches(tok, stages, seed=7, **kw)
    assert _same(first, _take(b, 3))
    c = M.mixture_batches(tok, stages, seed=7, **kw)
    c.set_state(state)
    assert _same(rest, list(c)) and c.token_counts() == a.token_counts()
    assert not _same(first, _take(M.mixture_batches(tok, stages, seed=8, **kw), 3))
    # A state saved inside stage 2 restores there too.
    d = M.mixture_batches(tok, stages, seed=7, **kw)
    _take(d, 6)
    s2 = json.loads(json.dumps(d.get_state()))
    assert s2["stage"] == 1
    tail = _take(d, 2)
    e = M.mixture_batches(tok, stages, seed=7, **kw)
    e.set_state(s2)
    assert _same(tail, _take(e, 2))


def test_mixture_shards_are_disjoint_and_cover(tok, comps):
    seen = []
    for i in range(2):
        it = M.mixture_batches(tok, [M.Stage(comps, None)], 8, 512, seed=1, shard_index=i, shard_count=2)
        assert sum(v["rows"] for v in it.token_counts().values()) == 65
        seen.append({r.id for rows in it.rows.values() for r in rows})
        drawn = {x for b in _take(it, 120) for x in b["id"]}
        assert drawn <= seen[-1] and len(drawn) > 0.9 * len(seen[-1])
    assert not seen[0] & seen[1] and seen[0] | seen[1] == {e.id for c in comps for e in c.examples}


def test_bad_stages_are_rejected(tok, comps):
    with pytest.raises(ValueError, match="only allowed for the last stage"):
        M.mixture_batches(tok, [M.Stage(comps, None), M.Stage(comps, 3)], 4, 256, 0, shard_index=0, shard_count=1)
    with pytest.raises(ValueError, match="named 'short'"):
        other = M.MixtureComponent("short", comps[1].examples, 1.0)
        M.mixture_batches(tok, [M.Stage([comps[0], other], None)], 4, 256, 0, shard_index=0, shard_count=1)


WORKER = '''
import json, sys
from monitor_jax.core import distributed
distributed.initialize()  # from the MONITOR_JAX_* variables tests/multihost.py sets
import jax
import numpy as np
from monitor_jax.data import mixture as M, pipeline as P
rows = [P.RenderedExample(tokens=np.zeros(n_tok, np.int32), answer_index=n_tok - 1, label=1, answer_id=0,
                          label_ids=(0, 1), loss_mask=np.zeros(n_tok, np.float32), weight=1.0, id=f"r{j}", task="t",
                          truncated=False, input_span=(0, 0), pad_id=0)
        for j, n_tok in enumerate([10] * 40 + [200] * 5 + [600])]  # the one 600-token row lands on host 1 only
mine = M.shard(rows, *M.resolve_shard(None, None))
s = M.TrainStream(M.bucketed_dataset([(mine, 1.0)], batch_size=2, seed=0, buckets=(128, 256, 1024),
                                     task_names=("t",), pad_id=0), ("t",))
bs = [next(s) for _ in range(60)]
json.dump({"T": [b["tokens"].shape[1] for b in bs], "ids": sorted({x for b in bs for x in b["id"] if x})},
          open(sys.argv[1] + f"/out{jax.process_index()}.json", "w"))
'''


def test_two_jax_processes_agree_on_bucket_lengths_and_read_disjoint_shares(tmp_path):
    """Real multi-process run (2 CPU processes, gloo): the allgathered bucket counts give equal shapes per step."""
    import sys

    from multihost import launch

    (tmp_path / "worker.py").write_text(WORKER)
    launch([sys.executable, str(tmp_path / "worker.py"), str(tmp_path)], 2, local_devices=1, timeout=120)
    a, b = (json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2))
    assert a["T"] == b["T"] and 1024 in a["T"]
    assert not set(a["ids"]) & set(b["ids"]) and "r45" in b["ids"]  # host 0 fills T=1024 with shorter rows
