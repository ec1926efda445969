"""Streamed sharded loading (`model/loading.py`): equal to `weights.load_hf` on several meshes, with the requested
shardings, each shard read on its own (only its block of the checkpoint), and the same clear errors."""

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from monitor_jax.model import loading, registry, transformer, weights
from monitor_jax.core import sharding as shd

LAYERS_ON_DATA = (("layers", "data"),) + shd.DEFAULT_RULES  # each data slice holds one of the two layers
HEAD_DIM_SPLIT = (("layers", "data"), ("head_dim", "tensor")) + shd.DEFAULT_RULES  # partial heads: post-sliced
MESHES = {  # name -> (mesh shape, rules)
    "fsdp8": ({"fsdp": 8}, None),
    "d2f2t2": ({"data": 2, "fsdp": 2, "tensor": 2}, None),
    "d2f2t2_layers": ({"data": 2, "fsdp": 2, "tensor": 2}, LAYERS_ON_DATA),
    "d2t4_head_dim": ({"data": 2, "fsdp": 1, "tensor": 4}, HEAD_DIM_SPLIT),
}
FAMILIES = ("llama", "qwen2", "qwen3")  # tied head; q/k/v biases + untied; q/k norms + untied


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """family -> HF dir of a tiny random model whose every tensor (norms and biases too) is random."""
    out = {}
    for i, family in enumerate(FAMILIES):
        m = registry.load(f"tiny-random-{family}")
        rng = np.random.default_rng(i)
        params = jax.tree.map(lambda x: rng.standard_normal(x.shape).astype(np.float32), m.params)
        out[family] = tmp_path_factory.mktemp(family) / "ckpt"
        weights.save_hf(params, m.cfg, out[family], tokenizer=m.tokenizer, max_shard_bytes=2_000_000)
    return out


def _shardings(mesh_name):
    shape, rules = MESHES[mesh_name]
    mesh = shd.make_mesh(shape)
    return lambda cfg: shd.param_shardings(transformer.abstract_params(cfg), mesh, rules)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mesh_name", sorted(MESHES))
def test_streamed_load_equals_load_hf_with_requested_shardings(checkpoints, family, mesh_name):
    path = checkpoints[family]
    ref_cfg, ref = weights.load_hf(path)
    cfg, params = loading.load_hf_sharded(path, _shardings(mesh_name))
    assert cfg == ref_cfg
    want = _shardings(mesh_name)(cfg)
    flat_ref = jax.tree_util.tree_leaves_with_path(ref)
    flat, flat_want = jax.tree.leaves(params), jax.tree.leaves(want)
    assert len(flat) == len(flat_ref) == len(flat_want)
    sharded = 0
    for (p, r), got, s in zip(flat_ref, flat, flat_want):
        assert isinstance(got, jax.Array) and got.sharding == s, jax.tree_util.keystr(p)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(np.asarray(got), r, err_msg=jax.tree_util.keystr(p))
        sharded += not s.is_fully_replicated
    assert sharded >= len(flat) // 2  # the mesh really splits most params


def test_each_shard_reads_only_its_block(checkpoints, monkeypatch):
    """Bytes read from the checkpoint = the sum of the distinct device shards: no device reads another's layers,
    rows or columns, and replicated shards are read once."""
    read = []

    class Counting:
        def __init__(self, sl):
            self.sl = sl

        def __getitem__(self, idx):
            block = self.sl[idx]
            read.append(block.size)
            return block

    original = loading._Checkpoint._slice
    monkeypatch.setattr(loading._Checkpoint, "_slice", lambda self, name: Counting(original(self, name)))
    path = checkpoints["qwen2"]
    make = _shardings("d2f2t2_layers")
    cfg, params = loading.load_hf_sharded(path, make)
    expected = 0
    for leaf, s in zip(jax.tree.leaves(params), jax.tree.leaves(make(cfg))):
        distinct = {tuple((i.start, i.stop) for i in idx) for idx in s.addressable_devices_indices_map(leaf.shape).values()}
        expected += len(distinct) * int(np.prod(s.shard_shape(leaf.shape)))
    n_params = sum(x.size for x in jax.tree.leaves(params))
    assert sum(read) == expected
    assert expected < 2 * n_params  # vs 8 full copies if every device read whole tensors
    # the stacked layer params are split over data: a layer tensor is never read whole
    q = weights.hf_layout(cfg)["model.layers.0.self_attn.q_proj.weight"].hf_shape
    assert int(np.prod(q)) not in read


def test_registry_loads_onto_a_mesh(checkpoints):
    mesh = shd.make_mesh({"fsdp": 8})
    make = lambda cfg: shd.param_shardings(transformer.abstract_params(cfg), mesh)  # noqa: E731
    streamed = registry.load(f"hf:{checkpoints['qwen3']}", shardings=make, remat="none")
    plain = registry.load(f"hf:{checkpoints['qwen3']}", remat="none")
    assert streamed.cfg == plain.cfg and streamed.tokenizer.vocab_size == plain.tokenizer.vocab_size
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), streamed.params, plain.params)
    embed = streamed.params["embed"]
    assert embed.sharding == make(streamed.cfg)["embed"] and embed.sharding.shard_shape(embed.shape)[1] == 32 // 8
    tiny = registry.load("tiny-random-llama", shardings=make)  # host-built models are put on the mesh too
    assert tiny.params["layers"]["mlp"]["up"]["kernel"].sharding == make(tiny.cfg)["layers"]["mlp"]["up"]["kernel"]
    with pytest.raises(ValueError, match="dims only"):
        registry.load("llama3-8b")


def _corrupt(src, dst, how):
    """A one-file copy of the checkpoint `src` with one tensor dropped, added or reshaped."""
    dst.mkdir()
    (dst / "config.json").write_text((src / "config.json").read_text())
    files = sorted(src.glob("*.safetensors"))
    tensors = {k: v for f in files for k, v in load_file(str(f)).items()}
    if how == "missing":
        del tensors["model.layers.1.mlp.up_proj.weight"]
    elif how == "unexpected":
        tensors["model.layers.1.mlp.extra.weight"] = np.zeros(3, np.float32)
    else:
        tensors["model.layers.0.self_attn.k_proj.weight"] = np.zeros((5, 32), np.float32)
    save_file(tensors, str(dst / "model.safetensors"))
    return dst


@pytest.mark.parametrize("how, message", [
    ("missing", r"missing tensor\(s\) \['model.layers.1.mlp.up_proj.weight'\]"),
    ("unexpected", r"tensor 'model.layers.1.mlp.extra.weight' is unexpected"),
    ("shape", r"tensor 'model.layers.0.self_attn.k_proj.weight': shape \(5, 32\) does not match the config's \(16, 32\)"),
])
def test_bad_checkpoints_fail_like_load_hf(checkpoints, tmp_path, how, message):
    bad = _corrupt(checkpoints["llama"], tmp_path / how, how)
    with pytest.raises(ValueError, match=message) as streamed:
        loading.load_hf_sharded(bad, _shardings("fsdp8"))
    with pytest.raises(ValueError) as plain:
        weights.load_hf(bad)
    assert str(streamed.value) == str(plain.value)
    with pytest.raises(ValueError, match="do not match the param tree"):
        loading.load_hf_sharded(checkpoints["llama"], {"embed": None})


def test_layout_read_matches_to_ours_for_any_block():
    """`Layout.read` of every block (including part of head_dim) equals slicing the fully transformed tensor."""
    cfg = registry.tiny_config("qwen2", vocab_size=64)
    rng = np.random.default_rng(0)
    for name, layout in weights.hf_layout(cfg).items():
        if layout.layer not in (None, 0):
            continue
        hf = rng.standard_normal(layout.hf_shape).astype(np.float32)
        ours = layout.to_ours(hf)
        np.testing.assert_array_equal(layout.to_hf(ours), hf)
        for _ in range(5):
            idx = []
            for n in ours.shape:
                a = int(rng.integers(0, n))
                idx.append(slice(a, int(rng.integers(a + 1, n + 1))))
            np.testing.assert_array_equal(layout.read(hf, tuple(idx)), ours[tuple(idx)], err_msg=name)
