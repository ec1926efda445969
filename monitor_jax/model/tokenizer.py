"""Tokenizer + chat template for one model, from a GGUF file or an HF tokenizer dir; resolves label words to ids.

Torch-free: text <-> ids through a `tokenizers.Tokenizer`, chat rendering through transformers'
`PreTrainedTokenizerFast.apply_chat_template` (built lazily, on first use).

From a GGUF only byte-level BPE (`tokenizer.ggml.model == "gpt2"`) is supported. The pre-tokenizer follows
`tokenizer.ggml.pre` the way llama.cpp does; for SmolLM2 ("smollm") that is the published tokenizer.json's
`Digits(individual_digits) -> ByteLevel(gpt-2 regex)`. transformers' own GGUF loader drops the digit split, which
changes the ids where whitespace precedes a number ("x =  5", " ½"); we follow the model's real tokenizer.

Text that contains a control token (e.g. "<|im_start|>") encodes it as that control token, as transformers does.
"""
from __future__ import annotations

import functools
import json
import mmap
import os
import re
import struct
from pathlib import Path
from typing import Any, Sequence

import gguf
import tokenizers
from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers

from monitor_jax.core import io

DEFAULT_LABEL_WORDS = ("Yes", "No")
# Tokens that end an assistant turn in common chat formats; those present join eos in `stop_ids`.
_STOP_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>")
_CONTROL, _USER_DEFINED = 3, 4  # llama.cpp token types
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_PRE_FAMILY = {  # tokenizer.ggml.pre -> the split llama.cpp applies before byte-level BPE
    **dict.fromkeys(("gpt-2", "gpt2", "phi-2"), "gpt2"),
    **dict.fromkeys(("smollm", "starcoder", "refact", "codeshell"), "digits+gpt2"),
    **dict.fromkeys(("llama3", "llama-v3", "llama-bpe", "smaug-bpe", "dbrx", "falcon3"), _LLAMA3_SPLIT),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen"), _QWEN2_SPLIT),
}


class LabelWordError(ValueError):
    """A label word is not exactly one token at the answer slot, or two words share a token."""


def read_gguf_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """All key/value metadata of a GGUF file, stopping before the tensor infos (gguf.GGUFReader takes ~3 s)."""
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        magic, version = struct.unpack_from("<II", buf, 0)
        if magic != gguf.GGUF_MAGIC:
            raise ValueError(f"{path}: not a GGUF file")
        end = "<" if version & 0xFFFF else ">"  # a big-endian file's version reads byte-swapped
        version = struct.unpack_from(end + "I", buf, 4)[0]
        if version not in (2, 3):
            raise ValueError(f"{path}: unsupported GGUF version {version}")
        n_kv = struct.unpack_from(end + "Q", buf, 16)[0]
        pos = 24

        def take(fmt: str) -> tuple:
            nonlocal pos
            out = struct.unpack_from(end + fmt, buf, pos)
            pos += struct.calcsize(end + fmt)
            return out

        def string() -> str:
            nonlocal pos
            (n,) = take("Q")
            pos += n
            return buf[pos - n:pos].decode("utf-8", errors="replace")

        def value(vtype: int) -> Any:
            if vtype == gguf.GGUFValueType.STRING:
                return string()
            if vtype == gguf.GGUFValueType.ARRAY:
                etype, count = take("IQ")
                if etype in scalar:
                    return list(take(f"{count}{scalar[etype]}"))
                return [value(etype) for _ in range(count)]
            return take(scalar[vtype])[0]

        meta = {}
        for _ in range(n_kv):
            key = string()
            meta[key] = value(take("I")[0])
        return meta


def _gguf_pre_tokenizer(pre: str) -> pre_tokenizers.PreTokenizer:
    """llama.cpp's pre-tokenizer for `tokenizer.ggml.pre`, as a `tokenizers` pre-tokenizer."""
    family = _PRE_FAMILY.get(pre)
    if family is None:
        raise ValueError(f"GGUF tokenizer.ggml.pre={pre!r} is not supported (known: {', '.join(sorted(_PRE_FAMILY))})")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)  # the gpt-2 split regex
    if family == "gpt2":
        return byte_level
    if family == "digits+gpt2":  # = SmolLM2's published tokenizer.json and llama.cpp's \p{N} split
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(family), behavior="isolated"),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def _token_content(tok: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or an AddedToken dict."""
    return tok.get("content") if isinstance(tok, dict) else tok


class Tokenizer:
    """Text <-> ids, chat rendering and label-word resolution for one model.

    `encode` never adds BOS/EOS: chat templates write their own (SmolLM2's GGUF also says add_bos_token=False).
    """

    def __init__(self, backend: tokenizers.Tokenizer, *, eos: str, bos: str | None = None, pad: str | None = None,
                 unk: str | None = None, chat_template: str | None = None, extra_stops: Sequence[str] = ()):
        self.backend = backend
        self.chat_template = chat_template
        self._tokens = {"bos_token": bos, "eos_token": eos, "pad_token": pad or eos, "unk_token": unk}
        for name, tok in self._tokens.items():
            if tok is not None and backend.token_to_id(tok) is None:
                raise ValueError(f"{name} {tok!r} is not in the vocabulary")
        self.eos_id: int = backend.token_to_id(eos)
        self.bos_id: int | None = backend.token_to_id(bos) if bos is not None else None
        self.pad_id: int = backend.token_to_id(pad or eos)
        stops = [self.eos_id] + [backend.token_to_id(t) for t in (*extra_stops, *_STOP_TOKENS)]
        self.stop_ids: tuple[int, ...] = tuple(dict.fromkeys(i for i in stops if i is not None))

    @classmethod
    def from_gguf(cls, path: str | os.PathLike) -> Tokenizer:
        """Byte-level BPE (`tokenizer.ggml.model == "gpt2"`) from a GGUF's metadata; tensors are not read."""
        meta = read_gguf_metadata(path)
        kind = meta.get("tokenizer.ggml.model")
        if kind != "gpt2":
            raise ValueError(f"{path}: GGUF tokenizer.ggml.model={kind!r} is not supported; only 'gpt2' "
                             "(byte-level BPE) is. Load the model's HF tokenizer dir with from_hf_dir instead.")
        tokens = meta["tokenizer.ggml.tokens"]
        types = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)
        merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]  # "Ġ t" -> ("Ġ", "t")
        backend = tokenizers.Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges, fuse_unk=False))
        backend.pre_tokenizer = _gguf_pre_tokenizer(meta.get("tokenizer.ggml.pre", "gpt2"))
        backend.decoder = decoders.ByteLevel()
        backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                    for t, ty in zip(tokens, types) if ty == _CONTROL])
        backend.add_tokens([AddedToken(t, special=False, normalized=False)
                            for t, ty in zip(tokens, types) if ty == _USER_DEFINED])

        def tok(key: str) -> str | None:
            i = meta.get(f"tokenizer.ggml.{key}_token_id")
            return tokens[i] if i is not None and 0 <= i < len(tokens) else None

        if tok("eos") is None:
            raise ValueError(f"{path}: GGUF has no tokenizer.ggml.eos_token_id")
        return cls(backend, eos=tok("eos"), bos=tok("bos"), pad=tok("padding"), unk=tok("unknown"),
                   chat_template=meta.get("tokenizer.chat_template"))

    @classmethod
    def from_hf_dir(cls, path: str | os.PathLike) -> Tokenizer:
        """`tokenizer.json` + special tokens and chat template from `tokenizer_config.json` (and friends)."""
        path = Path(path)
        backend = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
        cfg: dict[str, Any] = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):  # later files win
            if (path / name).is_file():
                cfg.update(json.loads((path / name).read_text(encoding="utf-8")))
        template = cfg.get("chat_template")
        if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
            template = {t["name"]: t["template"] for t in template}.get("default")
        if (path / "chat_template.jinja").is_file():
            template = (path / "chat_template.jinja").read_text(encoding="utf-8")
        stops: list[str] = []
        if (path / "generation_config.json").is_file():
            eos_ids = json.loads((path / "generation_config.json").read_text("utf-8")).get("eos_token_id") or []
            names = (backend.id_to_token(i) for i in ([eos_ids] if isinstance(eos_ids, int) else eos_ids))
            stops = [t for t in names if t is not None]
        eos = _token_content(cfg.get("eos_token")) or (stops[0] if stops else None)
        if eos is None:
            raise ValueError(f"{path}: no eos_token in tokenizer_config.json or generation_config.json")
        return cls(backend, eos=eos, bos=_token_content(cfg.get("bos_token")), pad=_token_content(cfg.get("pad_token")),
                   unk=_token_content(cfg.get("unk_token")), chat_template=template, extra_stops=stops)

    def save(self, path: str | os.PathLike) -> None:
        """Write `tokenizer.json` + `tokenizer_config.json` (HF layout; loads with from_hf_dir or AutoTokenizer)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = {"tokenizer_class": "PreTrainedTokenizerFast", **self._tokens, "add_bos_token": False,
                  "add_eos_token": False, "clean_up_tokenization_spaces": False, "chat_template": self.chat_template}
        io.write_text(path / "tokenizer.json", self.backend.to_str(pretty=False))
        io.write_text(path / "tokenizer_config.json", json.dumps(config, indent=2, ensure_ascii=False))

    @functools.cached_property
    def hf(self) -> Any:
        """transformers' `PreTrainedTokenizerFast` over a copy of the backend (for chat templates)."""
        from transformers import PreTrainedTokenizerFast  # imported lazily: ~1.3 s, and only chat needs it

        return PreTrainedTokenizerFast(tokenizer_object=tokenizers.Tokenizer.from_str(self.backend.to_str()),
                                       chat_template=self.chat_template, clean_up_tokenization_spaces=False,
                                       **{k: v for k, v in self._tokens.items() if v is not None})

    def template_accepts(self, name: str) -> bool:
        """Whether the chat template reads the variable `name` (e.g. "enable_thinking")."""
        return bool(self.chat_template) and re.search(rf"\b{re.escape(name)}\b", self.chat_template) is not None

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        """Id of a vocabulary entry in its raw spelling (byte-level: " Yes" is "ĠYes"), or None."""
        return self.backend.token_to_id(token)

    def encode(self, text: str) -> list[int]:
        """Ids of `text`, adding no BOS/EOS."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = True, *,
                    system: str | None = None, **template_kwargs: Any) -> str:
        """The chat template applied to `messages` (text, not ids); `template_kwargs` reach the template (e.g.
        Qwen3's `enable_thinking`).

        Some templates add a default system turn when the first message is not a system message (SmolLM2's:
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face"). To use your own, start
        `messages` with {"role": "system", ...} or pass `system=`.
        """
        if self.chat_template is None:
            raise ValueError("this tokenizer has no chat template; render prompts yourself")
        if system is not None:
            messages = [{"role": "system", "content": system}, *messages]
        return self.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                           **template_kwargs)

    def _single_id(self, context_ids: list[int], context: str, word: str) -> int | None:
        ids = self.encode(context + word)
        return ids[-1] if word and len(ids) == len(context_ids) + 1 and ids[:-1] == context_ids else None

    def _label_error(self, context_ids: list[int], context: str, word: str) -> LabelWordError:
        ids = self.encode(context + word)
        k = next((j for j, (a, b) in enumerate(zip(ids, context_ids)) if a != b), min(len(ids), len(context_ids)))
        merged = " (it merges with the end of the context)" if k < len(context_ids) else ""
        parts = [p for w in word.split() for p in (w, w.capitalize(), w.lower())]
        variants = dict.fromkeys(v for p in parts for v in (p, " " + p) if v != word)
        alts = [v for v in variants if self._single_id(context_ids, context, v) is not None][:6]
        hint = f"one-token alternatives here: {alts}" if alts else "choose a word that is one token here"
        pieces = [self.decode([i]) for i in ids[k:]]
        return LabelWordError(f"label word {word!r} is not one token at the answer slot: it tokenizes as "
                              f"{pieces}{merged}; {hint}")

    def resolve_label_words(self, words: Sequence[str], context: str | None = None) -> tuple[int, ...]:
        """The one token id of each label word when written right after `context` (the answer slot).

        `context` defaults to the rendered generation prompt of a one-turn chat, i.e. ends with the assistant
        header. Raises LabelWordError if a word is not exactly one token there, or two words share an id.
        """
        if context is None:
            if self.chat_template is None:
                raise ValueError("no chat template: pass the answer-slot context to resolve_label_words")
            context = self.render_chat([{"role": "user", "content": "Question?"}], add_generation_prompt=True)
        context_ids = self.encode(context)
        out: list[int] = []
        for word in words:
            i = self._single_id(context_ids, context, word)
            if i is None:
                raise self._label_error(context_ids, context, word)
            if i in out:
                raise LabelWordError(f"label words {words[out.index(i)]!r} and {word!r} map to the same token id {i}")
            out.append(i)
        return tuple(out)
