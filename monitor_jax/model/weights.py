"""Weights in and out of our decoder: HF safetensors dirs and llama GGUF files -> (ModelConfig, params), and
params -> an HF safetensors dir that `transformers` loads. Config keys we do not implement are refused.

Params are nested dicts of numpy arrays in `Transformer`'s layout (per-layer tensors stacked on a leading
[n_layers] axis; dense kernels [in, out]). Reading is tensor by tensor into preallocated stacked arrays, so a
checkpoint is never held twice. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import re
import shutil
import tempfile
from typing import Any, Callable

import numpy as np

from monitor_jax.model.transformer import ModelConfig, abstract_params

Params = dict[str, Any]
PathLike = str | os.PathLike

# Keys that do not change the math, accepted for every family.
_INERT = {
    "model_type", "architectures", "dtype", "torch_dtype", "transformers_version", "_name_or_path",
    "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range", "max_position_embeddings", "use_cache",
    "attention_dropout", "output_attentions", "output_hidden_states", "return_dict", "transformers.js_config",
}
_CORE = {
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "rms_norm_eps", "tie_word_embeddings", "hidden_act", "rope_theta", "rope_scaling",
    "rope_parameters",
}
_SLIDING = {"use_sliding_window", "sliding_window", "max_window_layers", "layer_types"}
_FAMILY_KEYS = {
    "llama": {"attention_bias", "mlp_bias", "pretraining_tp", "is_llama_config", "rope_interleaved"},
    "qwen2": set(_SLIDING),
    "qwen3": {"attention_bias"} | _SLIDING,
    "mistral": {"sliding_window"},
}
# transformers' defaults per family for keys a config.json may omit.
_QWEN = {"rms_norm_eps": 1e-6, "num_key_value_heads": 32, "sliding_window": 4096, "max_window_layers": 28}
_DEFAULTS = {"llama": {"rms_norm_eps": 1e-6}, "qwen2": _QWEN, "qwen3": {**_QWEN, "head_dim": 128},
             "mistral": {"rms_norm_eps": 1e-6, "num_key_value_heads": 8, "sliding_window": 4096}}
# Keys that are only accepted with one value (anything else changes the math in a way we do not implement).
_FIXED = {"attention_bias": False, "mlp_bias": False, "rope_interleaved": False}
_ARCH = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
         "mistral": "MistralForCausalLM"}
_LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


def _rope(cfg: dict, model_type: str) -> tuple[float, tuple[float, float, float, int] | None]:
    """(theta, llama3 scaling) from `rope_parameters` (transformers 5) and/or `rope_theta`/`rope_scaling` (4)."""
    rp = dict(cfg.get("rope_parameters") or {})
    for k, v in (cfg.get("rope_scaling") or {}).items():
        if k in rp and rp[k] != v:
            raise ValueError(f"{model_type} config: rope_scaling.{k}={v!r} contradicts rope_parameters.{k}={rp[k]!r}")
        rp[k] = v
    if any(isinstance(v, dict) for v in rp.values()):
        raise ValueError(f"{model_type} config: per-layer-type rope_parameters are not supported")
    if "type" in rp:
        rp.setdefault("rope_type", rp["type"])
        if rp.pop("type") != rp["rope_type"]:
            raise ValueError(f"{model_type} config: rope_scaling.type contradicts rope_type")
    theta = rp.pop("rope_theta", None)
    top = cfg.get("rope_theta")
    if theta is not None and top is not None and float(theta) != float(top):
        raise ValueError(f"{model_type} config: rope_theta={top} contradicts rope_parameters.rope_theta={theta}")
    theta = float(theta if theta is not None else top if top is not None else 10000.0)
    if rp.pop("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError(f"{model_type} config: rope_parameters.partial_rotary_factor != 1 is not supported")
    rope_type = rp.pop("rope_type", "default")
    scaling = None
    if rope_type == "llama3":
        rp.setdefault("original_max_position_embeddings", cfg.get("max_position_embeddings"))
        missing = [k for k in _LLAMA3_KEYS if rp.get(k) is None]
        if missing:
            raise ValueError(f"{model_type} config: llama3 rope_parameters lack {missing}")
        f, lo, hi, orig = (rp.pop(k) for k in _LLAMA3_KEYS)
        scaling = (float(f), float(lo), float(hi), int(orig))
    elif rope_type != "default":
        raise ValueError(f"{model_type} config: rope_parameters.rope_type={rope_type!r} is not supported "
                         "(only 'default' and 'llama3')")
    if rp:
        raise ValueError(f"{model_type} config: unsupported rope_parameters key(s) {sorted(rp)}")
    return theta, scaling


def _sliding_window(cfg: dict, model_type: str, n_layers: int) -> int | None:
    """The one sliding window every layer uses (None = full attention), following transformers' rules."""
    if model_type == "llama":
        return None
    if model_type == "mistral":  # Mistral applies `sliding_window` to every layer
        return cfg["sliding_window"]
    window = cfg["sliding_window"] if cfg.get("use_sliding_window") else None
    types = cfg.get("layer_types") or [
        "sliding_attention" if window is not None and i >= cfg["max_window_layers"] else "full_attention"
        for i in range(n_layers)
    ]
    if len(types) != n_layers or not set(types) <= {"full_attention", "sliding_attention"}:
        raise ValueError(f"{model_type} config: layer_types={types} is not supported")
    windows = {window if t == "sliding_attention" else None for t in types}
    if len(windows) > 1:
        raise ValueError(f"{model_type} config: layer_types / max_window_layers={cfg.get('max_window_layers')} "
                         "mix full and sliding-window layers; only one attention type for all layers is supported")
    return windows.pop()


def config_from_hf(cfg: dict) -> ModelConfig:
    """`ModelConfig` from an HF `config.json` dict (llama/SmolLM2, qwen2, qwen3, mistral); refuses unknown keys."""
    model_type = cfg.get("model_type")
    if model_type not in _FAMILY_KEYS:
        raise ValueError(f"config model_type={model_type!r} is not supported (one of {sorted(_FAMILY_KEYS)})")
    unknown = sorted(set(cfg) - _INERT - _CORE - _FAMILY_KEYS[model_type])
    if unknown:
        raise ValueError(f"{model_type} config: unsupported key(s) {unknown}")
    for key, ok in _FIXED.items():
        if cfg.get(key, ok) != ok:
            raise ValueError(f"{model_type} config: {key}={cfg[key]!r} is not supported (only {ok!r})")
    if cfg.get("hidden_act", "silu") not in ("silu", "swish"):
        raise ValueError(f"{model_type} config: hidden_act={cfg['hidden_act']!r} is not supported (only silu)")
    c = {**_DEFAULTS[model_type], **cfg}  # an explicit null (e.g. sliding_window) is kept: it means "none"
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        if c.get(key) is None:
            raise ValueError(f"{model_type} config: required key {key!r} is missing")
    theta, llama3 = _rope(cfg, model_type)
    heads = int(c["num_attention_heads"])
    return ModelConfig(
        vocab_size=int(c["vocab_size"]), d_model=int(c["hidden_size"]), n_layers=int(c["num_hidden_layers"]),
        n_heads=heads, n_kv_heads=int(c.get("num_key_value_heads") or heads),
        head_dim=int(c.get("head_dim") or c["hidden_size"] // heads), d_ff=int(c["intermediate_size"]),
        rope_theta=theta, rms_eps=float(c["rms_norm_eps"]), tie_embeddings=bool(c.get("tie_word_embeddings")),
        qkv_bias=model_type == "qwen2",  # transformers' Qwen2 always has q/k/v biases (and no o bias)
        qk_norm=model_type == "qwen3",
        sliding_window=_sliding_window(c, model_type, int(c["num_hidden_layers"])),
        rope_llama3_scaling=llama3, family=model_type,
    )


def config_to_hf(cfg: ModelConfig) -> dict:
    """The HF `config.json` dict for `cfg` (inverse of `config_from_hf`)."""
    fam = cfg.family
    if cfg.qkv_bias != (fam == "qwen2") or cfg.qk_norm != (fam == "qwen3") or (
            cfg.sliding_window is not None and fam == "llama"):
        raise ValueError(f"ModelConfig(family={fam!r}, qkv_bias={cfg.qkv_bias}, qk_norm={cfg.qk_norm}, "
                         f"sliding_window={cfg.sliding_window}) has no HF {fam} equivalent")
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": cfg.rope_theta}
    if cfg.rope_llama3_scaling is not None:
        rope = {"rope_type": "llama3", "rope_theta": cfg.rope_theta, **dict(zip(_LLAMA3_KEYS, cfg.rope_llama3_scaling))}
    out: dict[str, Any] = {
        "architectures": [_ARCH[fam]], "model_type": fam, "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model, "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads, "head_dim": cfg.head_dim, "intermediate_size": cfg.d_ff,
        "hidden_act": "silu", "rms_norm_eps": cfg.rms_eps, "tie_word_embeddings": cfg.tie_embeddings,
        "rope_parameters": rope, "max_position_embeddings": 8192, "dtype": cfg.param_dtype,
    }
    if fam in ("llama", "qwen3"):
        out["attention_bias"] = False
    if fam == "mistral":
        out["sliding_window"] = cfg.sliding_window
    elif fam in ("qwen2", "qwen3"):
        out.update(use_sliding_window=cfg.sliding_window is not None, sliding_window=cfg.sliding_window,
                   max_window_layers=0)
    return out


# --- tensor layout: every HF tensor name -> where it goes in our params and how it is reshaped ------------------------

@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one HF tensor goes: ours = hf.reshape(split).transpose(perm), `split` being `groups` flattened.

    `groups[k]` are the sizes HF axis k splits into (row-major), so HF axis k has size prod(groups[k]); `path`
    is our param's path from the root and `layer` the index on its stacked leading axis (None: not stacked).
    """

    path: tuple[str, ...]
    groups: tuple[tuple[int, ...], ...]
    perm: tuple[int, ...] | None = None  # None: identity
    layer: int | None = None

    @property
    def hf_shape(self) -> tuple[int, ...]:
        return tuple(math.prod(g) for g in self.groups)

    @property
    def _split(self) -> tuple[int, ...]:
        return tuple(n for g in self.groups for n in g)

    @property
    def _perm(self) -> tuple[int, ...]:
        return self.perm if self.perm is not None else tuple(range(len(self._split)))

    def to_ours(self, w: np.ndarray) -> np.ndarray:
        return w.reshape(self._split).transpose(self._perm)

    def to_hf(self, w: np.ndarray) -> np.ndarray:
        return np.asarray(w).transpose(np.argsort(self._perm)).reshape(self.hf_shape)

    def read(self, src: Any, index: tuple[slice, ...]) -> np.ndarray:
        """`to_ours(src)[index]`, reading from `src` (HF layout; a safetensors slice or an array) only the block
        that holds it: the selected rows/columns of every HF axis, whole heads where an axis splits into
        (heads, head_dim) and only part of head_dim is selected. `index`: unit-step slices over our dims."""
        split = self._split
        inner_idx: list[slice] = [slice(None)] * len(split)
        for ours, p in enumerate(self._perm):
            inner_idx[p] = index[ours]
        hf_idx, local, post, pos = [], [], [], 0
        for g in self.groups:
            start, stop, step = inner_idx[pos].indices(g[0])
            if step != 1:
                raise ValueError(f"Layout.read: index {index} has a non-unit step")
            rest = math.prod(g[1:])
            hf_idx.append(slice(start * rest, stop * rest))
            local += [stop - start, *g[1:]]
            post += [slice(None), *inner_idx[pos + 1: pos + len(g)]]
            pos += len(g)
        block = np.asarray(src[tuple(hf_idx)])
        return block.reshape(local)[tuple(post)].transpose(self._perm)


def hf_layout(cfg: ModelConfig) -> dict[str, Layout]:
    """Every HF tensor name `cfg` expects, in checkpoint order, -> its `Layout` (a tied head has no `lm_head`)."""
    d, hd, h, kv, f, v = cfg.d_model, cfg.head_dim, cfg.n_heads, cfg.n_kv_heads, cfg.d_ff, cfg.vocab_size
    per_layer: dict[str, tuple[tuple[str, ...], tuple[tuple[int, ...], ...], tuple[int, ...] | None]] = {
        "input_layernorm.weight": (("attn_norm", "scale"), ((d,),), None),
        "post_attention_layernorm.weight": (("mlp_norm", "scale"), ((d,),), None),
        "self_attn.o_proj.weight": (("attn", "o", "kernel"), ((d,), (h, hd)), (1, 2, 0)),
        "mlp.gate_proj.weight": (("mlp", "gate", "kernel"), ((f,), (d,)), (1, 0)),
        "mlp.up_proj.weight": (("mlp", "up", "kernel"), ((f,), (d,)), (1, 0)),
        "mlp.down_proj.weight": (("mlp", "down", "kernel"), ((d,), (f,)), (1, 0)),
    }
    for name, n in (("q", h), ("k", kv), ("v", kv)):
        per_layer[f"self_attn.{name}_proj.weight"] = (("attn", name, "kernel"), ((n, hd), (d,)), (2, 0, 1))
        if cfg.qkv_bias:
            per_layer[f"self_attn.{name}_proj.bias"] = (("attn", name, "bias"), ((n, hd),), None)
    if cfg.qk_norm:
        per_layer["self_attn.q_norm.weight"] = (("attn", "q_norm", "scale"), ((hd,),), None)
        per_layer["self_attn.k_norm.weight"] = (("attn", "k_norm", "scale"), ((hd,),), None)
    out = {"model.embed_tokens.weight": Layout(("embed",), ((v,), (d,)))}
    for i in range(cfg.n_layers):
        for suffix, (path, groups, perm) in per_layer.items():
            out[f"model.layers.{i}.{suffix}"] = Layout(("layers", *path), groups, perm, layer=i)
    out["model.norm.weight"] = Layout(("final_norm", "scale"), ((d,),))
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = Layout(("lm_head",), ((v,), (d,)))
    return out


def _empty_params(cfg: ModelConfig, dtype: Any) -> Params:
    """Uninitialised numpy params with exactly the shapes `Transformer(cfg)` expects."""
    from flax.core import meta
    import jax

    shapes = meta.unbox(abstract_params(cfg))
    return jax.tree.map(lambda s: np.empty(s.shape, dtype), shapes)


def get_path(tree: Params, path: tuple[str, ...]) -> Any:
    """`tree[path[0]][path[1]]...`."""
    for p in path:
        tree = tree[p]
    return tree


class ExpectedTensors:
    """The HF tensors a config expects; `take` checks each arriving tensor (known, not seen before, right shape)
    and `done` that none is missing. The same errors for every loader."""

    def __init__(self, cfg: ModelConfig):
        self.cfg, self.layout = cfg, hf_layout(cfg)
        self.todo = set(self.layout)

    def take(self, name: str, shape: tuple[int, ...], where: str) -> Layout | None:
        """The tensor's `Layout`, or None for a tensor to skip (a tied head's copy, a derived RoPE buffer)."""
        what = f"{where}: tensor {name!r}"
        if name not in self.todo:
            if name == "lm_head.weight" and self.cfg.tie_embeddings or name.endswith("rotary_emb.inv_freq"):
                return None
            raise ValueError(f"{what} is unexpected (unknown or duplicated)")
        self.todo.discard(name)
        layout = self.layout[name]
        if tuple(shape) != layout.hf_shape:
            raise ValueError(f"{what}: shape {tuple(shape)} does not match the config's {layout.hf_shape}")
        return layout

    def done(self, where: str) -> None:
        if self.todo:
            raise ValueError(f"{where}: missing tensor(s) {sorted(self.todo)[:5]} ({len(self.todo)} in all)")


class _Filler(ExpectedTensors):
    """Fills preallocated params from named tensors (HF names), checking every tensor arrives exactly once."""

    def __init__(self, cfg: ModelConfig, dtype: Any):
        super().__init__(cfg)
        self.params = _empty_params(cfg, dtype)

    def put(self, name: str, value: np.ndarray, where: str) -> None:
        layout = self.take(name, value.shape, where)
        if layout is None:
            return
        dst = get_path(self.params, layout.path)
        if layout.layer is not None:
            dst = dst[layout.layer]
        dst[...] = layout.to_ours(value)

    def result(self, where: str) -> Params:
        self.done(where)
        return self.params


def read_hf_config(path: PathLike, dtype: Any = np.float32) -> ModelConfig:
    """The `ModelConfig` of an HF dir (its `config.json`), with `param_dtype` = `dtype`."""
    path = pathlib.Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path}: no config.json (an HF model dir has config.json and *.safetensors)")
    cfg = config_from_hf(json.loads((path / "config.json").read_text()))
    return cfg.replace(param_dtype=np.dtype(dtype).name)


def hf_files(path: PathLike) -> list[pathlib.Path]:
    """The safetensors files of an HF dir: those of `model.safetensors.index.json`, else `model.safetensors`,
    else every `*.safetensors`."""
    path = pathlib.Path(path)
    index = path / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (path / "model.safetensors").exists():  # e.g. beside Mistral's own `consolidated.safetensors`
        files = ["model.safetensors"]
    else:
        files = sorted(p.name for p in path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{path}: no *.safetensors files")
    return [path / f for f in files]


def load_hf(path: PathLike, dtype: Any = np.float32) -> tuple[ModelConfig, Params]:
    """(config, numpy params in `dtype`) from an HF dir with `config.json` and (sharded) `*.safetensors`.
    The whole model is built on the host; `model/loading.py` loads straight into shards on a mesh instead."""
    from safetensors import safe_open

    cfg = read_hf_config(path, dtype)
    filler = _Filler(cfg, dtype)
    for file in hf_files(path):
        with safe_open(str(file), framework="numpy") as f:
            for name in f.keys():
                filler.put(name, f.get_tensor(name).astype(dtype, copy=False), str(file))
    return cfg, filler.result(str(path))


def _hf_tensors(params: Params, cfg: ModelConfig) -> list[tuple[str, int, Callable[[], np.ndarray]]]:
    """(HF name, bytes, thunk making the tensor in HF layout) for every tensor, in file order."""
    out = []
    for name, layout in hf_layout(cfg).items():
        ours = get_path(params, layout.path)
        nbytes = ours.nbytes if layout.layer is None else ours.nbytes // cfg.n_layers
        make = lambda x=ours, lay=layout: np.ascontiguousarray(  # noqa: E731
            lay.to_hf(np.asarray(x if lay.layer is None else x[lay.layer])))
        out.append((name, nbytes, make))
    return out


def save_hf(params: Params, cfg: ModelConfig, path: PathLike, tokenizer: Any = None,
            max_shard_bytes: int = 5 << 30) -> None:
    """Write an HF dir (`config.json` + safetensors, sharded above `max_shard_bytes`) loadable by
    `transformers.AutoModelForCausalLM`; with a `tokenizer`, also `tokenizer.save(dir)` and its bos/eos/pad ids.
    Atomic: built in a temp dir, then renamed over `path` (an existing `path` is replaced). At most one shard
    of converted tensors is in memory at a time."""
    from safetensors.numpy import save_file

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hf_cfg = config_to_hf(cfg.replace(param_dtype=np.dtype(params["embed"].dtype).name))
    for key in ("bos", "eos", "pad"):
        if getattr(tokenizer, f"{key}_id", None) is not None:
            hf_cfg[f"{key}_token_id"] = int(getattr(tokenizer, f"{key}_id"))
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        os.chmod(tmp, 0o755)
        (tmp / "config.json").write_text(json.dumps(hf_cfg, indent=2) + "\n")
        shards: list[list[tuple[str, int, Callable[[], np.ndarray]]]] = [[]]
        size = 0
        for item in _hf_tensors(params, cfg):
            if shards[-1] and size + item[1] > max_shard_bytes:
                shards.append([])
                size = 0
            shards[-1].append(item)
            size += item[1]
        names = ["model.safetensors"] if len(shards) == 1 else [
            f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
        for fname, shard in zip(names, shards):
            save_file({name: make() for name, _, make in shard}, str(tmp / fname), metadata={"format": "pt"})
        if len(shards) > 1:
            index = {"metadata": {"total_size": sum(n for s in shards for _, n, _ in s)},
                     "weight_map": {name: f for f, s in zip(names, shards) for name, _, _ in s}}
            (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
        if tokenizer is not None:
            tokenizer.save(str(tmp))
        old = None
        if path.exists():
            old = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --- GGUF ----------------------------------------------------------------------------------------------------------

_GGUF_KEYS = {  # llama.* metadata we read or that does not change the math
    "block_count", "embedding_length", "feed_forward_length", "attention.head_count", "attention.head_count_kv",
    "rope.freq_base", "attention.layer_norm_rms_epsilon", "vocab_size", "rope.dimension_count",
    "attention.key_length", "attention.value_length", "context_length",
}
_GGUF_TOP = {"token_embd.weight": "model.embed_tokens.weight", "output.weight": "lm_head.weight",
             "output_norm.weight": "model.norm.weight"}
_GGUF_LAYER = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
               "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
               "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
               "ffn_down": "mlp.down_proj"}


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's q/k row permutation (interleaved RoPE pairs -> HF rotate-half halves). w: [out, in]."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_gguf(path: PathLike, dtype: Any = np.float32) -> tuple[ModelConfig, Params]:
    """(config, numpy params in `dtype`) from a llama-architecture GGUF file, dequantizing every tensor."""
    import gguf

    path = str(path)
    reader = gguf.GGUFReader(path)
    meta = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.")}
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise ValueError(f"{path}: general.architecture={arch!r} is not supported (only 'llama')")
    unknown = sorted(k for k in meta if k.startswith("llama.") and k[6:] not in _GGUF_KEYS)
    if unknown:
        raise ValueError(f"{path}: unsupported GGUF metadata key(s) {unknown}")
    tensors = {t.name: t for t in reader.tensors}
    g = lambda key, default=None: meta.get(f"llama.{key}", default)  # noqa: E731
    d, heads = int(g("embedding_length")), int(g("attention.head_count"))
    hd = int(g("attention.key_length", d // heads))
    if int(g("rope.dimension_count", hd)) != hd or int(g("attention.value_length", hd)) != hd:
        raise ValueError(f"{path}: llama.rope.dimension_count / attention.value_length != head_dim {hd}")
    f32 = lambda x: float(f"{float(x):.7g}")  # noqa: E731  # stored as float32: drop the float32 noise
    cfg = ModelConfig(
        vocab_size=int(g("vocab_size", tensors["token_embd.weight"].shape[-1])), d_model=d,
        n_layers=int(g("block_count")), n_heads=heads, n_kv_heads=int(g("attention.head_count_kv", heads)),
        head_dim=hd, d_ff=int(g("feed_forward_length")), rope_theta=f32(g("rope.freq_base", 10000.0)),
        rms_eps=f32(g("attention.layer_norm_rms_epsilon")), tie_embeddings="output.weight" not in tensors,
        family="llama", param_dtype=np.dtype(dtype).name,
    )
    filler = _Filler(cfg, dtype)
    for name, t in tensors.items():
        m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", name)
        if name in _GGUF_TOP:
            hf = _GGUF_TOP[name]
        elif m and m.group(2) in _GGUF_LAYER:
            hf = f"model.layers.{m.group(1)}.{_GGUF_LAYER[m.group(2)]}.weight"
        else:
            raise ValueError(f"{path}: GGUF tensor {name!r} is not supported")
        w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), np.float32)
        if m and m.group(2) in ("attn_q", "attn_k"):
            w = _unpermute(w, heads if m.group(2) == "attn_q" else cfg.n_kv_heads)
        filler.put(hf, w.astype(dtype), path)
    return cfg, filler.result(path)
