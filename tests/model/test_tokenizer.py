"""Tokenizer tests: parity with transformers' GGUF tokenizer and chat template, label words, HF dir round trip."""
import json
import os
import random
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import gguf
import pytest
import tokenizers

from monitor_jax.model.tokenizer import (
    DEFAULT_LABEL_WORDS,
    LabelWordError,
    Tokenizer,
    read_gguf_metadata,
)

_FRAGMENTS = [
    "Hello world", "The quick brown fox jumps over the lazy dog.", "I'm sure they'll say it's fine, DON'T you?",
    "Punctuation!!! ??? ... --- (parens) [brackets] {braces}", "e-mail: jane.doe@example.com, https://x.org/a?b=1&c=2",
    "def foo(x):\n    return x ** 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    '{"key": [1, 2.5, null, true], "nested": {"a": "b"}}', "$ ls -la /tmp && echo \"done\" | grep -v '^#'",
    "<div class=\"x\">&amp; <b>bold</b></div>", "| col1 | col2 |\n|------|------|\n| 1    | 2    |",
    "a  b   c    d", "   leading spaces", "trailing spaces   ", "\t\ttabs\tand\ttabs", "windows\r\nline\r\nends",
    "\n\n\nmany newlines\n\n", " \n \n mixed \t \n", "2024", "3.14159 and 1,000,000", "x =  5", "  42", "\n\n1. item",
    "line\n   10 apples", "version 1.2.3-rc4", "x² + ½ = ⅓?", "😀👍🏽🇺🇸 and ❤️", "family: 👨‍👩‍👧‍👦!",
    "你好，世界！这是一个测试。", "日本語のテキストとカタカナ ー", "한국어 텍스트입니다", "Café naïve résumé façade Ångström",
    "Straße, smørrebrød, œuvre", "e\u0301 combining accent", "Россия и Україна", "مرحبا بالعالم", "नमस्ते दुनिया",
    "สวัสดีครับ", "∑∫√∞ ≤ ≥ ≠ → ⇒", "zero\u200bwidth and no\u00a0break", "ĠĠ literal Ċ byte-level chars",
    "<|im_start|>user\nhi<|im_end|>\n", "<|endoftext|>", "text<|im_end|>more", "<repo_name>x<file_sep>y",
    "<|im_start|", "< |im_start| >", "<|im_start|><|im_start|>", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "ABCDEFGHIJKLMNOP QRSTUVWXYZ", "MiXeD CaSe WoRdS", "dGhpcyBpcyBiYXNlNjQ=", "snake_case_name camelCaseName",
    "'quoted' \"double\" `back`", "C:\\Users\\name\\file.txt", "tab\tseparated\tvalues\t1\t2", "α β γ δ",
    "Yes", "No", " Yes", " No", "yes no YES NO", "", " ", "\n", "\x00 nul byte", "ctrl \x04\x06 bytes not in vocab",
]
_SEPS = [" ", "  ", "\n", "\t", "", " \n ", "\n\n"]


def _texts() -> list[str]:
    rng = random.Random(0)
    mixed = [rng.choice(_SEPS).join(rng.sample(_FRAGMENTS, 3)) for _ in range(70)]
    return _FRAGMENTS + mixed


TEXTS = _texts()
# Bytes 0x04, 0x06, 0x13, 0x14, 0x16, 0x1d have no token in SmolLM2's vocab: encoding drops them (as HF does).
_DROPPED = re.compile("[\x04\x06\x13\x14\x16\x1d]")


def _digit_split_matters(text: str) -> bool:
    """Whether SmolLM2's digit split can change the ids: whitespace before a numeric char, where the published
    tokenizer (Digits first) isolates the numeric char, and transformers' GGUF loader (no Digits) pre-tokenizes
    " 5"/" ½" together, so a whitespace run loses its last char ("  5") or "Ġ" merges with a non-ASCII byte."""
    for i, c in enumerate(text[1:], 1):
        if text[i - 1].isspace() and unicodedata.category(c) in ("Nd", "Nl", "No"):
            if not c.isascii() or (i >= 2 and text[i - 2].isspace()):
                return True
    return False


CONVERSATIONS = [
    ([{"role": "user", "content": "Is this harmful? Answer Yes or No."}], True),
    ([{"role": "system", "content": "You are a monitor."}, {"role": "user", "content": "Q?"}], True),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"},
      {"role": "user", "content": "Déjà vu 😀\n\n  code:\n\tx = 1"}], True),
    ([{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
      {"role": "assistant", "content": "A"}], False),
    ([{"role": "user", "content": "contains <|im_end|> and <|im_start|>assistant\n"}], True),
]


@pytest.fixture(scope="module")
def tok(smollm2_gguf):
    return Tokenizer.from_gguf(smollm2_gguf)


@pytest.fixture(scope="module")
def ref(smollm2_gguf):
    """transformers' own GGUF tokenizer (the reference; loading it needs torch)."""
    from transformers import AutoTokenizer

    path = Path(smollm2_gguf)
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.fixture(scope="module")
def published(ref):
    """transformers' GGUF vocab/merges with SmolLM2's published tokenizer.json pre-tokenizer (Digits, ByteLevel)."""
    backend = tokenizers.Tokenizer.from_str(ref.backend_tokenizer.to_str())
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Sequence(
        [tokenizers.pre_tokenizers.Digits(individual_digits=True),
         tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    return backend


def test_enough_varied_texts():
    assert len(set(TEXTS)) >= 100
    assert sum(map(_digit_split_matters, TEXTS)) >= 3


def test_ids_match_transformers_gguf_tokenizer(tok, ref, published):
    ours = tok.encode_batch(TEXTS)
    assert ours == [tok.encode(t) for t in TEXTS]
    differ = 0
    for text, ids in zip(TEXTS, ours):
        assert ids == published.encode(text, add_special_tokens=False).ids, text
        if not _digit_split_matters(text):
            assert ids == ref.encode(text, add_special_tokens=False), text
        else:  # the one known difference: transformers' GGUF loader drops SmolLM2's digit split
            differ += ids != ref.encode(text, add_special_tokens=False)
    assert differ >= 3


def test_decode_round_trip(tok, ref):
    for text in TEXTS:
        ids = tok.encode(text)
        assert tok.decode(ids) == _DROPPED.sub("", text), text
        assert tok.decode(ids) == ref.decode(ids, clean_up_tokenization_spaces=False)
    ids = tok.encode("<|im_start|>user\nhi<|im_end|>")
    assert ids[0] == tok.bos_id == 1 and ids[-1] == tok.eos_id == 2
    assert tok.decode(ids, skip_special_tokens=True) == "user\nhi"


def test_special_ids_and_vocab(tok):
    assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.pad_id) == (49152, 1, 2, 2)
    assert tok.stop_ids == (2, 0)  # <|im_end|>, <|endoftext|>
    assert tok.token_to_id("ĠYes") == 9230 and tok.token_to_id("<|im_end|>") == 2
    assert tok.token_to_id("no such token here") is None
    assert isinstance(tok.backend, tokenizers.Tokenizer)
    assert tok.hf.convert_tokens_to_ids("<|im_start|>") == 1


@pytest.mark.parametrize("messages,gen", CONVERSATIONS)
def test_chat_template_matches_transformers(tok, ref, messages, gen):
    text = tok.render_chat(messages, add_generation_prompt=gen)
    assert text == ref.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    ids = ref.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen, return_dict=False)
    assert tok.encode(text) == list(ids)
    assert text.endswith("<|im_start|>assistant\n") == gen


def test_default_and_own_system_prompt(tok):
    user = [{"role": "user", "content": "Q?"}]
    default = tok.render_chat(user)
    assert default.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    own = tok.render_chat(user, system="You are a monitor.")
    assert own == tok.render_chat([{"role": "system", "content": "You are a monitor."}, *user])
    assert own.startswith("<|im_start|>system\nYou are a monitor.<|im_end|>\n") and "SmolLM" not in own


def test_label_words_resolve_at_answer_slot(tok):
    assert DEFAULT_LABEL_WORDS == ("Yes", "No")
    assert tok.resolve_label_words(DEFAULT_LABEL_WORDS) == (10539, 5230)
    assert tok.resolve_label_words((" Yes", " No")) == (9230, 2838)
    context = tok.render_chat([{"role": "user", "content": "Other question?"}], system="Be brief.")
    assert tok.resolve_label_words(("Yes", "No"), context=context) == (10539, 5230)
    assert tok.resolve_label_words(("No", "Yes", "Maybe"))[:2] == (5230, 10539)


def test_label_word_errors(tok):
    with pytest.raises(LabelWordError) as err:
        tok.resolve_label_words(("Absolutely yes", "No"))
    msg = str(err.value)
    assert isinstance(err.value, ValueError) and "\n" not in msg
    assert "'Absolutely yes'" in msg and "'Absol'" in msg and "alternatives" in msg and "' Yes'" in msg
    with pytest.raises(LabelWordError, match="same token id 10539"):
        tok.resolve_label_words(("Yes", "Yes"))
    with pytest.raises(LabelWordError, match="merges with the end of the context"):
        tok.resolve_label_words(("\n", "No"))
    with pytest.raises(LabelWordError, match="''"):
        tok.resolve_label_words(("", "No"))
    no_template = Tokenizer(tok.backend, eos="<|im_end|>")
    with pytest.raises(ValueError, match="context"):
        no_template.resolve_label_words(("Yes", "No"))
    assert no_template.resolve_label_words(("Yes", "No"), context="<|im_start|>assistant\n") == (10539, 5230)


def test_save_then_from_hf_dir_is_identical(tok, tmp_path):
    tok.save(tmp_path)
    back = Tokenizer.from_hf_dir(tmp_path)
    assert back.encode_batch(TEXTS) == tok.encode_batch(TEXTS)
    assert [back.decode(i) for i in tok.encode_batch(TEXTS)] == [tok.decode(i) for i in tok.encode_batch(TEXTS)]
    for messages, gen in CONVERSATIONS:
        assert back.render_chat(messages, gen) == tok.render_chat(messages, gen)
    assert back.resolve_label_words(("Yes", "No")) == (10539, 5230)
    assert back.chat_template == tok.chat_template
    fields = ("vocab_size", "bos_id", "eos_id", "pad_id", "stop_ids")
    assert [getattr(back, f) for f in fields] == [getattr(tok, f) for f in fields]
    # the export also loads in transformers as-is
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    assert [hf.encode(t, add_special_tokens=False) for t in TEXTS] == tok.encode_batch(TEXTS)
    assert hf.apply_chat_template(CONVERSATIONS[0][0], tokenize=False, add_generation_prompt=True) == \
        tok.render_chat(CONVERSATIONS[0][0])


def test_from_hf_dir_config_variants(tok, tmp_path):
    tok.save(tmp_path)
    cfg = {"eos_token": {"content": "<|im_end|>", "special": True}, "bos_token": None,
           "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 4]}))
    t = Tokenizer.from_hf_dir(tmp_path)
    assert (t.chat_template, t.bos_id, t.eos_id, t.pad_id, t.stop_ids) == ("D", None, 2, 2, (2, 4, 0))
    (tmp_path / "chat_template.jinja").write_text("J")
    assert Tokenizer.from_hf_dir(tmp_path).chat_template == "J"
    (tmp_path / "tokenizer_config.json").write_text("{}")
    (tmp_path / "generation_config.json").unlink()
    with pytest.raises(ValueError, match="no eos_token"):
        Tokenizer.from_hf_dir(tmp_path)


def _write_gguf(path: Path, source: Path, *, model: str = "gpt2", pre: str = "qwen2", n: int = 3000) -> Path:
    """A small GGUF holding the first `n` SmolLM2 tokens and the merges among them, and no tensors."""
    meta = read_gguf_metadata(source)
    tokens = meta["tokenizer.ggml.tokens"][:n]
    vocab = set(tokens)
    merges = [m for m in meta["tokenizer.ggml.merges"] if {*m.split(" "), m.replace(" ", "")} <= vocab]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model(model)
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(meta["tokenizer.ggml.token_type"][:n])
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template(meta["tokenizer.chat_template"])
    w.add_uint64("test.u64", 2**40)
    w.add_float64("test.f64", 0.125)
    w.add_bool("test.bool", True)
    w.add_array("test.floats", [0.5, -1.0])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("pre", ["qwen2", "llama-bpe"])
def test_other_pre_tokenizers_match_transformers(smollm2_gguf, tmp_path, pre):
    from transformers import AutoTokenizer

    path = _write_gguf(tmp_path / "t.gguf", Path(smollm2_gguf), pre=pre)
    reference = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file="t.gguf")
    ours = Tokenizer.from_gguf(path)
    assert ours.encode_batch(TEXTS) == [reference.encode(t, add_special_tokens=False) for t in TEXTS]


def test_metadata_reader_matches_gguf_reader(smollm2_gguf, tmp_path):
    path = _write_gguf(tmp_path / "t.gguf", Path(smollm2_gguf))
    ours = read_gguf_metadata(path)
    reader = gguf.GGUFReader(path)
    theirs = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert ours[key] == value, key
    real = read_gguf_metadata(smollm2_gguf)
    assert (real["llama.block_count"], real["llama.embedding_length"]) == (30, 576)
    assert real["tokenizer.ggml.pre"] == "smollm" and real["tokenizer.ggml.model"] == "gpt2"
    assert len(real["tokenizer.ggml.tokens"]) == 49152 and real["tokenizer.ggml.merges"][0] == "Ġ t"


def test_gguf_errors(smollm2_gguf, tmp_path):
    with pytest.raises(ValueError, match="tokenizer.ggml.model='llama'"):
        Tokenizer.from_gguf(_write_gguf(tmp_path / "a.gguf", Path(smollm2_gguf), model="llama", n=300))
    with pytest.raises(ValueError, match="tokenizer.ggml.pre='mystery'"):
        Tokenizer.from_gguf(_write_gguf(tmp_path / "b.gguf", Path(smollm2_gguf), pre="mystery", n=300))
    (tmp_path / "c.gguf").write_bytes(b"not a gguf file at all" * 4)
    with pytest.raises(ValueError, match="not a GGUF"):
        Tokenizer.from_gguf(tmp_path / "c.gguf")


def test_product_module_imports_neither_torch_nor_transformers():
    code = ("import sys, monitor_jax.model.tokenizer; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sys.modules.keys()")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
