"""Input files: every error is one line naming file:line or the path; UTF-8 with or without a BOM reads."""
import pytest

from monitor_jax.core import io


def test_read_jsonl_rows_and_each_bad_input_in_one_line(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{"b": "caf\xc3\xa9"}\r\n')
    assert list(io.read_jsonl(good)) == [(f"{good}:1", {"a": 1}), (f"{good}:3", {"b": "café"})]
    latin1, broken = tmp_path / "latin1.jsonl", tmp_path / "broken.jsonl"
    latin1.write_bytes(b'{"a": 1}\n{"b": "caf\xe9"}\n')
    broken.write_text('{"a": 1}\n{"a": 1,,}\n')
    cases = {latin1: f"{latin1}:2: not UTF-8 (byte 0xe9 at column 11)", broken: f"{broken}:2: invalid JSON (",
             tmp_path / "missing.jsonl": f"{tmp_path / 'missing.jsonl'}: no such file",
             tmp_path: f"{tmp_path}: cannot read ("}
    for path, message in cases.items():
        with pytest.raises(io.InputError) as e:
            list(io.read_jsonl(path))
        assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)


def test_read_text_drops_the_bom_and_raises_the_callers_error(tmp_path):
    class MyError(io.InputError):
        pass

    path = tmp_path / "t.yaml"
    path.write_bytes(b"\xef\xbb\xbfname: x\nline two\n")
    assert io.read_text(path) == "name: x\nline two\n"
    path.write_bytes(b"name: x\n\xff\n")
    with pytest.raises(MyError, match=r"t\.yaml:2: not UTF-8"):
        io.read_text(path, MyError)
